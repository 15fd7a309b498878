"""The node's persistent store: one interface, SQLite by default, PostgreSQL for failover.

The node writes a channel's snapshot *before* it sends any signature on that state (the
core's Persist-before-Send rule), so ``save_snapshot`` returns only once the write is
durable and atomic: after a crash the store holds either the old or the new snapshot,
never a mix. Everything else the node must not forget across restarts lives here too:
channels, the peer's revocations (to punish a revoked state), watcher duties, payments,
invoices and settings.

The API is synchronous on purpose: writes are small and a single writer serialises them;
the asyncio node calls it directly or from a worker thread.

The SQL both backends share is in :mod:`.sql`; the backends (:mod:`.sqlite`,
:mod:`.postgres`) add connection handling, durability settings and, for PostgreSQL, fencing.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Literal, Self

import msgspec

from chenilles_hub.core import ChannelSnapshot, encode_holdings, encode_snapshot
from chenilles_hub.core.model import Asset, Bytes32, ChannelParams, ChannelState

ChannelStatus = Literal["open", "closing", "closed"]
DutyStatus = Literal["pending", "done", "cancelled"]
Direction = Literal["in", "out"]
PaymentStatus = Literal["pending", "succeeded", "failed"]
InvoiceStatus = Literal["open", "paid", "cancelled"]


# --- errors ---------------------------------------------------------------------------------


class StoreError(Exception):
    """Base class of the store's own errors."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    """A uniqueness or reference constraint refused the write (duplicate, unknown channel)."""


class InvalidTransition(StoreError):
    """A status change the lifecycle forbids (e.g. failing a payment that succeeded)."""


class SchemaError(StoreError):
    """The database's schema history is not one this program knows (newer, or edited)."""


class StoreLocked(StoreError):
    """Another process (or store object) already writes this SQLite file."""


class NotLeader(StoreError):
    """PostgreSQL: this store does not hold a live leader lease, so it may not write."""


# --- records -----------------------------------------------------------------------------------


class ChannelRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a ``ChannelMachine`` is rebuilt from, next to its latest snapshot."""

    channel_id: Bytes32
    params: ChannelParams
    me: int
    initial: ChannelState
    status: ChannelStatus = "open"
    #: Where on the chain the channel lives, in the backend's words (``Deployments``: the
    #: contract or program its id commits to); "" where the backend does not say, or for
    #: channels stored before it was kept. Checked against the configuration at restore.
    deployment: str = ""


class StoreView(msgspec.Struct, frozen=True):
    """What a backup reads of the store, taken in one read transaction where the store
    can (``Store.consistent_view``): no checkpoint written meanwhile lands in half of it."""

    #: every channel, in channel id order (a store may decode each when it is looked at)
    channels: Sequence[ChannelRecord]
    #: the settings under each prefix asked for
    settings: dict[str, list[tuple[str, bytes]]]
    #: every snapshot as stored (``encode_snapshot``), by channel id
    snapshots: dict[bytes, bytes]


class _ChannelData(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A channel's row in the SQL stores (its ``deployment`` written only where known)."""

    params: ChannelParams
    initial: ChannelState
    deployment: str = ""


class Duty(msgspec.Struct, frozen=True):
    """A watcher's obligation with a deadline; ``payload`` is the watcher's own encoding."""

    id: int
    kind: str
    channel_id: bytes
    deadline: int
    status: DutyStatus
    payload: bytes
    key: str = ""


class Payment(msgspec.Struct, frozen=True):
    """One leg of a payment as this node sees it; a forwarded payment has an in and an out."""

    payment_hash: Bytes32
    direction: Direction
    amount: int
    asset: Asset
    created_at: int
    status: PaymentStatus = "pending"
    preimage: bytes | None = None
    failure: str = ""
    updated_at: int = 0


class Invoice(msgspec.Struct, frozen=True):
    payment_hash: Bytes32
    amount: int
    asset: Asset
    description: str
    created_at: int
    expires_at: int
    preimage: bytes | None = None
    status: InvoiceStatus = "open"
    paid_at: int | None = None


def snapshot_version(snapshot: ChannelSnapshot) -> int:
    """The newest fully signed version in a snapshot, -1 before the channel opened."""
    return snapshot.latest.state.version if snapshot.latest is not None else -1


# --- the interface ---------------------------------------------------------------------------


#: Checkpoint keys of virtual channels' records (their table, not ``settings``).
VIRTUAL_PREFIX = "virtual/"


class Store(abc.ABC):
    """Everything a node persists. Every write is one durable transaction."""

    # lifecycle
    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def schema_version(self) -> int: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # channels and their state
    @abc.abstractmethod
    def add_channel(self, record: ChannelRecord) -> None:
        """Register a channel (``Conflict`` if it exists); do it before its first Persist."""

    @abc.abstractmethod
    def get_channel(self, channel_id: bytes) -> ChannelRecord | None: ...

    @abc.abstractmethod
    def list_channels(self, status: ChannelStatus | None = None) -> list[ChannelRecord]: ...

    @abc.abstractmethod
    def set_channel_status(self, channel_id: bytes, status: ChannelStatus) -> None: ...

    def save_snapshot(self, channel_id: bytes, snapshot: ChannelSnapshot) -> None:
        """Replace the channel's snapshot atomically; durable when this returns."""
        if snapshot.channel_id != channel_id:
            raise ValueError("the snapshot belongs to another channel")
        self.save_snapshots([snapshot])

    @abc.abstractmethod
    def save_snapshots(self, snapshots: Sequence[ChannelSnapshot]) -> None:
        """Save several channels' snapshots in one transaction (group commit): all or none."""

    @abc.abstractmethod
    def load_snapshot(self, channel_id: bytes) -> ChannelSnapshot | None: ...

    def load_snapshots(self) -> dict[bytes, ChannelSnapshot]:
        """Every channel's snapshot by channel id (a restart reads them all at once)."""
        found = {}
        for record in self.list_channels():
            snapshot = self.load_snapshot(record.channel_id)
            if snapshot is not None:
                found[record.channel_id] = snapshot
        return found

    def consistent_view(self, prefixes: Sequence[str]) -> StoreView:
        """Every channel, the settings under ``prefixes`` and every encoded snapshot, as of
        one moment: a SQL store reads them in one transaction. This default reads them one
        after the other (a store whose writes may interleave must override it)."""
        return StoreView(
            self.list_channels(),
            self.settings_with_prefixes(prefixes),
            {cid: encode_snapshot(s) for cid, s in self.load_snapshots().items()},
        )

    def snapshot_index(self) -> dict[bytes, bool | None]:
        """Every channel that has a snapshot, and whether that snapshot holds withdrawn
        proposals (``None``: not known, a snapshot written before the store kept this). A
        restart builds its machines from this alone and reads a snapshot on its channel's
        first use (``load_encoded_snapshot``)."""
        return {cid: bool(s.withdrawn) for cid, s in self.load_snapshots().items()}

    def snapshot_holdings(self) -> dict[bytes, bytes]:
        """Each snapshot's ``encode_holdings`` (where it has one, of the snapshot's own
        version): what a restored machine answers of its balances before its snapshot is
        read (``ChannelMachine.holdings``)."""
        found = {}
        for cid, snapshot in self.load_snapshots().items():
            holdings = encode_holdings(snapshot)
            if holdings is not None:
                found[cid] = holdings
        return found

    def load_encoded_snapshot(self, channel_id: bytes) -> bytes | None:
        """The channel's snapshot as stored (``encode_snapshot``), or ``None``."""
        snapshot = self.load_snapshot(channel_id)
        return encode_snapshot(snapshot) if snapshot is not None else None

    @abc.abstractmethod
    def add_revocation(self, channel_id: bytes, version: int, revocation: bytes) -> None:
        """Keep the peer's revocation of ``version`` (idempotent: the first one is kept)."""

    @abc.abstractmethod
    def list_revocations(self, channel_id: bytes) -> list[tuple[int, bytes]]:
        """``(version, revocation)`` pairs, by version."""

    # watcher duties
    @abc.abstractmethod
    def add_duty(
        self, kind: str, channel_id: bytes, deadline: int, payload: bytes, *, key: str = ""
    ) -> int:
        """Record a duty and return its id; adding the same (channel, kind, key) again
        returns the existing id, so a watcher can re-derive duties after a restart."""

    @abc.abstractmethod
    def list_due(self, now: int, limit: int | None = None) -> list[Duty]:
        """Pending duties with ``deadline <= now``, earliest deadline first."""

    @abc.abstractmethod
    def list_duties(
        self, *, channel_id: bytes | None = None, status: DutyStatus | None = None
    ) -> list[Duty]: ...

    @abc.abstractmethod
    def complete_duty(self, duty_id: int, status: DutyStatus = "done") -> None:
        """Close a pending duty (``done`` or ``cancelled``); repeating the same is a no-op."""

    # payments and invoices
    @abc.abstractmethod
    def add_payment(self, payment: Payment) -> None: ...

    @abc.abstractmethod
    def get_payment(self, payment_hash: bytes, direction: Direction) -> Payment | None: ...

    @abc.abstractmethod
    def list_payments(
        self, *, status: PaymentStatus | None = None, direction: Direction | None = None
    ) -> list[Payment]: ...

    @abc.abstractmethod
    def settle_payment(
        self, payment_hash: bytes, direction: Direction, preimage: bytes, now: int
    ) -> Payment:
        """pending -> succeeded; the preimage must hash to the payment hash."""

    @abc.abstractmethod
    def fail_payment(
        self, payment_hash: bytes, direction: Direction, reason: str, now: int
    ) -> Payment:
        """pending -> failed. A succeeded payment can never fail (``InvalidTransition``)."""

    @abc.abstractmethod
    def add_invoice(self, invoice: Invoice) -> None: ...

    @abc.abstractmethod
    def get_invoice(self, payment_hash: bytes) -> Invoice | None: ...

    @abc.abstractmethod
    def list_invoices(self, status: InvoiceStatus | None = None) -> list[Invoice]: ...

    @abc.abstractmethod
    def mark_invoice_paid(self, payment_hash: bytes, now: int) -> Invoice: ...

    @abc.abstractmethod
    def cancel_invoice(self, payment_hash: bytes) -> Invoice: ...

    # settings
    @abc.abstractmethod
    def get_setting(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    def set_setting(self, key: str, value: bytes) -> None: ...

    @abc.abstractmethod
    def settings_with_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every setting whose key starts with ``prefix`` (records the node keeps per item)."""

    def settings_with_prefixes(self, prefixes: Sequence[str]) -> dict[str, list[tuple[str, bytes]]]:
        """``settings_with_prefix`` of each prefix, read together (a restart asks for the
        node's records of every kind at once); each list in no particular order."""
        return {prefix: self.settings_with_prefix(prefix) for prefix in prefixes}

    @abc.abstractmethod
    def virtual_records(self) -> list[bytes]:
        """Every virtual channel's record (written by checkpoints under ``VIRTUAL_PREFIX``)."""

    @abc.abstractmethod
    def save_checkpoint(
        self,
        snapshots: Sequence[ChannelSnapshot],
        settings: Mapping[str, bytes | None],
        *,
        durable: bool = True,
    ) -> None:
        """Snapshots and settings in one transaction: the node writes everything one event
        changed at once, before any message that event produced leaves (group commit).
        A setting keyed ``VIRTUAL_PREFIX + request id`` is a virtual channel's record and
        goes to its own table. A setting given ``None`` is deleted: records that expire
        (issued quotes) go, rather than leave a row behind for ever.

        ``durable=False`` (a *relaxed* write, for an event after which nothing leaves the
        process): as atomic and as ordered as any other, survives a crash of the process,
        but its sync to disk may wait for the next durable write or :meth:`sync` (a power
        loss may drop it, and then every later relaxed write with it, never an earlier
        one). A store may make every write durable. docs/security.md says when the node
        relaxes a write and why nothing is lost."""

    def sync(self) -> None:  # noqa: B027 (a no-op by default, not abstract)
        """Make every relaxed write durable (a no-op where every write is)."""
