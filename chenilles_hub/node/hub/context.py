"""What every part of a node shares: who it is, its chains, its channels, and what it must
write and send at the end of the current event.

The collaborators of :class:`~.node.Node` (opening, proposals, payments, chain actions,
persistence) each own their own state and reach the rest of the node only through this
context and the narrow callbacks they are given, so each can be read on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ...backend import Account, ChainBackend
from ...core import App, ChannelSnapshot
from ...core.watcher import Watcher
from ...identity import NodeIdentity
from ..net import wire
from ..store.base import Store
from .channel_totals import ChannelTotals
from .own_edges import OwnEdges
from .payment_totals import PaymentTotals
from .records import Channel, Quarantined, UndoLog

log = logging.getLogger("chenilles.node")
#: Lines of the journal kept in memory (``NodeContext.journal``).
MAX_JOURNAL = 10_000


@dataclass
class PendingWrites:
    """What the current event changed, written by the next checkpoint before its outbox
    may leave (persist before send, extended to everything the node remembers)."""

    #: Channel snapshots (the core's ``Persist`` effects), newest per channel.
    snapshots: dict[bytes, ChannelSnapshot] = field(default_factory=dict)
    #: Records by store key (payments, invoices), newest value per key; ``None`` deletes
    #: the record (an issued quote once expired).
    records: dict[str, bytes | None] = field(default_factory=dict)
    #: Channels whose node-side record (queue, status, funding flags) changed. The same set
    #: object stays every channel's ``dirty_sink``: it is cleared, never replaced.
    channels: set[bytes] = field(default_factory=set)
    #: Events since the last checkpoint, and how many of them were quiet: a peer's Ack of
    #: a version after the first, taken (its effects send nothing but through the outbox,
    #: and touch no chain). Only a checkpoint of quiet events alone may be relaxed.
    events: int = 0
    quiet: int = 0


@dataclass
class NodeContext:
    identity: NodeIdentity
    backends: Mapping[str, ChainBackend]
    accounts: Mapping[str, Account]
    clock: Callable[[], int]
    name: str
    store: Store | None
    #: Confirmations a deposit needs per chain before a channel counts it (chains not
    #: named here: the backend's finality depth).
    confirmations: Mapping[str, int] = field(default_factory=dict)
    #: Configured chains the node could not use, chain id -> why (``build_chains``).
    unavailable: Mapping[str, str] = field(default_factory=dict)
    channels: dict[bytes, Channel] = field(default_factory=dict)
    #: The ids of ``channels`` by their other member, in ``channels``' order: a peer's
    #: channels without a walk over every channel (a reconnection), and a channel's peer
    #: told from a stranger by the server's event loop (one dict lookup) at connection.
    by_peer: dict[bytes, dict[bytes, None]] = field(default_factory=dict)
    #: Each active channel's router edge as last built (``Node.own_edges``): built again
    #: only for channels that changed since.
    own_edges: OwnEdges = field(default_factory=OwnEdges)
    #: What /metrics reports of the channels, kept from the checkpoints.
    channel_totals: ChannelTotals = field(default_factory=ChannelTotals)
    #: What /metrics reports of our payments and invoices, kept from the checkpoints.
    payment_totals: PaymentTotals = field(default_factory=PaymentTotals)
    #: Channels the store holds that could not be restored at start (never acted on).
    quarantined: dict[bytes, Quarantined] = field(default_factory=dict)
    watcher: Watcher = field(default_factory=Watcher)
    #: (peer, frame) to send once the event's checkpoint is written.
    outbox: list[tuple[bytes, bytes]] = field(default_factory=list)
    pending: PendingWrites = field(default_factory=PendingWrites)
    #: Channels whose queue may hold updates (``Channel.queued_sink``), oldest first.
    queued: dict[bytes, None] = field(default_factory=dict)
    #: Channels with queued updates that cannot move until their channel does (their
    #: machine waits for the peer, the peer is offline, every offer waits for a slot, the
    #: channel is not active yet): ``flush`` no longer visits them after every event. Any
    #: event of the channel (``Node._run``), a change of its status and the peer's
    #: reconnection put them back in ``queued``; only ``flush`` takes them out of here.
    parked: dict[bytes, None] = field(default_factory=dict)
    #: App channels (their params name an app; params never change): the apps' tick walks
    #: these, not every channel (a tick of a hub with 100,000 channels walked them twice,
    #: 25 ms in all, while payments waited behind it).
    app_channels: dict[bytes, None] = field(default_factory=dict)
    #: Channels whose payout may still be uncollected: ``closing`` and concluded (added
    #: when restored so, and by ``Channel.collect_sink`` when they become so). A superset:
    #: only the withdrawal retry drops one, when it is not so any more. That retry runs in
    #: a tick, never inside a peer's message whose failure is undone (the undo bypasses
    #: the hook), so an undo can leave an extra entry but never take a needed one away.
    collecting: dict[bytes, None] = field(default_factory=dict)
    #: What the node did, in words (tests and the demo read it; the log has it too): the
    #: last ``MAX_JOURNAL`` lines at least, at most twice as many.
    journal: list[str] = field(default_factory=list)
    #: Refused peer messages (bounded by the server).
    errors: list[Exception] = field(default_factory=list)
    #: Event counters since this process started (exported as metrics by the server).
    counters: dict[str, int] = field(default_factory=dict)
    #: The off-chain rules of the apps this node runs, by app id (given to every machine).
    apps: dict[str, App] = field(default_factory=dict)
    #: Old values of channel fields an event changed, while it may still be undone.
    undo: UndoLog = field(default_factory=UndoLog)
    #: Peers whose link is down: nothing is proposed to them until they reconnect (updates
    #: wait in their channels' queues, under the bounds of ``htlc_queue``).
    offline: set[bytes] = field(default_factory=set)
    #: Called right before a chain transaction leaves the process (a deposit, a
    #: registration, a refutation, a claim...): returns once everything the node has done so
    #: far is on disk (``Node.make_durable``). A transaction cannot be recalled, so what it
    #: relies on (the peer's signature on version 0 under a deposit, the state a refutation
    #: registers, the preimage learned in the same job) must survive a crash just after it.
    make_durable: Callable[[], None] = field(default=lambda: None)
    #: While a peer's message is handled: moves its savepoint to now, once ``make_durable``
    #: wrote what the message did so far (``Savepoint.reanchor``).
    reanchor: Callable[[], None] | None = None

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    def note(self, text: str) -> None:
        self.journal.append(text)
        if len(self.journal) > 2 * MAX_JOURNAL:  # a peer's refusals each add lines
            del self.journal[:-MAX_JOURNAL]
        log.info("%s: %s", self.name, text)

    def durable_or_note(self) -> None:
        """``make_durable``, before the node answers the chain (refutes, claims, forces a
        move). A store that cannot confirm the earlier writes in time (a stalled disk; a
        failed write stops the node anyway) does not keep it from answering: a cheater
        answered late is worse. Counted (``durable_before_chain_errors``), noted, and the
        caller goes on."""
        try:
            self.make_durable()
        except Exception as error:
            self.count("durable_before_chain_errors")
            self.note(f"acting on the chain before the earlier writes are on disk: {error}")

    def depth(self, chain: str) -> int:
        """How deep (in blocks) a deposit or a conclusion on ``chain`` must be before the
        node relies on it: the configured confirmations, else the chain's finality depth."""
        configured = self.confirmations.get(chain)
        if configured is not None:
            return max(1, configured)
        return max(1, self.backends[chain].time_model().finality_depth)

    def count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def disown(self, channel_id: bytes) -> None:
        """Undo :meth:`adopt` (an event that created the channel was rolled back)."""
        channel = self.channels.pop(channel_id)
        self.parked.pop(channel_id, None)
        self.app_channels.pop(channel_id, None)
        ids = self.by_peer[channel.peer]
        del ids[channel_id]
        if not ids:
            del self.by_peer[channel.peer]

    def send(self, peer: bytes, message: wire.NodeMessage) -> None:
        self.outbox.append((peer, wire.encode(message)))

    def adopt(self, channel: Channel) -> None:
        """Make ``channel`` one of the node's: its changes are checkpointed and its queue
        is proposed by ``flush``."""
        self.channels[channel.channel_id] = channel
        self.by_peer.setdefault(channel.peer, {})[channel.channel_id] = None
        channel.dirty_sink = self.pending.channels
        channel.queued_sink = self.queued
        channel.collect_sink = self.collecting
        if channel.params.app:
            self.app_channels[channel.channel_id] = None
        if channel.collecting:
            self.collecting[channel.channel_id] = None
        channel.undo_log = self.undo
        if channel.queue or channel.machine.withdrawn:  # withdrawn: a refusal to bury
            self.queued[channel.channel_id] = None

    def unpark(self, channel_id: bytes) -> None:
        """The channel moved (an event of its machine, its peer back): ``flush`` looks at
        it again. It stays in ``parked`` until ``flush`` has: a failed event's savepoint
        puts ``queued`` back as it was, and the channel must then still be found."""
        if channel_id in self.parked:
            self.queued[channel_id] = None
