"""Funding a channel and believing the chain about it: our deposits, each sent at most
once (a durable marker before it leaves), and the channel active only once the chain holds
every agreed deposit at the chain's confirmation depth. A peer's ``FundingDone`` is a hint to
look again, never proof; after a reorg as deep as the confirmation depth, active channels
are checked again.
"""

from __future__ import annotations

import logging

from ...backend import Funded, LedgerError
from ...core import Asset
from ...core.errors import ChannelError, ChannelNotOpen
from ...core.messages import Propose
from ..net import wire
from .context import NodeContext
from .opening import deposits_sent, funding_key, release_funding, was_sent
from .records import Channel

log = logging.getLogger("chenilles.node")

#: The funding marker when the ledger refused our deposit before anything was mined (it may
#: be sent again, and the channel may be abandoned); see ``was_sent`` for the others.
REFUSED = b"refused"


class NotAbandonable(ChannelError):
    """The channel may hold funds (ours sent, or any deposit on the chain): close it."""

    code = "not_abandonable"


class Funding:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    def fund(self, channel: Channel) -> None:
        """Send our deposits to the chain, each at most once, ever.

        A deposit leaves the process in a chain transaction, before the checkpoint that
        records it. So a durable marker is written *before* each one is sent: after a crash
        the node finds the marker, does not send it again (a second deposit would be locked
        in the channel for good) and waits for the chain to report it (:class:`Funded`)."""
        store = self.ctx.store
        txids: list[str] = []
        waiting = False
        for asset, (mine, _theirs) in channel.deposits.items():
            if mine <= 0:
                continue
            key = funding_key(channel.channel_id, asset)
            if store is not None:
                marker = store.get_setting(key)
                if (
                    marker is not None
                    and was_sent(marker)
                    and not self._lost(channel, asset, key, marker)
                ):
                    waiting = True  # sent before a crash: the chain will tell
                    self.ctx.note(
                        f"deposit of {asset} into {channel.channel_id.hex()[:8]} was "
                        "sent before a restart: waiting for the chain to report it"
                    )
                    continue
                # durable before it is sent, with the chain's time (see ``_lost``)
                store.set_setting(key, b"submitted@%d" % channel.backend.now())
            # The peer's signature on version 0 (and, on Bitcoin, its commitment signature
            # in the channel's record) came in this event: on disk before the deposit, or a
            # crash would leave the deposit on-chain and nothing to take it back with but
            # the peer's goodwill. After the marker: a crash once version 0 is on disk leaves
            # a channel no event will fund again (the peer sends nothing more), but the
            # marker does (``resend_lost``, once the chain shows none of the deposit); a
            # crash before, and the peer's Accept comes again after the restart.
            self.ctx.make_durable()
            try:
                receipt = channel.backend.fund(
                    channel.params, channel.me, channel.account, asset, mine
                )
            except LedgerError as error:
                if store is not None and error.receipt is None:
                    # Refused before anything was mined (insufficient funds, say): not
                    # sent, so tried again when the peer reestablishes, and abandonable.
                    store.set_setting(key, REFUSED)
                raise
            channel.add_receipt(receipt)
            txids.append(receipt.txid)
            self.ctx.note(f"funded {mine} {asset} into {channel.channel_id.hex()[:8]}")
        if waiting and not self._deposits_confirmed(channel):
            return
        self._funded_by_me(channel, tuple(txids))

    def _lost(self, channel: Channel, asset: Asset, key: str, marker: bytes) -> bool:
        """Whether a deposit marked as sent never reached the chain: the process died
        between the marker and the transaction. The chain shows none of our deposit of
        ``asset``, not even in its tip block, twice the chain's inclusion delay after the
        marker; then it is sent again (a fresh marker first). A marker without a time
        (written by an older version) starts the clock now."""
        if not marker.startswith(b"submitted"):
            return False  # confirmed by the chain
        store = self.ctx.store
        assert store is not None
        backend = channel.backend
        landed = self._landed(channel, asset)
        if landed is not False:
            return False  # it landed (activation waits for its depth), or no verdict
        try:
            now = backend.now()
        except Exception:  # an unreachable chain: no verdict, asked again on the next block
            return False
        _, _, stamp = marker.partition(b"@")
        if not stamp.isdigit():
            store.set_setting(key, b"submitted@%d" % now)
            return False
        return now >= int(stamp) + 2 * backend.time_model().inclusion_delay

    def _landed(self, channel: Channel, asset: Asset) -> bool | None:
        """Whether the chain shows our deposit of ``asset`` (at no depth: the tip counts);
        ``None`` if it cannot be read now."""
        try:
            held = channel.backend.holdings(channel.params, 1).get(asset, ())
        except Exception:  # an unreachable chain: no verdict, asked again on the next block
            return None
        return len(held) > channel.me and held[channel.me] > 0

    def resend_lost(self, channel: Channel) -> None:
        """On each block, for an opening channel with version 0 signed by both: send again
        the deposits we sent before a crash that the chain shows no trace of (``_lost``),
        and those the ledger refused (our wallet could not pay them: it may now)."""
        store = self.ctx.store
        if store is None or channel.funded_by_me or channel.machine.latest is None:
            return
        for asset, (mine, _theirs) in channel.deposits.items():
            key = funding_key(channel.channel_id, asset)
            marker = store.get_setting(key) if mine > 0 else None
            if marker == REFUSED:
                landed = self._landed(channel, asset)
                if landed is not False:
                    # It reached the chain after all (a refusal that was a receipt's
                    # timeout), or the chain cannot tell now: never a second deposit.
                    if landed:
                        self.ctx.note(
                            f"our deposit of {asset} into {channel.channel_id.hex()[:8]}, "
                            "read as refused, is on the chain"
                        )
                        self._confirm_ours(channel, key)
                    continue
                log.debug("%s: trying the refused deposit of %s again", self.ctx.name, asset)
            elif marker is not None and self._lost(channel, asset, key, marker):
                self.ctx.note(
                    f"deposit of {asset} into {channel.channel_id.hex()[:8]} never reached "
                    "the chain (a crash before it left): sending it again"
                )
            else:
                continue
            try:
                self.fund(channel)
            except LedgerError as error:
                # This channel's trouble, told to the operator (channel show); the block's
                # other events and channels go on (it used to abort them all).
                text = f"sending our deposit again failed: {error}"
                if not channel.last_error.startswith(text[:32]):  # the journal once, not
                    self.ctx.note(f"channel {channel.channel_id.hex()[:8]}: {text}")
                channel.failed(text, self.ctx.clock())  # on every block
            return

    def _funded_by_me(self, channel: Channel, txids: tuple[str, ...]) -> None:
        channel.funded_by_me = True
        self.ctx.send(channel.peer, wire.FundingDone(channel.channel_id, txids))
        self.check_funding(channel)

    def _deposits_confirmed(self, channel: Channel) -> bool:
        """Whether the chain reported every deposit of ours (only asked after a restart)."""
        store = self.ctx.store
        assert store is not None
        return all(
            store.get_setting(funding_key(channel.channel_id, asset)) == b"confirmed"
            for asset, (mine, _theirs) in channel.deposits.items()
            if mine > 0
        )

    def on_funded(self, event: Funded) -> None:
        """The chain reports a deposit. For a deposit of ours sent before a crash that
        forgot it, it is confirmed now, and we tell the peer; any deposit is a reason to
        look at the chain again (the event itself proves nothing: a reorg may take it)."""
        channel = self.ctx.channels.get(event.channel_id)
        if channel is None:
            return
        self._recover_our_deposit(channel, event)
        self.check_funding(channel)

    def _recover_our_deposit(self, channel: Channel, event: Funded) -> None:
        store = self.ctx.store
        if channel.funded_by_me or event.participant != channel.me:
            return
        if store is None or channel.deposits.get(event.asset, (0, 0))[0] <= 0:
            return
        key = funding_key(channel.channel_id, event.asset)
        if not was_sent(store.get_setting(key)):
            return  # not sent by us (yet): someone else deposited for us
        self._confirm_ours(channel, key)

    def _confirm_ours(self, channel: Channel, key: str) -> None:
        """The chain holds our deposit under ``key``: once it holds all of ours (and
        version 0 is signed by both), the channel counts as funded by us."""
        assert self.ctx.store is not None
        self.ctx.store.set_setting(key, b"confirmed")
        if channel.machine.latest is not None and self._deposits_confirmed(channel):
            self.ctx.note(f"the chain confirms our deposits into {channel.channel_id.hex()[:8]}")
            self._funded_by_me(channel, ())

    def on_funding_done(self, channel: Channel) -> None:
        """The peer says its deposits are sent: a hint to look at the chain, never proof."""
        channel.funded_by_peer = True
        self.check_funding(channel)

    # --- activation: the chain's word, at depth -----------------------------------------------

    def check_funding(self, channel: Channel) -> None:
        """Activate an opening channel once the chain holds exactly the agreed deposits at
        the chain's confirmation depth; until then say what it waits for. Called when we
        have sent our deposits, on the peer's ``FundingDone``, on every deposit the chain
        reports and on every new block of the channel's chain."""
        if channel.status != "opening" or not channel.funded_by_me:
            return
        if channel.machine.latest is None:
            return  # version 0 is not signed by both yet: nothing may be deposited
        shortfall = self._deposit_shortfall(channel)
        if shortfall is not None:
            if shortfall != channel.waiting:
                self.ctx.note(f"channel {channel.channel_id.hex()[:8]}: {shortfall}")
            channel.waiting = shortfall
            return
        channel.waiting = ""
        channel.status = "active"
        self.ctx.note(f"channel {channel.channel_id.hex()[:8]} is active")

    def check_chain(self, chain: str) -> None:
        """A new block on ``chain``: deposits may have reached their depth."""
        for channel in list(self.ctx.channels.values()):
            if channel.status == "opening" and channel.params.chain == chain:
                self.resend_lost(channel)
                self.check_funding(channel)

    def recheck_active(self, chain: str) -> None:
        """A reorg at least as deep as the confirmation depth: a deposit that made a
        channel active may be gone. Such a channel leaves ``active`` (no new payments, the
        peer's proposals refused) until the chain shows its deposits again."""
        for channel in list(self.ctx.channels.values()):
            if channel.status != "active" or channel.params.chain != chain:
                continue
            shortfall = self._deposit_shortfall(channel)
            if shortfall is not None:
                channel.status = "opening"
                channel.waiting = shortfall
                self.ctx.note(
                    f"channel {channel.channel_id.hex()[:8]} is not active any more after a "
                    f"reorg: {shortfall}"
                )

    def _deposit_shortfall(self, channel: Channel) -> str | None:
        """``None`` if the chain holds the agreed deposits of every asset at depth, else
        what is missing, in words. The agreed total is what every state distributes (the
        core's invariant), so it must be held exactly: less cannot be enforced, and more
        could not be closed cooperatively (or, on Bitcoin, not spent by any commitment)."""
        depth = self.ctx.depth(channel.params.chain)
        try:
            held = channel.backend.holdings(channel.params, depth)
        except Exception as error:  # an unreachable chain: still waiting, asked again
            return f"waiting for the chain to answer: {error}"
        me, peer = channel.me, 1 - channel.me
        for asset, (mine, theirs) in channel.deposits.items():
            amounts = list(held.get(asset, ()))
            got_mine = amounts[me] if len(amounts) > me else 0
            got_theirs = amounts[peer] if len(amounts) > peer else 0
            if got_mine + got_theirs == mine + theirs:
                continue
            if got_mine + got_theirs > mine + theirs:
                return (
                    f"the chain holds more than agreed: {got_mine + got_theirs} of "
                    f"{mine + theirs} {asset}"
                )
            who, got, wanted = (
                ("the peer's", got_theirs, theirs)
                if got_theirs < theirs
                else ("our", got_mine, mine)
            )
            return (
                f"waiting for {who} deposit: {got} of {wanted} {asset} confirmed "
                f"({depth} confirmations needed)"
            )
        return None

    def check_updatable(self, channel: Channel, message: object) -> None:
        """Refuse the peer's proposal of any state after version 0 while the channel is not
        active: its deposits are not on the chain at depth (yet, or any more after a
        reorg), so nothing it would carry, an HTLC to forward or a transfer, could be
        enforced."""
        if channel.status == "abandoned":
            raise ChannelNotOpen("the channel was abandoned by its operator before it was funded")
        if (
            isinstance(message, Propose)
            and message.state.version > 0
            and channel.status == "opening"
        ):
            raise ChannelNotOpen(
                f"the channel is not active: {channel.waiting or 'waiting for its deposits'}"
            )

    def abandon(self, channel: Channel) -> None:
        """Give up a channel whose funds never left: it is ``opening``, we never sent a
        deposit into it (no funding marker: not even one sent just before a crash), and the
        chain holds no deposit for it, ours or the peer's (checked at no depth at all: a
        deposit in the mempool or the tip counts). Anything else may hold money that only
        a close can release, so it is refused. The channel stays listed as ``abandoned``,
        its watcher duties are dropped and the peer's messages about it are refused."""
        cid = channel.channel_id
        if channel.status != "opening":
            raise NotAbandonable(f"the channel is {channel.status}, not opening: close it")
        ours = [asset for asset, (mine, _theirs) in channel.deposits.items() if mine > 0]
        sent = [
            str(asset)
            for asset in (ours if channel.funded_by_me else deposits_sent(self.ctx.store, channel))
        ]
        if sent:
            raise NotAbandonable(f"our deposit of {', '.join(sent)} was sent to the chain")
        try:
            held = channel.backend.holdings(channel.params, 0)
        except Exception as error:
            raise NotAbandonable(f"cannot check the chain for deposits: {error}") from error
        deposited = {str(a): list(v) for a, v in held.items() if any(v)}
        if deposited:
            raise NotAbandonable(f"the chain holds deposits for this channel: {deposited}")
        channel.status = "abandoned"
        release_funding(channel)
        channel.waiting = ""
        channel.queue = []
        self.ctx.watcher.retire(cid)
        self.ctx.note(f"channel {cid.hex()[:8]} abandoned: no funds had left")

    def reestablish(self, channel: Channel) -> None:
        """Our funding notice may have been lost with the connection (or a crash); it is
        idempotent, so say it again."""
        if channel.funded_by_me and channel.status == "opening":
            self.ctx.send(channel.peer, wire.FundingDone(channel.channel_id, ()))
