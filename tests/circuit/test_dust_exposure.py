"""HTLCs too small for an output, across nodes: each node caps what a channel may hold of
them (``max_dust_exposure_sat``), and a peer's refusal for its own cap never costs an HTLC
we already settled downstream.

An HTLC below its trim threshold (about 1,249 sat at 1,000 sat/kw) has no output in a
commitment: mined, its value goes to fees. The cap is each node's own, so honest peers may
refuse each other's proposals for it; such a refusal used to drop every update of the
proposal, a settle among them, and the hub that had paid downstream never claimed upstream.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend

from chenilles_hub.core import Asset, ProposalRejected, SettleHtlc
from chenilles_hub.core.errors import NotPermitted
from chenilles_hub.core.messages import Reject
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.proposals import MAX_RESOLVE_RETRIES

from .world import World, plan

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial, pytest.mark.bitcoin]

CHALLENGE = 6 * 3600
DEPOSIT = 1_000_000


class Line:
    """Alice -> hub -> Bob on one Bitcoin chain; ``caps`` gives a node its own backend
    (same chain, same clock) with that ``max_dust_exposure_sat``."""

    def __init__(self, caps: dict[str, int]) -> None:
        self.backend = embedded_backend()
        self.chain = self.backend.chain
        self.btc = Asset(self.chain, "native")
        self.world = World({self.chain: self.backend}, self.backend)
        self.alice, self.hub, self.bob = (
            self._node(n, caps.get(n)) for n in ("alice", "hub", "bob")
        )
        self.c1 = self.world.open(
            self.alice, self.hub, self.chain, {self.btc: (DEPOSIT, 0)}, CHALLENGE
        )
        self.c2 = self.world.open(
            self.hub, self.bob, self.chain, {self.btc: (DEPOSIT, 0)}, CHALLENGE
        )

    def _node(self, name: str, cap: int | None) -> Node:
        if cap is None:
            return self.world.node(name, [self.chain])
        own = BitcoinBackend(
            self.backend.ledger,
            chain=self.chain,
            auto_mine=True,
            height_clock=True,
            max_dust_exposure_sat=cap,
        )
        own._anchor = self.backend._anchor  # one chain, one clock
        node = Node(
            identity=NodeIdentity(),
            backends={self.chain: own},
            accounts={self.chain: own.create_account(fund=True)},
            clock=self.world.now,
            name=name,
            open_policy=self.world.consenting([self.chain]),
        )
        self.world.network.add(node)
        return node

    def pay(self, payer: Node, payee: Node, path: list[tuple[Node, bytes]], amount: int):  # type: ignore[no-untyped-def]
        invoice = payee.invoice(amount, self.btc)
        hops = plan(self.world, payer, path, invoice.amount, self.btc, invoice.final_lead)
        return payer.pay_route(invoice, hops)


@pytest.fixture(name="close_ledgers")
def _close_ledgers() -> Iterator[list[Line]]:
    lines: list[Line] = []
    yield lines
    for line in lines:
        close = getattr(line.backend.ledger, "close", None)
        if close is not None:
            close()


def test_a_forward_past_the_hubs_cap_fails_back_upstream_with_the_reason(
    close_ledgers: list[Line],
) -> None:
    """The hub's cap is 1,000 sat: a 1,200 sat payment to Bob cannot go out on the hub's
    channel to him, and Alice's payment fails with ``dust_exposure``, her HTLC failed back.
    (The hub's cap on the channel from Alice is lifted, so that the outgoing one stops it.)"""
    line = Line({"hub": 1_000})
    close_ledgers.append(line)
    line.hub.channels[line.c1].machine._rules = line.alice.channels[line.c1].machine._rules
    payment = line.pay(line.alice, line.bob, [(line.hub, line.c1), (line.bob, line.c2)], 1_200)
    line.world.network.run()
    assert payment.status == "failed" and "dust_exposure" in (payment.reason or ""), payment.reason
    assert line.alice.channels[line.c1].machine.state.htlcs == ()
    assert line.hub.channels[line.c2].machine.state.htlcs == ()
    assert line.hub.counters.get("proposals_unsignable", 0) == 0


def test_an_htlc_past_the_peers_cap_is_refused_and_the_payment_fails_with_the_reason(
    close_ledgers: list[Line],
) -> None:
    """Alice's cap is the default, the hub's 1,000 sat: her 1,200 sat HTLC is refused by
    the hub on accepting it, and her payment fails saying so."""
    line = Line({"hub": 1_000})
    close_ledgers.append(line)
    payment = line.pay(line.alice, line.bob, [(line.hub, line.c1), (line.bob, line.c2)], 1_200)
    line.world.network.run()
    line.world.network.run()
    assert payment.status == "failed" and "dust_exposure" in (payment.reason or ""), payment.reason
    assert line.alice.channels[line.c1].machine.state.htlcs == ()
    assert line.alice.channels[line.c1].status == "active"


def test_a_settle_in_a_proposal_the_peer_refused_for_its_cap_is_proposed_again(
    close_ledgers: list[Line],
) -> None:
    """Found by review. Alice's cap (1,500 sat) is tighter than the hub's: the hub's next
    proposal on their channel carries its settle of Alice's 1,200 sat payment (Bob was paid)
    and two 1,240 sat HTLCs of its own to her. She refuses it for her cap; the two offers
    fail, and the settle goes again on its own: the hub is paid upstream what it paid Bob."""
    line = Line({"alice": 1_500})
    close_ledgers.append(line)
    line.alice.pay_direct(line.c1, line.btc, 200_000)  # the hub holds some of the channel
    line.world.network.run()
    # What the hub has for Alice waits while she is away, so that it goes in one proposal.
    line.hub.ctx.offline.add(line.alice.node_id)
    payment = line.pay(line.alice, line.bob, [(line.hub, line.c1), (line.bob, line.c2)], 1_200)
    line.world.network.run()
    assert line.hub.channels[line.c2].machine.state.htlcs == ()  # Bob settled with the hub
    offers = [line.pay(line.hub, line.alice, [(line.alice, line.c1)], 1_240) for _ in range(2)]
    queued = [type(u).__name__ for u in line.hub.channels[line.c1].queue]
    assert queued == ["SettleHtlc", "AddHtlc", "AddHtlc"], queued
    line.hub.ctx.offline.discard(line.alice.node_id)
    line.hub.ctx.parked.pop(line.c1, None)
    line.hub.ctx.queued[line.c1] = None
    line.hub.flush()
    line.world.network.run()
    line.world.network.run()
    assert [o.status for o in offers] == ["failed", "failed"]
    assert all("dust_exposure" in (o.reason or "") for o in offers)
    hub_side = line.hub.channels[line.c1].machine
    assert hub_side.state.htlcs == (), "the settle was dropped: the hub is never paid upstream"
    assert payment.status == "succeeded"
    assert line.hub.channels[line.c1].status == "active"


def _hub_owes_alice_a_settle_behind_two_offers(line: Line):  # type: ignore[no-untyped-def]
    """Alice pays Bob 1,200 sat through the hub while the hub cannot reach her: its settle
    upstream and two 1,240 sat offers of its own to her wait in one queue."""
    line.alice.pay_direct(line.c1, line.btc, 200_000)
    line.world.network.run()
    line.hub.ctx.offline.add(line.alice.node_id)
    payment = line.pay(line.alice, line.bob, [(line.hub, line.c1), (line.bob, line.c2)], 1_200)
    line.world.network.run()
    offers = [line.pay(line.hub, line.alice, [(line.alice, line.c1)], 1_240) for _ in range(2)]
    line.hub.ctx.offline.discard(line.alice.node_id)
    line.hub.ctx.parked.pop(line.c1, None)
    line.hub.ctx.queued[line.c1] = None
    return payment, offers


def test_a_settle_proposed_again_goes_alone_while_offers_keep_arriving(
    close_ledgers: list[Line],
) -> None:
    """Found by review: the settle proposed again went with whatever had been queued
    meanwhile, and under steady load Alice's cap refused it round after round. Each time
    the hub learns of a refusal two more small offers to her arrive; the settle still goes
    through at once, on its own."""
    line = Line({"alice": 1_500})
    close_ledgers.append(line)
    payment, offers = _hub_owes_alice_a_settle_behind_two_offers(line)
    refused: list[list[str]] = []
    on_rejected, on_withdrawn = line.hub.proposals.on_rejected, line.hub.proposals.on_withdrawn

    def rejected(channel, effect):  # type: ignore[no-untyped-def]
        refused.append([type(u).__name__ for u in effect.updates])
        on_rejected(channel, effect)

    def withdrawn(channel, effect):  # type: ignore[no-untyped-def]
        on_withdrawn(channel, effect)
        if len(refused) < 5:
            offers.extend(
                line.pay(line.hub, line.alice, [(line.alice, line.c1)], 1_240) for _ in range(2)
            )

    line.hub.proposals.on_rejected = rejected  # type: ignore[method-assign]
    line.hub.proposals.on_withdrawn = withdrawn  # type: ignore[method-assign]
    line.hub.flush()
    for _ in range(10):
        line.world.network.run()
    assert sum("SettleHtlc" in batch for batch in refused) == 1, refused
    assert line.hub.channels[line.c1].machine.state.htlcs == ()
    assert payment.status == "succeeded"


def test_a_settle_the_peer_keeps_refusing_is_tried_a_bounded_number_of_times_and_shown(
    close_ledgers: list[Line],
) -> None:
    """A peer that refuses every settle (a breach, or a passing reason such as its channel
    back from a reorg): the hub proposes it again a few times, then says so on the channel;
    the watcher still settles the HTLC on-chain before its deadline."""
    line = Line({"alice": 1_500})
    close_ledgers.append(line)
    _payment, _offers = _hub_owes_alice_a_settle_behind_two_offers(line)
    machine = line.alice.channels[line.c1].machine
    receive = machine.receive
    settles = []

    def refusing(message, now):  # type: ignore[no-untyped-def]
        updates = getattr(message, "updates", ())
        if any(isinstance(u, SettleHtlc) for u in updates):
            settles.append(message)
            raise NotPermitted("this peer refuses settles")
        return receive(message, now)

    machine.receive = refusing  # type: ignore[method-assign]
    line.hub.flush()
    for _ in range(20):
        line.world.network.run()
    assert len(settles) == 1 + MAX_RESOLVE_RETRIES
    error = line.hub.channels[line.c1].last_error or ""
    assert f"refused our SettleHtlc of HTLC 0 {MAX_RESOLVE_RETRIES + 1} times" in error, error
    assert line.hub.channels[line.c1].status == "active"


def test_a_downstream_peers_long_refusal_reaches_upstream_cut_to_what_a_fail_carries(
    close_ledgers: list[Line],
) -> None:
    """Found by review: a Reject's reason (up to 500 characters) became the reason of the
    hub's FailHtlc upstream, which carries 200: Alice could not decode the hub's proposal,
    her HTLC stayed locked and the channel went on-chain at its expiry."""
    line = Line({"bob": 1_000})  # Bob refuses the hub's 1,200 sat HTLC for his cap
    close_ledgers.append(line)
    send = line.bob.ctx.send

    def verbose(peer, message):  # type: ignore[no-untyped-def]
        if isinstance(message, Reject):
            message = msgspec.structs.replace(message, reason="x" * 480)
        send(peer, message)

    line.bob.ctx.send = verbose  # type: ignore[method-assign]
    payment = line.pay(line.alice, line.bob, [(line.hub, line.c1), (line.bob, line.c2)], 1_200)
    for _ in range(5):
        line.world.network.run()
    assert payment.status == "failed", payment.reason
    assert line.alice.channels[line.c1].machine.state.htlcs == ()
    assert not line.alice.errors, line.alice.errors


def test_a_settle_going_alone_that_loses_a_conflict_goes_alone_again(
    close_ledgers: list[Line],
) -> None:
    """Found by review: the settle proposed alone after a refusal, if that proposal lost a
    conflict to the peer's, went back into the queue and out with the offers behind it,
    for the peer's cap to refuse again. It goes alone again."""
    line = Line({"alice": 1_500})
    close_ledgers.append(line)
    payment, _offers = _hub_owes_alice_a_settle_behind_two_offers(line)
    channel = line.hub.channels[line.c1]
    settle = channel.queue[0]
    assert isinstance(settle, SettleHtlc)
    # As after a refusal: the settle was proposed again alone, and that proposal lost.
    line.hub.proposals._retries[line.c1] = {settle.htlc_id: 1}
    channel.queue = channel.queue[1:]
    conflict = ProposalRejected(
        0, "proposal_conflict", "the peer's proposal won", updates=(settle,)
    )
    line.hub.proposals.on_rejected(channel, conflict)
    line.hub.flush()
    pending = channel.machine.pending
    assert pending is not None
    assert [type(u).__name__ for u in pending.message.updates] == ["SettleHtlc"]
    for _ in range(5):
        line.world.network.run()
    assert payment.status == "succeeded"
