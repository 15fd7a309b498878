"""App channels through the operator's surface: two ``chenilles node start`` processes on
anvil, the example apps deployed there and bound in each node's config
(``[chains.evm.apps]``); a game opened through the API, played through the CLI, shown
through both, and closed cooperatively; bad moves answered with an error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from chenilles_app_tictactoe import rules as ttt

from chenilles_hub import apps
from chenilles_hub.node.api.client import ApiCallError
from tests.node.test_server_harness import (
    CONSENTING,
    NATIVE,
    AnvilChain,
    NodeProc,
    anvil,
    connected,
    make_node,
    wait_for,
)

pytestmark = [pytest.mark.apps, pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]

STAKE = 10**15


@pytest.fixture(scope="module")
def players(anvil: AnvilChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    from chenilles_evm.backend import connect_backend

    deployer = connect_backend(anvil.url, adjudicator=anvil.adjudicator)
    bound = {
        name: deployer.use_app(name, code=apps.app(name).onchain_code("EVM"))
        for name in ("tictactoe", "escrow")
    }
    table = "\n[chains.evm.apps]\n" + "".join(f'{k} = "{v}"\n' for k, v in bound.items())
    base: Path = tmp_path_factory.mktemp("apps")
    alice = make_node(base, "alice", anvil, 4)
    bob = make_node(base, "bob", anvil, 5)
    alice.peers = [bob]
    alice.tail = bob.tail = table + CONSENTING
    try:
        bob.start(wait=False)
        alice.start(wait=False)
        bob.wait_ready()
        alice.wait_ready()
        wait_for(lambda: connected(alice, bob), what="connected")
        yield alice, bob
    finally:
        alice.stop()
        bob.stop()


def test_a_game_through_the_api_and_the_cli(
    players: tuple[NodeProc, NodeProc], anvil: AnvilChain
) -> None:
    alice, bob = players
    listed = {a["name"]: a for a in alice.api.get("/v1/apps")}
    assert listed["tictactoe"]["chains"] == ["eip155:31337"]
    started = alice.api.post(
        "/v1/apps/tictactoe/channels",
        {
            "peer": bob.node_id,
            "asset": NATIVE,
            "amount": STAKE,
            "remote_amount": STAKE,
            "challenge_duration": 600,
            "options": {"x": 0},
        },
    )
    with anvil.mining():  # the deposits must reach the confirmation depth
        opened = wait_for(
            lambda: (
                (r := alice.api.get(f"/v1/channels/opening/{started['temp_id']}"))["status"]
                == "active"
                and r
            ),
            what="app channel active",
        )
        cid = opened["channel_id"]
        wait_for(
            lambda: bob.api.get(f"/v1/channels/{cid}")["status"] == "active", what="bob active"
        )
    shown = json.loads(alice.cli("app", "show", cid, "--json").stdout)
    assert shown["app"] == "tictactoe" and shown["my_turn"] and shown["turn"] == [0]
    # bob out of turn, and a move the app cannot parse: errors, nothing changes
    with pytest.raises(ApiCallError) as refused:
        bob.api.post(f"/v1/channels/{cid}/app/moves", {"move": {"cell": 4}})
    assert refused.value.status == 422
    with pytest.raises(ApiCallError) as bad:
        bob.api.post(f"/v1/channels/{cid}/app/moves", {"move": {"cell": 12}})
    assert bad.value.status == 400
    game = [(alice, 0), (bob, 1), (alice, 2), (bob, 3), (alice, 4), (bob, 5), (alice, 7), (bob, 6)]
    for version, (node, cell) in enumerate(game, start=1):
        node.cli("app", "move", cid, json.dumps({"cell": cell}))
        wait_for(
            lambda v=version: (
                bob.api.get(f"/v1/channels/{cid}/app")["version"] == v
                and alice.api.get(f"/v1/channels/{cid}/app")["version"] == v
            ),
            what=f"version {version} on both",
        )
    alice.cli("app", "move", cid, '{"cell": 8}')
    final = wait_for(
        lambda: (s := bob.api.get(f"/v1/channels/{cid}/app"))["over"] and s, what="game over"
    )
    assert final["state"]["winner"] == 0 and final["state"]["board"] == ["XOX", "OXO", "OXX"]
    human = bob.cli("app", "show", cid).stdout
    assert "winner" in human and "XOX" in human
    alice.api.post(f"/v1/channels/{cid}/close", {})
    closed = wait_for(
        lambda: (c := alice.api.get(f"/v1/channels/{cid}"))["status"] == "closed" and c,
        what="closed",
    )
    assert closed["balances"][0]["local"] == 2 * STAKE
    assert ttt.Game.decode(bytes.fromhex(final["app_data"])).winner() == 0  # type: ignore[union-attr]


def test_an_app_channel_open_is_checked_before_it_is_asked(
    players: tuple[NodeProc, NodeProc],
) -> None:
    alice, bob = players
    body = {"peer": bob.node_id, "asset": NATIVE, "amount": 5, "remote_amount": 6}
    with pytest.raises(ApiCallError) as unequal:  # tic-tac-toe stakes must be equal
        alice.api.post("/v1/apps/tictactoe/channels", body)
    assert unequal.value.status == 422 and "same" in str(unequal.value)
    with pytest.raises(ApiCallError) as unknown:
        alice.api.post("/v1/apps/chess/channels", body)
    assert unknown.value.status == 404
    with pytest.raises(ApiCallError) as options:
        alice.api.post("/v1/apps/escrow/channels", {**body, "options": {"buyer": 3}})
    assert options.value.status == 400
