"""A virtual channel through three ``chenilles node start`` processes on anvil: ledger
channels of the ``virtual`` app opened through the API (Alice-hub, hub-Bob), V opened with
``chenilles virtual open``, 50 payments through the API and the CLI, closed with
``chenilles virtual close``; the ledger channels carry V's outcome exactly and the chain
saw no transaction from open to close. Runtime: about 40 s (three node processes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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

pytestmark = [pytest.mark.groups, pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]

DEPOSIT = 10**15
SPLIT = (3 * 10**12, 2 * 10**12)


@pytest.fixture(scope="module")
def trio(anvil: AnvilChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    from chenilles_evm.backend import connect_backend

    deployer = connect_backend(anvil.url, adjudicator=anvil.adjudicator)
    bound = deployer.use_app("virtual", code=apps.app("virtual").onchain_code("EVM"))
    table = f'\n[chains.evm.apps]\nvirtual = "{bound}"\n'
    base: Path = tmp_path_factory.mktemp("virtual")
    alice, hub, bob = (
        make_node(base, n, anvil, i) for n, i in (("alice", 6), ("hub", 7), ("bob", 8))
    )
    alice.peers = [hub, bob]
    bob.peers = [hub]
    for n in (alice, hub, bob):
        n.tail = table + CONSENTING
    try:
        for n in (hub, bob, alice):
            n.start(wait=False)
        for n in (hub, bob, alice):
            n.wait_ready()
        wait_for(lambda: connected(alice, hub) and connected(alice, bob), what="alice connected")
        wait_for(lambda: connected(bob, hub), what="bob connected")
        yield alice, hub, bob
    finally:
        for n in (alice, hub, bob):
            n.stop()


def ledger(a: NodeProc, b: NodeProc, anvil: AnvilChain) -> str:
    body = {"peer": b.node_id, "asset": NATIVE, "amount": DEPOSIT, "remote_amount": DEPOSIT}
    started = a.api.post("/v1/apps/virtual/channels", {**body, "challenge_duration": 600})
    with anvil.mining():
        opened = wait_for(
            lambda: (
                (r := a.api.get(f"/v1/channels/opening/{started['temp_id']}"))["status"] == "active"
                and r
            ),
            what="ledger channel active",
        )
        cid = str(opened["channel_id"])
        wait_for(lambda: b.api.get(f"/v1/channels/{cid}")["status"] == "active", what="peer")
    return cid


def transactions(anvil: AnvilChain, since: int) -> int:
    w3 = anvil.ledger.w3
    top = int(w3.eth.block_number)
    return sum(len(w3.eth.get_block(n)["transactions"]) for n in range(since + 1, top + 1))


def view(node: NodeProc, vid: str) -> dict[str, Any]:
    return node.api.get(f"/v1/virtual/{vid}")  # type: ignore[no-any-return]


def test_open_pay_close_through_processes(
    trio: tuple[NodeProc, NodeProc, NodeProc], anvil: AnvilChain
) -> None:
    alice, hub, bob = trio
    la, lb = ledger(alice, hub, anvil), ledger(hub, bob, anvil)
    start = int(anvil.ledger.w3.eth.block_number)
    ask = {"hub": hub.node_id, "peer": bob.node_id, "amount": SPLIT[0]}
    for bad in ("3", "0/1", "a/b", 5, "1/0", "-1/2"):  # a clear error, nothing opened
        with pytest.raises(ApiCallError) as refused:
            alice.api.post("/v1/virtual", {**ask, "rate": bad})
        assert refused.value.status == 400 and "rate" in str(refused.value), bad
    assert alice.api.get("/v1/virtual")["virtual_channels"] == []
    opened = json.loads(
        alice.cli(
            "virtual", "open", "--hub", hub.node_id, "--peer", bob.node_id,
            "--amount", str(SPLIT[0]), "--remote-amount", str(SPLIT[1]), "--rate", "1/1",
            "--json",
        ).stdout
    )  # fmt: skip
    assert opened["status"] == "open" and opened["funded_by"] == [la, lb]
    vid = opened["virtual_channel_id"]
    wait_for(lambda: view(bob, vid)["status"] == "open", what="bob sees V open")
    for i in range(50):  # Alice pays 3, Bob pays 1, alternately; every 10th through the CLI
        payer, amount = (alice, 3) if i % 2 == 0 else (bob, 1)
        if i % 10 == 0:
            payer.cli("virtual", "pay", vid, str(amount))
        else:
            payer.api.post(f"/v1/virtual/{vid}/payments", {"amount": amount})
        wait_for(lambda v=i + 1: view(alice, vid)["version"] == v == view(bob, vid)["version"])
    assert view(bob, vid)["balances"] == [SPLIT[0] - 50, SPLIT[1] + 50]
    with pytest.raises(ApiCallError) as refused:  # the hub is no member of V
        hub.api.post(f"/v1/virtual/{vid}/payments", {"amount": 1})
    assert refused.value.status == 422
    with pytest.raises(ApiCallError) as unknown:
        alice.api.get(f"/v1/virtual/{'00' * 32}")
    assert unknown.value.status == 404
    alice.cli("virtual", "close", vid)
    for n in (alice, hub, bob):
        wait_for(lambda n=n: view(n, vid)["status"] == "closed", what=f"{n.name} closed")
    listed = json.loads(hub.cli("virtual", "list", "--json").stdout)["virtual_channels"]
    assert [(v["virtual_channel_id"], v["status"]) for v in listed] == [(vid, "closed")]
    assert "closed" in bob.cli("virtual", "list").stdout
    for cid, node in ((la, alice), (lb, bob)):
        shown = node.api.get(f"/v1/channels/{cid}")
        mine = shown["balances"][0]["local"]
        assert mine == (DEPOSIT - 50 if node is alice else DEPOSIT + 50), shown
    assert transactions(anvil, start) == 0
