"""The node on the chains: what chain events mean for its channels, and the watcher's
actions carried out through each channel's backend (register, refute, claim, refund,
conclude, withdraw), plus the cooperative close once its final state is signed.

The watcher itself (:mod:`chenilles_hub.core.watcher`) is pure: it turns events and time
into actions. This module is where those actions meet a ledger, and where a ledger's
refusal is noted instead of stopping the node.
"""

from __future__ import annotations

import logging

from ...backend import (
    ChainEvent,
    Concluded,
    Funded,
    LedgerError,
    PreimageRevealed,
    Registered,
    TxReceipt,
)
from ...core import SubmitToLedger
from ...core.errors import WrongChannel
from ...core.watcher import (
    Action,
    ClaimOnChain,
    ConcludeAndWithdraw,
    ForceClose,
    PreimageLearned,
    RefundOnChain,
    Refute,
)
from .context import NodeContext
from .opening import Opening
from .payments import Payments
from .records import Channel

log = logging.getLogger("chenilles.node")

#: Seconds before a failed conclusion is tried again.
CONCLUDE_RETRY = 60
#: Seconds between attempts to collect a payout the chain did not release yet (a closing
#: transaction not confirmed yet, say).
WITHDRAW_RETRY = 5


class ChainActions:
    def __init__(self, ctx: NodeContext, opening: Opening, payments: Payments) -> None:
        self.ctx = ctx
        self.opening = opening
        self.payments = payments
        #: When each channel whose payout is not collected yet may be tried again.
        self._withdraw_at: dict[bytes, int] = {}

    def on_chain_events(self, chain: str, events: list[ChainEvent]) -> None:
        watcher = self.ctx.watcher
        for event in events:
            actions: list[Action] = []
            if isinstance(event, Funded):
                self.opening.on_funded(event)
            elif isinstance(event, Registered) and event.channel_id in self.ctx.channels:
                channel = self.ctx.channels[event.channel_id]
                latest = channel.machine.latest
                actions = watcher.on_registered(
                    event.channel_id,
                    event.version,
                    event.timeout,
                    latest.version if latest else None,
                )
                if channel.status in ("active", "closing"):
                    channel.status = "disputed"
                self.ctx.note(
                    f"{chain}: version {event.version} of {event.channel_id.hex()[:8]} registered"
                )
            elif isinstance(event, Concluded) and event.channel_id in self.ctx.channels:
                watcher.on_concluded(event.channel_id)
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

    def tick(self) -> None:
        self.act(self.ctx.watcher.tick(self.ctx.clock()))
        self._retry_withdrawals()

    def _retry_withdrawals(self) -> None:
        """A closed channel is ``closed`` only once every payout reached our account; until
        then it stays ``closing`` and its withdrawal is tried again (after a restart too)."""
        now = self.ctx.clock()
        for channel in self.ctx.channels.values():
            if channel.status != "closing" or not channel.concluded:
                continue  # nothing to collect yet (or already collected)
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
                self.ctx.note(f"watcher action {type(action).__name__} failed: {error}")
                if isinstance(action, ConcludeAndWithdraw):
                    self.ctx.watcher.postpone(action.channel_id, self.ctx.clock() + CONCLUDE_RETRY)

    def _act_one(self, action: Action) -> None:
        if isinstance(action, PreimageLearned):
            if action.payment_hash not in self.payments.preimages:
                self.ctx.note(f"learnt preimage {action.payment_hash.hex()[:8]} on-chain")
            self.payments.preimage_known(action.payment_hash, action.preimage)
            return
        channel = self.ctx.channels[action.channel_id]
        latest = channel.machine.latest
        if isinstance(action, Refute) and latest is not None:
            channel.receipts.append(
                channel.backend.challenge(channel.params, latest, channel.account)
            )
            self.ctx.note(
                f"refuted stale version {action.registered_version} with {latest.version}"
            )
        elif isinstance(action, ForceClose):
            self.force_close(action.channel_id)
            self.ctx.note(f"force-closed {action.channel_id.hex()[:8]}: {action.reason}")
        elif isinstance(action, ClaimOnChain):
            htlc = self.payments.htlcs[(action.channel_id, action.htlc_id)]
            channel.receipts.append(
                channel.backend.claim_htlc(channel.params, htlc, action.preimage, channel.account)
            )
            self.ctx.note(f"claimed HTLC {action.htlc_id} on {channel.params.chain}")
        elif isinstance(action, RefundOnChain):
            htlc = self.payments.htlcs[(action.channel_id, action.htlc_id)]
            try:
                channel.receipts.append(
                    channel.backend.refund_htlc(channel.params, htlc, channel.account)
                )
            except LedgerError as error:
                self._failed_receipt(channel.channel_id, error)
                self.ctx.note(
                    f"refund of HTLC {action.htlc_id} waits for conclusion: {error.reason}"
                )
                return
            self.payments.refunded_on_chain(channel, htlc)
        elif isinstance(action, ConcludeAndWithdraw):
            channel.receipts.append(channel.backend.conclude(channel.params, channel.account))
            self.ctx.watcher.on_concluded(channel.channel_id)
            self.withdraw_all(channel)
            self.ctx.note(f"concluded {channel.channel_id.hex()[:8]} on-chain and withdrew")
            for htlc in latest.state.htlcs if latest else ():
                if htlc.payer == channel.me and htlc.payment_hash not in self.payments.preimages:
                    self.payments.refunded_on_chain(channel, htlc)

    def _failed_receipt(self, channel_id: bytes | None, error: LedgerError) -> None:
        """A refused action that still cost a fee goes into the channel's books."""
        channel = self.ctx.channels.get(channel_id) if channel_id is not None else None
        if error.receipt is not None and channel is not None:
            channel.receipts.append(error.receipt)

    def force_close(self, channel_id: bytes) -> TxReceipt:
        """Register our latest signed state on-chain: the start of a dispute."""
        channel = self.ctx.channels[channel_id]
        latest = channel.machine.latest
        if latest is None:
            raise WrongChannel("nothing signed to register")
        receipt = channel.backend.register(channel.params, latest, channel.account)
        channel.receipts.append(receipt)
        channel.status = "disputed"
        return receipt

    def submit(self, channel: Channel, effect: SubmitToLedger) -> None:
        """The core asks for a ledger action: the cooperative close of a signed final state."""
        if effect.action == "conclude_cooperative":
            receipt = channel.backend.close_cooperative(
                channel.params, effect.signed, channel.account
            )
            channel.receipts.append(receipt)
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
                channel.receipts.append(
                    channel.backend.withdraw(channel.params, channel.me, channel.account, asset)
                )
            except LedgerError as error:
                self._failed_receipt(channel.channel_id, error)
                pending = True
                text = f"withdraw {asset} from {channel.channel_id.hex()[:8]}: {error}"
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
