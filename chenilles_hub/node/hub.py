"""A Chenilles node: its channels on every chain, payments, forwarding and the watcher.

This is the node's logic without its event loop: messages come in through ``receive``,
chain events through ``on_chain_events``, time through ``tick``; what must be sent waits in
``outbox``. The asyncio server (TCP transport) and the single-process demo (an in-memory
network) both drive this same object, so they cannot drift apart.

Rules it keeps:

* effects of the core are carried out in order, so a state is persisted before its
  signature is sent;
* an incoming HTLC is forwarded only once it is irrevocable (both sides revoked the state
  before it);
* a preimage learnt downstream, off-chain or on any chain, is passed upstream at once, and
  the watcher claims on-chain before the upstream expiry if the peer does not cooperate.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..backend import (
    Account,
    ChainBackend,
    ChainEvent,
    Concluded,
    Funded,
    LedgerError,
    PreimageRevealed,
    Registered,
    TxReceipt,
)
from ..circuit.errors import (
    CircuitError,
    InvoiceAlreadyPaid,
    UnknownPaymentHash,
    WrongAmount,
)
from ..circuit.invoice import Invoice, check_payable, create_invoice
from ..circuit.onion import HopPayload, OnionHop, build_onion, peel
from ..core import (
    AddHtlc,
    Asset,
    ChannelError,
    ChannelMachine,
    ChannelParams,
    ChannelSnapshot,
    Close,
    Effect,
    FailHtlc,
    Htlc,
    HtlcPolicy,
    Irrevocable,
    Participant,
    Persist,
    ProposalRejected,
    RevocationReceived,
    Send,
    SettleHtlc,
    SubmitToLedger,
    Transfer,
    Update,
    initial_state,
)
from ..core.errors import (
    AmountOutOfRange,
    ChannelNotOpen,
    ProposalConflict,
    ProposalTooLarge,
    UnknownAsset,
    UnsafeTimelock,
    WrongChannel,
)
from ..core.messages import MAX_UPDATES_PER_PROPOSAL, Accept, Ack, Propose, Reestablish, Reject
from ..core.watcher import (
    Action,
    ClaimIncoming,
    ClaimOnChain,
    ConcludeAndWithdraw,
    ForceClose,
    GuardChannel,
    PreimageLearned,
    RefundOnChain,
    RefundOutgoing,
    Refute,
    Watcher,
)
from ..identity import NodeIdentity
from . import wire
from .forwarding import ForwardingPolicy, check_incoming_forward, enforcement_delta
from .journal import (
    CHANNEL_PREFIX,
    FUNDING_PREFIX,
    INVOICE_PREFIX,
    NODE_STATE_KEY,
    PAYMENT_PREFIX,
    ChannelMeta,
    InvoiceRecord,
    NodeStateV1,
    decode_node_state,
    decode_record,
    encode_node_state,
    encode_record,
)
from .records import Channel, ForwardLink, Payment
from .store import ChannelRecord, Store

log = logging.getLogger("chenilles.node")


@dataclass
class PendingOpen:
    peer: bytes
    chain: str
    assets: tuple[Asset, ...]
    deposits: dict[Asset, tuple[int, int]]
    challenge_duration: int
    salt: bytes
    opener_key: str
    opener: bool


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
    #: Collect :attr:`ticket_outcomes` and :attr:`finished_payments` for a driver that
    #: answers callers waiting for them (and takes them after each job).
    report_outcomes: bool = False

    def __post_init__(self) -> None:
        self.outbox: list[tuple[bytes, bytes]] = []
        self.channels: dict[bytes, Channel] = {}
        self.pending_opens: dict[bytes, PendingOpen] = {}
        self.invoices: dict[bytes, tuple[Invoice, bytes]] = {}
        self.paid_invoices: set[bytes] = set()
        self.payments: dict[bytes, Payment] = {}
        self.preimages: dict[bytes, bytes] = {}
        self.htlcs: dict[tuple[bytes, int], Htlc] = {}
        self.links_by_out: dict[tuple[bytes, int], ForwardLink] = {}
        self.origin: dict[tuple[bytes, int], bytes] = {}  # our own payments' first hops
        self.watcher = Watcher()
        self.journal: list[str] = []
        self.errors: list[Exception] = []
        self._dirty: dict[bytes, ChannelSnapshot] = {}
        self._dirty_records: dict[str, bytes] = {}
        self._written_state = b""
        self._dirty_channels: set[bytes] = set()
        #: Channels whose queue may hold updates (``Channel.queued_sink``), oldest first.
        self._queued: dict[bytes, None] = {}
        #: What became of our open requests (temp id -> channel id, or the peer's refusal),
        #: so an operator who asked for a channel can follow it (not persisted).
        self.open_results: dict[bytes, bytes | str] = {}
        #: Event counters since this process started (exported as metrics by the server).
        self.counters: dict[str, int] = {}
        #: Direct transfers somebody waits for (an API request): the update object's id ->
        #: (the update, the caller's ticket); not persisted (a restart answers no one).
        self._tickets: dict[int, tuple[Update, int]] = {}
        #: (ticket, signed version or None, failure reason or None) of transfers that became
        #: irrevocable or failed; the driver takes them after the checkpoint, like the outbox.
        self.ticket_outcomes: list[tuple[int, int | None, str | None]] = []
        #: Hashes of our payments that succeeded or failed since the driver last took them.
        self.finished_payments: list[bytes] = []

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    def note(self, text: str) -> None:
        self.journal.append(text)
        log.info("%s: %s", self.name, text)

    def count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # === opening ==============================================================================

    def open_channel(
        self,
        peer: bytes,
        chain: str,
        deposits: Mapping[Asset, tuple[int, int]],
        challenge_duration: int,
    ) -> bytes:
        """Ask ``peer`` for a channel on ``chain``; (ours, theirs) per asset. Returns the
        temporary id; the channel id is known once the peer accepts."""
        backend = self.backends[chain]
        account = self.accounts[chain]
        temp_id = secrets.token_bytes(32)
        salt = secrets.token_bytes(32)
        assets = tuple(deposits)
        pending = PendingOpen(
            peer,
            chain,
            assets,
            dict(deposits),
            challenge_duration,
            salt,
            backend.participant_key(account, salt),
            True,
        )
        self.pending_opens[temp_id] = pending
        self._send(
            peer,
            wire.OpenRequest(
                temp_id,
                chain,
                assets,
                tuple(deposits[a] for a in assets),
                challenge_duration,
                salt,
                pending.opener_key,
            ),
        )
        return temp_id

    def _on_open_request(self, peer: bytes, msg: wire.OpenRequest) -> None:
        backend = self.backends.get(msg.chain)
        if backend is None or msg.chain not in self.accounts:
            self._send(peer, wire.OpenRefused(msg.temp_id, f"no backend for {msg.chain}"))
            return
        unknown = [a for a in msg.assets if a not in backend.assets()]
        if unknown or len(msg.deposits) != len(msg.assets):
            self._send(peer, wire.OpenRefused(msg.temp_id, f"unknown assets {unknown}"))
            return
        account = self.accounts[msg.chain]
        key = backend.participant_key(account, msg.salt)
        # Deposits arrive as (opener's, acceptor's); keep them from our point of view.
        deposits = {a: (d[1], d[0]) for a, d in zip(msg.assets, msg.deposits, strict=True)}
        self.pending_opens[msg.temp_id] = PendingOpen(
            peer,
            msg.chain,
            msg.assets,
            deposits,
            msg.challenge_duration,
            msg.salt,
            msg.opener_key,
            False,
        )
        self._send(peer, wire.OpenAccept(msg.temp_id, key))

    def _on_open_accept(self, peer: bytes, msg: wire.OpenAccept) -> None:
        pending = self.pending_opens.get(msg.temp_id)
        if pending is None or not pending.opener or pending.peer != peer:
            raise WrongChannel("an open_accept for no open request of ours")
        backend = self.backends[pending.chain]
        account = self.accounts[pending.chain]
        participants = (
            Participant(pending.opener_key, self.node_id),
            Participant(msg.acceptor_key, peer),
        )
        nonce = backend.new_nonce(participants, pending.deposits, account)
        params = ChannelParams(
            chain=pending.chain,
            participants=participants,
            assets=pending.assets,
            challenge_duration=pending.challenge_duration,
            nonce=nonce,
        )
        del self.pending_opens[msg.temp_id]
        channel = self._create_channel(params, 0, pending.deposits)
        self.open_results[msg.temp_id] = channel.channel_id
        self._send(peer, wire.OpenChannel(msg.temp_id, params))
        self._run(channel, channel.machine.open())
        self._commit_point()

    def _on_open_channel(self, peer: bytes, msg: wire.OpenChannel) -> None:
        pending = self.pending_opens.pop(msg.temp_id, None)
        if pending is None or pending.opener or pending.peer != peer:
            raise WrongChannel("an open_channel for no request we accepted")
        params = msg.params
        expected = (pending.opener_key, pending.chain, pending.assets, pending.challenge_duration)
        got = (
            params.participants[0].chain_key,
            params.chain,
            params.assets,
            params.challenge_duration,
        )
        if expected != got or params.participants[1].node_id != self.node_id:
            raise WrongChannel("the channel params differ from what was requested")
        self._create_channel(params, 1, pending.deposits)

    def _create_channel(
        self, params: ChannelParams, me: int, deposits: dict[Asset, tuple[int, int]]
    ) -> Channel:
        backend = self.backends[params.chain]
        account = self.accounts[params.chain]
        channel_id = backend.channel_id(params)
        ordered = {a: (d if me == 0 else (d[1], d[0])) for a, d in deposits.items()}
        initial = initial_state(channel_id, params.assets, ordered)
        machine = ChannelMachine(
            params,
            channel_id,
            me,
            backend.authority(params, account, me),
            initial,
            policy=HtlcPolicy(min_lead=self._min_lead(backend, params)),
        )
        channel = Channel(
            params,
            channel_id,
            me,
            machine,
            backend,
            account,
            params.participants[1 - me].node_id,
            deposits,
        )
        self.channels[channel_id] = channel
        channel.dirty_sink = self._dirty_channels
        channel.queued_sink = self._queued
        self._dirty_channels.add(channel_id)
        if self.store is not None:
            self.store.add_channel(ChannelRecord(channel_id, params, me, initial))
        self.watcher.add(GuardChannel(channel_id))
        self.note(f"channel {channel_id.hex()[:8]} on {params.chain} created (participant {me})")
        return channel

    def _min_lead(self, backend: ChainBackend, params: ChannelParams) -> int:
        """An HTLC in this channel must leave at least the time to enforce it on-chain."""
        return enforcement_delta(backend.time_model(), params.challenge_duration)

    def _fund(self, channel: Channel) -> None:
        """Send our deposits to the chain, each at most once, ever.

        A deposit leaves the process in a chain transaction, before the checkpoint that
        records it. So a durable marker is written *before* each one is sent: after a crash
        the node finds the marker, does not send it again (a second deposit would be locked
        in the channel for good) and waits for the chain to report it (:class:`Funded`)."""
        txids: list[str] = []
        waiting = False
        for asset, (mine, _theirs) in channel.deposits.items():
            if mine <= 0:
                continue
            key = _funding_key(channel.channel_id, asset)
            if self.store is not None:
                if self.store.get_setting(key) is not None:
                    waiting = True  # sent before a crash: the chain will tell
                    self.note(
                        f"deposit of {asset} into {channel.channel_id.hex()[:8]} was "
                        "sent before a restart: waiting for the chain to report it"
                    )
                    continue
                self.store.set_setting(key, b"submitted")  # durable before it is sent
            receipt = channel.backend.fund(channel.params, channel.me, channel.account, asset, mine)
            channel.receipts.append(receipt)
            txids.append(receipt.txid)
            self.note(f"funded {mine} {asset} into {channel.channel_id.hex()[:8]}")
        if waiting and not self._deposits_confirmed(channel):
            return
        self._funded_by_me(channel, tuple(txids))

    def _funded_by_me(self, channel: Channel, txids: tuple[str, ...]) -> None:
        channel.funded_by_me = True
        self._send(channel.peer, wire.FundingDone(channel.channel_id, txids))
        self._maybe_activate(channel)

    def _deposits_confirmed(self, channel: Channel) -> bool:
        """Whether the chain reported every deposit of ours (only asked after a restart)."""
        assert self.store is not None
        return all(
            self.store.get_setting(_funding_key(channel.channel_id, asset)) == b"confirmed"
            for asset, (mine, _theirs) in channel.deposits.items()
            if mine > 0
        )

    def _on_funded(self, event: Funded) -> None:
        """The chain reports a deposit. It matters only for a deposit of ours sent before a
        crash that forgot it: it is confirmed now, and the channel can open."""
        channel = self.channels.get(event.channel_id)
        if channel is None or channel.funded_by_me or event.participant != channel.me:
            return
        if self.store is None or channel.deposits.get(event.asset, (0, 0))[0] <= 0:
            return
        key = _funding_key(channel.channel_id, event.asset)
        if self.store.get_setting(key) is None:
            return  # not sent by us (yet): someone else deposited for us
        self.store.set_setting(key, b"confirmed")
        if channel.machine.latest is not None and self._deposits_confirmed(channel):
            self.note(f"the chain confirms our deposits into {channel.channel_id.hex()[:8]}")
            self._funded_by_me(channel, ())

    def _maybe_activate(self, channel: Channel) -> None:
        if channel.funded_by_me and channel.funded_by_peer and channel.status == "opening":
            channel.status = "active"
            self.note(f"channel {channel.channel_id.hex()[:8]} is active")

    # === messages =============================================================================

    def receive(self, peer: bytes, data: bytes) -> None:
        """One message from ``peer``. Bad input is refused and logged; nothing else changes."""
        try:
            message = wire.decode(data)
            self._dispatch(peer, message)
        except ChannelError as error:
            self.errors.append(error)
            log.warning("%s: refused a message from %s: %s", self.name, peer.hex()[:8], error)
        self.flush()
        self._commit_point()

    def _dispatch(self, peer: bytes, message: wire.NodeMessage) -> None:
        if isinstance(message, wire.OpenRequest):
            self._on_open_request(peer, message)
        elif isinstance(message, wire.OpenAccept):
            self._on_open_accept(peer, message)
        elif isinstance(message, wire.OpenRefused):
            pending = self.pending_opens.get(message.temp_id)
            if pending is not None and pending.peer == peer and pending.opener:
                del self.pending_opens[message.temp_id]
                self.open_results[message.temp_id] = message.reason or "refused"
            self.note(f"channel refused: {message.reason}")
        elif isinstance(message, wire.OpenChannel):
            self._on_open_channel(peer, message)
        elif isinstance(message, wire.FundingDone):
            channel = self._channel_of(peer, message.channel_id)
            channel.funded_by_peer = True
            self._maybe_activate(channel)
        else:
            self._on_channel_message(peer, message)

    def _channel_of(self, peer: bytes, channel_id: bytes) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise WrongChannel(f"no channel {channel_id.hex()[:16]}")
        if channel.peer != peer:
            raise WrongChannel("message from a node that is not this channel's peer")
        return channel

    def _on_channel_message(
        self, peer: bytes, message: Propose | Accept | Ack | Reject | Reestablish
    ) -> None:
        channel = self._channel_of(peer, message.channel_id)
        try:
            effects = channel.machine.receive(message, self.clock())
        except ChannelError as error:
            self._run(channel, channel.machine.rejection(message, error))
            raise
        self._run(channel, effects)

    def reestablish(self, peer: bytes) -> None:
        """After a reconnect: tell the peer where each of our channels with it stands."""
        for channel in self.channels.values():
            if channel.peer == peer:
                if channel.funded_by_me and channel.status == "opening":
                    # Our funding notice may have been lost with the connection (or a crash);
                    # it is idempotent, so say it again.
                    self._send(peer, wire.FundingDone(channel.channel_id, ()))
                self._run(channel, channel.machine.reestablish())
        self._commit_point()

    # === effects ==============================================================================

    def _run(self, channel: Channel, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Persist):
                # Written by ``checkpoint`` with everything else this event changed, before
                # the outbox (and so any signature on this state) is released.
                self._dirty[channel.channel_id] = effect.snapshot
            elif isinstance(effect, Send):
                self._send(effect.peer, effect.message)
            elif isinstance(effect, Irrevocable):
                self._on_irrevocable(channel, effect)
            elif isinstance(effect, ProposalRejected):
                self._on_rejected(channel, effect)
            elif isinstance(effect, SubmitToLedger):
                self._submit(channel, effect)
            elif isinstance(effect, RevocationReceived):
                pass  # the backend's authority verified and keeps it (Bitcoin penalties)

    def _send(self, peer: bytes, message: wire.NodeMessage) -> None:
        self.outbox.append((peer, wire.encode(message)))

    def _submit(self, channel: Channel, effect: SubmitToLedger) -> None:
        if effect.action == "conclude_cooperative":
            receipt = channel.backend.close_cooperative(
                channel.params, effect.signed, channel.account
            )
            channel.receipts.append(receipt)
            channel.status = "closing"
            self.note(f"channel {channel.channel_id.hex()[:8]} closed cooperatively")
            self._withdraw_all(channel)

    def _withdraw_all(self, channel: Channel) -> None:
        for asset in channel.params.assets:
            try:
                channel.receipts.append(
                    channel.backend.withdraw(channel.params, channel.me, channel.account, asset)
                )
            except LedgerError as error:
                self.note(f"withdraw {asset} from {channel.channel_id.hex()[:8]}: {error}")
        channel.status = "closed"

    def _on_rejected(self, channel: Channel, effect: ProposalRejected) -> None:
        dropped, channel.in_flight = channel.in_flight, ()
        if effect.code == ProposalConflict.code:
            channel.queue = [*dropped, *channel.queue]  # the peer's proposal won: ours again
            return
        self.note(f"peer refused our update on {channel.channel_id.hex()[:8]}: {effect.reason}")
        for update in dropped:
            self._update_failed(channel, update, f"{effect.code}: {effect.reason}")

    # === HTLC life cycle ======================================================================

    def _on_irrevocable(self, channel: Channel, effect: Irrevocable) -> None:
        state = effect.signed.state
        if state.version == 0:
            self._fund(channel)
            return
        if channel.machine.pending is None:
            channel.in_flight = ()
        for update in effect.updates:
            if self._tickets:
                self._resolve_ticket(update, state.version, None)
            if isinstance(update, AddHtlc):
                self._on_htlc_added(channel, update)
            elif isinstance(update, SettleHtlc):
                self._on_htlc_settled(channel, update)
            elif isinstance(update, FailHtlc):
                self._on_htlc_failed(channel, update.htlc_id, update.reason)

    def _on_htlc_added(self, channel: Channel, update: AddHtlc) -> None:
        htlc = update.htlc
        self.htlcs[(channel.channel_id, htlc.id)] = htlc
        if htlc.payer == channel.me:
            self.watcher.add(
                RefundOutgoing(channel.channel_id, htlc.id, htlc.expiry + self.refund_grace)
            )
            return
        try:
            payload = peel(self.identity, update.onion)
            if payload.final:
                self._receive_payment(channel, htlc, payload)
            else:
                self._forward(channel, htlc, payload)
        except (ChannelError, LedgerError) as error:
            reason = f"{getattr(error, 'code', 'ledger')}: {error}"[:200]
            self.note(f"failing incoming HTLC {htlc.id}: {reason}")
            self.count("htlc_refused")
            self._queue(channel, FailHtlc(htlc.id, reason))

    def _receive_payment(self, channel: Channel, htlc: Htlc, payload: HopPayload) -> None:
        entry = self.invoices.get(htlc.payment_hash)
        if entry is None:
            raise UnknownPaymentHash("no invoice of ours has this payment hash")
        invoice, preimage = entry
        if htlc.payment_hash in self.paid_invoices:
            raise InvoiceAlreadyPaid("this invoice was already paid")
        check_payable(invoice, self.clock())
        if htlc.asset != invoice.asset or htlc.amount < invoice.amount:
            raise WrongAmount(
                f"received {htlc.amount} {htlc.asset}, invoice asks {invoice.amount} "
                f"{invoice.asset}"
            )
        if payload.amount_int != htlc.amount or payload.asset != htlc.asset:
            raise WrongAmount("the HTLC differs from what the payer's instructions say")
        if htlc.expiry < self.clock() + invoice.final_lead:
            raise UnsafeTimelock("the final HTLC leaves less than the invoice's final lead")
        self.paid_invoices.add(htlc.payment_hash)
        self._record_invoice(htlc.payment_hash)
        self._settle_incoming(channel, htlc, preimage)
        self.note(f"received {htlc.amount} {htlc.asset} for invoice {htlc.payment_hash.hex()[:8]}")

    def _forward(self, incoming: Channel, htlc: Htlc, payload: HopPayload) -> None:
        out = self.channels.get(payload.next_channel)
        if out is None or not out.active:
            raise WrongChannel("the next channel is unknown or not active")
        if payload.asset not in out.params.assets:
            raise WrongAmount(f"{payload.asset} is not an asset of the next channel")
        check_incoming_forward(
            self.policy,
            self.node_id,
            incoming,
            htlc,
            out,
            payload.amount_int,
            payload.asset,
            payload.expiry,
            self.clock(),
        )
        outgoing = out.offer_htlc(
            payload.asset, payload.amount_int, htlc.payment_hash, payload.expiry
        )
        link = ForwardLink(incoming.channel_id, htlc.id, out.channel_id, outgoing.id)
        self.links_by_out[(out.channel_id, outgoing.id)] = link
        self._queue(out, AddHtlc(outgoing, onion=payload.inner))
        self.note(f"forwarding {htlc.amount} {htlc.asset} -> {outgoing.amount} {outgoing.asset}")

    def _settle_incoming(self, channel: Channel, htlc: Htlc, preimage: bytes) -> None:
        """We know the preimage of an HTLC paid to us: settle off-chain, and make sure the
        watcher claims it on-chain in time should the peer stop cooperating."""
        self.preimages[htlc.payment_hash] = preimage
        self._queue(channel, SettleHtlc(htlc.id, preimage))
        model = channel.backend.time_model()
        deadline = htlc.expiry - model.inclusion_delay - model.finality_time() - model.safety_margin
        self.watcher.add(ClaimIncoming(channel.channel_id, htlc.id, preimage, deadline))

    def _on_htlc_settled(self, channel: Channel, update: SettleHtlc) -> None:
        key = (channel.channel_id, update.htlc_id)
        htlc = self.htlcs.get(key)
        self.watcher.resolved(*key)
        if htlc is not None and htlc.payer == channel.me:
            self._preimage_known(htlc.payment_hash, update.preimage)
        self._forget(key)  # settled for good: nothing left to enforce or pass on

    def _preimage_known(self, payment_hash: bytes, preimage: bytes) -> None:
        """A preimage learnt downstream (off-chain or on-chain): pass it upstream."""
        self.preimages[payment_hash] = preimage
        for (out_channel, out_htlc), link in list(self.links_by_out.items()):
            out = self.htlcs.get((out_channel, out_htlc))
            if out is None or out.payment_hash != payment_hash:
                continue
            del self.links_by_out[(out_channel, out_htlc)]
            incoming = self.channels[link.in_channel]
            in_htlc = self.htlcs.get((link.in_channel, link.in_htlc))
            if in_htlc is not None and incoming.machine.state.htlc(link.in_htlc) is not None:
                self._settle_incoming(incoming, in_htlc, preimage)
        payment = self.payments.get(payment_hash)
        if payment is not None and payment.status == "pending":
            payment.status, payment.preimage = "succeeded", preimage
            self._record_payment(payment)
            self.note(f"payment {payment_hash.hex()[:8]} succeeded")

    def _on_htlc_failed(self, channel: Channel, htlc_id: int, reason: str) -> None:
        key = (channel.channel_id, htlc_id)
        htlc = self.htlcs.get(key)
        self.watcher.resolved(*key)
        self._forget(key)
        if htlc is None or htlc.payer != channel.me:
            return
        link = self.links_by_out.pop(key, None)
        if link is not None:
            upstream = self.channels[link.in_channel]
            self._queue(upstream, FailHtlc(link.in_htlc, reason))
            self.count("forward_failed_downstream")
            self.note(f"failing upstream HTLC {link.in_htlc}: {reason}")
            return
        payment = self.payments.get(htlc.payment_hash)
        if payment is not None and payment.status == "pending":
            payment.status, payment.reason = "failed", reason
            self._record_payment(payment)
            self.note(f"payment {htlc.payment_hash.hex()[:8]} failed: {reason}")

    def _forget(self, key: tuple[bytes, int]) -> None:
        """Drop a resolved HTLC (and its preimage once no live HTLC shares the hash), so
        what the node checkpoints stays bounded by what is in flight."""
        htlc = self.htlcs.pop(key, None)
        if htlc is not None and not any(
            h.payment_hash == htlc.payment_hash for h in self.htlcs.values()
        ):
            self.preimages.pop(htlc.payment_hash, None)

    def _update_failed(self, channel: Channel, update: Update, reason: str) -> None:
        """An update of ours could not be proposed or was refused by the peer."""
        self._resolve_ticket(update, None, reason)
        if isinstance(update, AddHtlc):
            key = (channel.channel_id, update.htlc.id)
            self.htlcs[key] = update.htlc
            self._on_htlc_failed(channel, update.htlc.id, reason)

    # === proposing ============================================================================

    def _queue(self, channel: Channel, update: Update) -> None:
        channel.queue = [*channel.queue, update]

    def flush(self) -> None:
        """Propose each channel's queued updates, as many as one proposal carries, where the
        machine is idle; fail those queued on a channel that went on-chain or closed."""
        now = self.clock()
        progress = True
        while progress:  # a refused update may queue a fail on a channel already visited
            progress = False
            for channel_id in list(self._queued):
                channel = self.channels[channel_id]
                if not channel.queue:
                    del self._queued[channel_id]
                    continue
                if channel.status in ("disputed", "closed"):
                    stranded, channel.queue = channel.queue, []
                    for update in stranded:
                        self._update_failed(channel, update, f"the channel is {channel.status}")
                    progress = True
                    continue
                if not channel.machine.idle or channel.status not in ("active", "closing"):
                    continue
                progress = True
                self._propose_queued(channel, now)

    def _propose_queued(self, channel: Channel, now: int) -> None:
        """Propose the longest acceptable prefix of the queue that fits in one proposal; the
        rest stays queued for the next one."""
        batch = channel.queue[:MAX_UPDATES_PER_PROPOSAL]
        channel.queue = channel.queue[MAX_UPDATES_PER_PROPOSAL:]
        good = self._acceptable(channel, batch, now)
        while good:
            try:
                effects = channel.machine.propose(tuple(good), now)
            except ProposalTooLarge as error:  # big onions: halve until it fits
                if len(good) == 1:
                    self._update_failed(channel, good[0], f"{error.code}: {error}")
                    return
                half = len(good) // 2
                good, channel.queue = good[:half], [*good[half:], *channel.queue]
                continue
            channel.in_flight = tuple(good)
            self._run(channel, effects)
            return

    def _acceptable(self, channel: Channel, batch: list[Update], now: int) -> list[Update]:
        """The updates of ``batch`` that can go out together; the others fail, each with its
        own reason. The whole batch is checked at once first (one pass, the common case);
        only when that fails is each update checked on top of the good ones before it."""
        try:
            channel.machine.check(tuple(batch), now)
            return list(batch)
        except ChannelError:
            pass
        good: list[Update] = []
        for update in batch:
            try:
                channel.machine.check((*good, update), now)
                good.append(update)
            except ChannelError as error:
                self._update_failed(channel, update, f"{error.code}: {error}")
        return good

    # === the operator's requests ==============================================================

    def pay_direct(
        self, channel_id: bytes, asset: Asset, amount: int, ticket: int | None = None
    ) -> None:
        """Pay the channel's peer directly. Transfers queued while a proposal is in flight
        go out together in the next state. With a ``ticket``, the outcome (the version that
        made it irrevocable, or why it failed) is reported in :attr:`ticket_outcomes`."""
        self.transfer_many([(channel_id, asset, amount, ticket)])

    def transfer_many(self, items: Sequence[tuple[bytes, Asset, int, int | None]]) -> None:
        """Queue several direct transfers (channel, asset, amount, ticket), all or none: each
        is checked before any is queued; then one flush proposes them, as many per channel
        as a proposal carries."""
        for index, (channel_id, asset, amount, _) in enumerate(items):
            channel = self.channels.get(channel_id)
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
                self._tickets[id(update)] = (update, ticket)
            self._queue(self.channels[channel_id], update)
        self.flush()
        self._commit_point()

    def _resolve_ticket(self, update: Update, version: int | None, reason: str | None) -> None:
        waiting = self._tickets.get(id(update))
        if waiting is not None and waiting[0] is update:
            del self._tickets[id(update)]
            if self.report_outcomes:
                self.ticket_outcomes.append((waiting[1], version, reason))

    def close(self, channel_id: bytes) -> None:
        """Cooperative close: propose a final state; the ledger pays out once it is signed."""
        self._queue(self.channels[channel_id], Close())
        self.flush()
        self._commit_point()

    def invoice(
        self, amount: int, asset: Asset, *, ttl: int = 3600, description: str = ""
    ) -> Invoice:
        final_lead = self.final_lead(asset)
        invoice, preimage = create_invoice(
            self.identity,
            amount,
            asset,
            self.clock(),
            ttl=ttl,
            final_lead=final_lead,
            description=description,
        )
        self.invoices[invoice.payment_hash] = (invoice, preimage)
        self._record_invoice(invoice.payment_hash)
        self._commit_point()
        return invoice

    def final_lead(self, asset: Asset) -> int:
        """How far ahead the last HTLC to us must expire: the time to enforce it on-chain in
        our slowest channel on that chain (what our channels' HTLC policy demands), plus a
        block interval of slack for the time the payment takes to arrive."""
        backend = self.backends[asset.chain]
        model = backend.time_model()
        challenges = [
            c.params.challenge_duration
            for c in self.channels.values()
            if c.params.chain == asset.chain
        ] or [0]
        slack = (model.block_interval_ms + 999) // 1000
        return max(enforcement_delta(model, c) for c in challenges) + slack

    def pay_route(self, invoice: Invoice, hops: list[OnionHop]) -> Payment:
        """Pay ``invoice`` along ``hops`` (hops[0] is the HTLC we offer in our channel)."""
        check_payable(invoice, self.clock())
        if invoice.payment_hash in self.payments:
            raise InvoiceAlreadyPaid("this invoice was already paid from this node")
        last = hops[-1]
        if last.node != invoice.payee or last.asset != invoice.asset:
            raise CircuitError("the route does not end at the invoice's payee and asset")
        if last.amount != invoice.amount:
            raise WrongAmount("the route delivers a different amount than the invoice asks")
        first = hops[0]
        channel = self.channels[first.channel]
        if not channel.active:
            raise WrongChannel("the first channel of the route is not active")
        htlc = channel.offer_htlc(first.asset, first.amount, invoice.payment_hash, first.expiry)
        payment = Payment(
            invoice.payment_hash, invoice.amount, invoice.asset, first.amount, first.asset
        )
        self.payments[invoice.payment_hash] = payment
        self._record_payment(payment)
        self.htlcs[(channel.channel_id, htlc.id)] = htlc
        self._queue(
            channel,
            AddHtlc(htlc, onion=build_onion(hops)),
        )
        self.flush()
        self._commit_point()
        return payment

    def force_close(self, channel_id: bytes) -> TxReceipt:
        channel = self.channels[channel_id]
        latest = channel.machine.latest
        if latest is None:
            raise WrongChannel("nothing signed to register")
        receipt = channel.backend.register(channel.params, latest, channel.account)
        channel.receipts.append(receipt)
        channel.status = "disputed"
        self._commit_point()
        return receipt

    # === the watcher ==========================================================================

    def on_chain_events(self, chain: str, events: list[ChainEvent]) -> None:
        for event in events:
            actions: list[Action] = []
            if isinstance(event, Funded):
                self._on_funded(event)
            elif isinstance(event, Registered) and event.channel_id in self.channels:
                channel = self.channels[event.channel_id]
                latest = channel.machine.latest
                actions = self.watcher.on_registered(
                    event.channel_id,
                    event.version,
                    event.timeout,
                    latest.version if latest else None,
                )
                if channel.status in ("active", "closing"):
                    channel.status = "disputed"
                self.note(
                    f"{chain}: version {event.version} of {event.channel_id.hex()[:8]} registered"
                )
            elif isinstance(event, Concluded) and event.channel_id in self.channels:
                self.watcher.on_concluded(event.channel_id)
                channel = self.channels[event.channel_id]
                if channel.status != "closed":
                    # The peer concluded (a cooperative close it submitted, or the end of a
                    # dispute). Chains that pay out in the conclusion (EVM) answer withdraw
                    # with an "already paid" receipt, or pull a payout they had to credit;
                    # on others (Bitcoin sweeps, Solana) this is where our side is paid.
                    self.note(f"{chain}: {event.channel_id.hex()[:8]} concluded; withdrawing")
                    self._withdraw_all(channel)
            elif isinstance(event, PreimageRevealed):
                actions = self.watcher.on_preimage(event.payment_hash, event.preimage)
            self._act(actions)
        self.flush()
        self._commit_point()

    def tick(self) -> None:
        self._act(self.watcher.tick(self.clock()))
        self.flush()
        self._commit_point()

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            self.count(f"watcher_{type(action).__name__}")
            try:
                self._act_one(action)
            except LedgerError as error:
                self.note(f"watcher action {type(action).__name__} failed: {error}")
                if isinstance(action, ConcludeAndWithdraw):
                    self.watcher.postpone(action.channel_id, self.clock() + 60)

    def _act_one(self, action: Action) -> None:
        if isinstance(action, PreimageLearned):
            if action.payment_hash not in self.preimages:
                self.note(f"learnt preimage {action.payment_hash.hex()[:8]} on-chain")
            self._preimage_known(action.payment_hash, action.preimage)
            return
        channel = self.channels[action.channel_id]
        latest = channel.machine.latest
        if isinstance(action, Refute) and latest is not None:
            channel.receipts.append(
                channel.backend.challenge(channel.params, latest, channel.account)
            )
            self.note(f"refuted stale version {action.registered_version} with {latest.version}")
        elif isinstance(action, ForceClose):
            self.force_close(action.channel_id)
            self.note(f"force-closed {action.channel_id.hex()[:8]}: {action.reason}")
        elif isinstance(action, ClaimOnChain):
            htlc = self.htlcs[(action.channel_id, action.htlc_id)]
            channel.receipts.append(
                channel.backend.claim_htlc(channel.params, htlc, action.preimage, channel.account)
            )
            self.note(f"claimed HTLC {action.htlc_id} on {channel.params.chain}")
        elif isinstance(action, RefundOnChain):
            htlc = self.htlcs[(action.channel_id, action.htlc_id)]
            try:
                channel.receipts.append(
                    channel.backend.refund_htlc(channel.params, htlc, channel.account)
                )
            except LedgerError as error:
                self.note(f"refund of HTLC {action.htlc_id} waits for conclusion: {error.reason}")
                return
            self._refunded_on_chain(channel, htlc)
        elif isinstance(action, ConcludeAndWithdraw):
            latest = channel.machine.latest
            channel.receipts.append(channel.backend.conclude(channel.params, channel.account))
            self.watcher.on_concluded(channel.channel_id)
            self._withdraw_all(channel)
            self.note(f"concluded {channel.channel_id.hex()[:8]} on-chain and withdrew")
            for htlc in latest.state.htlcs if latest else ():
                if htlc.payer == channel.me and htlc.payment_hash not in self.preimages:
                    self._refunded_on_chain(channel, htlc)

    def _refunded_on_chain(self, channel: Channel, htlc: Htlc) -> None:
        """Our outgoing HTLC came back on-chain after its expiry (no preimage was revealed in
        time, so the payee can no longer take it): fail the HTLC it was forwarded for
        upstream off-chain, while the upstream expiry is still a full delta away, instead of
        pushing the upstream channel on-chain too; or mark our own payment failed."""
        if (channel.channel_id, htlc.id) not in self.htlcs:
            return
        self._on_htlc_failed(channel, htlc.id, "expired downstream; refunded on-chain")

    # === persistence ==========================================================================

    def _commit_point(self) -> None:
        """End of an event: checkpoint now, unless the driver groups several events into
        one commit (``autocommit = False``; it then calls :meth:`checkpoint` itself before
        releasing the outbox)."""
        if self.autocommit:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write every snapshot this event changed and the node's own state in one
        transaction. Drivers call it after each event and before releasing ``outbox``."""
        write = self.take_checkpoint()
        if write is not None and self.store is not None:
            try:
                self.store.save_checkpoint(*write)
            except BaseException:
                self._written_state = b""  # rewrite the node's state with the next checkpoint
                raise

    def take_checkpoint(self) -> tuple[list[ChannelSnapshot], dict[str, bytes]] | None:
        """What :meth:`checkpoint` would write (snapshots, records), or ``None`` if nothing
        changed, handed to the caller to write: a server writes it on another thread while
        the node goes on with the next events, and releases this event's outbox only once
        it is written. The node counts it as written from now on: if the write fails the
        process must stop (memory would be ahead of disk)."""
        if self.store is None:
            self._dirty.clear()
            self._dirty_channels.clear()
            return None
        snapshots = list(self._dirty.values())
        self._dirty.clear()
        records, self._dirty_records = self._dirty_records, {}
        touched = set(self._dirty_channels)  # the same set object stays every channel's sink
        self._dirty_channels.clear()
        for channel_id in touched:
            channel = self.channels.get(channel_id)
            if channel is not None:
                records[CHANNEL_PREFIX + channel.channel_id.hex()] = encode_record(
                    ChannelMeta(
                        channel.channel_id,
                        tuple(channel.deposits.items()),
                        tuple(channel.queue),
                        channel.in_flight,
                        channel.next_htlc_seq,
                        channel.funded_by_me,
                        channel.funded_by_peer,
                        channel.status,
                    )
                )
        state = encode_node_state(self._state())
        if state != self._written_state:
            records[NODE_STATE_KEY] = state
            self._written_state = state
        if not snapshots and not records:
            return None  # nothing changed (a read): no transaction, no fsync
        return snapshots, records

    def _record_payment(self, payment: Payment) -> None:
        self._dirty_records[PAYMENT_PREFIX + payment.payment_hash.hex()] = encode_record(payment)
        if payment.status != "pending" and self.report_outcomes:
            self.finished_payments.append(payment.payment_hash)

    def _record_invoice(self, payment_hash: bytes) -> None:
        invoice, preimage = self.invoices[payment_hash]
        paid = payment_hash in self.paid_invoices
        self._dirty_records[INVOICE_PREFIX + payment_hash.hex()] = encode_record(
            InvoiceRecord(invoice, preimage, paid)
        )

    def _state(self) -> NodeStateV1:
        """What is in flight: bounded by open HTLCs, not by history (channels, payments and
        invoices are records of their own, written only when they change)."""
        return NodeStateV1(
            preimages=tuple(self.preimages.items()),
            htlcs=tuple((cid, htlc) for (cid, _), htlc in self.htlcs.items()),
            links=tuple(self.links_by_out.values()),
            watcher=self.watcher.state,
        )

    def restore(self) -> None:
        """Rebuild channels, payments, links and watcher duties from the store (restart)."""
        if self.store is None:
            return
        raw = self.store.get_setting(NODE_STATE_KEY)
        state = decode_node_state(raw) if raw is not None else NodeStateV1()
        metas = {
            meta.channel_id: meta
            for _, value in self.store.settings_with_prefix(CHANNEL_PREFIX)
            for meta in (decode_record(value, ChannelMeta),)
        }
        snapshots = self.store.load_snapshots()
        for record in self.store.list_channels():
            meta = metas.get(record.channel_id)
            if meta is None:
                continue  # created but never checkpointed: nothing was signed or sent
            backend = self.backends[record.params.chain]
            account = self.accounts[record.params.chain]
            machine = ChannelMachine(
                record.params,
                record.channel_id,
                record.me,
                backend.authority(record.params, account, record.me),
                record.initial,
                policy=HtlcPolicy(min_lead=self._min_lead(backend, record.params)),
            )
            snapshot = snapshots.pop(record.channel_id, None)
            if snapshot is not None:
                machine.restore(snapshot)
            self.channels[record.channel_id] = restored = Channel(
                record.params,
                record.channel_id,
                record.me,
                machine,
                backend,
                account,
                record.params.participants[1 - record.me].node_id,
                dict(meta.deposits),
                queue=list(meta.queue),
                in_flight=meta.in_flight,
                next_htlc_seq=meta.next_htlc_seq,
                funded_by_me=meta.funded_by_me,
                funded_by_peer=meta.funded_by_peer,
                status=meta.status,
            )
            restored.dirty_sink = self._dirty_channels  # just read: nothing to write back
            restored.queued_sink = self._queued
            if restored.queue:
                self._queued[record.channel_id] = None
        for _, value in self.store.settings_with_prefix(INVOICE_PREFIX):
            stored = decode_record(value, InvoiceRecord)
            self.invoices[stored.invoice.payment_hash] = (stored.invoice, stored.preimage)
            if stored.paid:
                self.paid_invoices.add(stored.invoice.payment_hash)
        for _, value in self.store.settings_with_prefix(PAYMENT_PREFIX):
            payment = decode_record(value, Payment)
            self.payments[payment.payment_hash] = payment
        self.preimages = dict(state.preimages)
        self.htlcs = {(cid, htlc.id): htlc for cid, htlc in state.htlcs}
        self.links_by_out = {(link.out_channel, link.out_htlc): link for link in state.links}
        self.watcher = Watcher(state.watcher)
        # A proposal of ours in flight was persisted; if the peer never answered, it is
        # retransmitted by reestablish. Updates still queued are proposed as usual.


def _funding_key(channel_id: bytes, asset: Asset) -> str:
    return f"{FUNDING_PREFIX}{channel_id.hex()}/{asset.chain}/{asset.token}"
