"""A payout the chain did not release at once (a closing transaction not final yet, an
endpoint down) is collected by a later tick, after a restart too: the channel stays
``closing`` until every asset of ours arrived. The tick visits only such channels
(``NodeContext.collecting``), not every channel of the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chenilles_hub.backend import LedgerError
from chenilles_hub.core import Asset
from chenilles_hub.node.hub.chain_actions import WITHDRAW_RETRY
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World

pytestmark = pytest.mark.circuit

ETH = 10**18


def test_a_payout_the_chain_held_back_is_collected_by_a_later_tick_and_after_a_restart(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = world.clock_backend
    eth = Asset(backend.chain, "native")
    alice = world.node("alice", [eth.chain], store=SQLiteStore(tmp_path / "alice.sqlite"))
    bob = world.node("bob", [eth.chain])
    channel_id = world.open(alice, bob, eth.chain, {eth: (ETH, 0)})
    withdraw = type(backend).withdraw
    refuse, asked = [True], [0]

    def held_back(self: Any, *args: Any, **kwargs: Any) -> Any:
        asked[0] += 1
        if refuse[0]:
            raise LedgerError("withdraw", "the payout is not released yet")
        return withdraw(self, *args, **kwargs)

    monkeypatch.setattr(type(backend), "withdraw", held_back)
    account = alice.accounts[eth.chain]
    start, paid_before = backend.balance(account, eth), len(alice.channels[channel_id].receipts)
    alice.close(channel_id)
    world.network.run()
    channel = alice.channels[channel_id]
    assert channel.status == "closing" and channel.concluded
    assert "not released yet" in channel.last_error
    assert channel_id in alice.ctx.collecting  # the ticks' list of channels to collect
    tried = asked[0]
    world.advance(WITHDRAW_RETRY + 1)
    assert asked[0] > tried  # tried again by a tick, held back again
    assert alice.channels[channel_id].status == "closing"

    assert alice.store is not None
    alice.store.close()
    world.network.silence(alice)
    alice = world.restart(alice, SQLiteStore(tmp_path / "alice.sqlite"))
    assert channel_id in alice.ctx.collecting  # a restored channel still to collect
    refuse[0] = False
    world.advance(WITHDRAW_RETRY + 1)
    channel = alice.channels[channel_id]
    assert channel.status == "closed" and eth in channel.withdrawn
    fees = sum(r.fee for r in channel.receipts[paid_before:])
    assert backend.balance(account, eth) == start + ETH - fees  # every wei of hers
    alice.tick()
    assert channel_id not in alice.ctx.collecting  # collected: not visited again
    assert alice.store is not None
    alice.store.close()
