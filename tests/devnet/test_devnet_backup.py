"""Static channel backups on Bitcoin and Solana, over their real RPC: a node process loses
its store, restores its backup, and the restored channel is closed cooperatively with the
peer; its money arrives in the node's wallet. (EVM: tests/node/test_backup.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.test_server_harness import wait_for

from .harness import Devnet, DevnetNode, chenilles

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet-backup")]

BTC = "native@bip122:regtest"
SOL = "native@solana:localnet"
#: (deposit, paid to the peer, the most the close may cost the funder in fees and rent)
AMOUNTS = {BTC: (10**7, 10**6, 10**5), SOL: (10**9, 10**8, 10**7)}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevnetNode, DevnetNode]]:
    devnet = Devnet.up(tmp_path_factory.mktemp("devnet"), "--nodes", "alice,bob")
    alice, bob = devnet.node("alice"), devnet.node("bob")
    try:
        alice.start()
        bob.start()
        yield alice, bob
    finally:
        alice.stop()
        bob.stop()
        devnet.down()


@pytest.mark.parametrize("asset", [BTC, SOL], ids=["bitcoin", "solana"])
def test_a_node_that_lost_its_store_recovers_a_channel_from_its_backup(
    pair: tuple[DevnetNode, DevnetNode], asset: str, tmp_path: Path
) -> None:
    alice, bob = pair
    deposit, paid, costs = AMOUNTS[asset]
    channel_id = alice.open_channel(bob, asset, deposit, challenge=5)
    alice.api.post(f"/v1/channels/{channel_id}/transfers", {"amount": paid})
    out = tmp_path / "alice.backup"
    config = str(alice.config_path)
    chenilles("backup", "export", "--out", str(out), "--config", config)
    local = alice.channel(channel_id)["balances"][0]["local"]
    assert local == deposit - paid
    before = alice.wallet(asset)
    alice.stop()
    for path in (alice.directory / "data").glob("node.sqlite*"):
        path.unlink()
    restored = chenilles("backup", "restore", str(out), "--config", config, "--json")
    assert [c["channel_id"] for c in json.loads(restored.stdout)["restored"]] == [channel_id]
    alice.start()
    alice.connect(bob)  # peers added at run time are not in the config
    alice.wait_closed(channel_id)
    bob.wait_closed(channel_id)
    gained = wait_for(
        lambda: (g := alice.wallet(asset) - before) >= local - costs and g,
        what="the payout in the wallet",
    )
    assert local - costs <= gained <= local + costs, (gained, local)
    assert f"{channel_id[:8]} closed cooperatively" in alice.log_tail(200)
