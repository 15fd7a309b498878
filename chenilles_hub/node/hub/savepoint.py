"""Undoing one peer message: what the node looked like before it, and how to go back.

A peer's message either takes effect whole or not at all. The core's machine already works
that way (it raises before it changes anything), and the open handshake checks before it
creates anything; but the node's own reaction to an accepted message (funding, settling,
forwarding, closing) runs several collaborators in turn, and any of them may fail half-way
(a bug, a chain's RPC down). Then the node goes back to where it was before the message,
which is a state the protocol is built for: the message was lost, the peer retransmits it
after the next reestablish. Nothing of the event was sent or written (its outbox and
pending writes are cut back too), so nothing outside the process saw it.

What is captured, and why it is cheap enough to do for every message:

* the event's outbox length and the pending writes of the current job (small: one job);
* channels created by the event (appended to an insertion-ordered dict: cut back), the
  watcher's state (an immutable value), its guards and HTLC duties (a mark in its change
  log) and the open handshake's bounded dicts;
* the message's channel machine (an immutable snapshot) and, through the channels' undo
  log (``records.UndoLog``), the old value of every persisted channel field any channel
  changed;
* the payments waiting for quotes (bounded by our payments in flight);
* for channel messages, the keys of the payments' in-flight tables the message changed
  (``tracked.TrackedDict`` logs each write's old value: a hub holds thousands of HTLCs
  in flight, and copying the tables before every message cost as much). Our payments and
  invoices are unbounded; each of their changes is also a record write in
  ``pending.records``, so the ones this event changed are found there and put back from
  their previous record (earlier in the job, or in the store).

What cannot be undone is what already left the process: a chain transaction sent by the
event (the deposit's durable marker makes a retry wait for the chain instead of paying
twice), what the event wrote before such a transaction (``Node.make_durable``: the
savepoint moves there, :meth:`Savepoint.reanchor`) and the store row of a created channel
(``Opening.create_channel`` tolerates it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...core import ChannelSnapshot
from .journal import INVOICE_PREFIX, PAYMENT_PREFIX, InvoiceRecord, decode_record
from .records import Channel, Payment
from .tracked import TrackedDict

if TYPE_CHECKING:
    from .context import NodeContext
    from .opening import Opening
    from .payments import Payments
    from .quoting import Quoting


class Savepoint:
    def __init__(
        self,
        ctx: NodeContext,
        opening: Opening,
        payments: Payments,
        quoting: Quoting,
        channel: Channel | None,
        *,
        with_payments: bool,
    ) -> None:
        self.ctx = ctx
        self.opening = opening
        self.payments = payments
        self.quoting = quoting
        self.channel = channel
        self.with_payments = with_payments
        self._capture()

    def _capture(self) -> None:
        ctx, channel, payments = self.ctx, self.channel, self.payments
        self.outbox = len(ctx.outbox)
        pending = ctx.pending
        self.snapshots = dict(pending.snapshots)
        self.records = dict(pending.records)
        self.touched = set(pending.channels)
        self.queued = dict(ctx.queued)
        self.channels = len(ctx.channels)
        self.watcher = ctx.watcher.state
        self.watcher_mark = ctx.watcher.mark()
        self.pending_opens = dict(self.opening.pending_opens)
        self.open_results = dict(self.opening.open_results)
        #: payments waiting for quotes (each entry replaced whole, never changed in place)
        self.waiting_for_quotes = dict(self.quoting.pending)
        self.machine: ChannelSnapshot | None = (
            channel.machine.snapshot() if channel is not None else None
        )
        self.outcomes = (len(payments.ticket_outcomes), len(payments.finished_payments))
        if self.with_payments:
            for table in self._tables():
                table.begin()
        ctx.undo.begin()

    def _tables(self) -> tuple[TrackedDict[Any, Any], ...]:
        return (*self.payments.in_flight(), self.payments.tickets)

    def reanchor(self) -> None:
        """What the event did so far is on disk (``Node.make_durable``, before a chain
        transaction): it is kept whatever happens next, as the transaction is. A failure
        after this point undoes only what follows it, so memory never goes back behind what
        the disk holds."""
        self.release()
        self._capture()

    def release(self) -> None:
        """The event succeeded: keep what it did."""
        self.ctx.undo.end()
        if self.with_payments:
            for table in self._tables():
                table.end()

    def rollback(self) -> None:
        """Put the node back as it was when the savepoint was taken."""
        ctx = self.ctx
        ctx.undo.undo()
        self._restore_records()
        del ctx.outbox[self.outbox :]
        pending = ctx.pending
        pending.snapshots.clear()
        pending.snapshots.update(self.snapshots)
        pending.records.clear()
        pending.records.update(self.records)
        pending.channels.clear()  # the same set object stays every channel's sink
        pending.channels.update(self.touched)
        for channel_id in list(ctx.channels)[self.channels :]:
            ctx.disown(channel_id)
        ctx.queued.clear()
        ctx.queued.update(self.queued)
        ctx.watcher.state = self.watcher
        ctx.watcher.undo(self.watcher_mark)
        self.opening.pending_opens = self.pending_opens
        self.opening.open_results = self.open_results
        self.quoting.pending = self.waiting_for_quotes
        channel, machine = self.channel, self.machine
        if channel is not None and machine is not None and channel.machine.snapshot() != machine:
            channel.machine.restore(machine)
        payments = self.payments
        if self.with_payments:
            for table in self._tables():
                table.rollback()
        del payments.ticket_outcomes[self.outcomes[0] :]
        del payments.finished_payments[self.outcomes[1] :]

    def _restore_records(self) -> None:
        """Our payments and invoices this event changed, back to their previous record."""
        store = self.ctx.store
        payments = self.payments
        for key, value in self.ctx.pending.records.items():
            old = self.records.get(key)
            if old is value:
                continue  # not changed by this event
            if old is None and store is not None:
                old = store.get_setting(key)
            if key.startswith(PAYMENT_PREFIX):
                payment = payments.payments.get(bytes.fromhex(key.removeprefix(PAYMENT_PREFIX)))
                if payment is not None:
                    before = decode_record(old, Payment) if old else None
                    payment.status = before.status if before else "pending"
                    payment.preimage = before.preimage if before else None
                    payment.reason = before.reason if before else ""
            elif key.startswith(INVOICE_PREFIX):
                payment_hash = bytes.fromhex(key.removeprefix(INVOICE_PREFIX))
                paid = decode_record(old, InvoiceRecord).paid if old else False
                if paid:
                    payments.paid_invoices.add(payment_hash)
                else:
                    payments.paid_invoices.discard(payment_hash)
