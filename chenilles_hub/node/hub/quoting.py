"""Quotes over the peer wire: a payer's node asks the converting hub of its route for a
signed quote, and pays once every conversion has one; a hub answers its peers' requests.

A hub converts between assets only at the terms of a quote it issued and remembers (issue
12, item 7: a stale rate cannot be exercised, a quote is used once). A payer gets that quote
from its peer over the same encrypted connection its channel uses, so no API token of the
hub ever leaves the hub. Requests are bounded per peer (a peer cannot fill the hub's quote
book), answered in the group commit that wrote the quote (the quote is durable before the
payer sees it), and a payment waiting for quotes fails, with the reason, if the hub does
not answer in time.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field, replace

import msgspec

from ...circuit.errors import InvoiceAlreadyPaid
from ...circuit.invoice import Invoice
from ...circuit.onion import OnionHop
from ...circuit.quote import Quote, check_quote
from ...core import ChannelError
from ...core.errors import WrongChannel
from ..net import wire
from .context import NodeContext
from .payments import Payments
from .records import Payment

#: Seconds a payment waits for its quotes before it fails.
QUOTE_WAIT = 15
#: Live quotes one peer may hold from us at once.
MAX_QUOTES_PER_PEER = 16
WAITING = "waiting for quotes"


@dataclass
class PendingQuotes:
    """A payment planned along ``hops`` that waits for the quotes of its conversions."""

    invoice: Invoice
    hops: list[OnionHop]
    #: request id -> index of the hop whose conversion it quotes
    missing: dict[bytes, int]
    deadline: int


@dataclass
class Quoting:
    ctx: NodeContext
    payments: Payments
    pending: dict[bytes, PendingQuotes] = field(default_factory=dict)  # by payment hash
    #: Quotes we issued to each peer, (id, expiry), to bound what one peer may hold.
    issued_to: dict[bytes, deque[tuple[bytes, int]]] = field(default_factory=dict)

    # --- the hub's side ------------------------------------------------------------------

    def on_request(self, peer: bytes, msg: wire.QuoteRequest) -> None:
        now = self.ctx.clock()
        held = self.issued_to.setdefault(peer, deque())
        while held and held[0][1] <= now:
            held.popleft()
        if len(held) >= MAX_QUOTES_PER_PEER:
            self._reply(peer, msg, error="too_many_quotes: wait for your quotes to expire")
            return
        try:
            quote = self.payments.quote(msg.asset_in, msg.asset_out, msg.amount_out)
        except ChannelError as error:
            self._reply(peer, msg, error=f"{error.code}: {error}")
            return
        held.append((quote.quote_id, quote.expires_at))
        self._reply(peer, msg, quote=quote)

    def _reply(
        self, peer: bytes, msg: wire.QuoteRequest, quote: Quote | None = None, error: str = ""
    ) -> None:
        self.ctx.send(peer, wire.QuoteReply(msg.request_id, quote, error[:300]))

    # --- the payer's side ----------------------------------------------------------------

    def pay(
        self,
        invoice: Invoice,
        hops: list[OnionHop],
        deadline: int = 0,
        route: tuple[dict[str, object], ...] = (),
    ) -> Payment:
        """Pay ``invoice`` along ``hops``, first asking each converting hub that is our peer
        for the quote its hop lacks. The payment is pending meanwhile."""
        if invoice.payment_hash in self.payments.payments:
            raise InvoiceAlreadyPaid("this invoice was already paid from this node")
        peers = {c.peer for c in self.ctx.channels.values() if c.active}
        missing: dict[bytes, int] = {}
        for index in range(1, len(hops)):
            before, hop = hops[index - 1], hops[index]
            if hop.asset == before.asset or hop.quote is not None:
                continue
            if before.node not in peers:
                raise WrongChannel(
                    f"hop {index} converts {before.asset} into {hop.asset} at hub "
                    f"{before.node.hex()[:16]}, which is not our peer: get its quote through "
                    "its API (POST /v1/quote) and pass it with the payment"
                )
            request_id = secrets.token_bytes(32)
            missing[request_id] = index
            self.ctx.send(
                before.node, wire.QuoteRequest(request_id, before.asset, hop.asset, hop.amount)
            )
        if not missing:
            return self.payments.pay_route(invoice, hops, deadline=deadline, route=route)
        first = hops[0]
        payment = Payment(
            invoice.payment_hash,
            invoice.amount,
            invoice.asset,
            first.amount,
            first.asset,
            reason=WAITING,
            deadline=deadline,
            created_at=self.ctx.clock(),
            route=route,
        )
        self.payments.payments[invoice.payment_hash] = payment
        self.payments.record_payment(payment)
        self.pending[invoice.payment_hash] = PendingQuotes(
            invoice, list(hops), missing, self.ctx.clock() + QUOTE_WAIT
        )
        return payment

    def on_reply(self, peer: bytes, msg: wire.QuoteReply) -> None:
        entry = next(((h, p) for h, p in self.pending.items() if msg.request_id in p.missing), None)
        if entry is None:
            return  # late (the payment gave up) or never asked: nothing to do
        payment_hash, waiting = entry
        # Changed as a copy, put in ``pending`` whole: a reply whose handling fails is undone
        # by putting the dict back (``Savepoint``), and the payment still waits (or expires).
        missing = dict(waiting.missing)
        index = missing.pop(msg.request_id)
        before, hop = waiting.hops[index - 1], waiting.hops[index]
        quote = msg.quote
        if quote is None or quote.hub != peer or before.node != peer:
            self._fail(payment_hash, f"the hub gave no quote: {msg.error or 'not its quote'}")
            return
        if quote.amount_in > before.amount:
            # The hub's terms moved since the route was planned: the planned amount no longer
            # buys the hop. Refuse rather than silently pay more than the route said.
            self._fail(
                payment_hash,
                f"the hub now asks {quote.amount_in} {before.asset} for {hop.amount} "
                f"{hop.asset}, the route planned {before.amount}: plan the payment again",
            )
            return
        try:
            check_quote(quote, self.ctx.clock())
        except ChannelError as error:
            self._fail(payment_hash, f"{error.code}: {error}")
            return
        hops = list(waiting.hops)
        hops[index] = msgspec.structs.replace(hop, quote=quote)
        if missing:
            self.pending[payment_hash] = replace(waiting, hops=hops, missing=missing)
            return
        del self.pending[payment_hash]
        try:
            self.payments.pay_route(waiting.invoice, hops, resume=True)
        except ChannelError as error:
            self._fail(payment_hash, f"{error.code}: {error}")

    def expire(self) -> None:
        """Payments whose hubs did not quote in time fail (nothing was locked for them)."""
        now = self.ctx.clock()
        for payment_hash, waiting in list(self.pending.items()):
            if now >= waiting.deadline:
                del self.pending[payment_hash]
                self._fail(payment_hash, "no quote from the converting hub in time")

    def restore(self) -> None:
        """A payment that was waiting for quotes when the node stopped never locked money:
        it failed (its quotes, if any came, were not used)."""
        for payment in self.payments.payments.values():
            if payment.status == "pending" and payment.reason == WAITING:
                self._fail(payment.payment_hash, "the node restarted before the quotes came")

    def _fail(self, payment_hash: bytes, reason: str) -> None:
        self.pending.pop(payment_hash, None)
        payment = self.payments.payments.get(payment_hash)
        if payment is not None and payment.status == "pending":
            payment.status, payment.reason = "failed", reason
            self.payments.record_payment(payment)
            self.ctx.note(f"payment {payment_hash.hex()[:8]} failed: {reason}")
