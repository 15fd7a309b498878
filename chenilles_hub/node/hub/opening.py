"""Opening and funding channels: the open handshake between two nodes, the deposits, and
the moment a channel becomes active.

The handshake: the opener sends ``OpenRequest`` (chain, assets, deposits, challenge
duration, its participant key); the acceptor answers ``OpenAccept`` with its key; the opener
fixes the params (and the nonce, which on Bitcoin is its funding txid) and sends
``OpenChannel``. Both then sign version 0, and once it is irrevocable each side sends its
deposits and says so with ``FundingDone``. An app channel's request names the app and the
opening state's app data; the acceptor checks them (``app_checks.refusal``) and that the final
params name that app and no other.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from ...backend import Account, ChainBackend, Funded
from ...core import (
    App,
    Asset,
    ChannelMachine,
    ChannelParams,
    ChannelState,
    Effect,
    HtlcPolicy,
    Participant,
    initial_state,
)
from ...core.errors import ChannelNotOpen, InvalidParams, WrongChannel
from ...core.messages import Propose
from ...core.watcher import GuardChannel
from ..net import wire
from ..store.base import ChannelRecord
from .app_checks import refusal
from .context import NodeContext
from .forwarding import enforcement_delta
from .journal import FUNDING_PREFIX
from .records import Channel

RunEffects = Callable[[Channel, list[Effect]], None]


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
    app: str = ""
    app_data: bytes = b""


def min_lead(backend: ChainBackend, params: ChannelParams) -> int:
    """An HTLC in this channel must leave at least the time to enforce it on-chain."""
    return enforcement_delta(backend.time_model(), params.challenge_duration)


def new_machine(
    backend: ChainBackend,
    account: Account,
    params: ChannelParams,
    channel_id: bytes,
    me: int,
    initial: ChannelState,
    apps: Mapping[str, App] | None = None,
) -> ChannelMachine:
    """The core's machine for one channel, with this backend's authority, HTLC policy and
    on-chain rules (dust, reserve, fees), and the node's app rules for an app channel."""
    return ChannelMachine(
        params,
        channel_id,
        me,
        backend.authority(params, account, me),
        initial,
        policy=HtlcPolicy(min_lead=min_lead(backend, params)),
        apps=apps,
        rules=backend.channel_rules(params),
    )


def funding_key(channel_id: bytes, asset: Asset) -> str:
    return f"{FUNDING_PREFIX}{channel_id.hex()}/{asset.chain}/{asset.token}"


class Opening:
    """Open requests, the channel's creation on both sides, deposits and activation."""

    def __init__(self, ctx: NodeContext, run: RunEffects) -> None:
        self.ctx = ctx
        self.run = run
        self.pending_opens: dict[bytes, PendingOpen] = {}
        #: What became of our open requests (temp id -> channel id, or the peer's refusal),
        #: so an operator who asked for a channel can follow it (not persisted).
        self.open_results: dict[bytes, bytes | str] = {}

    # --- the handshake ----------------------------------------------------------------------

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
        channel whose opening state carries ``app_data`` (refused here, with the reason,
        if this node cannot run it on that chain)."""
        backend = self.ctx.backends[chain]
        account = self.ctx.accounts[chain]
        if app:
            reason = refusal(self.ctx, chain, app, app_data, dict(deposits), 0)
            if reason is not None:
                raise InvalidParams(reason)
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
            app,
            app_data,
        )
        self.pending_opens[temp_id] = pending
        self.ctx.send(
            peer,
            wire.OpenRequest(
                temp_id,
                chain,
                assets,
                tuple(deposits[a] for a in assets),
                challenge_duration,
                salt,
                pending.opener_key,
                app,
                app_data,
            ),
        )
        return temp_id

    def on_open_request(self, peer: bytes, msg: wire.OpenRequest) -> None:
        backend = self.ctx.backends.get(msg.chain)
        if backend is None or msg.chain not in self.ctx.accounts:
            self.ctx.send(peer, wire.OpenRefused(msg.temp_id, f"no backend for {msg.chain}"))
            return
        unknown = [a for a in msg.assets if a not in backend.assets()]
        if unknown or len(msg.deposits) != len(msg.assets):
            self.ctx.send(peer, wire.OpenRefused(msg.temp_id, f"unknown assets {unknown}"))
            return
        account = self.ctx.accounts[msg.chain]
        key = backend.participant_key(account, msg.salt)
        # Deposits arrive as (opener's, acceptor's); keep them from our point of view.
        deposits = {a: (d[1], d[0]) for a, d in zip(msg.assets, msg.deposits, strict=True)}
        if msg.app:
            reason = refusal(self.ctx, msg.chain, msg.app, msg.app_data, deposits, 1)
            if reason is not None:
                self.ctx.send(peer, wire.OpenRefused(msg.temp_id, reason[:300]))
                return
        self.pending_opens[msg.temp_id] = PendingOpen(
            peer,
            msg.chain,
            msg.assets,
            deposits,
            msg.challenge_duration,
            msg.salt,
            msg.opener_key,
            False,
            msg.app,
            msg.app_data,
        )
        self.ctx.send(peer, wire.OpenAccept(msg.temp_id, key))

    def on_open_accept(self, peer: bytes, msg: wire.OpenAccept) -> None:
        pending = self.pending_opens.get(msg.temp_id)
        if pending is None or not pending.opener or pending.peer != peer:
            raise WrongChannel("an open_accept for no open request of ours")
        backend = self.ctx.backends[pending.chain]
        account = self.ctx.accounts[pending.chain]
        participants = (
            Participant(pending.opener_key, self.ctx.node_id),
            Participant(msg.acceptor_key, peer),
        )
        nonce = backend.new_nonce(participants, pending.deposits, account)
        params = ChannelParams(
            chain=pending.chain,
            participants=participants,
            assets=pending.assets,
            challenge_duration=pending.challenge_duration,
            nonce=nonce,
            app=pending.app,
        )
        del self.pending_opens[msg.temp_id]
        channel = self.create_channel(params, 0, pending.deposits, pending.app_data)
        self.open_results[msg.temp_id] = channel.channel_id
        self.ctx.send(peer, wire.OpenChannel(msg.temp_id, params))
        self.run(channel, channel.machine.open())

    def on_open_channel(self, peer: bytes, msg: wire.OpenChannel) -> None:
        pending = self.pending_opens.pop(msg.temp_id, None)
        if pending is None or pending.opener or pending.peer != peer:
            raise WrongChannel("an open_channel for no request we accepted")
        params = msg.params
        expected = (
            pending.opener_key,
            pending.chain,
            pending.assets,
            pending.challenge_duration,
            pending.app,  # the app judges forced moves: never one we did not agree to
        )
        got = (
            params.participants[0].chain_key,
            params.chain,
            params.assets,
            params.challenge_duration,
            params.app,
        )
        if expected != got or params.participants[1].node_id != self.ctx.node_id:
            raise WrongChannel("the channel params differ from what was requested")
        self.create_channel(params, 1, pending.deposits, pending.app_data)

    def on_open_refused(self, peer: bytes, msg: wire.OpenRefused) -> None:
        pending = self.pending_opens.get(msg.temp_id)
        if pending is not None and pending.peer == peer and pending.opener:
            del self.pending_opens[msg.temp_id]
            self.open_results[msg.temp_id] = msg.reason or "refused"
        self.ctx.note(f"channel refused: {msg.reason}")

    def create_channel(
        self,
        params: ChannelParams,
        me: int,
        deposits: dict[Asset, tuple[int, int]],
        app_data: bytes = b"",
    ) -> Channel:
        backend = self.ctx.backends[params.chain]
        account = self.ctx.accounts[params.chain]
        channel_id = backend.channel_id(params)
        ordered = {a: (d if me == 0 else (d[1], d[0])) for a, d in deposits.items()}
        initial = initial_state(channel_id, params.assets, ordered)
        if app_data:
            initial = msgspec.structs.replace(initial, app_data=app_data)
        machine = new_machine(backend, account, params, channel_id, me, initial, self.ctx.apps)
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
        self.ctx.adopt(channel)
        self.ctx.pending.channels.add(channel_id)
        if self.ctx.store is not None:
            self.ctx.store.add_channel(ChannelRecord(channel_id, params, me, initial))
        self.ctx.watcher.add(GuardChannel(channel_id))
        self.ctx.note(
            f"channel {channel_id.hex()[:8]} on {params.chain} created (participant {me})"
        )
        return channel

    # --- funding ----------------------------------------------------------------------------

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
                if store.get_setting(key) is not None:
                    waiting = True  # sent before a crash: the chain will tell
                    self.ctx.note(
                        f"deposit of {asset} into {channel.channel_id.hex()[:8]} was "
                        "sent before a restart: waiting for the chain to report it"
                    )
                    continue
                store.set_setting(key, b"submitted")  # durable before it is sent
            receipt = channel.backend.fund(channel.params, channel.me, channel.account, asset, mine)
            channel.receipts.append(receipt)
            txids.append(receipt.txid)
            self.ctx.note(f"funded {mine} {asset} into {channel.channel_id.hex()[:8]}")
        if waiting and not self._deposits_confirmed(channel):
            return
        self._funded_by_me(channel, tuple(txids))

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
        if store.get_setting(key) is None:
            return  # not sent by us (yet): someone else deposited for us
        store.set_setting(key, b"confirmed")
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
        shortfall = self._shortfall(channel)
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
                self.check_funding(channel)

    def recheck_active(self, chain: str) -> None:
        """A reorg at least as deep as the confirmation depth: a deposit that made a
        channel active may be gone. Such a channel leaves ``active`` (no new payments, the
        peer's proposals refused) until the chain shows its deposits again."""
        for channel in list(self.ctx.channels.values()):
            if channel.status != "active" or channel.params.chain != chain:
                continue
            shortfall = self._shortfall(channel)
            if shortfall is not None:
                channel.status = "opening"
                channel.waiting = shortfall
                self.ctx.note(
                    f"channel {channel.channel_id.hex()[:8]} is not active any more after a "
                    f"reorg: {shortfall}"
                )

    def _shortfall(self, channel: Channel) -> str | None:
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
        if (
            isinstance(message, Propose)
            and message.state.version > 0
            and channel.status == "opening"
        ):
            raise ChannelNotOpen(
                f"the channel is not active: {channel.waiting or 'waiting for its deposits'}"
            )

    def reestablish(self, channel: Channel) -> None:
        """Our funding notice may have been lost with the connection (or a crash); it is
        idempotent, so say it again."""
        if channel.funded_by_me and channel.status == "opening":
            self.ctx.send(channel.peer, wire.FundingDone(channel.channel_id, ()))
