"""A Chenilles node: its channels on every chain, payments, forwarding and the watcher.

This is the node's logic without its event loop, as one small facade over its
collaborators: messages come in through ``receive``, chain events through
``on_chain_events``, time through ``tick``, and the operator's requests through the methods
below; what must be sent waits in ``outbox``. The asyncio server (TCP transport) and the
single-process network (tests, demo) both drive this same object, so they cannot drift
apart.

Each entry point ends with the effects of the core carried out in order (a state is
persisted before its signature is sent), queued updates proposed (``flush``) and, unless a
driver groups events into one commit, a checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...backend import Account, ChainBackend, ChainEvent, TxReceipt
from ...circuit.invoice import Invoice
from ...circuit.onion import OnionHop
from ...circuit.quote import Quote, Rate
from ...core import (
    App,
    Asset,
    Close,
    Effect,
    Htlc,
    Irrevocable,
    Persist,
    ProposalRejected,
    ProposalWithdrawn,
    RevocationReceived,
    Send,
    SubmitToLedger,
    Update,
    UpdateCompleted,
)
from ...core.errors import InvalidParams
from ...identity import NodeIdentity
from ..store.base import Store
from .apps import AppChannels
from .chain_actions import ChainActions
from .channel_totals import ChannelTotals
from .context import NodeContext
from .forwarding import ForwardingPolicy
from .funding import Funding
from .intake import Intake
from .open_policy import OpenPolicy
from .opening import Opening
from .operator_settings import OperatorSettings
from .own_edges import OwnEdges
from .payment_totals import PaymentTotals
from .payments import Payments
from .persistence import Checkpoint, Persistence
from .proposals import Proposals
from .quoting import Quoting
from .records import Channel, Payment, Quarantined
from .recovery import Recovery
from .virtual import VirtualChannels
from .virtual_watch import VirtualWatch

if TYPE_CHECKING:
    from ...core.watcher import Watcher
    from .opening import PendingOpen
    from .records import ForwardLink

log = logging.getLogger("chenilles.node")

#: A channel's statuses in which its deposits are on the ledger (``Node.is_member``).
_AT_STAKE = frozenset({"active", "closing", "disputed"})
#: The longest an invoice may stay payable: a year.
MAX_INVOICE_TTL = 365 * 86400
_CONTEXT_FIELDS = frozenset(
    {"identity", "backends", "accounts", "clock", "name", "store", "confirmations"}
)
_PAYMENT_SETTINGS = frozenset({"policy", "refund_grace", "report_outcomes"})


@dataclass
class Node:
    identity: NodeIdentity
    backends: Mapping[str, ChainBackend]
    accounts: Mapping[str, Account]
    clock: Callable[[], int]
    name: str = "node"
    policy: ForwardingPolicy = field(default_factory=ForwardingPolicy)
    store: Store | None = None
    #: Extra seconds an outgoing HTLC may stay locked past its expiry before we go on-chain.
    refund_grace: int = 0
    #: Checkpoint at the end of every event (the default). A driver that handles a batch of
    #: messages and then checkpoints once (group commit) turns this off.
    autocommit: bool = True
    #: Most proposals signed in one job (``autocommit`` off; ``None``: no limit). The rest
    #: wait for the next job: :attr:`more_to_propose` tells the driver to run one.
    proposals_per_job: int | None = None
    #: Collect ``ticket_outcomes`` and ``finished_payments`` for a driver that answers
    #: callers waiting for them (and takes them after each job).
    report_outcomes: bool = False
    #: Confirmations a deposit (or a conclusion) needs per chain before the node relies
    #: on it; a chain not named here uses its backend's finality depth.
    confirmations: Mapping[str, int] = field(default_factory=dict)
    #: The off-chain rules of the apps this node runs, by app id; ``None``: every app
    #: installed (the ``chenilles.apps`` entry points).
    apps: Mapping[str, App] | None = None
    #: The operator's consent to channels peers open (deposits, challenge, pending caps).
    open_policy: OpenPolicy = field(default_factory=OpenPolicy)
    #: Configured chains the node runs without, chain id -> why (their channels are
    #: quarantined at restore with that reason).
    unavailable: Mapping[str, str] = field(default_factory=dict)
    #: How a driver that writes checkpoints on a thread of its own (the server) puts
    #: everything handled so far on disk before a chain transaction leaves; ``None``: the
    #: node writes its pending checkpoint itself (:meth:`make_durable`).
    durable_barrier: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        #: Events ended without proposing (``autocommit`` off): the job's checkpoint does.
        self._flush_deferred = False
        self.ctx = NodeContext(
            self.identity,
            self.backends,
            self.accounts,
            self.clock,
            self.name,
            self.store,
            self.confirmations,
            unavailable=self.unavailable,
        )
        self.proposals = Proposals(self.ctx, self._run, self._update_failed)
        self.payment_flow = Payments(self.ctx, self.proposals, self.policy, self.refund_grace)
        self.funding = Funding(self.ctx)
        self.opening = Opening(self.ctx, self._run, self.open_policy)
        self.chain_actions = ChainActions(self.ctx, self.funding, self.payment_flow)
        self.persistence = Persistence(self.ctx, self.payment_flow)
        if self.apps is None:
            from ... import apps as installed

            self.ctx.apps = dict(installed.rules_by_id())
        else:
            self.ctx.apps = dict(self.apps)
        self.app_channels = AppChannels(self.ctx, self.proposals, self.chain_actions)
        self.quoting = Quoting(self.ctx, self.payment_flow)
        self.settings = OperatorSettings(self.ctx, self.policy)
        self.recovery = Recovery(self.ctx, self.proposals, self.chain_actions)
        self.intake = Intake(
            self.ctx, self.opening, self.funding, self.payment_flow, self.quoting, self._run
        )
        self.virtual = VirtualChannels(
            self.ctx, self.proposals.queue, lambda a, b: self.policy.rates.get((a, b))
        )
        self.intake.virtual = self.virtual
        self.virtual_watch = VirtualWatch(self.ctx, self.virtual, self.app_channels)
        self.ctx.make_durable = self.make_durable

    def __setattr__(self, name: str, value: object) -> None:
        # The node's fields stay the one place to change what its parts share: a new policy
        # at run time, a driver asking for outcomes, a test wrapping a backend.
        object.__setattr__(self, name, value)
        if name in _CONTEXT_FIELDS and "ctx" in self.__dict__:
            setattr(self.ctx, name, value)
        if name in _PAYMENT_SETTINGS and "payment_flow" in self.__dict__:
            setattr(self.payment_flow, name, value)
        if name == "policy" and "settings" in self.__dict__:
            self.settings.policy = value  # type: ignore[assignment]
        if name == "open_policy" and "opening" in self.__dict__:
            self.opening.policy = value  # type: ignore[assignment]

    # --- what drivers and operators read ----------------------------------------------------

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    @property
    def channels(self) -> dict[bytes, Channel]:
        return self.ctx.channels

    @property
    def outbox(self) -> list[tuple[bytes, bytes]]:
        return self.ctx.outbox

    @outbox.setter
    def outbox(self, value: list[tuple[bytes, bytes]]) -> None:
        self.ctx.outbox = value

    @property
    def watcher(self) -> Watcher:
        return self.ctx.watcher

    @property
    def journal(self) -> list[str]:
        return self.ctx.journal

    @property
    def errors(self) -> list[Exception]:
        return self.ctx.errors

    @property
    def counters(self) -> dict[str, int]:
        return self.ctx.counters

    @property
    def pending_opens(self) -> dict[bytes, PendingOpen]:
        return self.opening.pending_opens

    @property
    def open_results(self) -> dict[bytes, bytes | str]:
        return self.opening.open_results

    @property
    def invoices(self) -> dict[bytes, tuple[Invoice, bytes]]:
        return self.payment_flow.invoices

    @property
    def paid_invoices(self) -> set[bytes]:
        return self.payment_flow.paid_invoices

    @property
    def payments(self) -> dict[bytes, Payment]:
        """Our own payments by payment hash."""
        return self.payment_flow.payments

    @property
    def preimages(self) -> dict[bytes, bytes]:
        return self.payment_flow.preimages

    @property
    def htlcs(self) -> dict[tuple[bytes, int], Htlc]:
        return self.payment_flow.htlcs

    @property
    def links_by_out(self) -> dict[tuple[bytes, int], ForwardLink]:
        return self.payment_flow.links_by_out

    @property
    def ticket_outcomes(self) -> list[tuple[int, int | None, str | None]]:
        return self.payment_flow.ticket_outcomes

    @ticket_outcomes.setter
    def ticket_outcomes(self, value: list[tuple[int, int | None, str | None]]) -> None:
        self.payment_flow.ticket_outcomes = value

    @property
    def finished_payments(self) -> list[bytes]:
        return self.payment_flow.finished_payments

    @finished_payments.setter
    def finished_payments(self, value: list[bytes]) -> None:
        self.payment_flow.finished_payments = value

    def note(self, text: str) -> None:
        self.ctx.note(text)

    def count(self, key: str) -> None:
        self.ctx.count(key)

    # --- events -----------------------------------------------------------------------------

    def receive(self, peer: bytes, data: bytes) -> None:
        """One message from ``peer``, taken whole or not at all (:class:`~.intake.Intake`):
        nothing a peer sends escapes to the driver."""
        self.intake.receive(peer, data)
        self._end_of_event()

    def may_be_member(self, peer: bytes) -> bool:
        """Whether ``peer`` has any channel with us (safe from another thread: one dict
        lookup); :meth:`is_member` says whether one has something in it."""
        return peer in self.ctx.by_peer

    def is_member(self, peer: bytes, min_stake: Mapping[Asset, int] | None = None) -> bool:
        """Whether ``peer`` shares a channel with us that has something in it: active (or
        closing, disputed) with a deposit of ours, or of the peer's own of at least its
        asset's ``min_stake`` (``[policy.peers] stake``; any deposit for an asset not
        named), or opening with ours (not nil) sent. A channel a peer opened and never
        funded, or one long closed, gives no standing: it costs nothing to make
        (``[policy.peers] max_strangers``); nor does a deposit under the stake asked."""
        least = min_stake or {}
        for channel_id in self.ctx.by_peer.get(peer, ()):
            channel = self.ctx.channels[channel_id]
            if channel.status in _AT_STAKE:
                stake = any(
                    ours or theirs >= max(1, least.get(asset, 1))
                    for asset, (ours, theirs) in channel.deposits.items()
                )
            else:
                deposits = channel.deposits.values()  # (ours, theirs)
                stake = channel.status == "opening" and channel.funded_by_me
                stake = stake and any(ours for ours, _ in deposits)
            if stake:
                return True
        return False

    def peer_disconnected(self, peer: bytes) -> None:
        """``peer``'s link is gone: what it asked for and did not finish is dropped, and
        nothing more is proposed to it until it reconnects (``reestablish``)."""
        self.opening.forget_peer(peer)
        self.ctx.offline.add(peer)

    def reestablish(self, peer: bytes) -> None:
        """After a reconnect: tell the peer where each of our channels with it stands (a
        channel that cannot say is logged and skipped: the others still reestablish)."""
        self.ctx.offline.discard(peer)
        for channel_id in list(self.ctx.by_peer.get(peer, ())):
            self.ctx.unpark(channel_id)
            channel = self.ctx.channels[channel_id]
            try:
                self.funding.reestablish(channel)
                self._run(channel, channel.machine.reestablish())
            except Exception as error:
                self.ctx.count("reestablish_failed")
                channel.failed(f"reestablishing with the peer failed: {error}", self.clock())
                log.exception(
                    "%s: reestablishing %s failed", self.name, channel.channel_id.hex()[:8]
                )
        self.proposals.flush()  # what waited for the peer to come back
        self.virtual.reestablish(peer)
        self._commit_point()

    def on_chain_events(self, chain: str, events: list[ChainEvent]) -> None:
        self.chain_actions.on_chain_events(chain, events)
        self.app_channels.on_chain_events(chain, events)
        self._end_of_event()

    def watched_chains(self) -> set[str]:
        """The chains whose clock the next ``tick`` needs (an HTLC in flight, a dispute):
        the driver asks for their clocks with their next reads."""
        return self.chain_actions.watched_chains()

    def tick(self, fetched_clocks: Mapping[str, int] | None = None) -> None:
        """Let time pass. ``fetched_clocks``: chain id -> the watcher's clock the driver
        read with this tick's chain reads (``ClockFetcher``); the watcher judges those
        chains' deadlines with them instead of calling the chains."""
        self.opening.expire(self.clock())
        self.quoting.expire()
        self.payment_flow.expire_waiting()
        self.chain_actions.tick(fetched_clocks or {})
        self.app_channels.tick()
        self.recovery.tick()
        self.virtual_watch.tick()
        self._end_of_event()

    # --- the operator's requests ------------------------------------------------------------

    def open_channel(
        self,
        peer: bytes,
        chain: str,
        deposits: Mapping[Asset, tuple[int, int]],
        challenge_duration: int,
        app: str = "",
        app_data: bytes = b"",
    ) -> bytes:
        """Ask ``peer`` for a channel on ``chain``; (ours, theirs) per asset. Returns the
        temporary id; the channel id is known once the peer accepts. With ``app``, an app
        channel opening with ``app_data`` (``InvalidParams`` says why if this node cannot
        run it there, e.g. on a chain without app support)."""
        return self.opening.open_channel(peer, chain, deposits, challenge_duration, app, app_data)

    def app_move(self, channel_id: bytes, data: bytes) -> None:
        """Our move in an app channel: proposed off-chain, or forced on-chain in a dispute."""
        self.app_channels.move(channel_id, data)
        self._end_of_event()

    def app_status(self, channel_id: bytes) -> dict[str, object]:
        """The app's state, whose turn it is, and its dispute on-chain if any."""
        return self.app_channels.status(self.ctx.channels[channel_id])

    # --- virtual channels (docs/virtual-channels.md) ----------------------------------------

    def virtual_open(
        self,
        hub: bytes,
        peer: bytes,
        split: tuple[int, int],
        lifetime: int,
        grace: int,
        rate: Rate | None = None,
    ) -> bytes:
        """Ask ``hub`` for a virtual channel with ``peer`` funded by our ledger channel with
        the hub; ``split`` is (ours, theirs). Returns the request id (its handle)."""
        request_id = self.virtual.open(hub, peer, split, lifetime, grace, rate)
        self._end_of_event()
        return request_id

    def virtual_pay(self, handle: bytes, amount: int) -> None:
        """Pay ``amount`` to the other end of a virtual channel (the hub takes no part)."""
        self.virtual.pay(handle, amount)
        self._end_of_event()

    def virtual_close(self, handle: bytes) -> None:
        """Sign V's final state with the other end; both settle their ledger channels."""
        self.virtual.close(handle)
        self._end_of_event()

    def virtual_list(self) -> list[dict[str, object]]:
        return [self.virtual.describe(v) for v in self.virtual.records.values()]

    def pay_route(self, invoice: Invoice, hops: list[OnionHop]) -> Payment:
        """Pay ``invoice`` along ``hops`` (hops[0] is the HTLC we offer in our channel)."""
        payment = self.payment_flow.pay_route(invoice, hops)
        self._end_of_event()
        return payment

    def pay_quoted(
        self,
        invoice: Invoice,
        hops: list[OnionHop],
        deadline: int = 0,
        route: tuple[dict[str, object], ...] = (),
    ) -> Payment:
        """Pay ``invoice`` along ``hops``, first asking our peers that convert on the route
        for the quotes their hops lack (over the peer wire); pending meanwhile. Past
        ``deadline`` (node clock; 0: none) an HTLC still waiting to be offered anywhere on
        the route is failed back (``htlc_queue``)."""
        payment = self.quoting.pay(invoice, hops, deadline, route)
        self._end_of_event()
        return payment

    def pay_direct(
        self, channel_id: bytes, asset: Asset, amount: int, ticket: int | None = None
    ) -> None:
        """Pay the channel's peer directly. Transfers queued while a proposal is in flight
        go out together in the next state. With a ``ticket``, the outcome (the version that
        made it irrevocable, or why it failed) is reported in ``ticket_outcomes``."""
        self.transfer_many([(channel_id, asset, amount, ticket)])

    def transfer_many(self, items: Sequence[tuple[bytes, Asset, int, int | None]]) -> None:
        """Queue several direct transfers (channel, asset, amount, ticket), all or none: each
        is checked before any is queued; then one flush proposes them, as many per channel
        as a proposal carries."""
        self.payment_flow.transfer_many(items)
        self._end_of_event()

    def close(self, channel_id: bytes) -> None:
        """Cooperative close: propose a final state; the ledger pays out once it is signed."""
        self.proposals.queue(self.ctx.channels[channel_id], Close())
        self._end_of_event()

    def force_close(self, channel_id: bytes) -> TxReceipt:
        """Register our latest signed state on-chain (a dispute)."""
        self.make_durable()  # the state it registers, before it is on-chain
        receipt = self.chain_actions.force_close(channel_id)
        self._commit_point()
        return receipt

    def abandon(self, channel_id: bytes) -> None:
        """Give up an opening channel whose funds never left (``Funding.abandon``: refused,
        changing nothing, if any deposit may be on its way or on the chain)."""
        self.funding.abandon(self.ctx.channels[channel_id])
        self._commit_point()

    def own_edges(self) -> OwnEdges:
        """Our active channels as outgoing router edges (one per channel), brought up to
        date with the channels changed since they were last asked for and with our fees."""
        edges = self.ctx.own_edges
        pending = self.ctx.pending
        edges.refresh(
            self.ctx.channels, [*pending.snapshots, *pending.channels], self.policy, self.node_id
        )
        return edges

    def channel_totals(self) -> ChannelTotals:
        """What ``/metrics`` reports of the channels (counts per status, balances, locked
        amounts), brought up to date with the channels changed since it was last asked."""
        totals = self.ctx.channel_totals
        totals.refresh(self.ctx.channels)
        return totals

    def payment_totals(self) -> PaymentTotals:
        """What ``/metrics`` reports of our payments and invoices, brought up to date with
        those the checkpoints wrote since it was last asked."""
        flow = self.payment_flow
        totals = self.ctx.payment_totals
        totals.changed(self.ctx.pending.records)  # this job's, not written yet
        totals.refresh(flow.payments, flow.invoices, flow.paid_invoices)
        return totals

    @property
    def quarantined(self) -> dict[bytes, Quarantined]:
        return self.ctx.quarantined

    def invoice(
        self, amount: int, asset: Asset, *, ttl: int = 3600, description: str = ""
    ) -> Invoice:
        if not 1 <= ttl <= MAX_INVOICE_TTL:  # an expiry past 2**40 s could never be paid
            raise InvalidParams(f"an invoice lives 1 s to {MAX_INVOICE_TTL} s, not {ttl}")
        invoice = self.payment_flow.invoice(amount, asset, ttl=ttl, description=description)
        self._commit_point()
        return invoice

    def final_lead(self, asset: Asset) -> int:
        return self.payment_flow.final_lead(asset)

    def set_fee(self, asset: Asset, base: int, ppm: int) -> None:
        """What we charge from now on for sending ``asset`` on: ``base`` base units plus
        ``ppm`` millionths of the amount (persisted; no restart)."""
        self.settings.set_fee(asset, base, ppm)
        self._commit_point()

    def set_rate(self, asset_in: Asset, asset_out: Asset, rate: Rate | None) -> None:
        """Convert ``asset_in`` into ``asset_out`` at ``rate`` (base units) from now on;
        ``None`` stops converting that pair (persisted; no restart)."""
        self.settings.set_rate(asset_in, asset_out, rate)
        self._commit_point()

    def remember_peer(self, node_id: bytes, host: str, port: int) -> None:
        self.settings.remember_peer(node_id, host, port)
        self._commit_point()

    def forget_peer(self, node_id: bytes) -> None:
        self.settings.forget_peer(node_id)
        self._commit_point()

    def cancel_invoice(self, payment_hash: bytes) -> None:
        """Withdraw an unpaid invoice: an HTLC arriving for it is failed."""
        self.payment_flow.cancel_invoice(payment_hash)
        self._commit_point()

    def quote(self, asset_in: Asset, asset_out: Asset, amount_out: int) -> Quote:
        """A signed quote to convert ``asset_in`` into ``amount_out`` of ``asset_out``: the
        only way a payer gets a forward across assets from this hub (issue 12, item 7)."""
        quote = self.payment_flow.quote(asset_in, asset_out, amount_out)
        self._commit_point()
        return quote

    # --- effects, proposals and commits -----------------------------------------------------

    def _run(self, channel: Channel, effects: list[Effect]) -> None:
        """Carry out the core's effects in order. Every call of the channel's machine ends
        here: a queue parked until the machine moves is looked at again."""
        self.ctx.unpark(channel.channel_id)
        for effect in effects:
            if isinstance(effect, Persist):
                # Written by ``checkpoint`` with everything else this event changed, before
                # the outbox (and so any signature on this state) is released.
                self.ctx.pending.snapshots[channel.channel_id] = effect.snapshot
            elif isinstance(effect, Send):
                self.ctx.send(effect.peer, effect.message)
            elif isinstance(effect, Irrevocable):
                if effect.signed.state.version == 0:
                    self.funding.fund(channel)
                else:
                    self.payment_flow.on_irrevocable(
                        channel, effect.updates, effect.signed.state.version
                    )
            elif isinstance(effect, UpdateCompleted):
                # A preimage in a state we now hold signed by both is ours to use: passed
                # upstream in this event, not a round trip later once the state is
                # irrevocable (the upstream claim never depended on that).
                self.payment_flow.on_signed(channel, effect.updates)
            elif isinstance(effect, ProposalRejected):
                self.proposals.on_rejected(channel, effect)
            elif isinstance(effect, ProposalWithdrawn):
                self.proposals.on_withdrawn(channel, effect)
            elif isinstance(effect, SubmitToLedger):
                self.chain_actions.submit(channel, effect)
            elif isinstance(effect, RevocationReceived):
                # The backend's authority verified it and keeps it in its channel record
                # (Bitcoin penalties); this event's checkpoint writes that record with the
                # snapshot its ``Persist`` came with, before the outbox (the Ack or Accept
                # that depends on it) may leave.
                self.ctx.count("revocations_received")

    def _update_failed(self, channel: Channel, update: Update, reason: str) -> None:
        self.payment_flow.update_failed(channel, update, reason)

    def flush(self) -> None:
        """Propose each channel's queued updates where its machine is idle."""
        self.proposals.flush()

    def _end_of_event(self) -> None:
        self.virtual.advance()
        self.ctx.pending.events += 1
        if self.autocommit:
            self.proposals.flush()
            self.persistence.checkpoint(leaving=self.leaving())
        else:
            # A driver grouping events into one job (the server) proposes once at its end,
            # in :meth:`checkpoint` / :meth:`take_checkpoint`: what the whole job queued on
            # a channel goes out in one state, not the first event's alone in one state
            # and the rest in the next (a burst of 8 payments: 2 states, not 3).
            self._flush_deferred = True

    def _commit_point(self) -> None:
        """End of an event: checkpoint now, unless the driver groups several events into
        one commit (``autocommit = False``; it then calls :meth:`checkpoint` itself before
        releasing the outbox)."""
        self.ctx.pending.events += 1
        if self.autocommit:
            self.persistence.checkpoint(leaving=self.leaving())

    def leaving(self) -> bool:
        """Whether anything is to go out after the next checkpoint: a message, or an
        outcome a driver reports (a transfer's, a payment's)."""
        flow = self.payment_flow
        return bool(self.ctx.outbox or flow.finished_payments or flow.ticket_outcomes)

    @property
    def checkpoint_quiet(self) -> bool:
        """The checkpoint last taken holds quiet events alone (``PendingWrites.quiet``)."""
        return self.persistence.quiet

    def _flush_job(self) -> None:
        """Propose what the job's events queued, before its checkpoint is taken: every
        state signed here is in that checkpoint, written before the outbox leaves. Nothing
        here may stop the job's checkpoint: a failure is logged and kept in ``errors``,
        as one in the middle of an event is."""
        if not self._flush_deferred:
            return
        self._flush_deferred = False
        try:
            # at the limit: what is left is proposed by the next job (``more_to_propose``)
            self._flush_deferred = self.proposals.flush(self.proposals_per_job)
        except Exception as exc:  # a bug of the node's own: the checkpoint still follows
            log.exception("%s: proposing at the end of a job failed", self.name)
            self.ctx.errors.append(exc)

    @property
    def more_to_propose(self) -> bool:
        """The last job stopped proposing at ``proposals_per_job``: the next job (even an
        empty one) proposes more."""
        return self._flush_deferred

    def checkpoint(self) -> None:
        self._flush_job()
        self.persistence.checkpoint(leaving=self.leaving())

    def make_durable(self) -> None:
        """Put on disk, durably, everything the node has done so far, in the middle of an
        event if need be: called before any chain transaction leaves (``ctx.make_durable``).
        The event's own checkpoint still writes what changes after it, and a peer's message
        that fails after this point is undone only back to it. Proposals the job queued are
        not made here: they are signed at the job's end, as always."""
        if self.durable_barrier is not None:
            self.durable_barrier()
        else:
            self.persistence.checkpoint(leaving=True)
        if self.ctx.reanchor is not None:  # inside a peer's message: written is kept
            self.ctx.reanchor()

    def take_checkpoint(self) -> Checkpoint | None:
        self._flush_job()
        return self.persistence.take_checkpoint()

    def restore(self) -> None:
        """Rebuild channels, payments, links and watcher duties from the store (restart)."""
        self.persistence.restore()
        self.settings.restore()
        self.app_channels.restore()
        self.quoting.restore()
        self.recovery.restore()
        self.virtual.restore()
