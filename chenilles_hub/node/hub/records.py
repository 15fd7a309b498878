"""What a node keeps per channel and per payment, beside the core's channel machine."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from chenilles_hub.backend import Account, ChainBackend, TxReceipt
from chenilles_hub.core import Asset, ChannelMachine, ChannelParams, Htlc, Transfer, Update


@dataclass
class Channel:
    params: ChannelParams
    channel_id: bytes
    me: int
    machine: ChannelMachine
    backend: ChainBackend
    account: Account
    peer: bytes
    deposits: dict[Asset, tuple[int, int]]
    #: Updates waiting for the machine to become idle; proposed together as one batch.
    #: Persisted without its direct transfers (``unwritten_update``).
    queue: list[Update] = field(default_factory=list)
    next_htlc_seq: int = 0
    funded_by_me: bool = False
    funded_by_peer: bool = False
    status: str = "opening"  # opening, active, closing, disputed, closed, abandoned
    #: The ledger concluded the channel (cooperatively or after a dispute): its payouts are
    #: ours to collect, and the channel is ``closed`` once every asset's has arrived.
    concluded: bool = False
    #: Assets whose payout reached our account.
    withdrawn: frozenset[Asset] = frozenset()
    #: What an opening channel waits for, in words for the operator ("waiting for the
    #: peer's deposit: 0 of 1000 confirmed ..."); empty once active. Recomputed from the
    #: chain, so not persisted.
    waiting: str = ""
    #: What each transaction this node sent for the channel cost (the operator's books of
    #: fees and rent). Persisted: a restart (a crash) must not lose what was paid.
    receipts: list[TxReceipt] = field(default_factory=list)
    #: The last thing that went wrong with this channel, in words for the operator (a
    #: deposit the chain refused, a peer's message that failed, an on-chain action that
    #: will be tried again), and when (unix seconds, the node's clock); kept until the
    #: next one. Persisted: a restarted node still says why a channel is stuck.
    last_error: str = ""
    last_error_at: int = 0
    #: The node's set of channels to write at the next checkpoint (set by the node).
    dirty_sink: set[bytes] | None = field(default=None, repr=False, compare=False)
    #: The node's channels with queued updates, in the order they got them (set by the
    #: node): ``flush`` visits these, not every channel, after each event.
    queued_sink: dict[bytes, None] | None = field(default=None, repr=False, compare=False)
    #: The node's channels whose payout may wait to be collected (set by the node): the
    #: withdrawal retry visits these, not every channel, at each tick.
    collect_sink: dict[bytes, None] | None = field(default=None, repr=False, compare=False)
    #: The node's undo log (set by the node): while a peer's message is handled, the old
    #: value of every persisted field that changes is logged, so a failure half-way can put
    #: every channel back as it was.
    undo_log: UndoLog | None = field(default=None, repr=False, compare=False)

    def add_receipt(self, receipt: TxReceipt) -> None:
        """Book what a transaction cost (a new list: the change hook sees it)."""
        self.receipts = [*self.receipts, receipt]

    def __setattr__(self, name: str, value: object) -> None:
        # Any change to what the node persists per channel queues the channel for the next
        # checkpoint (lists are replaced, never mutated in place, so this sees every change),
        # so a checkpoint visits only the channels an event touched, not all of them.
        # A receipt is not undone with a failed event: its transaction was sent all the same.
        if name in _PERSISTED and name != "receipts":
            log = self.__dict__.get("undo_log")
            if log is not None and log.active:
                log.entries.append((self, name, self.__dict__[name]))
        # A queue of direct transfers alone, before and after, is written the same (empty).
        same_on_disk = name == "queue" and _unwritten(self.__dict__.get(name)) and _unwritten(value)
        object.__setattr__(self, name, value)
        if name in _PERSISTED:
            sink = getattr(self, "dirty_sink", None)
            if sink is not None and not same_on_disk:
                sink.add(self.channel_id)
            # New updates, or a new status (a parked queue may move now, or must be
            # failed: the channel went on-chain): ``flush`` looks at the channel.
            if (name == "queue" and value) or name == "status":
                queued = getattr(self, "queued_sink", None)
                if queued is not None:
                    queued[self.channel_id] = None
            if name in ("status", "concluded") and self.collecting:
                collect = getattr(self, "collect_sink", None)
                if collect is not None:
                    collect[self.channel_id] = None

    @classmethod
    def restored(cls, **values: Any) -> Channel:
        """A channel rebuilt from the store, its fields set without the change hook of
        ``__setattr__``: what was read is what was written, so there is nothing to log or
        queue (restoring 100,000 channels spent a tenth of its time in the hook)."""
        if not (values.keys() <= _FIELDS and values.keys() >= _REQUIRED):
            unknown, missing = sorted(values.keys() - _FIELDS), sorted(_REQUIRED - values.keys())
            raise TypeError(f"Channel fields unknown {unknown}, missing {missing}")
        channel = cls.__new__(cls)
        fields = channel.__dict__
        fields.update(_DEFAULTS)
        for name, factory in _FACTORIES:
            fields[name] = factory()
        fields.update(values)
        return channel

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def collecting(self) -> bool:
        """Concluded on-chain and not closed yet: our payout may wait to be collected."""
        return self.status == "closing" and bool(self.__dict__.get("concluded"))

    def failed(self, text: str, now: int) -> None:
        """Remember ``text`` as the channel's last error (shown in ``channel show``)."""
        self.last_error = text[:500]
        self.last_error_at = now

    def allocate_htlc_id(self) -> int:
        """Participant p of n uses the ids equal to p modulo n (the core refuses any other,
        ``ForeignHtlcId``): concurrent offers never clash. An id the channel holds locked
        is skipped: a peer could take one of ours before that rule (a store from then)."""
        parties, state = len(self.params.participants), self.machine.state
        while True:
            htlc_id = parties * self.next_htlc_seq + self.me
            self.next_htlc_seq += 1
            if state.htlc(htlc_id) is None:
                return htlc_id

    def offer_htlc(self, asset: Asset, amount: int, payment_hash: bytes, expiry: int) -> Htlc:
        """A new HTLC we pay into, with a fresh id and the chain's image of its expiry."""
        return Htlc(
            id=self.allocate_htlc_id(),
            payer=self.me,
            asset=asset,
            amount=amount,
            payment_hash=payment_hash,
            expiry=expiry,
            native_expiry=self.backend.native_expiry(expiry),
        )


def unwritten_update(update: Update) -> bool:
    """An update a channel's record leaves out of its queue: a direct transfer. It is not
    money the node owes anyone until a signed state carries it, and its caller is answered
    only once one does; a stop drops it with the unanswered request, like a request that
    never arrived. Writing it would cost every transfer a second write of the channel's
    record (queued, then proposed), and a restarted node would send it without anyone
    waiting for it (a caller that saw its request fail and sent it again paid twice).

    One case is still open after a stop, as for any transfer whose caller got no answer:
    a transfer queued again because the peer's crossing proposal displaced ours (the peer
    holds our signature on the displaced state until a later version is irrevocable). The
    node pays it at most once whatever the chain ends with; the caller must look at the
    channel before sending it again."""
    return isinstance(update, Transfer)


def _unwritten(queue: object) -> bool:
    """Whether every update of ``queue`` is left out of the channel's record: a change
    between two such queues changes nothing written."""
    return isinstance(queue, list) and all(unwritten_update(u) for u in queue)


_FIELDS = frozenset(f.name for f in dataclasses.fields(Channel))
_REQUIRED = frozenset(
    f.name
    for f in dataclasses.fields(Channel)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)
_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(Channel) if f.default is not dataclasses.MISSING
}
_FACTORIES = tuple(
    (f.name, f.default_factory)
    for f in dataclasses.fields(Channel)
    if f.default_factory is not dataclasses.MISSING
)

_PERSISTED = frozenset(
    {
        "queue",
        "next_htlc_seq",
        "funded_by_me",
        "funded_by_peer",
        "status",
        "concluded",
        "withdrawn",
        "last_error",
        "last_error_at",
        "receipts",
    }
)


@dataclass(frozen=True)
class Quarantined:
    """A channel the store holds but this node could not restore at start (its chain is no
    longer configured, the account key does not match, its record does not decode). It is
    set aside, untouched in the store, and shown with ``reason``; the node starts without
    it, and restores it on a later start once the cause is fixed."""

    channel_id: bytes
    chain: str
    peer: bytes
    #: the status it had when it was last written
    status: str
    reason: str


@dataclass
class UndoLog:
    """Old values of channel fields changed since :meth:`begin` (one shared log per node,
    active only while an event that may have to be undone is handled)."""

    active: bool = False
    entries: list[tuple[Channel, str, object]] = field(default_factory=list)

    def begin(self) -> None:
        self.entries.clear()
        self.active = True

    def end(self) -> None:
        self.active = False
        self.entries.clear()

    def undo(self) -> None:
        """Put every logged field back, newest change first."""
        self.active = False
        for channel, name, old in reversed(self.entries):
            object.__setattr__(channel, name, old)
        self.entries.clear()


@dataclass
class Payment:
    """An outgoing payment this node started."""

    payment_hash: bytes
    amount: int
    asset: Asset
    sent: int
    sent_asset: Asset
    status: str = "pending"  # pending, succeeded, failed
    preimage: bytes | None = None
    reason: str = ""
    #: When the payer gives up (node clock; 0: never): an HTLC of it still waiting for a
    #: slot or an offline peer then is dropped and the payment fails (``pay`` ``timeout``).
    deadline: int = 0
    #: When it started and finished (node clock), for the history.
    created_at: int = 0
    finished_at: int = 0
    #: The route as planned (``route_view`` hops) and what each forwarder charges.
    route: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True)
class ForwardLink:
    """An incoming HTLC and the outgoing HTLC it became: settle and fail flow back along it."""

    in_channel: bytes
    in_htlc: int
    out_channel: bytes
    out_htlc: int
    #: The payer's deadline for offering the outgoing HTLC (0: none): still queued then,
    #: it is dropped and the incoming HTLC failed back.
    deadline: int = 0
    #: What we earn if it settles, in the outgoing asset (same asset: in - out; a
    #: conversion: our quote's fee).
    fee: int = 0
    started: int = 0
