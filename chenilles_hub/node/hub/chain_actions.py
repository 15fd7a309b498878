"""The node on the chains: what chain events mean for its channels, and the watcher's
actions carried out through each channel's backend (register, refute, claim, refund,
conclude, withdraw), plus the cooperative close once its final state is signed.

The watcher itself (:mod:`chenilles_hub.core.watcher`) is pure: it turns events and time
into actions. This module is where those actions meet a ledger, where each chain's own
clock is read for it (:class:`ChainClocks`: deadlines are judged in the time of the chain
that judges the transaction, never the node's), and where a ledger's refusal is noted and
the action tried again on that chain's next block instead of stopping the node.

Reorgs: a ``Reorged`` event re-arms the watcher for the chain's channels (a refutation or
a conclusion the reorg took away is sent again; the chain then reports what its new branch
holds), and a reorg as deep as the confirmation depth sends every active channel of the
chain back to the chain to look for its deposits again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping

from ...backend import (
    ChainEvent,
    ChannelRecords,
    Concluded,
    Funded,
    LedgerError,
    NewBlock,
    NothingToTake,
    NotRegistered,
    NotYet,
    PreimageRevealed,
    Registered,
    Reorged,
    TxReceipt,
)
from ...core import Htlc, SignedState, SubmitToLedger
from ...core.errors import WrongChannel
from ...core.watcher import (
    Action,
    ChainClock,
    ClaimOnChain,
    ConcludeAndWithdraw,
    ForceClose,
    PreimageLearned,
    RefundOnChain,
    Refute,
)
from .context import NodeContext
from .funding import Funding
from .payments import Payments
from .records import Channel

log = logging.getLogger("chenilles.node")

#: The watcher's actions, in the operator's words.
_ACTION_WORDS = {
    "Refute": "answering a stale registration",
    "ForceClose": "registering our state on-chain",
    "ClaimOnChain": "claiming an HTLC on-chain",
    "RefundOnChain": "refunding an HTLC on-chain",
    "ConcludeAndWithdraw": "concluding and withdrawing",
}

#: What a Bitcoin dispute past its period waits for while HTLCs are still ours to take.
_HTLCS_TO_TAKE = "the dispute's period is over; HTLCs still to take on-chain at their deadlines"
_DIGITS = re.compile(r"\d+")

#: Seconds between attempts to collect a payout the chain did not release yet (a closing
#: transaction not confirmed yet, say).
WITHDRAW_RETRY = 5


class ChainClocks(Mapping[bytes, ChainClock]):
    """Each channel's chain clock for one watcher tick, read lazily: one
    ``next_block_time`` per chain that has something due, and none for a chain that cannot
    be reached (its channels are simply not acted on in this tick). A chain whose clock
    came with this tick's read (``fetched``) is not called at all."""

    def __init__(
        self, ctx: NodeContext, heights: Mapping[str, int], fetched: Mapping[str, int] | None = None
    ) -> None:
        self.ctx = ctx
        self.fetched = fetched or {}
        self.heights = heights
        self._by_chain: dict[str, ChainClock | None] = {}

    def chain(self, chain: str) -> ChainClock | None:
        if chain not in self._by_chain and chain in self.fetched:
            self.ctx.count("clock_reads_fetched")
            self._by_chain[chain] = ChainClock(self.fetched[chain], self.heights.get(chain, -1))
        if chain not in self._by_chain:
            self.ctx.count("clock_reads_node_thread")
            backend = self.ctx.backends[chain]
            # A plugin written before next_block_time existed: its latest block's time (the
            # watcher then acts a block later than it could, never earlier).
            read = getattr(backend, "next_block_time", None) or backend.now
            try:
                time = read()
                self._by_chain[chain] = ChainClock(time, self.heights.get(chain, -1))
            except Exception as error:  # an unreachable chain must not stop the others
                self.ctx.count("chain_clock_errors")
                self.ctx.note(f"{chain}: cannot read the chain's time: {error}")
                self._by_chain[chain] = None
        return self._by_chain[chain]

    def asked(self) -> set[str]:
        """The chains whose clock was asked for (read or not)."""
        return set(self._by_chain)

    def __getitem__(self, channel_id: bytes) -> ChainClock:
        channel = self.ctx.channels.get(channel_id)
        clock = None if channel is None else self.chain(channel.params.chain)
        if clock is None:
            raise KeyError(channel_id)
        return clock

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.ctx.channels)

    def __len__(self) -> int:
        return len(self.ctx.channels)


class ChainActions:
    def __init__(self, ctx: NodeContext, funding: Funding, payments: Payments) -> None:
        self.ctx = ctx
        self.funding = funding
        self.payments = payments
        #: When each channel whose payout is not collected yet may be tried again.
        self._withdraw_at: dict[bytes, int] = {}
        #: The tip height last reported per chain (``NewBlock``): how deep a conclusion is.
        self.heights: dict[str, int] = {}
        #: The chains whose clock the last watcher tick asked for.
        self._clocks_asked: set[str] = set()
        #: The running watcher tick's clocks (a retried action takes its time from them).
        self._clocks: ChainClocks | None = None

    # --- events -----------------------------------------------------------------------------

    def on_chain_events(self, chain: str, events: list[ChainEvent]) -> None:
        # What the chain transactions these events may set off rely on (the state a
        # refutation registers, a preimage learnt in an earlier job) is on disk first. Not
        # between the watcher's decision and the transaction: the watcher marks an action
        # taken when it decides it, and that mark must not reach the disk before the
        # action has (a crash in between would never take it again). Only registrations
        # and conclusions set transactions off here (a refutation, a withdrawal).
        if any(isinstance(e, Registered | Concluded) for e in events):
            self.ctx.durable_or_note()
        # The tip first: a conclusion reported in this batch is at most this high, so its
        # finality is never judged too early.
        tips = [e.height for e in events if isinstance(e, NewBlock)]
        if tips:
            self.heights[chain] = max(tips)
        watcher = self.ctx.watcher
        for event in events:
            actions: list[Action] = []
            if isinstance(event, Funded):
                self.funding.on_funded(event)
            elif isinstance(event, Reorged):
                self.on_reorged(chain, event)
            elif isinstance(event, Registered) and event.channel_id in self.ctx.channels:
                channel = self.ctx.channels[event.channel_id]
                latest = channel.machine.latest
                actions = watcher.on_registered(
                    event.channel_id,
                    event.version,
                    event.timeout,
                    latest.version if latest else None,
                    self.heights.get(chain, -1),
                )
                if latest is not None and latest.version == event.version:
                    self._note_registration(channel, latest)
                if channel.status in ("opening", "active", "closing"):
                    channel.status = "disputed"
                    channel.waiting = ""
                self.ctx.note(
                    f"{chain}: version {event.version} of {event.channel_id.hex()[:8]} registered"
                )
            elif isinstance(event, Concluded) and event.channel_id in self.ctx.channels:
                watcher.on_concluded(event.channel_id, self._final_height(chain, None))
                channel = self.ctx.channels[event.channel_id]
                if channel.status != "closed":
                    # The peer concluded (a cooperative close it submitted, or the end of a
                    # dispute). Chains that pay out in the conclusion (EVM) answer withdraw
                    # with an "already paid" receipt, or pull a payout they had to credit;
                    # on others (Bitcoin sweeps, Solana) this is where our side is paid.
                    self.ctx.note(f"{chain}: {event.channel_id.hex()[:8]} concluded; withdrawing")
                    self.withdraw_all(channel)
            elif isinstance(event, PreimageRevealed):
                actions = watcher.on_preimage(event.payment_hash, event.preimage)
            self.act(actions)
        if tips:
            self.funding.check_chain(chain)

    def _note_registration(self, channel: Channel, latest: SignedState) -> None:
        """The chain shows a registration of our latest version. A backend that keeps
        records (Bitcoin) notes our registration when it broadcasts it, and needs that note
        to claim our commitment's HTLCs; a crash between the broadcast and the checkpoint
        after it loses the note. So it is asked to note it again, which sends nothing (the
        registration may be the peer's, or taken back by a reorg since). See
        ``ChannelRecords``."""
        if not isinstance(channel.backend, ChannelRecords):
            return
        try:
            noted = channel.backend.note_registration(channel.params, latest, channel.account)
        except Exception as error:  # a chain that did not answer: the claim's retries say so
            log.warning("%s: noting the registration failed: %r", self.ctx.name, error)
            return
        if noted:
            self.ctx.pending.channels.add(channel.channel_id)  # its record written now

    def _register_again(self, channel: Channel, latest: SignedState | None) -> None:
        """The chain reported a registration and holds none now: a reorg took it back and
        nobody sent it again. The channel was being closed on-chain, so we finish that with
        our latest state (a newer registration of the peer's would have been reported). The
        chain reports ours, with its own timeout; asked again while ours waits to be mined,
        the backend sends nothing."""
        if latest is None or not latest.complete:
            raise LedgerError(
                "conclude", "no registration on-chain and no signed state to register"
            )
        receipt = channel.backend.register(channel.params, latest, channel.account)
        if receipt.txid:
            channel.add_receipt(receipt)
            self.ctx.note(
                f"{channel.params.chain}: the registration of {channel.channel_id.hex()[:8]} "
                "is gone from the chain (a reorg); registered our latest state to finish the "
                "close"
            )

    def on_reorged(self, chain: str, event: Reorged) -> None:
        """Blocks of ``chain`` were replaced. The watcher forgets what it did for the
        chain's channels (each action is taken again if still due) and undoes conclusions
        that were not final yet; deposits are looked for again if the reorg was as deep
        as the confirmation depth."""
        self.ctx.count("chain_reorgs")
        self.ctx.note(f"{chain}: reorg of depth {event.depth} ({len(event.txids)} transactions)")
        on_chain = [c for c in self.ctx.channels.values() if c.params.chain == chain]
        for channel_id in self.ctx.watcher.on_reorged(c.channel_id for c in on_chain):
            channel = self.ctx.channels[channel_id]
            if channel.status == "closed":
                channel.status = "disputed"
                self.ctx.note(
                    f"{chain}: the conclusion of {channel_id.hex()[:8]} is not final any more"
                )
        if event.depth >= self.ctx.depth(chain):
            self.funding.recheck_active(chain)

    def _final_height(self, chain: str, block: int | None) -> int:
        """The height from which a conclusion in ``block`` (or in a block up to the tip
        we know of) is as deep as the chain's confirmation depth."""
        tip = self.heights.get(chain, -1)
        included = block if block is not None else tip
        if included < 0:
            included = tip if tip >= 0 else 0
        return included + self.ctx.depth(chain) - 1

    # --- time ---------------------------------------------------------------------------------

    def tick(self, fetched_clocks: Mapping[str, int]) -> None:
        self.ctx.durable_or_note()  # before any action: see ``on_chain_events``
        clocks = self._clocks = ChainClocks(self.ctx, self.heights, fetched_clocks)
        try:
            self.act(self.ctx.watcher.tick(clocks))
        finally:
            self._clocks = None
            self._clocks_asked = clocks.asked()
        self._retry_withdrawals()

    def watched_chains(self) -> set[str]:
        """The chains whose clock the watcher needs: those it asked for at its last tick,
        and those of the channels with an HTLC in flight or a dispute now (a guarded
        channel alone needs no clock)."""
        watcher = self.ctx.watcher
        ids = set(watcher.channels_with_duties())
        ids.update(channel_id for channel_id, _ in watcher.state.disputes)
        channels = self.ctx.channels
        return {channels[c].params.chain for c in ids if c in channels} | self._clocks_asked

    def _retry_withdrawals(self) -> None:
        """A closed channel is ``closed`` only once every payout reached our account; until
        then it stays ``closing`` and its withdrawal is tried again (after a restart too)."""
        now = self.ctx.clock()
        collecting = self.ctx.collecting
        for channel_id in list(collecting):
            channel = self.ctx.channels.get(channel_id)
            if channel is None or not channel.collecting:
                del collecting[channel_id]  # collected (closed), or never was: not again
                continue
            if self._withdraw_at.get(channel.channel_id, 0) > now:
                continue
            self._withdraw_at[channel.channel_id] = now + WITHDRAW_RETRY
            self.withdraw_all(channel, retry=True)

    def act(self, actions: list[Action]) -> None:
        for action in actions:
            self.ctx.count(f"watcher_{type(action).__name__}")
            try:
                self._act_one(action)
            except LedgerError as error:
                self._failed_receipt(getattr(action, "channel_id", None), error)
                self._action_failed(action, str(error))
                self._retry(action)
            except Exception as error:  # a chain that did not answer: the next block
                self.ctx.count("watcher_action_errors")
                self._action_failed(action, repr(error))
                self._retry(action)

    def _action_failed(self, action: Action, reason: str) -> None:
        """Noted, and kept as the channel's last error (the operator's ``channel show``)."""
        text = (
            f"{_ACTION_WORDS.get(type(action).__name__, type(action).__name__)} failed "
            f"(tried again on the next block): {reason}"
        )
        self.ctx.note(f"watcher action {type(action).__name__} failed: {reason}")
        channel = self.ctx.channels.get(getattr(action, "channel_id", b""))
        if channel is not None:
            channel.failed(text, self.ctx.clock())

    def _retry(self, action: Action) -> None:
        """Take ``action`` again in the chain's next block (its time is past the one the
        action was judged at), not after a fixed delay."""
        channel_id = getattr(action, "channel_id", None)
        channel = None if channel_id is None else self.ctx.channels.get(channel_id)
        if channel is None:
            return
        clocks = self._clocks or ChainClocks(self.ctx, self.heights)
        clock = clocks.chain(channel.params.chain)
        if clock is not None:
            self.ctx.watcher.retry_later(action, clock.time + 1)

    def _act_one(self, action: Action) -> None:
        if isinstance(action, PreimageLearned):
            if action.payment_hash not in self.payments.preimages:
                self.ctx.note(f"learnt preimage {action.payment_hash.hex()[:8]} on-chain")
            self.payments.preimage_known(action.payment_hash, action.preimage)
            return
        channel = self.ctx.channels[action.channel_id]
        latest = channel.machine.latest
        if isinstance(action, Refute) and latest is not None:
            receipt = channel.backend.challenge(channel.params, latest, channel.account)
            if receipt.txid:  # else the chain has our answer already: nothing was sent
                channel.add_receipt(receipt)
                self.ctx.note(
                    f"refuted stale version {action.registered_version} with {latest.version}"
                )
        elif isinstance(action, ForceClose):
            self.force_close(action.channel_id)
            self.ctx.note(f"force-closed {action.channel_id.hex()[:8]}: {action.reason}")
        elif isinstance(action, ClaimOnChain | RefundOnChain):
            self._take_htlc(channel, action, latest)
        elif isinstance(action, ConcludeAndWithdraw):
            self._conclude(channel)

    def _take_htlc(
        self, channel: Channel, action: ClaimOnChain | RefundOnChain, latest: SignedState | None
    ) -> None:
        """Claim or refund one HTLC on-chain. Where the conclusion pays every HTLC (EVM,
        Solana) a refund the ledger refuses waits for it; where each HTLC is an output of
        its own (Bitcoin) a refusal is tried again on the next block (``act``), and the HTLC
        counts taken only once its spend is mined (``_taken``)."""
        htlc = self.payments.htlcs[(action.channel_id, action.htlc_id)]
        backend = channel.backend
        resolves = backend.info.conclusion_resolves_htlcs
        claim = isinstance(action, ClaimOnChain)
        try:
            if isinstance(action, ClaimOnChain):
                receipt = backend.claim_htlc(channel.params, htlc, action.preimage, channel.account)
            else:
                receipt = backend.refund_htlc(channel.params, htlc, channel.account)
        except LedgerError as error:
            if resolves and not claim:
                self._failed_receipt(channel.channel_id, error)
                self.ctx.note(
                    f"refund of HTLC {action.htlc_id} waits for conclusion: {error.reason}"
                )
                return
            if isinstance(error, NothingToTake):
                self._nothing_to_take(channel, htlc, error)
                return
            if isinstance(error, NotRegistered):  # not mined yet, or its registration gone
                self._registration_gone(channel, latest)
            raise
        if resolves:
            channel.add_receipt(receipt)
            if claim:
                self.ctx.note(f"claimed HTLC {action.htlc_id} on {channel.params.chain}")
            else:
                self.payments.refunded_on_chain(channel, htlc)
        elif self._taken(channel, action, receipt):
            if claim:
                self.payments.claimed_on_chain(channel, htlc)
            else:
                self.payments.refunded_on_chain(channel, htlc)

    def _conclude(self, channel: Channel) -> None:
        """The dispute's period is over on the chain's clock (or a conclusion a reorg took
        away is due again): conclude and withdraw. A cooperative close that a reorg took
        away (the watcher knows of no registration) is sent again with the final state
        both signed."""
        latest = channel.machine.latest
        watcher = self.ctx.watcher
        status = watcher.dispute(channel.channel_id)
        cooperative = status is not None and status.version < 0
        if cooperative and latest is not None and latest.state.final and latest.complete:
            receipt = channel.backend.close_cooperative(channel.params, latest, channel.account)
        else:
            try:
                receipt = channel.backend.conclude(channel.params, channel.account)
            except NotYet as early:
                self._not_yet(channel, latest, early)
                return
            except NotRegistered:
                if status is None or status.version < 0:
                    raise  # no registration was reported (a cooperative close undone)
                self._register_again(channel, latest)
                # Taken again on the next block: by then the chain reports our registration,
                # and its timeout makes the conclusion wait (register sends nothing twice).
                self._retry(ConcludeAndWithdraw(channel.channel_id))
                return
        if status is not None and status.concluded and not receipt.txid:
            # the check at depth: the chain still has the conclusion, it is final
            watcher.retire(channel.channel_id)
            return
        if self._still_to_take(channel, latest):
            self._wait_for_htlcs(channel, receipt)
            return
        channel.add_receipt(receipt)
        channel.waiting = ""
        watcher.on_concluded(
            channel.channel_id, self._final_height(channel.params.chain, receipt.block)
        )
        self.withdraw_all(channel)
        self.ctx.note(f"concluded {channel.channel_id.hex()[:8]} on-chain and withdrew")
        if channel.backend.info.conclusion_resolves_htlcs:
            # the conclusion paid every HTLC: ours not revealed came back
            for htlc in latest.state.htlcs if latest else ():
                if htlc.payer == channel.me and htlc.payment_hash not in self.payments.preimages:
                    self.payments.refunded_on_chain(channel, htlc)

    def _still_to_take(self, channel: Channel, latest: SignedState | None) -> bool:
        """Whether the dispute must stay open past its period for HTLCs of the state
        on-chain: only where the conclusion leaves them alone (``_htlcs_to_take``)."""
        return not channel.backend.info.conclusion_resolves_htlcs and bool(
            self._htlcs_to_take(channel, latest)
        )

    def _htlcs_to_take(self, channel: Channel, latest: SignedState | None) -> list[Htlc]:
        """On a chain whose conclusion leaves the HTLCs alone (Bitcoin), those of the state
        on-chain that our node still takes by a transaction of its own at their deadline:
        ours nobody revealed (refunded at expiry), the peer's whose preimage we know
        (claimed before expiry), and the peer's we forwarded, whose preimage may still come
        back before its outgoing HTLC expires. Any one is lost if the dispute ends before."""
        if latest is None:
            return []
        cid = channel.channel_id
        preimages, htlcs = self.payments.preimages, self.payments.htlcs
        forwarded = {
            link.in_htlc for link in self.payments.links_by_out.values() if link.in_channel == cid
        }
        return [
            htlc
            for htlc in latest.state.htlcs
            if (cid, htlc.id) in htlcs
            and (
                (htlc.payer == channel.me and htlc.payment_hash not in preimages)
                or (htlc.payee == channel.me and htlc.payment_hash in preimages)
                or (htlc.payee == channel.me and htlc.id in forwarded)
            )
        ]

    def _wait_for_htlcs(self, channel: Channel, receipt: TxReceipt) -> None:
        """The dispute's period is over but HTLCs are still ours to take: the dispute stays
        open (their duties fire at their deadlines), what matured is swept meanwhile, and
        the conclusion is asked again on the next block."""
        if receipt.txid:
            channel.add_receipt(receipt)
        self._wait(channel, _HTLCS_TO_TAKE)

    def _not_yet(self, channel: Channel, latest: SignedState | None, early: NotYet) -> None:
        """The dispute's period is over, but nothing of ours on-chain can be taken yet
        (Bitcoin: an output's own CSV delay): a wait, shown as the channel's, not an error,
        and the conclusion is asked again on the next block."""
        if self._still_to_take(channel, latest):
            self._wait(channel, _HTLCS_TO_TAKE)
        else:
            self._wait(channel, f"the dispute's period is over; {early.reason}")

    def _wait(self, channel: Channel, waiting: str) -> None:
        """Show what the channel's close waits for; noted when the wait changes kind (not
        when only a count of blocks does), and asked again on the next block."""
        if channel.waiting != waiting:
            if _DIGITS.sub("#", channel.waiting) != _DIGITS.sub("#", waiting):
                self.ctx.note(f"{channel.channel_id.hex()[:8]}: {waiting}")
            channel.waiting = waiting
        self._retry(ConcludeAndWithdraw(channel.channel_id))

    def _taken(
        self, channel: Channel, action: ClaimOnChain | RefundOnChain, receipt: TxReceipt
    ) -> bool:
        """On a chain whose HTLCs are outputs of their own (Bitcoin): whether the claim or
        refund is in a block (``receipt.block``). Until then it is asked again on every
        block (the backend sends nothing twice), so the HTLC counts as taken, and a refund
        fails the payment upstream, only once the chain holds it."""
        if receipt.txid:
            channel.add_receipt(receipt)
            self.ctx.note(
                f"{'claimed' if isinstance(action, ClaimOnChain) else 'refunded'} HTLC "
                f"{action.htlc_id} on {channel.params.chain}"
            )
        if receipt.block is not None:
            return True
        self._retry(action)
        return False

    def _nothing_to_take(self, channel: Channel, htlc: Htlc, error: LedgerError) -> None:
        """The chain holds nothing of this HTLC to take, and never will (trimmed as dust, or
        a penalty takes the whole commitment): resolved, one of ours failed, so the dispute
        does not wait for it."""
        self.ctx.note(f"HTLC {htlc.id} of {channel.channel_id.hex()[:8]}: {error.reason}")
        self.payments.on_htlc_failed(channel, htlc.id, f"nothing to take on-chain: {error.reason}")

    def _registration_gone(self, channel: Channel, latest: SignedState | None) -> None:
        """A claim or refund found no commitment on-chain (``NotRegistered``). With none
        reported, ours waits to be mined (a forced close of this tick); with one reported,
        it is gone (a reorg): we register ours, so the HTLC is taken before its deadline
        rather than after the old registration's period."""
        status = self.ctx.watcher.dispute(channel.channel_id)
        if status is not None and status.version >= 0:
            self._register_again(channel, latest)

    def _failed_receipt(self, channel_id: bytes | None, error: LedgerError) -> None:
        """A refused action that still cost a fee goes into the channel's books."""
        channel = self.ctx.channels.get(channel_id) if channel_id is not None else None
        if error.receipt is not None and channel is not None:
            channel.add_receipt(error.receipt)

    def force_close(self, channel_id: bytes) -> TxReceipt:
        """Register our latest signed state on-chain: the start of a dispute."""
        channel = self.ctx.channels[channel_id]
        latest = channel.machine.latest
        if latest is None:
            raise WrongChannel("nothing signed to register")
        receipt = channel.backend.register(channel.params, latest, channel.account)
        channel.add_receipt(receipt)
        channel.status = "disputed"
        channel.waiting = ""
        return receipt

    def submit(self, channel: Channel, effect: SubmitToLedger) -> None:
        """The core asks for a ledger action: the cooperative close of a signed final state."""
        if effect.action == "conclude_cooperative":
            receipt = channel.backend.close_cooperative(
                channel.params, effect.signed, channel.account
            )
            channel.add_receipt(receipt)
            channel.status = "closing"
            self.ctx.note(f"channel {channel.channel_id.hex()[:8]} closed cooperatively")
            self.withdraw_all(channel)

    def withdraw_all(self, channel: Channel, retry: bool = False) -> None:
        """Collect our payout of every asset; the channel is ``closed`` once all arrived.
        (A retry that fails again is only logged: the first failure is in the journal.)"""
        channel.concluded = True
        pending = False
        for asset in channel.params.assets:
            if asset in channel.withdrawn:
                continue
            try:
                channel.add_receipt(
                    channel.backend.withdraw(channel.params, channel.me, channel.account, asset)
                )
            except LedgerError as error:
                self._failed_receipt(channel.channel_id, error)
                pending = True
                text = f"withdraw {asset} from {channel.channel_id.hex()[:8]}: {error}"
                if channel.last_error != f"withdrawing {asset}: {error}":
                    channel.failed(f"withdrawing {asset}: {error}", self.ctx.clock())
                if retry:
                    log.debug("%s: %s", self.ctx.name, text)
                else:
                    self.ctx.note(text)
                continue
            channel.withdrawn = channel.withdrawn | {asset}
        if pending:
            channel.status = "closing"  # concluded: collecting what is ours
            return
        self._withdraw_at.pop(channel.channel_id, None)
        channel.status = "closed"
