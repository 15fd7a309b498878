"""Checkpoints and restore: what a node writes at the end of each event, and how it is
rebuilt from the store after a restart.

A checkpoint is one transaction with every channel snapshot the event changed, the
node-side record of every channel it touched, the payments and invoices it changed, the
HTLCs, forward links and preimages in flight it changed, and the watcher's state. It is written
before the event's outbox may leave, so after a crash the node resumes from a consistent
whole: never a snapshot its forwarding links or watcher duties do not know about.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ...backend import Account, ChainBackend, Deployments
from ...circuit.quote import IssuedQuote
from ...core import ChannelMachine, ChannelParams, ChannelSnapshot, Htlc, HtlcPolicy
from ...core.watcher import Watcher
from ..store.base import ChannelRecord, Store
from .context import NodeContext
from .journal import (
    CHANNEL_PREFIX,
    DUTY_PREFIX,
    GUARD_PREFIX,
    HTLC_PREFIX,
    INVOICE_PREFIX,
    LINK_PREFIX,
    NODE_STATE_KEY,
    PAYMENT_PREFIX,
    PREIMAGE_PREFIX,
    QUOTE_PREFIX,
    RECORD_PREFIX,
    ChannelMeta,
    InvoiceRecord,
    NodeStateV1,
    decode_duty,
    decode_node_state,
    decode_record,
    duty_key,
    encode_node_state,
    encode_record,
    htlc_channel,
    htlc_key,
    link_key,
    record_key,
    record_parts,
)
from .opening import min_lead, new_machine
from .payments import Payments
from .records import Channel, ForwardLink, Payment, Quarantined, unwritten_update
from .tracked import HtlcTable, TrackedDict

#: A configured chain as a restore uses it: its backend, the node's account on it, and
#: the backend's ``restore_record`` and ``deployment`` (``None`` where it has none).
_Chain = tuple[ChainBackend, Account, Any, Callable[[ChannelParams], str] | None]

log = logging.getLogger("chenilles.node")

#: The records a restart reads, in one pass over the store's settings.
_RESTORED_PREFIXES = (
    CHANNEL_PREFIX,
    RECORD_PREFIX,
    INVOICE_PREFIX,
    PAYMENT_PREFIX,
    GUARD_PREFIX,
    QUOTE_PREFIX,
    HTLC_PREFIX,
    LINK_PREFIX,
    PREIMAGE_PREFIX,
    DUTY_PREFIX,
)

Checkpoint = tuple[list[ChannelSnapshot], dict[str, bytes | None]]


class Persistence:
    def __init__(self, ctx: NodeContext, payments: Payments) -> None:
        self.ctx = ctx
        self.payments = payments
        #: The node state last handed out to be written (unchanged state is not rewritten).
        self._written_state = b""
        #: HTLC policies of restored machines (:meth:`_policy`).
        self._policies: dict[tuple[str, int], HtlcPolicy] = {}
        #: Whether the events of the checkpoint last taken were all quiet (``PendingWrites``).
        self.quiet = False
        #: A relaxed write is not yet known to be on disk (:meth:`checkpoint`).
        self.unsynced = False
        #: Snapshots handed out to be written since the node started: changes whenever a
        #: channel signs a state, without reading any machine (a backup's ``interval``
        #: asks every tick; summing 100,000 channels' versions read every snapshot).
        self.snapshots_taken = 0
        #: A checkpoint whose write failed, carried into the next one (:meth:`checkpoint`).
        self._unwritten: Checkpoint | None = None

    def checkpoint(self, *, leaving: bool = True) -> None:
        """Write every snapshot this event changed and the node's own state in one
        transaction. Drivers call it after each event and before releasing the outbox.

        ``leaving``: something goes out after this checkpoint (a message, an answer). If
        not, and the events were quiet, the write is relaxed (``Store.save_checkpoint``);
        any later checkpoint that is not is durable, or syncs the store if it has nothing
        to write, so nothing leaves before every write it may depend on is on disk
        (docs/security.md, "Relaxed writes")."""
        carrying = self._unwritten is not None  # what it holds may be what left already
        write = self.take_checkpoint()
        store = self.ctx.store
        if store is None:
            return
        relaxed = self.quiet and not leaving and not carrying
        if write is not None:
            try:
                store.save_checkpoint(*write, durable=not relaxed)
            except BaseException:
                self._carry(write)
                raise
            self.unsynced = relaxed  # a durable write syncs every write before it
        elif self.unsynced and not relaxed:
            # Any other event (a tick may send a chain transaction, a call answers) first
            # puts the relaxed writes before it on disk, even with nothing of its own.
            store.sync()
            self.unsynced = False

    def take_checkpoint(self) -> Checkpoint | None:
        """What :meth:`checkpoint` would write (snapshots, records), or ``None`` if nothing
        changed, handed to the caller to write: a server writes it on another thread while
        the node goes on with the next events, and releases this event's outbox only once
        it is written. The node counts it as written from now on: if the write fails the
        process must stop (memory would be ahead of disk)."""
        pending = self.ctx.pending
        self.ctx.channel_totals.changed(pending.snapshots)
        self.ctx.channel_totals.changed(pending.channels)
        self.ctx.own_edges.changed(pending.snapshots)
        self.ctx.own_edges.changed(pending.channels)
        self.ctx.payment_totals.changed(pending.records)
        self.quiet = pending.events > 0 and pending.quiet == pending.events
        pending.events = pending.quiet = 0
        quotes = self.payments.quotes.take_changes()
        watched = self.ctx.watcher.take_changes()
        if self.ctx.store is None:
            self._in_flight_changes(encode=False)
            pending.snapshots.clear()
            pending.records.clear()
            pending.channels.clear()
            return None
        snapshots = list(pending.snapshots.values())
        pending.snapshots.clear()
        self.snapshots_taken += len(snapshots)
        records = dict(pending.records)
        pending.records.clear()
        touched = set(pending.channels)  # the same set object stays every channel's sink
        pending.channels.clear()
        try:
            for quote_id, quote in quotes.items():
                records[QUOTE_PREFIX + quote_id.hex()] = encode_record(quote) if quote else None
            for channel_id, guarded in watched.guards.items():
                records[GUARD_PREFIX + channel_id.hex()] = b"1" if guarded else None
            for (channel_id, htlc_id), duty in watched.duties.items():
                value = None if duty is None else encode_record(duty)
                records[duty_key(channel_id, htlc_id)] = value
            records.update(self._in_flight_changes())
            for channel_id in touched:
                channel = self.ctx.channels.get(channel_id)
                if channel is not None:
                    records[CHANNEL_PREFIX + channel.channel_id.hex()] = _channel_meta(channel)
            # The backend's record changes with what the channel signs, verifies, revokes
            # or registers: always in an event that persists its snapshot or touches the
            # channel.
            for channel_id in touched.union(s.channel_id for s in snapshots):
                channel = self.ctx.channels.get(channel_id)
                if channel is not None:
                    _export_record(channel, records)
            state = encode_node_state(self._state())
        except BaseException:
            # What was taken (changes are handed out once) is carried into the next
            # checkpoint of a driver that goes on, and every channel it concerns is asked
            # again for its meta and its backend's record (a carried snapshot without the
            # record of its version would leave, on Bitcoin, no penalty for it).
            pending.channels.update(touched.union(s.channel_id for s in snapshots))
            self._carry((snapshots, records))
            raise
        if state != self._written_state:
            records[NODE_STATE_KEY] = state
            self._written_state = state
        if self._unwritten is not None:
            snapshots, records = _carried(self._unwritten, snapshots, records)
            self._unwritten = None
        if not snapshots and not records:
            return None  # nothing changed (a read): no transaction, no fsync
        return snapshots, records

    def _carry(self, write: Checkpoint) -> None:
        """A checkpoint taken but not written (its write, or its making, failed): a driver
        that goes on (the server stops) writes it with its next checkpoint, deletions
        included, and that write is durable. The node's state is written again too."""
        if self._unwritten is not None:  # not merged yet: the failure came before
            write = _carried(self._unwritten, *write)
        self._unwritten = write
        self._written_state = b""

    def _in_flight_changes(self, *, encode: bool = True) -> dict[str, bytes | None]:
        """The records of the HTLCs, links and preimages in flight written since the last
        checkpoint: their value now, or ``None`` (delete) for those gone. Taken either way
        (``encode=False``: a node without a store only forgets them)."""
        records: dict[str, bytes | None] = {}
        htlcs, links, preimages = self.payments.in_flight()
        if not encode:
            htlcs.take_changed(), links.take_changed(), preimages.take_changed()
            return records
        for key in htlcs.take_changed():
            htlc = htlcs.get(key)
            records[htlc_key(*key)] = None if htlc is None else encode_record(htlc)
        for key in links.take_changed():
            link = links.get(key)
            records[link_key(*key)] = None if link is None else encode_record(link)
        for payment_hash in preimages.take_changed():
            records[PREIMAGE_PREFIX + payment_hash.hex()] = preimages.get(payment_hash)
        return records

    def _state(self) -> NodeStateV1:
        """The watcher's state (everything else is a record of its own, written only when
        it changes)."""
        return NodeStateV1(watcher=self.ctx.watcher.state)

    def restore(self) -> None:
        """Rebuild channels, payments, links and watcher duties from the store (restart)."""
        store = self.ctx.store
        if store is None:
            return
        raw = store.get_setting(NODE_STATE_KEY)
        state = decode_node_state(raw) if raw is not None else NodeStateV1()
        # Several objects per channel and none of them garbage: the collector would walk
        # everything built so far again and again (half the time of restoring 100,000
        # channels). The channels live as long as the node, so they are then moved out of
        # the collector's generations (``gc.freeze``): no later collection walks them
        # (freed by reference counting as usual when a channel goes).
        collecting = gc.isenabled()
        gc.disable()
        try:
            # One pass over the records (most of them are channels', payments', invoices').
            records = store.settings_with_prefixes(_RESTORED_PREFIXES)
            in_dispute = frozenset(cid for cid, _ in state.watcher.disputes)
            self._restore_channels(
                store, records[CHANNEL_PREFIX], records[RECORD_PREFIX], in_dispute
            )
        finally:
            gc.freeze()
            if collecting:
                gc.enable()
        payments = self.payments
        # In key order, as before one scan read them (what lists them keeps that order).
        for _, value in sorted(records[INVOICE_PREFIX]):
            stored = decode_record(value, InvoiceRecord)
            payments.invoices[stored.invoice.payment_hash] = (stored.invoice, stored.preimage)
            if stored.paid:
                payments.paid_invoices.add(stored.invoice.payment_hash)
            if stored.cancelled:
                payments.cancelled_invoices.add(stored.invoice.payment_hash)
        for _, value in sorted(records[PAYMENT_PREFIX]):
            payment = decode_record(value, Payment)
            payments.payments[payment.payment_hash] = payment
        self._restore_in_flight(state, records)
        guarded = [
            bytes.fromhex(key.removeprefix(GUARD_PREFIX))
            for key, value in records[GUARD_PREFIX]
            if value
        ]
        duties = [decode_duty(value) for _, value in records[DUTY_PREFIX]]
        # A store from before guards and HTLC duties were records keeps them among the
        # watcher's duties: the watcher takes them out, and the next checkpoint writes them
        # as records (with the state without them).
        self.ctx.watcher = Watcher(state.watcher, guarded, duties)
        quotes = [decode_record(v, IssuedQuote) for _, v in records[QUOTE_PREFIX]]
        # A store from before quotes were records keeps them in the node's state: written
        # as records with the next checkpoint (which also rewrites the state without them).
        payments.quotes.restore([*state.quotes, *quotes], changed=bool(state.quotes))
        # A proposal of ours in flight was persisted; if the peer never answered, it is
        # retransmitted by reestablish. Updates still queued are proposed as usual.

    def _restore_in_flight(
        self, state: NodeStateV1, records: Mapping[str, list[tuple[str, bytes]]]
    ) -> None:
        """HTLCs, links and preimages in flight from their records and, from a store written
        before they were records, from the node's state: those are marked changed, so the
        next checkpoint writes them as records together with the state without them."""
        payments = self.payments
        htlcs = [(htlc_channel(key), decode_record(v, Htlc)) for key, v in records[HTLC_PREFIX]]
        links = [decode_record(value, ForwardLink) for _, value in records[LINK_PREFIX]]
        preimages = [
            (bytes.fromhex(key.removeprefix(PREIMAGE_PREFIX)), value)
            for key, value in records[PREIMAGE_PREFIX]
        ]
        payments.htlcs = HtlcTable(((cid, htlc.id), htlc) for cid, htlc in (*state.htlcs, *htlcs))
        payments.links_by_out = TrackedDict(
            ((link.out_channel, link.out_htlc), link) for link in (*state.links, *links)
        )
        payments.preimages = TrackedDict((*state.preimages, *preimages))
        if state.htlcs or state.links or state.preimages:
            for table in payments.in_flight():
                table.mark_all_changed()

    def _restore_channels(
        self,
        store: Store,
        channel_records: list[tuple[str, bytes]],
        backend_records: list[tuple[str, bytes]],
        in_dispute: frozenset[bytes],
    ) -> None:
        """``in_dispute``: the channels the watcher still holds a dispute of (a closed one
        among them waits for its conclusion to be final)."""
        self._policies.clear()  # the backends' time models of now
        metas = {
            meta.channel_id: meta
            for _, value in channel_records
            for meta in (decode_record(value, ChannelMeta),)
        }
        parts = record_parts(backend_records)
        # Which channels have a snapshot, not the snapshots: each is read from the store,
        # checked and decoded on its channel's first use.
        snapshots, read = store.snapshot_index(), store.load_encoded_snapshot
        holdings = _StoredHoldings(store, self.ctx.channels)
        chains: dict[str, _Chain] = {
            chain: (
                backend,
                self.ctx.accounts[chain],
                getattr(backend, "restore_record", None),
                backend.deployment if isinstance(backend, Deployments) else None,
            )
            for chain, backend in self.ctx.backends.items()
        }
        for record in store.list_channels():
            meta = metas.get(record.channel_id)
            if meta is None:
                continue  # created but never checkpointed: nothing was signed or sent
            stored = parts.get(record.channel_id.hex()) if parts else None
            try:
                self._restore_channel(
                    record, meta, snapshots, holdings, read, stored, chains, in_dispute
                )
            except Exception as error:  # one bad channel must never stop the node
                reason = _reason(error)
                peer = record.params.participants[1 - record.me].node_id
                self.ctx.quarantined[record.channel_id] = Quarantined(
                    record.channel_id, record.params.chain, peer, meta.status, reason
                )
                log.error(
                    "%s: channel %s quarantined (not restored, left as it is in the store): %s",
                    self.ctx.name,
                    record.channel_id.hex(),
                    reason,
                )

    def _policy(self, backend: ChainBackend, params: ChannelParams) -> HtlcPolicy:
        """The HTLC policy of ``new_machine``, one per chain and challenge duration (shared:
        it is immutable), rather than one per channel and a backend call each."""
        key = (params.chain, params.challenge_duration)
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = HtlcPolicy(
                min_lead=min_lead(backend, params), ids_by_payer=True
            )
        return policy

    def _restore_channel(
        self,
        record: ChannelRecord,
        meta: ChannelMeta,
        snapshots: dict[bytes, bool | None],
        holdings: _StoredHoldings,
        read: Callable[[bytes], bytes | None],
        stored: dict[str, bytes] | None,
        chains: dict[str, _Chain],
        in_dispute: frozenset[bytes],
    ) -> None:
        """Rebuild one channel; raises (and changes nothing) if it cannot be. ``snapshots``
        and ``read``: the store's ``snapshot_index`` and ``load_encoded_snapshot``;
        ``holdings``: its ``snapshot_holdings``, read when first asked;
        ``chains``: each configured chain's backend, account, ``restore_record`` and
        ``deployment`` (``None`` where the backend has none); ``in_dispute``: the channels
        the watcher holds a dispute of."""
        chain = record.params.chain
        if chain in self.ctx.unavailable:
            raise LookupError(
                f"its chain {chain} is unavailable: its backend could not resume the event "
                "feed where the node stopped (see unavailable_chains in `chenilles node info`)"
            )
        if chain not in chains:
            configured = ", ".join(sorted(self.ctx.backends)) or "none"
            raise LookupError(f"its chain {chain} is not configured (configured: {configured})")
        backend, account, restore_record, deployment = chains[chain]
        if deployment is not None:
            _check_deployment(record, meta, backend, deployment, in_dispute)
        if stored and restore_record is not None:  # before the authority is built
            restore_record(record.params, record.me, account, stored)
        channel_id = record.channel_id
        if channel_id not in snapshots:  # opened, nothing signed yet
            machine = new_machine(
                backend,
                account,
                record.params,
                record.channel_id,
                record.me,
                record.initial,
                self.ctx.apps,
            )
        else:  # read, checked and decoded on first use
            machine = ChannelMachine.restored(
                record.params,
                channel_id,
                record.me,
                backend.authority(record.params, account, record.me),
                record.initial,
                functools.partial(read, channel_id),
                withdrawn=snapshots[channel_id],
                holdings=functools.partial(holdings.take, channel_id),
                policy=self._policy(backend, record.params),
                apps=self.ctx.apps,
                rules=backend.channel_rules(record.params),
            )
        # Adopted after its fields are set: just read, nothing to write back.
        self.ctx.adopt(
            Channel.restored(
                params=record.params,
                channel_id=record.channel_id,
                me=record.me,
                machine=machine,
                backend=backend,
                account=account,
                peer=record.params.participants[1 - record.me].node_id,
                deposits=dict(meta.deposits),
                queue=list(meta.queue),
                next_htlc_seq=meta.next_htlc_seq,
                funded_by_me=meta.funded_by_me,
                funded_by_peer=meta.funded_by_peer,
                status=meta.status,
                concluded=meta.concluded,
                withdrawn=frozenset(meta.withdrawn),
                last_error=meta.last_error,
                last_error_at=meta.last_error_at,
                receipts=list(meta.receipts),
            )
        )
        if any(unwritten_update(u) for u in meta.queue):
            # A record written before queued transfers were left out of it: it is written
            # again (without them) at the next checkpoint, or each restart would find them
            # there and pay them again, however often they were paid since.
            self.ctx.pending.channels.add(record.channel_id)


class _StoredHoldings:
    """Every snapshot's holdings (``Store.snapshot_holdings``), read in one scan the first
    time a machine not used since the restart is asked for them (the announcement of our
    capacities, a /metrics scrape), not during the restore (the column sits behind each
    row's 4 KB snapshot: 1-2 s for 100,000 channels on SQLite). The store's row of a
    machine not used yet is still the one of the restart (a machine writes its snapshot
    only once used), so a late read is as good as an early one. Only those of channels
    still waiting for them are kept, each handed out once."""

    def __init__(self, store: Store, channels: Mapping[bytes, Channel]) -> None:
        self._store = store
        self._channels = channels
        self._found: dict[bytes, bytes] | None = None

    def take(self, channel_id: bytes) -> bytes | None:
        if self._found is None:
            self._found = {
                cid: holdings
                for cid, holdings in self._store.snapshot_holdings().items()
                if (channel := self._channels.get(cid)) is not None
                and channel.status != "closed"
                and not channel.machine.loaded
            }
        return self._found.pop(channel_id, None)


def _carried(
    unwritten: Checkpoint, snapshots: list[ChannelSnapshot], records: dict[str, bytes | None]
) -> Checkpoint:
    """A failed checkpoint's writes with this one's over them: what is newer wins, and
    what nothing changed since (a deletion too) is written as it was taken."""
    old_snapshots, old_records = unwritten
    by_channel = {s.channel_id: s for s in old_snapshots}
    by_channel.update((s.channel_id, s) for s in snapshots)
    return list(by_channel.values()), {**old_records, **records}


def _channel_meta(channel: Channel) -> bytes:
    return encode_record(
        ChannelMeta(
            channel_id=channel.channel_id,
            deposits=tuple(channel.deposits.items()),
            queue=tuple(u for u in channel.queue if not unwritten_update(u)),
            next_htlc_seq=channel.next_htlc_seq,
            funded_by_me=channel.funded_by_me,
            funded_by_peer=channel.funded_by_peer,
            status=channel.status,
            concluded=channel.concluded,
            withdrawn=tuple(sorted(channel.withdrawn)),
            last_error=channel.last_error,
            last_error_at=channel.last_error_at,
            receipts=tuple(channel.receipts),
        )
    )


def _export_record(channel: Channel, records: dict[str, bytes | None]) -> None:
    """Add what changed in the backend's record of ``channel`` (``ChannelRecords``, an
    optional backend role) to the checkpoint being taken."""
    export = getattr(channel.backend, "export_record", None)
    if export is None:
        return
    changed = export(channel.params, channel.me, channel.account)
    for part, data in (changed or {}).items():
        records[record_key(channel.channel_id, part)] = data


def _check_deployment(
    record: ChannelRecord,
    meta: ChannelMeta,
    backend: ChainBackend,
    deployment: Callable[[ChannelParams], str],
    in_dispute: frozenset[bytes],
) -> None:
    """Raise ``LookupError`` (the channel is quarantined) if the configuration names
    another contract than the one the channel was opened at: restored, its disputes would
    be watched at, and sent to, a contract that does not hold it. A closed channel whose
    conclusion is final has nothing left there (an operator who closed every channel before
    moving to a new deployment is not shown them all as quarantined); one closed before
    its conclusion is final is still watched there, since a reorg may undo it."""
    if meta.status == "closed" and record.channel_id not in in_dispute:
        return
    configured = deployment(record.params)
    if record.deployment:
        opened_at = record.deployment
    elif backend.channel_id(record.params) != record.channel_id:
        opened_at = "another"  # stored before deployments were kept: its id tells
    else:
        return
    if opened_at != configured:
        raise LookupError(
            f"opened at {opened_at}, configured now: {configured}. Put back "
            "the option it was opened with (adjudicator, program_id, apps), restart"
        )


def _reason(error: BaseException) -> str:
    """One line for the operator: the error's type and message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__
