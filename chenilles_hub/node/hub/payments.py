"""Payments: invoices, our own payments, direct transfers, and the HTLC life cycle of the
circuits that cross this node (receive, forward, settle, fail).

Rules it keeps:

* an incoming HTLC is acted on only once it is irrevocable (both sides revoked the state
  before it): settled if we are the payee, forwarded after the core router accepts the
  amounts, rate and timelock delta, or failed with the error's code;
* a forward that changes asset needs the quote we issued for it (named in the onion): it
  is forwarded at that quote's terms, once, while it is valid, and refused otherwise
  (``quote_required``, ``invalid_quote``, ``quote_expired``, ``unknown_quote``,
  ``quote_mismatch``, ``quote_used``);
* a preimage learnt downstream, off-chain or on any chain, is passed upstream at once, and
  the watcher is told to claim on-chain before the upstream expiry if the peer does not
  cooperate;
* what is kept per HTLC is dropped once it is resolved, so the node's in-flight state stays
  bounded by what is in flight.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ...backend import LedgerError
from ...circuit.errors import (
    CircuitError,
    InvoiceAlreadyPaid,
    NoRate,
    QuoteMismatch,
    QuoteRequired,
    UnknownPaymentHash,
    WrongAmount,
)
from ...circuit.invoice import Invoice, check_payable, create_invoice
from ...circuit.onion import HopPayload, OnionHop, build_onion, peel
from ...circuit.quote import Quote, QuoteBook, check_quote
from ...core import (
    AddHtlc,
    Asset,
    ChannelError,
    FailHtlc,
    Htlc,
    SettleHtlc,
    Transfer,
    Update,
)
from ...core.errors import (
    AmountOutOfRange,
    ChannelNotOpen,
    UnknownAsset,
    UnsafeTimelock,
    WrongChannel,
)
from ...core.updates import fail_htlc
from ...core.watcher import ClaimIncoming, RefundOutgoing
from .context import NodeContext
from .forwarding import ForwardingPolicy, check_incoming_forward, enforcement_delta
from .history import InvoiceCancelled, forward_record
from .htlc_queue import EXPIRED_REASON, check_room, take_expired
from .journal import INVOICE_PREFIX, PAYMENT_PREFIX, InvoiceRecord, encode_record
from .proposals import Proposals
from .records import Channel, ForwardLink, Payment
from .tracked import HtlcTable, TrackedDict


def _check_hop_quote(before: OnionHop, hop: OnionHop, now: int) -> None:
    """The payer's own check of the quote a converting hop carries, before any of its money
    is locked: the hub would refuse (and fail the HTLC back) anything this refuses."""
    quote = hop.quote
    if quote is None:
        raise QuoteRequired(
            f"the route converts {before.asset} into {hop.asset}: it needs that hub's quote "
            "(POST /v1/quote on the hub)"
        )
    if quote.hub != before.node or (quote.asset_in, quote.asset_out) != (before.asset, hop.asset):
        raise QuoteMismatch("the quote is not the converting hub's, or for another pair")
    check_quote(quote, now)  # its hub's signature, not expired
    if hop.amount > quote.amount_out or before.amount < quote.amount_in:
        raise QuoteMismatch(
            f"the route sends {before.amount} for {hop.amount}; the quote: {quote.amount_in} "
            f"for at most {quote.amount_out}"
        )


class Payments:
    def __init__(
        self,
        ctx: NodeContext,
        proposals: Proposals,
        policy: ForwardingPolicy,
        refund_grace: int = 0,
    ) -> None:
        self.ctx = ctx
        self.proposals = proposals
        self.policy = policy
        #: Extra seconds an outgoing HTLC may stay locked past its expiry before we go
        #: on-chain.
        self.refund_grace = refund_grace
        self.invoices: dict[bytes, tuple[Invoice, bytes]] = {}
        self.paid_invoices: set[bytes] = set()
        #: Invoices the operator cancelled: an HTLC arriving for one is failed.
        self.cancelled_invoices: set[bytes] = set()
        self.payments: dict[bytes, Payment] = {}
        #: What is in flight: preimages we must still reveal or enforce, HTLCs by (channel,
        #: id), and each forward's link from its outgoing HTLC back to its incoming one.
        #: Tracked tables: a checkpoint writes the keys an event changed, as records of
        #: their own, and a failed message puts back the keys it changed (``tracked``).
        self.preimages: TrackedDict[bytes, bytes] = TrackedDict()
        self.htlcs = HtlcTable()
        self.links_by_out: TrackedDict[tuple[bytes, int], ForwardLink] = TrackedDict()
        #: Collect :attr:`ticket_outcomes` and :attr:`finished_payments` for a driver that
        #: answers callers waiting for them (and takes them after each job).
        self.report_outcomes = False
        #: Direct transfers somebody waits for (an API request): the update object's id ->
        #: (the update, the caller's ticket); not persisted (a restart answers no one).
        self.tickets: TrackedDict[int, tuple[Update, int]] = TrackedDict(track_changes=False)
        #: (ticket, signed version or None, failure reason or None) of transfers that became
        #: irrevocable or failed; the driver takes them after the checkpoint, like the outbox.
        self.ticket_outcomes: list[tuple[int, int | None, str | None]] = []
        #: Hashes of our payments that succeeded or failed since the driver last took them.
        self.finished_payments: list[bytes] = []
        #: The quotes we issued and still honour (persisted with the node's state).
        self.quotes = QuoteBook(ctx.identity)

    def in_flight(
        self,
    ) -> tuple[HtlcTable, TrackedDict[tuple[bytes, int], ForwardLink], TrackedDict[bytes, bytes]]:
        """The tables a checkpoint writes key by key: HTLCs, forward links, preimages."""
        return self.htlcs, self.links_by_out, self.preimages

    # --- records ----------------------------------------------------------------------------

    def record_payment(self, payment: Payment) -> None:
        if payment.status != "pending" and not payment.finished_at:
            payment.finished_at = self.ctx.clock()
        self.ctx.pending.records[PAYMENT_PREFIX + payment.payment_hash.hex()] = encode_record(
            payment
        )
        if payment.status != "pending" and self.report_outcomes:
            self.finished_payments.append(payment.payment_hash)

    def record_invoice(self, payment_hash: bytes) -> None:
        invoice, preimage = self.invoices[payment_hash]
        paid = payment_hash in self.paid_invoices
        cancelled = payment_hash in self.cancelled_invoices
        self.ctx.pending.records[INVOICE_PREFIX + payment_hash.hex()] = encode_record(
            InvoiceRecord(invoice, preimage, paid, cancelled)
        )

    def cancel_invoice(self, payment_hash: bytes) -> None:
        """The operator withdraws an unpaid invoice: from now on an HTLC for it is failed
        (``invoice_cancelled``), and the payer's money comes back."""
        if payment_hash not in self.invoices:
            raise UnknownPaymentHash("no invoice of ours has this payment hash")
        if payment_hash in self.paid_invoices:
            raise InvoiceAlreadyPaid("this invoice is already paid: it cannot be cancelled")
        self.cancelled_invoices.add(payment_hash)
        self.record_invoice(payment_hash)

    # --- the operator's requests ------------------------------------------------------------

    def invoice(
        self, amount: int, asset: Asset, *, ttl: int = 3600, description: str = ""
    ) -> Invoice:
        invoice, preimage = create_invoice(
            self.ctx.identity,
            amount,
            asset,
            self.ctx.clock(),
            ttl=ttl,
            final_lead=self.final_lead(asset),
            description=description,
        )
        self.invoices[invoice.payment_hash] = (invoice, preimage)
        self.record_invoice(invoice.payment_hash)
        return invoice

    def quote(self, asset_in: Asset, asset_out: Asset, amount_out: int) -> Quote:
        """Our signed, short-lived promise to send ``amount_out`` of ``asset_out`` for the
        quote's ``amount_in`` of ``asset_in`` (our standing rate and fee); remembered until
        it expires, and written with the next checkpoint, before the payer may see it."""
        rate = self.policy.rates.get((asset_in, asset_out))
        if rate is None:
            raise NoRate(f"this hub does not convert {asset_in} into {asset_out}")
        if not 0 < amount_out < 2**256:
            raise AmountOutOfRange(f"amount_out {amount_out} is not 1 to 2**256-1")
        fee = self.policy.fee(asset_out, amount_out)
        return self.quotes.issue(asset_in, asset_out, amount_out, rate, fee, self.ctx.clock())

    def final_lead(self, asset: Asset) -> int:
        """How far ahead the last HTLC to us must expire: the time to enforce it on-chain in
        our slowest channel on that chain (what our channels' HTLC policy demands), plus a
        block interval of slack for the time the payment takes to arrive."""
        backend = self.ctx.backends[asset.chain]
        model = backend.time_model()
        challenges = [
            c.params.challenge_duration
            for c in self.ctx.channels.values()
            if c.params.chain == asset.chain
        ] or [0]
        slack = (model.block_interval_ms + 999) // 1000
        return max(enforcement_delta(model, c) for c in challenges) + slack

    def pay_route(
        self,
        invoice: Invoice,
        hops: list[OnionHop],
        resume: bool = False,
        deadline: int = 0,
        route: tuple[dict[str, object], ...] = (),
    ) -> Payment:
        """Pay ``invoice`` along ``hops`` (hops[0] is the HTLC we offer in our channel).
        ``resume``: the payment is already recorded as pending (it waited for quotes).
        ``deadline`` (node clock, 0: none): if our HTLC, or a forwarder's next one, still
        waits to be offered then, it is failed back (``htlc_queue``). ``route``: the
        planned route's view, kept with the payment for its history."""
        check_payable(invoice, self.ctx.clock())
        if invoice.payment_hash in self.payments and not resume:
            raise InvoiceAlreadyPaid("this invoice was already paid from this node")
        last = hops[-1]
        if last.node != invoice.payee or last.asset != invoice.asset:
            raise CircuitError("the route does not end at the invoice's payee and asset")
        if last.amount != invoice.amount:
            raise WrongAmount("the route delivers a different amount than the invoice asks")
        now = self.ctx.clock()
        for before, hop in itertools.pairwise(hops):
            if hop.asset != before.asset:
                _check_hop_quote(before, hop, now)
        first = hops[0]
        channel = self.ctx.channels[first.channel]
        if not channel.active:
            raise WrongChannel("the first channel of the route is not active")
        check_room(channel)
        earlier = self.payments.get(invoice.payment_hash) if resume else None
        if earlier is not None:
            deadline, route = deadline or earlier.deadline, route or earlier.route
        htlc = channel.offer_htlc(first.asset, first.amount, invoice.payment_hash, first.expiry)
        payment = Payment(
            invoice.payment_hash,
            invoice.amount,
            invoice.asset,
            first.amount,
            first.asset,
            deadline=deadline,
            created_at=earlier.created_at if earlier is not None else now,
            route=route,
        )
        self.payments[invoice.payment_hash] = payment
        self.record_payment(payment)
        self.htlcs[(channel.channel_id, htlc.id)] = htlc
        self.proposals.queue(channel, AddHtlc(htlc, onion=build_onion(hops, deadline)))
        return payment

    def transfer_many(self, items: Sequence[tuple[bytes, Asset, int, int | None]]) -> None:
        """Queue several direct transfers (channel, asset, amount, ticket), all or none: each
        is checked before any is queued. With a ticket, the outcome (the version that made
        it irrevocable, or why it failed) is reported in :attr:`ticket_outcomes`."""
        for index, (channel_id, asset, amount, _) in enumerate(items):
            channel = self.ctx.channels.get(channel_id)
            where = f"transfer {index}"
            if channel is None:
                raise WrongChannel(f"{where}: no channel {channel_id.hex()}")
            if channel.status != "active":
                raise ChannelNotOpen(f"{where}: the channel is {channel.status}")
            if asset not in channel.params.assets:
                raise UnknownAsset(f"{where}: the channel does not hold {asset}")
            if not 0 < amount < 2**256:
                raise AmountOutOfRange(f"{where}: amount {amount} is not 1 to 2**256-1")
        for channel_id, asset, amount, ticket in items:
            update = Transfer(asset, amount)
            if ticket is not None:
                self.tickets[id(update)] = (update, ticket)
            self.proposals.queue(self.ctx.channels[channel_id], update)

    def _resolve_ticket(self, update: Update, version: int | None, reason: str | None) -> None:
        waiting = self.tickets.get(id(update))
        if waiting is not None and waiting[0] is update:
            del self.tickets[id(update)]
            if self.report_outcomes:
                self.ticket_outcomes.append((waiting[1], version, reason))

    # --- the HTLC life cycle ----------------------------------------------------------------

    def on_irrevocable(self, channel: Channel, updates: Sequence[Update], version: int) -> None:
        """The updates of a state both sides revoked the predecessor of."""
        for update in updates:
            if self.tickets:
                self._resolve_ticket(update, version, None)
            if isinstance(update, AddHtlc):
                self._on_htlc_added(channel, update)
            elif isinstance(update, SettleHtlc):
                self._on_htlc_settled(channel, update)
            elif isinstance(update, FailHtlc):
                self.on_htlc_failed(channel, update.htlc_id, update.reason)

    def on_signed(self, channel: Channel, updates: Sequence[Update]) -> None:
        """The updates of a state both sides signed, not yet irrevocable: a preimage the
        peer showed for an HTLC we paid is passed upstream at once (the core checked that
        it hashes to the HTLC's payment hash). Knowing it, we can claim the incoming HTLC
        whatever becomes of this state; waiting for the peer's revocation only delayed the
        upstream settle by a round trip and a durable write per hop."""
        for update in updates:
            if isinstance(update, SettleHtlc):
                htlc = self.htlcs.get((channel.channel_id, update.htlc_id))
                if htlc is not None and htlc.payer == channel.me:
                    self.preimage_known(htlc.payment_hash, update.preimage)

    def _on_htlc_added(self, channel: Channel, update: AddHtlc) -> None:
        htlc = update.htlc
        self.htlcs[(channel.channel_id, htlc.id)] = htlc
        if htlc.payer == channel.me:
            self.ctx.watcher.add(
                RefundOutgoing(channel.channel_id, htlc.id, htlc.expiry + self.refund_grace)
            )
            return
        try:
            payload = peel(self.ctx.identity, update.onion)
            if payload.final:
                self._receive_payment(channel, htlc, payload)
            else:
                self._forward(channel, htlc, payload)
        except (ChannelError, LedgerError) as error:
            reason = f"{getattr(error, 'code', 'ledger')}: {error}"
            self.ctx.note(f"failing incoming HTLC {htlc.id}: {reason}")
            self.ctx.count("htlc_refused")
            self.proposals.queue(channel, fail_htlc(htlc.id, reason))

    def _receive_payment(self, channel: Channel, htlc: Htlc, payload: HopPayload) -> None:
        entry = self.invoices.get(htlc.payment_hash)
        if entry is None:
            raise UnknownPaymentHash("no invoice of ours has this payment hash")
        if htlc.payment_hash in self.cancelled_invoices:
            raise InvoiceCancelled("the payee cancelled this invoice")
        invoice, preimage = entry
        if htlc.payment_hash in self.paid_invoices:
            raise InvoiceAlreadyPaid("this invoice was already paid")
        check_payable(invoice, self.ctx.clock())
        if htlc.asset != invoice.asset or htlc.amount < invoice.amount:
            raise WrongAmount(
                f"received {htlc.amount} {htlc.asset}, invoice asks {invoice.amount} "
                f"{invoice.asset}"
            )
        if payload.amount_int != htlc.amount or payload.asset != htlc.asset:
            raise WrongAmount("the HTLC differs from what the payer's instructions say")
        if htlc.expiry < self.ctx.clock() + invoice.final_lead:
            raise UnsafeTimelock("the final HTLC leaves less than the invoice's final lead")
        self.paid_invoices.add(htlc.payment_hash)
        self.record_invoice(htlc.payment_hash)
        self._settle_incoming(channel, htlc, preimage)
        self.ctx.note(
            f"received {htlc.amount} {htlc.asset} for invoice {htlc.payment_hash.hex()[:8]}"
        )

    def _forward(self, incoming: Channel, htlc: Htlc, payload: HopPayload) -> None:
        out = self.ctx.channels.get(payload.next_channel)
        if out is None or not out.active:
            raise WrongChannel("the next channel is unknown or not active")
        if payload.asset not in out.params.assets:
            raise WrongAmount(f"{payload.asset} is not an asset of the next channel")
        now = self.ctx.clock()
        quote: Quote | None = None
        if payload.asset != htlc.asset:  # a conversion: only at the terms of our quote
            quote = self.quotes.check(
                payload.quote, htlc.asset, htlc.amount, payload.asset, payload.amount_int, now
            )
        check_incoming_forward(
            self.policy,
            self.ctx.node_id,
            incoming,
            htlc,
            out,
            payload.amount_int,
            payload.asset,
            payload.expiry,
            now,
            quote,
        )
        check_room(out)
        outgoing = out.offer_htlc(
            payload.asset, payload.amount_int, htlc.payment_hash, payload.expiry
        )
        if quote is not None:
            self.quotes.consume(quote, now)
        fee = quote.fee if quote is not None else htlc.amount - payload.amount_int
        link = ForwardLink(
            incoming.channel_id,
            htlc.id,
            out.channel_id,
            outgoing.id,
            deadline=payload.deadline,
            fee=fee,
            started=now,
        )
        self.links_by_out[(out.channel_id, outgoing.id)] = link
        # Known from now on (as for our own payments): a preimage the next peer reveals on
        # a chain settles upstream even if the state with this HTLC never completes here
        # (it refused our proposal, then enforced it).
        self.htlcs[(out.channel_id, outgoing.id)] = outgoing
        self.proposals.queue(out, AddHtlc(outgoing, onion=payload.inner))
        self.ctx.note(
            f"forwarding {htlc.amount} {htlc.asset} -> {outgoing.amount} {outgoing.asset}"
        )

    def _settle_incoming(self, channel: Channel, htlc: Htlc, preimage: bytes) -> None:
        """We know the preimage of an HTLC paid to us: settle off-chain, and make sure the
        watcher claims it on-chain in time should the peer stop cooperating."""
        self.preimages[htlc.payment_hash] = preimage
        self.proposals.queue(channel, SettleHtlc(htlc.id, preimage))
        model = channel.backend.time_model()
        deadline = htlc.expiry - model.inclusion_delay - model.finality_time() - model.safety_margin
        self.ctx.watcher.add(ClaimIncoming(channel.channel_id, htlc.id, preimage, deadline))

    def _on_htlc_settled(self, channel: Channel, update: SettleHtlc) -> None:
        key = (channel.channel_id, update.htlc_id)
        htlc = self.htlcs.get(key)
        self.ctx.watcher.resolved(*key)
        if htlc is not None and htlc.payer == channel.me:
            self.preimage_known(htlc.payment_hash, update.preimage)
        self._forget(key)  # settled for good: nothing left to enforce or pass on

    def preimage_known(self, payment_hash: bytes, preimage: bytes) -> None:
        """A preimage learnt downstream (off-chain or on-chain): pass it upstream."""
        self.preimages[payment_hash] = preimage
        # The HTLCs with this hash, not every link in flight: a busy hub holds thousands.
        for key in self.htlcs.keys_of(payment_hash):
            link = self.links_by_out.get(key)
            if link is None:
                continue
            out = self.htlcs[key]
            # Looked up before the link is dropped: should the incoming channel fail to
            # load, the link stays for a later call with this preimage.
            incoming = self.ctx.channels[link.in_channel]
            in_htlc = self.htlcs.get((link.in_channel, link.in_htlc))
            if in_htlc is not None and incoming.machine.state.htlc(link.in_htlc) is None:
                in_htlc = None  # no longer in the channel: nothing to settle
            del self.links_by_out[key]
            if in_htlc is not None:
                self._settle_incoming(incoming, in_htlc, preimage)
                self._record_forward(link, in_htlc, out)
        payment = self.payments.get(payment_hash)
        if payment is not None and payment.status == "pending":
            payment.status, payment.preimage = "succeeded", preimage
            self.record_payment(payment)
            self.ctx.note(f"payment {payment_hash.hex()[:8]} succeeded")

    def on_htlc_failed(self, channel: Channel, htlc_id: int, reason: str) -> None:
        key = (channel.channel_id, htlc_id)
        htlc = self.htlcs.get(key)
        self.ctx.watcher.resolved(*key)
        self._forget(key)
        if htlc is None or htlc.payer != channel.me:
            return
        link = self.links_by_out.pop(key, None)
        if link is not None:
            upstream = self.ctx.channels[link.in_channel]
            # The reason may be a downstream peer's (a Reject's, up to 500 characters):
            # uncut, the upstream peer could not decode the proposal, and the channel would
            # jam until its HTLC forced it on-chain (found by review).
            self.proposals.queue(upstream, fail_htlc(link.in_htlc, reason))
            self.ctx.count("forward_failed_downstream")
            self.ctx.note(f"failing upstream HTLC {link.in_htlc}: {reason}")
            return
        payment = self.payments.get(htlc.payment_hash)
        if payment is not None and payment.status == "pending":
            payment.status, payment.reason = "failed", reason
            self.record_payment(payment)
            self.ctx.note(f"payment {htlc.payment_hash.hex()[:8]} failed: {reason}")

    def _record_forward(self, link: ForwardLink, incoming: Htlc, outgoing: Htlc) -> None:
        """A forward that settled: kept for the operator's history (fees earned)."""
        key, value = forward_record(link, incoming, outgoing, self.ctx.clock())
        self.ctx.pending.records[key] = value
        self.ctx.count("forwards_settled")

    def expire_waiting(self) -> None:
        """HTLC offers still waiting (for a slot, or for an offline peer) past their payer's
        deadline are dropped from their channel's queue and failed back: our own payment
        fails, a forward fails its incoming HTLC upstream. Nothing was signed for them, so
        nothing stays locked."""
        now = self.ctx.clock()
        for channel_id in list(self.ctx.queued | self.ctx.parked):
            channel = self.ctx.channels[channel_id]
            for update in take_expired(channel, self._deadline, now):
                self.ctx.count("htlc_wait_timeouts")
                self.update_failed(channel, update, EXPIRED_REASON)

    def _deadline(self, channel: Channel, htlc: Htlc) -> int:
        link = self.links_by_out.get((channel.channel_id, htlc.id))
        if link is not None:
            return link.deadline
        payment = self.payments.get(htlc.payment_hash)
        return payment.deadline if payment is not None and payment.status == "pending" else 0

    def claimed_on_chain(self, channel: Channel, htlc: Htlc) -> None:
        """Our claim of an HTLC paid to us left for the chain, on a chain whose HTLCs are
        outputs of their own (Bitcoin; the backend sends it again should a reorg take it):
        its preimage went upstream when we learnt it, so nothing is left to enforce."""
        key = (channel.channel_id, htlc.id)
        self.ctx.watcher.resolved(*key)
        self._forget(key)

    def refunded_on_chain(self, channel: Channel, htlc: Htlc) -> None:
        """Our outgoing HTLC came back on-chain after its expiry (no preimage was revealed in
        time, so the payee can no longer take it): fail the HTLC it was forwarded for
        upstream off-chain, while the upstream expiry is still a full delta away, instead of
        pushing the upstream channel on-chain too; or mark our own payment failed."""
        if (channel.channel_id, htlc.id) not in self.htlcs:
            return
        self.on_htlc_failed(channel, htlc.id, "expired downstream; refunded on-chain")

    def _forget(self, key: tuple[bytes, int]) -> None:
        """Drop a resolved HTLC (and its preimage once no live HTLC shares the hash), so
        what the node checkpoints stays bounded by what is in flight."""
        htlc = self.htlcs.pop(key, None)
        if htlc is not None and not self.htlcs.holds(htlc.payment_hash):
            self.preimages.pop(htlc.payment_hash, None)

    def update_failed(self, channel: Channel, update: Update, reason: str) -> None:
        """An update of ours could not be proposed or was refused by the peer."""
        self._resolve_ticket(update, None, reason)
        if isinstance(update, AddHtlc):
            key = (channel.channel_id, update.htlc.id)
            self.htlcs[key] = update.htlc
            self.on_htlc_failed(channel, update.htlc.id, reason)
