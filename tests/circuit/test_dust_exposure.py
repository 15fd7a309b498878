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

import pytest
from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend

from chenilles_hub.core import Asset
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.node import Node

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
