"""A chain transaction cannot be recalled: what it relies on is on disk before it leaves.

Found by review: a node grouping its events into jobs (the server) wrote a job's changes
only at the job's end, while a refutation, a registration or a claim left in the middle of
the job. A crash right after such a transaction lost the state it was built from (and a
preimage learned in the same job) while the chain kept it. These tests crash the node
around a transaction, or have the ledger refuse one, and look at what its store holds and
whether the node still finishes what it started (a cooperative close, a deposit).
"""

from __future__ import annotations

from typing import Any

import pytest
from chenilles_evm.backend import embedded_backend
from chenilles_evm.mapping import asset_address

from chenilles_hub.backend import LedgerError
from chenilles_hub.core import Accept
from chenilles_hub.core.watcher import GuardChannel
from chenilles_hub.node.net import wire
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import alice_and_bob, confirm

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]

ETH = 10**18


class Crash(BaseException):
    """The process dies here (BaseException: no handler of the node's catches it)."""


class CrashAfter:
    """The real backend, except that the named call is the last thing the process does:
    its transaction reaches the chain, nothing after it reaches the disk."""

    def __init__(self, inner: Any, operation: str) -> None:
        self._inner = inner
        self._operation = operation

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._operation:
            return attr

        def last_words(*args: Any, **kwargs: Any) -> Any:
            attr(*args, **kwargs)
            raise Crash

        return last_words


def test_a_refutation_in_the_job_that_signed_its_state_leaves_that_state_on_disk(
    tmp_path: Any,
) -> None:
    """Bob proposes version N (a transfer to Alice) and, in the same breath, registers
    version N - 1 on-chain. Alice's job takes the proposal (she signs N) and the chain's
    event (she refutes with N), then she dies: her store must hold N, the state the chain
    now has, not N - 1."""
    backend = embedded_backend()
    try:
        store = SQLiteStore(tmp_path / "alice.sqlite")
        world, eth, alice, bob = alice_and_bob(backend, store)
        channel_id = world.open(alice, bob, backend.chain, {eth: (ETH, ETH)})
        alice.pay_direct(channel_id, eth, 10**16)
        world.network.run()
        old = bob.channels[channel_id].machine.latest
        assert old is not None and old.complete

        bob.pay_direct(channel_id, eth, 10**17)  # version N, still in Bob's outbox
        proposals = list(bob.outbox)
        bob.outbox.clear()
        world.network.silence(bob)
        params = alice.channels[channel_id].params
        backend.register(params, old, bob.accounts[backend.chain])
        events = backend.poll_events()

        alice.autocommit = False  # one job, one checkpoint at its end, as the server runs
        alice.backends = {backend.chain: CrashAfter(backend, "challenge")}  # type: ignore[misc]
        alice.channels[channel_id].backend = alice.backends[backend.chain]  # type: ignore[assignment]
        for _peer, data in proposals:
            alice.receive(bob.node_id, data)
        signed = alice.channels[channel_id].machine.latest
        assert signed is not None and signed.version == old.version + 1
        with pytest.raises(Crash):
            alice.on_chain_events(backend.chain, events)
        store.close()

        alice = world.restart(alice, SQLiteStore(tmp_path / "alice.sqlite"))
        kept = alice.channels[channel_id].machine.latest
        assert kept is not None and kept.version == signed.version, "its state was lost"
        alice.ctx.store.close()  # type: ignore[union-attr]
    finally:
        backend.close()


class CrashBefore(CrashAfter):
    """The named call never reaches the chain: the process dies as it is made."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._operation:
            return attr

        def died(*args: Any, **kwargs: Any) -> Any:
            raise Crash

        return died


@pytest.mark.parametrize("grouped", [False, True])
def test_a_crash_as_the_cooperative_close_leaves_closes_it_after_the_restart(
    tmp_path: Any, grouped: bool
) -> None:
    """The one transaction that writes nothing first: a cooperative close is asked for by
    the peer's Accept of the final state. Written before the close, that state would come
    back from a crash complete, the peer would not send its Accept again, and nothing would
    ask for the close (found by the crash harness when the close wrote first). Unwritten,
    the peer sends its Accept again after the restart and the close goes out."""
    backend = embedded_backend()
    try:
        store = SQLiteStore(tmp_path / "alice.sqlite")
        world, eth, alice, bob = alice_and_bob(backend, store)
        channel_id = world.open(alice, bob, backend.chain, {eth: (ETH, ETH)})
        alice.pay_direct(channel_id, eth, 10**17)
        world.network.run()
        start = backend.balance(alice.accounts[backend.chain], eth)

        alice.backends = {backend.chain: CrashBefore(backend, "close_cooperative")}  # type: ignore[misc]
        alice.channels[channel_id].backend = alice.backends[backend.chain]  # type: ignore[assignment]
        alice.close(channel_id)
        with pytest.raises(Crash):
            if grouped:
                alice.autocommit = bob.autocommit = False
                world.network.run_in_jobs()
            else:
                world.network.run()
        alice.outbox.clear()
        store.close()
        world.network.silence(alice)

        alice.backends = {backend.chain: backend}  # the new process: the chain as it is
        alice = world.restart(alice, SQLiteStore(tmp_path / "alice.sqlite"))
        world.network.revive(alice)
        for _ in range(3):
            world.advance(60)
        assert alice.channels[channel_id].status == "closed", "\n".join(alice.journal[-6:])
        paid = backend.balance(alice.accounts[backend.chain], eth) - start
        assert ETH - 10**17 - 10**16 < paid <= ETH - 10**17
        alice.ctx.store.close()  # type: ignore[union-attr]
    finally:
        backend.close()


class RefusingFund:
    """A wallet that cannot pay the deposit until ``can_pay`` (the ledger refuses it
    before anything is mined: no receipt)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.can_pay = False

    def fund(self, *args: Any) -> Any:
        if not self.can_pay:
            raise LedgerError("fund", "insufficient funds for the deposit")
        return self._inner.fund(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_deposit_refused_after_version_0_was_written_is_sent_once_the_wallet_can(
    tmp_path: Any,
) -> None:
    """Found by review: version 0 is written before the deposit; the ledger then refuses
    the deposit (the wallet cannot pay it). Undoing the peer's Accept went back past that
    write: the watcher's change log, taken by the write, made the undo fail, and version 0,
    both signed and on disk, was never funded (the peer's Accept, sent again, was a
    duplicate). Now the Accept is undone only back to the write, and the refused deposit is
    tried again on each block until it goes."""
    backend = embedded_backend()
    try:
        store = SQLiteStore(tmp_path / "alice.sqlite")
        wallet = RefusingFund(backend)
        world, eth, alice, bob = alice_and_bob(backend, store, wallet)
        alice.open_channel(bob.node_id, backend.chain, {eth: (ETH, 0)}, 600)

        def bob_accepted() -> bool:
            return any(
                isinstance(m, Accept) and m.version == 0
                for m in (wire.decode(data) for _peer, data in bob.outbox)
            )

        assert world.network.run_until(bob_accepted)
        (channel_id,) = alice.channels
        frames = [data for _peer, data in bob.outbox]
        bob.outbox.clear()
        alice.autocommit = False  # one job: an earlier event of it changed the watcher
        alice.ctx.watcher.add(GuardChannel(b"\x07" * 32))
        for data in frames:
            alice.receive(bob.node_id, data)  # nothing escapes: the refusal is contained
        alice.checkpoint()
        alice.autocommit = True
        channel = alice.channels[channel_id]
        assert channel.machine.latest is not None and channel.machine.latest.complete
        assert "insufficient funds" in channel.last_error

        wallet.can_pay = True
        world.network.run()
        for _ in range(3):
            world.advance(30)
        confirm(world)
        world.network.run()
        params = channel.params
        assert backend.adjudicator.holding(backend.channel_id(params), asset_address(eth)) == ETH
        assert alice.channels[channel_id].active and bob.channels[channel_id].active
        store.close()
    finally:
        backend.close()


class SentButTimedOut(RefusingFund):
    """The deposit reaches the chain, but the wait for its receipt fails, which the node
    reads as a refusal (a ``LedgerError`` without a receipt)."""

    def fund(self, *args: Any) -> Any:
        self.sent = getattr(self, "sent", 0) + 1
        self._inner.fund(*args)
        if self.sent == 1:
            raise LedgerError("fund", "timed out waiting for the receipt")
        return None


def test_a_deposit_read_as_refused_that_reached_the_chain_is_never_sent_twice(
    tmp_path: Any,
) -> None:
    """Found by review: a refused deposit is tried again on each block, and a refusal that
    was only a receipt's timeout (the deposit on its way) would be sent a second time: the
    chain would hold twice the agreed deposit, and the channel never open. The retry first
    looks at the chain: a deposit there is waited for as one sent."""
    backend = embedded_backend()
    try:
        store = SQLiteStore(tmp_path / "alice.sqlite")
        wallet = SentButTimedOut(backend)
        world, eth, alice, bob = alice_and_bob(backend, store, wallet)
        alice.open_channel(bob.node_id, backend.chain, {eth: (ETH, 0)}, 600)
        world.network.run()
        (channel_id,) = alice.channels
        for _ in range(4):
            world.advance(30)
        confirm(world)
        world.network.run()
        params = alice.channels[channel_id].params
        assert wallet.sent == 1, "the deposit was sent twice"
        assert backend.adjudicator.holding(backend.channel_id(params), asset_address(eth)) == ETH
        assert alice.channels[channel_id].active and bob.channels[channel_id].active
        store.close()
    finally:
        backend.close()
