"""Issue 12, item 7: quotes bind the hub and the payer; they are not advice.

A hub converts between assets only at the terms of a quote it signed and remembers: the
payer's onion names it, the hub forwards at that rate while it is valid, once, and refuses
anything else with a specific code, failing the incoming HTLC back and forwarding nothing.
Before, the onion's ``quote_id`` was never read and any payer could exercise a stale rate.

Alice pays ETH to the hub on one EVM channel; the hub pays Bob in the test ERC-20 on another.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.circuit.errors import QuoteRequired
from chenilles_hub.circuit.onion import OnionHop, build_onion
from chenilles_hub.circuit.quote import Quote, Rate, make_quote
from chenilles_hub.core import AddHtlc, Asset, ChannelError
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
from chenilles_hub.node.hub.journal import (
    NODE_STATE_KEY,
    QUOTE_PREFIX,
    decode_node_state,
    encode_node_state,
)
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.quoting import MAX_QUOTES_PER_PEER, QUOTE_WAIT
from chenilles_hub.node.hub.records import Payment
from chenilles_hub.node.net import wire
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, plan

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]

ETH = 10**18
TOKENS = 10**24
RATE = Rate(3, 1)  # one wei buys three token units
AMOUNT = 3 * 10**15  # token units Bob asks for


@dataclass
class Market:
    world: World
    alice: Node
    hub: Node
    bob: Node
    eth: Asset
    token: Asset
    c1: bytes  # alice -> hub, ETH
    c2: bytes  # hub -> bob, token

    def hops(self, amount: int = AMOUNT) -> tuple[Any, list[OnionHop]]:
        """An invoice from Bob and a route to it, with a fresh quote from the hub."""
        invoice = self.bob.invoice(amount, self.token)
        path = [(self.hub, self.c1), (self.bob, self.c2)]
        return invoice, plan(
            self.world, self.alice, path, invoice.amount, self.token, invoice.final_lead
        )

    def run(self) -> None:
        self.world.network.run()


@pytest.fixture(name="market")
def _market(tmp_path: Any) -> Iterator[Market]:
    backend = embedded_backend()
    world = World({backend.chain: backend}, backend)
    eth, token = backend.assets()
    chain = backend.chain
    policy = ForwardingPolicy(
        fees={token: FeePolicy(base=1_000)},
        rates={(eth, token): RATE, (token, eth): Rate(1, 4)},
    )
    alice = world.node("alice", [chain])
    hub = world.node("hub", [chain], policy, store=SQLiteStore(tmp_path / "hub.sqlite"))
    bob = world.node("bob", [chain])
    c1 = world.open(alice, hub, chain, {eth: (ETH, 0)})
    c2 = world.open(hub, bob, chain, {token: (10**22, 0)})
    yield Market(world, alice, hub, bob, eth, token, c1, c2)
    backend.close()


def raw_pay(payer: Node, invoice: Any, hops: list[OnionHop]) -> Payment:
    """A payer that skips its own node's checks (a modified node): offers the first HTLC
    with whatever onion it likes."""
    flow = payer.payment_flow
    first = hops[0]
    channel = payer.channels[first.channel]
    htlc = channel.offer_htlc(first.asset, first.amount, invoice.payment_hash, first.expiry)
    payment = Payment(
        invoice.payment_hash, invoice.amount, invoice.asset, first.amount, first.asset
    )
    flow.payments[invoice.payment_hash] = payment
    flow.htlcs[(channel.channel_id, htlc.id)] = htlc
    flow.proposals.queue(channel, AddHtlc(htlc, onion=build_onion(hops)))
    payer.flush()
    payer.checkpoint()
    return payment


def with_quote(hops: list[OnionHop], quote: Quote | None) -> list[OnionHop]:
    return [hops[0], msgspec.structs.replace(hops[1], quote=quote)]


def assert_refused(market: Market, payment: Payment, code: str) -> None:
    """Refused with ``code``: the payment failed, nothing was forwarded, the incoming HTLC
    went back and every balance is what it was."""
    market.run()
    assert payment.status == "failed", payment
    assert payment.reason.startswith(code), payment.reason
    for node in (market.hub, market.bob):
        assert not node.channels[market.c2].machine.state.htlcs
    assert market.hub.channels[market.c2].machine.state.free(market.token) == (10**22, 0)
    for node in (market.alice, market.hub):
        assert not node.channels[market.c1].machine.state.htlcs
    assert market.alice.channels[market.c1].machine.state.free(market.eth) == (ETH, 0)
    assert any(f"{code}:" in line for line in market.hub.journal), market.hub.journal[-3:]


def test_a_quoted_conversion_is_forwarded_at_the_quoted_rate(market: Market) -> None:
    invoice, hops = market.hops()
    quote = hops[1].quote
    assert quote is not None and quote.hub == market.hub.node_id
    assert hops[0].amount == quote.amount_in == -(-(AMOUNT + 1_000) // 3)
    # The hub's book moves after the quote: the quote still binds it.
    market.hub.policy.rates[(market.eth, market.token)] = Rate(1, 1)
    payment = market.alice.pay_route(invoice, hops)
    market.run()
    assert payment.status == "succeeded", payment.reason
    assert market.bob.channels[market.c2].machine.state.free(market.token) == (
        10**22 - AMOUNT,
        AMOUNT,
    )


def test_a_conversion_without_a_quote_is_refused(market: Market) -> None:
    invoice, hops = market.hops()
    bare = with_quote(hops, None)
    with pytest.raises(QuoteRequired):  # the payer's own node says so first
        market.alice.pay_route(invoice, bare)
    assert_refused(market, raw_pay(market.alice, invoice, bare), "quote_required")


def attack(market: Market, invoice: Any, hops: list[OnionHop], code: str) -> None:
    """The payer's own node refuses to pay with that quote; a modified payer that does it
    anyway is refused by the hub with the same code."""
    with pytest.raises(ChannelError) as caught:
        market.alice.pay_route(invoice, hops)
    assert caught.value.code == code
    assert_refused(market, raw_pay(market.alice, invoice, hops), code)


def test_an_expired_quote_is_refused(market: Market) -> None:
    _, old = market.hops()
    market.world.advance(31)  # DEFAULT_QUOTE_TTL is 30 s
    invoice, hops = market.hops()
    attack(market, invoice, with_quote(hops, old[1].quote), "quote_expired")


def test_a_forged_quote_is_refused(market: Market) -> None:
    invoice, hops = market.hops()
    quote = hops[1].quote
    assert quote is not None
    better = msgspec.structs.replace(quote, rate=Rate(4, 1), amount_in=quote.amount_in // 2)
    first = msgspec.structs.replace(hops[0], amount=better.amount_in)
    attack(
        market, invoice, [first, msgspec.structs.replace(hops[1], quote=better)], "invalid_quote"
    )


def test_a_quote_signed_by_someone_else_is_refused(market: Market) -> None:
    invoice, hops = market.hops()
    mallory = NodeIdentity()
    mine = make_quote(mallory, market.eth, market.token, AMOUNT, RATE, 1_000, market.world.now())
    posing = msgspec.structs.replace(mine, hub=market.hub.node_id)  # signed by mallory
    attack(market, invoice, with_quote(hops, posing), "invalid_quote")


def test_a_quote_the_hub_never_issued_is_refused(market: Market) -> None:
    """Signed with the hub's key but not in its book (what a lost book would let through)."""
    invoice, hops = market.hops()
    unbooked = make_quote(
        market.hub.identity, market.eth, market.token, AMOUNT, RATE, 1_000, market.world.now()
    )
    payment = market.alice.pay_route(invoice, with_quote(hops, unbooked))
    assert_refused(market, payment, "unknown_quote")


def test_a_quote_for_another_pair_or_a_larger_amount_is_refused(market: Market) -> None:
    invoice, hops = market.hops()
    other_pair = market.hub.quote(market.token, market.eth, 10**10)
    attack(market, invoice, with_quote(hops, other_pair), "quote_mismatch")

    small = market.hub.quote(market.eth, market.token, AMOUNT // 10)
    invoice, hops = market.hops()  # pays in full what AMOUNT costs, with a 10x smaller quote
    attack(market, invoice, with_quote(hops, small), "quote_mismatch")


def test_one_quote_covers_one_payment(market: Market) -> None:
    invoice, hops = market.hops()
    payment = market.alice.pay_route(invoice, hops)
    market.run()
    assert payment.status == "succeeded"
    balances = market.hub.channels[market.c2].machine.state.free(market.token)
    alice_eth = market.alice.channels[market.c1].machine.state.free(market.eth)
    for _ in range(3):  # the same quote again, for more payments
        again, fresh = market.hops()
        replay = market.alice.pay_route(again, with_quote(fresh, hops[1].quote))
        market.run()
        assert replay.status == "failed" and replay.reason.startswith("quote_used"), replay
    assert market.hub.channels[market.c2].machine.state.free(market.token) == balances
    assert market.alice.channels[market.c1].machine.state.free(market.eth) == alice_eth


def test_the_hub_remembers_its_quotes_across_a_restart(market: Market, tmp_path: Any) -> None:
    """A quote handed out before a crash is honoured after it, and one used before the crash
    stays used: the book is written with the hub's checkpoint."""
    invoice, hops = market.hops()
    used_invoice, used_hops = market.hops()
    payment = market.alice.pay_route(used_invoice, used_hops)
    market.run()
    assert payment.status == "succeeded"
    restart_and_check_quotes(market, tmp_path, (invoice, hops), used_hops)


def restart_and_check_quotes(
    market: Market, tmp_path: Any, fresh: tuple[Any, list[OnionHop]], used: list[OnionHop]
) -> None:
    """Restart the hub from its store: the ``fresh`` quote still pays, the ``used`` one is
    still refused as used."""
    hub = market.hub
    assert hub.store is not None
    hub.store.close()
    market.world.network.silence(hub)
    market.hub = market.world.restart(hub, SQLiteStore(tmp_path / "hub.sqlite"))
    invoice, hops = fresh
    payment = market.alice.pay_route(invoice, hops)
    market.run()
    assert payment.status == "succeeded", payment.reason
    replay_invoice, other = market.hops()
    replay = market.alice.pay_route(replay_invoice, with_quote(other, used[1].quote))
    market.run()
    assert replay.status == "failed" and replay.reason.startswith("quote_used")


def test_the_book_stays_bounded(market: Market) -> None:
    """Expired quotes are dropped when new ones are issued, in memory and in the store."""
    hub = market.hub
    for _ in range(20):
        hub.quote(market.eth, market.token, 1_000)
    assert len(hub.payment_flow.quotes.state) == 20
    hub.checkpoint()
    assert len(stored_quotes(hub)) == 20
    market.world.advance(31)
    hub.quote(market.eth, market.token, 1_000)
    assert len(hub.payment_flow.quotes.state) == 1
    hub.checkpoint()
    assert stored_quotes(hub) == [hub.payment_flow.quotes.state[0].quote.quote_id.hex()]


def stored_quotes(node: Node) -> list[str]:
    assert node.store is not None
    return [
        key.removeprefix(QUOTE_PREFIX) for key, _ in node.store.settings_with_prefix(QUOTE_PREFIX)
    ]


def node_state_bytes(node: Node) -> int:
    assert node.store is not None
    return len(node.store.get_setting(NODE_STATE_KEY) or b"")


def test_a_checkpoint_does_not_carry_every_live_quote(market: Market) -> None:
    """Each quote is a record of its own, written when issued or used: a hub paying at a
    steady rate holds ~30 s of quotes, and rewriting them all with every fsynced checkpoint
    made each of its writes grow with its traffic (0.15 MB at 10 payments a second, and a
    peer asking for quotes could make every write of the hub carry 5 MB)."""
    hub = market.hub
    hub.checkpoint()
    before = node_state_bytes(hub)
    for _ in range(50):
        hub.quote(market.eth, market.token, 1_000)
    invoice, hops = market.hops()
    payment = market.alice.pay_route(invoice, hops)
    market.run()
    assert payment.status == "succeeded"
    assert len(stored_quotes(hub)) == 51
    assert node_state_bytes(hub) <= before + 64  # in-flight state only, no quotes


def test_quotes_kept_in_an_older_stores_node_state_are_honoured_and_moved(
    market: Market, tmp_path: Any
) -> None:
    """A store written before quotes were records holds them in the node's state: after an
    upgrade the hub still honours them (used stays used), and its next checkpoint moves
    them into records of their own."""
    hub = market.hub
    invoice, hops = market.hops()
    used_invoice, used_hops = market.hops()
    payment = market.alice.pay_route(used_invoice, used_hops)
    market.run()
    assert payment.status == "succeeded"
    store = hub.store
    assert store is not None
    book = hub.payment_flow.quotes.state
    assert len(book) == 2
    # the layout of the release before: quotes in the node state, no quote records
    old = msgspec.structs.replace(
        decode_node_state(store.get_setting(NODE_STATE_KEY) or b""), quotes=book
    )
    store.save_checkpoint(
        [],
        {
            NODE_STATE_KEY: encode_node_state(old),
            **{QUOTE_PREFIX + q: None for q in stored_quotes(hub)},
        },
    )
    assert stored_quotes(hub) == []
    restart_and_check_quotes(market, tmp_path, (invoice, hops), used_hops)
    hub = market.hub
    assert hops[1].quote is not None and used_hops[1].quote is not None
    assert {hops[1].quote.quote_id.hex(), used_hops[1].quote.quote_id.hex()} <= set(
        stored_quotes(hub)
    )
    state = decode_node_state(store_of(hub).get_setting(NODE_STATE_KEY) or b"")
    assert state.quotes == ()


def store_of(node: Node) -> Any:
    assert node.store is not None
    return node.store


# --- quotes over the peer wire ---------------------------------------------------------------


def without_quote(hops: list[OnionHop]) -> list[OnionHop]:
    return [hops[0], msgspec.structs.replace(hops[1], quote=None)]


def test_a_payer_gets_its_peers_quote_over_the_wire_and_pays(market: Market) -> None:
    """No API token of the hub: the payer's node asks the hub, its peer, for the quote."""
    invoice, hops = market.hops()
    payment = market.alice.pay_quoted(invoice, without_quote(hops))
    assert payment.status == "pending" and payment.reason == "waiting for quotes"
    market.run()
    assert payment is not market.alice.payments[invoice.payment_hash]  # replaced when paid
    paid = market.alice.payments[invoice.payment_hash]
    assert paid.status == "succeeded", paid.reason
    assert market.bob.channels[market.c2].machine.state.free(market.token)[1] == AMOUNT


def test_a_hub_without_a_rate_answers_and_the_payment_fails_with_the_reason(
    market: Market,
) -> None:
    invoice, hops = market.hops()
    del market.hub.policy.rates[(market.eth, market.token)]
    market.alice.pay_quoted(invoice, without_quote(hops))
    market.run()
    payment = market.alice.payments[invoice.payment_hash]
    assert payment.status == "failed" and "no_rate" in payment.reason
    assert not market.alice.channels[market.c1].machine.state.htlcs  # nothing was locked


def test_a_silent_hub_makes_the_payment_fail_in_bounded_time(market: Market) -> None:
    invoice, hops = market.hops()
    market.world.network.silence(market.hub)
    market.alice.pay_quoted(invoice, without_quote(hops))
    market.run()
    assert market.alice.payments[invoice.payment_hash].status == "pending"
    market.world.advance(QUOTE_WAIT)
    market.alice.tick()
    payment = market.alice.payments[invoice.payment_hash]
    assert payment.status == "failed" and "no quote" in payment.reason


def test_a_peer_cannot_fill_the_hubs_quote_book(market: Market) -> None:
    """A peer asking for quotes again and again gets at most MAX_QUOTES_PER_PEER live ones."""
    answers = []
    for _ in range(MAX_QUOTES_PER_PEER + 5):
        request = wire.QuoteRequest(os.urandom(32), market.eth, market.token, 10)
        market.hub.receive(market.alice.node_id, wire.encode(request))
        answers += [wire.decode(data) for _, data in market.hub.outbox]
        market.hub.outbox.clear()
    replies = [a for a in answers if isinstance(a, wire.QuoteReply)]
    assert sum(r.quote is not None for r in replies) == MAX_QUOTES_PER_PEER
    assert all("too_many_quotes" in r.error for r in replies if r.quote is None)


def test_a_peer_asking_for_quotes_does_not_grow_the_hubs_writes(market: Market) -> None:
    """Attack: a peer asks for as many quotes as it may, over the wire. Each lands in a record
    of its own; the node state the hub rewrites with every payment does not carry them."""
    hub = market.hub
    hub.checkpoint()
    before = node_state_bytes(hub)
    for _ in range(MAX_QUOTES_PER_PEER):
        request = wire.QuoteRequest(os.urandom(32), market.eth, market.token, 10)
        hub.receive(market.alice.node_id, wire.encode(request))
    hub.outbox.clear()
    hub.checkpoint()
    assert len(stored_quotes(hub)) == MAX_QUOTES_PER_PEER
    invoice, hops = market.hops()
    payment = market.alice.pay_route(invoice, hops)
    market.run()
    assert payment.status == "succeeded"
    assert node_state_bytes(hub) <= before + 64


def test_a_quote_reply_from_another_node_or_for_no_request_is_ignored(market: Market) -> None:
    invoice, hops = market.hops()
    forged = hops[1].quote
    market.world.network.silence(market.hub)
    market.alice.pay_quoted(invoice, without_quote(hops))
    (request_id,) = next(iter(market.alice.quoting.pending.values())).missing
    # Bob (not the converting hub) answers with the hub's quote he somehow holds: refused.
    market.alice.receive(market.bob.node_id, wire.encode(wire.QuoteReply(request_id, forged)))
    payment = market.alice.payments[invoice.payment_hash]
    assert payment.status == "failed" and not market.alice.channels[market.c1].machine.state.htlcs
    # A reply for nothing we asked: nothing happens.
    market.alice.receive(market.hub.node_id, wire.encode(wire.QuoteReply(os.urandom(32), forged)))


def test_a_failure_while_resuming_after_the_last_quote_leaves_the_payment_to_expire(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quote reply that completes a payment's quotes resumes it; if that fails other
    than by a refusal (a bug, a chain down), the reply is undone as a whole. The payment
    must still be waiting for its quotes then, and fail in bounded time, not stay pending
    for ever (the wait for it was dropped with the reply, and nothing expired it)."""
    invoice, hops = market.hops()
    flow = market.alice.payment_flow

    def broken(*args: Any, **kwargs: Any) -> Payment:
        raise RuntimeError("the chain's RPC is down")

    monkeypatch.setattr(flow, "pay_route", broken)
    market.alice.pay_quoted(invoice, without_quote(hops))
    market.run()
    assert market.alice.counters.get("peer_messages_failed") == 1  # the reply, undone
    assert market.alice.payments[invoice.payment_hash].status == "pending"
    market.world.advance(QUOTE_WAIT)
    market.alice.tick()
    payment = market.alice.payments[invoice.payment_hash]
    assert payment.status == "failed" and "no quote" in payment.reason
    assert not market.alice.channels[market.c1].machine.state.htlcs  # nothing was locked
