"""A node that crashes right after its funding transaction, before it could record it, must
neither fund the channel twice nor leave it unfunded: the chain's own record of the deposit
settles what the node forgot."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from chenilles_evm.backend import embedded_backend
from chenilles_evm.mapping import asset_address

from chenilles_hub.core import Asset
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, alice_and_bob, confirm

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


def _open_until_the_crash(
    world: World, alice: Node, bob: Node, deposits: dict[Asset, tuple[int, int]], grouped: bool
) -> bytes:
    """Alice opens a channel with Bob until her process dies (her backend's ``Crash``):
    what she had not sent is lost, her store is closed as a ``kill -9`` leaves it.
    ``grouped``: both nodes checkpoint once per job, as the server does."""
    alice.open_channel(bob.node_id, next(iter(alice.backends)), deposits, 600)
    with pytest.raises(Crash):
        if grouped:
            alice.autocommit = bob.autocommit = False
            world.network.run_in_jobs()
        else:
            world.network.run()
    (channel_id,) = alice.channels
    alice.outbox.clear()
    assert alice.ctx.store is not None
    alice.ctx.store.close()
    return channel_id


@pytest.mark.parametrize("poll_before_restart", [False, True])
def test_a_crash_right_after_funding_neither_funds_twice_nor_strands_the_channel(
    tmp_path: Any, poll_before_restart: bool
) -> None:
    backend = embedded_backend()
    try:
        store = SQLiteStore(tmp_path / "alice.sqlite")
        crashing = CrashAfterFunding(backend)
        world, eth, alice, bob = alice_and_bob(backend, store, crashing)
        channel_id = _open_until_the_crash(world, alice, bob, {eth: (ETH, 0)}, grouped=False)
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


class CrashBeforeFunding(CrashAfterFunding):
    """The process dies between the durable marker and its funding transaction: the
    marker says "sent", the chain never saw it."""

    def fund(self, *args: Any) -> Any:
        if self.armed:
            self.armed = False
            raise Crash
        self.fundings += 1
        return self._inner.fund(*args)


@pytest.mark.adversarial
@pytest.mark.parametrize("crash", [CrashBeforeFunding, CrashAfterFunding])
def test_a_deposit_the_crash_kept_from_the_chain_is_sent_again_once(
    tmp_path: Any, crash: type[CrashAfterFunding]
) -> None:
    """Found by the crash harness (tests/node/crash_harness.py): the node waited forever for
    a deposit it had marked as sent but never sent, the peer's deposit locked with it. Now,
    when the chain shows none of it twice its inclusion delay later, it is sent again; a
    deposit that did reach the chain is never sent twice, however long it takes."""
    backend = embedded_backend()
    try:
        store = SQLiteStore(tmp_path / "alice.sqlite")
        crashing = crash(backend)
        world, eth, alice, bob = alice_and_bob(backend, store, crashing)
        channel_id = _open_until_the_crash(world, alice, bob, {eth: (ETH, ETH)}, grouped=False)
        world.network.silence(alice)
        store = SQLiteStore(tmp_path / "alice.sqlite")
        alice = world.restart(alice, store)
        alice.backends = {backend.chain: crashing}  # type: ignore[misc]
        alice.channels[channel_id].backend = crashing  # type: ignore[assignment]
        world.network.run()
        confirm(world)
        if crash is CrashBeforeFunding:
            assert not alice.channels[channel_id].active, "active without our deposit"
        for _ in range(6):  # three minutes of chain time: past twice the inclusion delay
            world.advance(30)
        confirm(world)
        world.network.run()

        params = alice.channels[channel_id].params
        held = backend.adjudicator.holding(backend.channel_id(params), asset_address(eth))
        assert crashing.fundings == 1
        assert held == 2 * ETH
        assert alice.channels[channel_id].active and bob.channels[channel_id].active
        alice.pay_direct(channel_id, eth, 10**17)
        world.network.run()
        assert bob.channels[channel_id].machine.state.free(eth) == (ETH - 10**17, ETH + 10**17)
        store.close()
    finally:
        backend.close()


@pytest.mark.adversarial
def test_an_open_the_acceptor_forgot_in_a_crash_is_abandoned_and_a_new_one_opens(
    tmp_path: Any,
) -> None:
    """Found by the crash harness: Bob was killed after he created the channel from
    Alice's ``OpenChannel`` and before he wrote his acceptance of version 0. He comes back
    without it (and without the open request) and answers Alice's retransmissions with "no
    channel"; Alice's channel stayed ``opening`` for good. Now she abandons it once the
    open policy's pending timeout has passed (nothing can be deposited before version 0
    is signed by both) and the next open goes through."""
    backend = embedded_backend()
    try:
        world = World({backend.chain: backend}, backend)
        eth = Asset(backend.chain, "native")
        alice = world.node("alice", [backend.chain])
        bob_store = SQLiteStore(tmp_path / "bob.sqlite")
        bob = world.node("bob", [backend.chain], store=bob_store)
        alice.open_channel(bob.node_id, backend.chain, {eth: (ETH, 0)}, 600)
        assert world.network.run_until(lambda: bool(bob.channels))
        (channel_id,) = bob.channels
        assert bob.channels[channel_id].machine.latest is None
        # kill -9 before the checkpoint of the OpenChannel he handled reached the disk (a
        # server commits in a pipeline, after the handler returned): his store does not
        # have the channel, nothing he would have sent left
        bob.outbox.clear()
        bob_store.close()
        with sqlite3.connect(tmp_path / "bob.sqlite") as db:
            db.execute("DELETE FROM settings WHERE key LIKE 'channel/%'")
            db.execute("DELETE FROM channels")
        world.network.silence(bob)
        bob_store = SQLiteStore(tmp_path / "bob.sqlite")
        bob = world.restart(bob, bob_store)
        world.network.run()
        assert channel_id not in bob.channels or bob.channels[channel_id].status != "active"
        assert alice.channels[channel_id].status == "opening"

        world.advance(alice.open_policy.pending_timeout + 30)
        assert alice.channels[channel_id].status == "closed"
        params = alice.channels[channel_id].params
        assert backend.adjudicator.holding(backend.channel_id(params), asset_address(eth)) == 0

        fresh = world.open(alice, bob, backend.chain, {eth: (ETH, 0)})
        alice.pay_direct(fresh, eth, 10**17)
        world.network.run()
        assert bob.channels[fresh].machine.state.free(eth) == (ETH - 10**17, 10**17)
        bob_store.close()
    finally:
        backend.close()


@pytest.mark.adversarial
@pytest.mark.parametrize("grouped", [False, True])
def test_a_crash_right_after_funding_leaves_the_deposit_recoverable_without_the_peer(
    tmp_path: Any, grouped: bool
) -> None:
    """Found by review: the deposit left in the job that took Bob's Accept of version 0,
    before that job's checkpoint, so a crash right after it lost Bob's signature: Alice
    came back with her deposit on-chain, version 0 signed by her alone, nothing to
    register, nothing to abandon, and once the open's pending timeout had passed she
    marked the channel closed "(nothing was deposited)" while the chain held her money.
    Bob, who holds both signatures, could keep it hostage. Now version 0 is on disk before
    the deposit leaves, and Alice gets her money back on her own. ``grouped``: the node
    checkpoints once per job, as the server does (``autocommit`` off)."""
    backend = embedded_backend()
    try:
        store = SQLiteStore(tmp_path / "alice.sqlite")
        crashing = CrashAfterFunding(backend)
        world, eth, alice, bob = alice_and_bob(backend, store, crashing)
        channel_id = _open_until_the_crash(world, alice, bob, {eth: (ETH, 0)}, grouped)
        params = alice.channels[channel_id].params
        assert backend.adjudicator.holding(backend.channel_id(params), asset_address(eth)) == ETH
        world.network.silence(bob)  # Bob keeps his Accept to himself from now on

        alice = world.restart(alice, SQLiteStore(tmp_path / "alice.sqlite"))
        channel = alice.channels[channel_id]
        latest = channel.machine.latest
        assert latest is not None and latest.version == 0 and latest.complete
        world.advance(alice.open_policy.pending_timeout + 30)
        # the deposit confirms and, Bob owing none, the channel opens without him
        assert channel.status in ("opening", "active"), "abandoned with the deposit on-chain"

        start = backend.balance(alice.accounts[backend.chain], eth)
        alice.force_close(channel_id)
        for _ in range(4):  # the challenge period (600 s), then the conclusion's depth
            world.advance(300)
            confirm(world)
        assert backend.adjudicator.holding(backend.channel_id(params), asset_address(eth)) == 0
        regained = backend.balance(alice.accounts[backend.chain], eth) - start
        assert ETH - 10**16 < regained <= ETH, "the deposit did not come back"
        alice.ctx.store.close()  # type: ignore[union-attr]
    finally:
        backend.close()


@pytest.mark.adversarial
def test_an_unsigned_open_whose_deposit_was_sent_is_never_marked_closed(tmp_path: Any) -> None:
    """A store written before deposits waited for version 0 on disk (or a store copied by
    hand) can hold an open that version 0 never completed while its funding marker says the
    deposit left. Such a channel is not abandoned by the pending timeout: money may be on
    the chain, and only the peer's signature or a close can release it."""
    backend = embedded_backend()
    try:
        store = SQLiteStore(tmp_path / "alice.sqlite")
        world, eth, alice, bob = alice_and_bob(backend, store, CrashAfterFunding(backend))
        alice.ctx.make_durable = lambda: None  # as before: nothing written before the deposit
        channel_id = _open_until_the_crash(world, alice, bob, {eth: (ETH, 0)}, grouped=False)
        world.network.silence(bob)
        alice = world.restart(alice, SQLiteStore(tmp_path / "alice.sqlite"))
        assert alice.channels[channel_id].machine.latest is None  # what the old order lost
        world.advance(alice.open_policy.pending_timeout + 30)
        world.advance(alice.open_policy.pending_timeout + 30)
        assert alice.channels[channel_id].status == "opening"
        assert any("our deposit was sent: kept opening" in line for line in alice.journal)
        alice.ctx.store.close()  # type: ignore[union-attr]
    finally:
        backend.close()


@pytest.mark.adversarial
def test_a_crash_after_version_0_reached_the_disk_still_funds_once(
    tmp_path: Any,
) -> None:
    """The deposit's marker is written first, then version 0, then the deposit leaves. A
    crash after version 0 reached the disk and before the deposit left: no event will fund
    the channel again (version 0 is complete, Bob sends nothing more), but the marker does:
    the chain showing none of the deposit, it is sent, once. (With version 0 written before
    the marker, that crash left a channel nothing would ever fund.)"""
    backend = embedded_backend()
    try:
        store = SQLiteStore(tmp_path / "alice.sqlite")
        counting = CrashAfterFunding(backend)
        counting.armed = False  # counts the deposits, crashes nowhere
        world, eth, alice, bob = alice_and_bob(backend, store, counting)

        write = alice.ctx.make_durable

        def die() -> None:
            write()  # version 0 on disk; the deposit never leaves
            raise Crash

        alice.ctx.make_durable = die
        channel_id = _open_until_the_crash(world, alice, bob, {eth: (ETH, 0)}, grouped=False)
        world.network.silence(alice)
        assert counting.fundings == 0
        alice = world.restart(alice, SQLiteStore(tmp_path / "alice.sqlite"))
        alice.channels[channel_id].backend = counting  # type: ignore[assignment]
        world.network.run()
        for _ in range(6):  # past twice the inclusion delay: the lost deposit is sent
            world.advance(30)
        confirm(world)
        world.network.run()
        params = alice.channels[channel_id].params
        assert counting.fundings == 1
        assert backend.adjudicator.holding(backend.channel_id(params), asset_address(eth)) == ETH
        assert alice.channels[channel_id].active and bob.channels[channel_id].active
        alice.ctx.store.close()  # type: ignore[union-attr]
    finally:
        backend.close()
