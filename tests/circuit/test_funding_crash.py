"""A node that crashes right after its funding transaction, before it could record it, must
neither fund the channel twice nor leave it unfunded: the chain's own record of the deposit
settles what the node forgot."""

from __future__ import annotations

from typing import Any

import pytest
from chenilles_evm.backend import embedded_backend
from chenilles_evm.mapping import asset_address

from chenilles_hub.core import Asset
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, confirm

pytestmark = pytest.mark.circuit

ETH = 10**18


class Crash(BaseException):
    """The process dies here (BaseException: no handler of the node's catches it)."""


class CrashAfterFunding:
    """The real backend, except that the first funding transaction is the last thing the
    process does: it reaches the chain, nothing after it reaches the disk."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.armed = True
        self.fundings = 0

    def fund(self, *args: Any) -> Any:
        receipt = self._inner.fund(*args)
        self.fundings += 1
        if self.armed:
            self.armed = False
            raise Crash
        return receipt

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("poll_before_restart", [False, True])
def test_a_crash_right_after_funding_neither_funds_twice_nor_strands_the_channel(
    tmp_path: Any, poll_before_restart: bool
) -> None:
    backend = embedded_backend()
    try:
        world = World({backend.chain: backend}, backend)
        eth = Asset(backend.chain, "native")
        store = SQLiteStore(tmp_path / "alice.sqlite")
        alice = world.node("alice", [backend.chain], store=store)
        crashing = CrashAfterFunding(backend)
        alice.backends = {backend.chain: crashing}  # type: ignore[misc]
        bob = world.node("bob", [backend.chain])
        alice.open_channel(bob.node_id, backend.chain, {eth: (ETH, 0)}, 600)
        with pytest.raises(Crash):
            world.network.run()
        (channel_id,) = alice.channels
        alice.outbox.clear()  # the crash: nothing more leaves the old process
        store.close()
        world.network.silence(alice)
        missed = []
        if poll_before_restart:  # the deposit's event goes by while alice is down
            missed = backend.poll_events()
            bob.on_chain_events(backend.chain, missed)
        store = SQLiteStore(tmp_path / "alice.sqlite")
        alice = world.restart(alice, store)
        # A restarted server re-reads its chains from the block where it first started.
        alice.on_chain_events(backend.chain, missed)
        world.network.run()
        world.sync()
        world.network.run()
        confirm(world)  # both deposits at the chain's depth: the channel opens

        params = alice.channels[channel_id].params
        held = backend.adjudicator.holding(backend.channel_id(params), asset_address(eth))
        assert crashing.fundings == 1, "funded twice"
        assert held == ETH
        assert alice.channels[channel_id].active and bob.channels[channel_id].active
        alice.pay_direct(channel_id, eth, 10**17)
        world.network.run()
        assert bob.channels[channel_id].machine.state.free(eth) == (ETH - 10**17, 10**17)
        store.close()
    finally:
        backend.close()
