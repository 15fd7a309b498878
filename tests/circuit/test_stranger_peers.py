"""Strangers and cheating peers against a node, through its one entry point for peers
(``Node.receive``), on a real EVM ledger (eth-tester / py-evm).

What a peer sends may be refused; it may never raise out of the node, leave the node's
parts half-updated, make the node lock its funds without its operator's policy, or keep
memory after the peer is gone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.core import Asset, ChannelParams, Participant
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.open_policy import OpenPolicy
from chenilles_hub.node.net import wire
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, confirm, plan

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]

ETH = 10**18


@pytest.fixture
def world() -> Iterator[World]:
    backend = embedded_backend()
    yield World({backend.chain: backend}, backend)
    backend.close()


def native(world: World) -> Asset:
    (backend,) = world.backends.values()
    return Asset(backend.chain, "native")


class Stranger:
    """A peer that speaks the wire format and nothing else: it sends what it likes and
    reads what the victim answers it."""

    def __init__(self, victim: Node) -> None:
        self.victim = victim
        self.node_id = NodeIdentity().node_id

    def send(self, message: Any) -> list[Any]:
        before = len(self.victim.outbox)
        self.victim.receive(self.node_id, wire.encode(message))
        answers = [
            wire.decode(data) for peer, data in self.victim.outbox[before:] if peer == self.node_id
        ]
        self.victim.outbox[before:] = [
            m for m in self.victim.outbox[before:] if m[0] != self.node_id
        ]
        return answers

    def open_request(
        self,
        asset: Asset,
        ours: int = ETH,
        theirs: int = 0,
        challenge: int = 600,
        temp_id: bytes | None = None,
    ) -> tuple[bytes, list[Any]]:
        temp_id = temp_id or os.urandom(32)
        request = wire.OpenRequest(
            temp_id,
            asset.chain,
            (asset,),
            ((ours, theirs),),
            challenge,
            os.urandom(32),
            "0x" + "22" * 20,
        )
        return temp_id, self.send(request)


def refusals(answers: list[Any]) -> list[str]:
    return [a.reason for a in answers if isinstance(a, wire.OpenRefused)]


# --- B: nothing a peer sends stops the node or half-updates it -----------------------------


def test_an_open_channel_naming_another_key_for_us_is_refused_before_anything_is_created(
    world: World, tmp_path: Path
) -> None:
    eth = native(world)
    store = SQLiteStore(tmp_path / "victim.sqlite")
    victim = world.node("victim", [eth.chain], store=store, open_policy=OpenPolicy())
    stranger = Stranger(victim)
    temp_id, answers = stranger.open_request(eth)
    (accept,) = answers
    assert isinstance(accept, wire.OpenAccept)
    params = ChannelParams(
        chain=eth.chain,
        participants=(
            Participant("0x" + "22" * 20, stranger.node_id),
            Participant("0x" + "33" * 20, victim.node_id),  # not the key the victim gave
        ),
        assets=(eth,),
        challenge_duration=600,
        nonce=os.urandom(32),
    )
    answers = stranger.send(wire.OpenChannel(temp_id, params))  # must not raise
    assert refusals(answers) and "key" in refusals(answers)[0]
    assert not victim.channels and not victim.pending_opens
    assert store.list_channels() == []
    assert not victim.watcher.guarded and not list(victim.watcher.htlc_duties())
    assert victim.counters.get("peer_messages_refused", 0) >= 1
    store.close()


class Boom(RuntimeError):
    pass


def test_a_failure_while_handling_a_message_is_rolled_back_and_the_channel_recovers(
    world: World, tmp_path: Path
) -> None:
    """Bob's node fails (a bug, a chain RPC down) half-way through the effects of Alice's
    Ack: after it settled her HTLC to him (invoice marked paid, preimage kept, a settle
    queued, a watcher duty added), before the end. The node must come back to where it was
    before the Ack, as if the Ack had been lost, and the channel must converge after the
    next reestablish, with the invoice paid exactly once."""
    eth = native(world)
    chain = eth.chain
    alice = world.node("alice", [chain])
    bob = world.node("bob", [chain], store=SQLiteStore(tmp_path / "bob.sqlite"))
    channel_id = world.open(alice, bob, chain, {eth: (ETH, 0)})
    invoice = bob.invoice(10**17, eth)
    hops = plan(world, alice, [(bob, channel_id)], invoice.amount, eth, invoice.final_lead)
    real = bob.payment_flow.on_irrevocable
    failures = []

    def failing(channel: Any, updates: Any, version: int) -> None:
        real(channel, updates, version)
        if not failures:
            failures.append(version)
            raise Boom("half-way")

    bob.payment_flow.on_irrevocable = failing  # type: ignore[method-assign]
    machine = bob.channels[channel_id].machine
    payment = alice.pay_route(invoice, hops)
    world.network.run_until(lambda: machine.awaiting_ack is not None)
    before = (
        machine.snapshot(),
        dict(bob.preimages),
        dict(bob.htlcs),
        set(bob.paid_invoices),
        bob.watcher.state,
        sorted(bob.watcher.htlc_duties(), key=repr),
        list(bob.channels[channel_id].queue),
    )
    world.network.run()  # Alice's Ack reaches Bob: his node fails inside, contained
    assert failures, "the failure was not provoked"
    after = (
        machine.snapshot(),
        dict(bob.preimages),
        dict(bob.htlcs),
        set(bob.paid_invoices),
        bob.watcher.state,
        sorted(bob.watcher.htlc_duties(), key=repr),
        list(bob.channels[channel_id].queue),
    )
    assert after == before, "the node was left half-updated"
    assert bob.counters.get("peer_messages_failed", 0) == 1
    # The link comes back: both sides say where they stand and the lost Ack is sent again.
    alice.reestablish(bob.node_id)
    bob.reestablish(alice.node_id)
    world.network.run()
    assert payment.status == "succeeded"
    assert bob.channels[channel_id].machine.state == alice.channels[channel_id].machine.state
    assert bob.channels[channel_id].machine.state.free(eth) == (ETH - 10**17, 10**17)
    assert invoice.payment_hash in bob.paid_invoices


def test_a_channel_created_by_a_message_that_fails_is_forgotten_by_its_peers_index(
    world: World,
) -> None:
    """Bob's node fails right after creating the channel Alice's ``OpenChannel`` asks for:
    the channel goes with the rollback, and so does its entry in the channels by peer (a
    reconnection walks those: a stale one would fail Alice's every reestablish)."""
    eth = native(world)
    alice = world.node("alice", [eth.chain])
    bob = world.node("bob", [eth.chain])
    real = bob.watcher.add
    failures: list[object] = []

    def failing(duty: Any) -> None:
        if not failures:
            failures.append(duty)
            raise Boom("half-way")
        real(duty)

    bob.watcher.add = failing  # type: ignore[method-assign]
    alice.open_channel(bob.node_id, eth.chain, {eth: (ETH, 0)}, 600)
    world.network.run()
    assert failures, "the failure was not provoked"
    assert bob.counters.get("peer_messages_failed", 0) == 1
    assert not bob.channels
    bob.reestablish(alice.node_id)  # raised KeyError with the rolled-back channel indexed
    assert bob.counters.get("reestablish_failed", 0) == 0


def test_only_a_channel_with_something_in_it_makes_its_peer_a_member(world: World) -> None:
    """A member of one of our channels is let in beside ``max_strangers`` strangers. Two
    messages open a channel, and its opener may never fund it: only a channel whose
    deposits are on the ledger (or ours, sent) gives standing."""
    eth = native(world)
    alice = world.node("alice", [eth.chain])
    bob = world.node("bob", [eth.chain])
    alice.open_channel(bob.node_id, eth.chain, {eth: (ETH, 0)}, 600)
    world.network.run()
    (channel_id,) = bob.channels
    assert bob.channels[channel_id].status == "opening"
    assert not bob.is_member(alice.node_id), "an unfunded channel made its opener a member"
    confirm(world)
    assert bob.channels[channel_id].active
    assert bob.is_member(alice.node_id) and alice.is_member(bob.node_id)
    assert not bob.is_member(NodeIdentity().node_id)


def test_a_deposit_under_the_stake_asked_gives_no_standing(world: World) -> None:
    """``[[policy.peers.stake]]``: one base unit (and its transaction's fee) made a member
    of anyone. With a minimum for the asset, a peer's own deposit under it gives no
    standing, one at it does; an asset not named takes any deposit, and a deposit of ours
    (the operator's consent) gives standing whatever the peer put in."""
    eth = native(world)
    alice = world.node("alice", [eth.chain])
    bob = world.node("bob", [eth.chain])
    carol = world.node("carol", [eth.chain])
    world.open(alice, bob, eth.chain, {eth: (ETH, 0)})
    assert bob.is_member(alice.node_id, {eth: ETH})
    assert not bob.is_member(alice.node_id, {eth: ETH + 1}), "a deposit under the stake counted"
    other = Asset(eth.chain, "0x" + "11" * 20)
    assert bob.is_member(alice.node_id, {other: 10 * ETH})  # not her asset: any deposit
    world.open(bob, carol, eth.chain, {eth: (ETH, 0)})  # ours, nothing of hers
    assert bob.is_member(carol.node_id, {eth: 10 * ETH})


# --- C: an open needs the operator's consent ------------------------------------------------


def test_a_peer_cannot_make_us_deposit_without_our_policy(world: World) -> None:
    eth = native(world)
    victim = world.node("victim", [eth.chain], open_policy=OpenPolicy())
    stranger = Stranger(victim)
    _, answers = stranger.open_request(eth, ours=1, theirs=5 * ETH)
    (reason,) = refusals(answers)
    assert "deposit" in reason and "limit 0" in reason
    assert not victim.pending_opens and not victim.channels


def test_a_peer_cannot_make_us_lock_funds_for_a_year(world: World) -> None:
    eth = native(world)
    victim = world.node("victim", [eth.chain], open_policy=OpenPolicy())
    _, answers = Stranger(victim).open_request(eth, challenge=31_536_000)
    (reason,) = refusals(answers)
    assert "challenge" in reason and "31536000" in reason
    assert not victim.pending_opens


def test_a_deposit_we_cannot_fund_is_refused_before_anything_is_signed(world: World) -> None:
    """Within the policy's limit, but more than the wallet holds: refused at once, and the
    opener's operator sees why (no channel stuck in ``opening`` on either side)."""
    eth = native(world)
    alice = world.node("alice", [eth.chain])
    bob = world.node("bob", [eth.chain])
    bob.open_policy = OpenPolicy(max_remote_deposit={eth: 10**40})
    temp_id = alice.open_channel(bob.node_id, eth.chain, {eth: (ETH, 10**30)}, 600)
    world.network.run()
    assert not alice.channels and not bob.channels
    result = alice.open_results[temp_id]
    assert isinstance(result, str) and "insufficient funds" in result


def test_our_own_open_beyond_our_wallet_is_refused_at_once(world: World) -> None:
    from chenilles_hub.core.errors import InsufficientBalance

    eth = native(world)
    alice = world.node("alice", [eth.chain])
    bob = world.node("bob", [eth.chain])
    with pytest.raises(InsufficientBalance):
        alice.open_channel(bob.node_id, eth.chain, {eth: (10**30, 0)}, 600)
    assert not alice.pending_opens and not alice.outbox


def test_a_deposit_the_policy_allows_is_made(world: World) -> None:
    eth = native(world)
    alice = world.node("alice", [eth.chain])
    bob = world.node("bob", [eth.chain])
    bob.open_policy = OpenPolicy(max_remote_deposit={eth: 2 * ETH})
    channel_id = world.open(alice, bob, eth.chain, {eth: (ETH, 2 * ETH)})
    assert bob.channels[channel_id].machine.state.free(eth) == (ETH, 2 * ETH)
    _, answers = Stranger(bob).open_request(eth, ours=ETH, theirs=2 * ETH + 1)
    assert refusals(answers)


def test_pending_opens_are_capped_per_peer_and_in_all_freed_on_disconnect_and_expire(
    world: World,
) -> None:
    eth = native(world)
    victim = world.node("victim", [eth.chain], open_policy=OpenPolicy())
    victim.open_policy = OpenPolicy(max_pending_per_peer=2, max_pending=3, pending_timeout=60)
    first, second = Stranger(victim), Stranger(victim)
    for _ in range(2):
        assert not refusals(first.open_request(eth)[1])
    (reason,) = refusals(first.open_request(eth)[1])
    assert "pending" in reason
    assert not refusals(second.open_request(eth)[1])
    (reason,) = refusals(second.open_request(eth)[1])  # the node-wide cap
    assert "pending" in reason
    assert len(victim.pending_opens) == 3
    victim.peer_disconnected(first.node_id)
    assert len(victim.pending_opens) == 1
    world.advance(61)
    victim.tick()
    assert not victim.pending_opens


def test_an_open_request_flood_keeps_nothing(world: World) -> None:
    eth = native(world)
    victim = world.node("victim", [eth.chain], open_policy=OpenPolicy())
    stranger = Stranger(victim)
    for _ in range(500):
        stranger.open_request(eth)
    assert len(victim.pending_opens) <= OpenPolicy().max_pending_per_peer
    assert len(victim.open_results) == 0


def test_a_frame_with_invalid_utf8_is_a_malformed_message_not_a_failure(world: World) -> None:
    """Found by tests/node/test_wire_fuzz.py: the JSON decoder raised ``UnicodeDecodeError``
    (not a ``DecodeError``) for a string that is not UTF-8, and it escaped the node."""
    from chenilles_hub.core.errors import DecodeError

    victim = world.node("victim", [native(world).chain], open_policy=OpenPolicy())
    victim.receive(NodeIdentity().node_id, b'{"type":"open_request","chain":"\x80"}')
    assert isinstance(victim.errors[-1], DecodeError)
    with pytest.raises(DecodeError):
        wire.decode(b'{"type":"\x80"}')
