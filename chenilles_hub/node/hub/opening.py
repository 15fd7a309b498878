"""Opening and funding channels: the open handshake between two nodes, the deposits, and
the moment a channel becomes active.

The handshake: the opener sends ``OpenRequest`` (chain, assets, deposits, challenge
duration, its participant key); the acceptor answers ``OpenAccept`` with its key; the opener
fixes the params (and the nonce, which on Bitcoin is its funding txid) and sends
``OpenChannel``. Both then sign version 0, and once it is irrevocable each side sends its
deposits and says so with ``FundingDone``.

The acceptor consents only within its operator's :class:`~.open_policy.OpenPolicy` (what
it deposits, for how long, how many requests it keeps) and only to a deposit its wallet
holds; a refusal answers ``OpenRefused`` with the reason. Each handler checks everything
the peer sent (with the backend, whose surprises become a ``ChannelError``) before it
changes anything, so a refused or failed step leaves nothing behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ...backend import Account, ChainBackend, Funded
from ...core import (
    Asset,
    ChannelMachine,
    ChannelParams,
    ChannelState,
    Effect,
    HtlcPolicy,
    Participant,
    initial_state,
)
from ...core.errors import ChannelError, InsufficientBalance, InvalidParams, WrongChannel
from ...core.watcher import GuardChannel
from ..net import wire
from ..store.base import ChannelRecord
from .context import NodeContext
from .forwarding import enforcement_delta
from .journal import FUNDING_PREFIX
from .open_policy import OpenPolicy
from .records import Channel

RunEffects = Callable[[Channel, list[Effect]], None]
T = TypeVar("T")
#: Outcomes of our own open requests kept for the operator to read (newest win).
MAX_OPEN_RESULTS = 1024


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
    #: The key we gave as acceptor: the params of ``OpenChannel`` must name it.
    acceptor_key: str = ""
    #: When the request was made (the node's clock): it expires ``pending_timeout`` later.
    created: int = 0


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
) -> ChannelMachine:
    """The core's machine for one channel, with this backend's authority and HTLC policy."""
    return ChannelMachine(
        params,
        channel_id,
        me,
        backend.authority(params, account, me),
        initial,
        policy=HtlcPolicy(min_lead=min_lead(backend, params)),
    )


def funding_key(channel_id: bytes, asset: Asset) -> str:
    return f"{FUNDING_PREFIX}{channel_id.hex()}/{asset.chain}/{asset.token}"


class Opening:
    """Open requests, the channel's creation on both sides, deposits and activation."""

    def __init__(self, ctx: NodeContext, run: RunEffects, policy: OpenPolicy) -> None:
        self.ctx = ctx
        self.run = run
        self.policy = policy
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
    ) -> bytes:
        """Ask ``peer`` for a channel on ``chain``; (ours, theirs) per asset. Returns the
        temporary id; the channel id is known once the peer accepts."""
        backend = self.ctx.backends[chain]
        account = self.ctx.accounts[chain]
        shortfall = self._shortfall(backend, account, deposits)
        if shortfall is not None:
            raise InsufficientBalance(shortfall)
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
            created=self.ctx.clock(),
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
            ),
        )
        return temp_id

    def on_open_request(self, peer: bytes, msg: wire.OpenRequest) -> None:
        """A peer asks for a channel: consent within the policy, or refuse with the reason.
        Nothing is kept for a refused request."""
        reason = self._refusal(peer, msg)
        if reason is not None:
            self.ctx.count("opens_refused")
            self.ctx.note(f"refused an open request from {peer.hex()[:8]}: {reason}")
            self.ctx.send(peer, wire.OpenRefused(msg.temp_id, reason[:300]))
            return
        backend = self.ctx.backends[msg.chain]
        account = self.ctx.accounts[msg.chain]
        key = _from_backend("participant key", backend.participant_key, account, msg.salt)
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
            acceptor_key=key,
            created=self.ctx.clock(),
        )
        self.ctx.send(peer, wire.OpenAccept(msg.temp_id, key))

    def _refusal(self, peer: bytes, msg: wire.OpenRequest) -> str | None:
        """Why we do not accept this request (``None``: we do): the request itself, the
        operator's policy, the caps on pending requests, then our wallet."""
        backend = self.ctx.backends.get(msg.chain)
        if backend is None or msg.chain not in self.ctx.accounts:
            return f"no backend for {msg.chain}"
        unknown = [str(a) for a in msg.assets if a not in backend.assets()]
        if unknown:
            return f"unknown assets {unknown}"
        if len(msg.deposits) != len(msg.assets) or len(set(msg.assets)) != len(msg.assets):
            return "one deposit pair per asset, each asset once"
        if not any(ours or theirs for ours, theirs in msg.deposits):
            return "a channel needs a deposit on at least one side"
        if msg.temp_id in self.pending_opens:
            return "this temporary channel id is taken"
        deposits = {a: (d[1], d[0]) for a, d in zip(msg.assets, msg.deposits, strict=True)}
        reason = self.policy.refusal(deposits, msg.challenge_duration)
        if reason is not None:
            return reason
        theirs = [p for p in self.pending_opens.values() if not p.opener]
        if sum(1 for p in theirs if p.peer == peer) >= self.policy.max_pending_per_peer:
            return f"too many pending opens from you (limit {self.policy.max_pending_per_peer})"
        if len(theirs) >= self.policy.max_pending:
            return "too many pending opens: try again later"
        return self._shortfall(backend, self.ctx.accounts[msg.chain], deposits)

    def _shortfall(
        self,
        backend: ChainBackend,
        account: Account,
        deposits: Mapping[Asset, tuple[int, int]],
    ) -> str | None:
        """Why our wallet cannot make our deposits (the native asset also pays the
        funding's fee), or ``None``. Asked before anything is signed: a channel whose
        deposit fails would stay ``opening`` on both sides for good."""
        for asset, (ours, _theirs) in deposits.items():
            if ours <= 0:
                continue
            need = ours + (backend.estimate_fee("fund") if asset.token == "native" else 0)
            have = backend.balance(account, asset)
            if have < need:
                return f"insufficient funds: a deposit of {ours} {asset} needs {need}, have {have}"
        return None

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
        nonce = _from_backend("nonce", backend.new_nonce, participants, pending.deposits, account)
        params = ChannelParams(
            chain=pending.chain,
            participants=participants,
            assets=pending.assets,
            challenge_duration=pending.challenge_duration,
            nonce=nonce,
        )
        channel = self.create_channel(params, 0, pending.deposits)
        del self.pending_opens[msg.temp_id]
        self._result(msg.temp_id, channel.channel_id)
        self.ctx.send(peer, wire.OpenChannel(msg.temp_id, params))
        self.run(channel, channel.machine.open())

    def on_open_channel(self, peer: bytes, msg: wire.OpenChannel) -> None:
        pending = self.pending_opens.get(msg.temp_id)
        if pending is None or pending.opener or pending.peer != peer:
            raise WrongChannel("an open_channel for no request we accepted")
        params = msg.params
        if len(params.participants) != 2:
            raise InvalidParams("a channel opened by a peer has two participants")
        opener, acceptor = params.participants
        expected = (pending.opener_key, peer, pending.chain, pending.assets)
        got = (opener.chain_key, opener.node_id, params.chain, params.assets)
        if expected != got or params.challenge_duration != pending.challenge_duration:
            raise InvalidParams("the channel params differ from what was requested")
        if acceptor.node_id != self.ctx.node_id or acceptor.chain_key != pending.acceptor_key:
            raise InvalidParams("participant 1 must be this node with the key it gave")
        self.create_channel(params, 1, pending.deposits)
        del self.pending_opens[msg.temp_id]

    def on_open_refused(self, peer: bytes, msg: wire.OpenRefused) -> None:
        pending = self.pending_opens.get(msg.temp_id)
        if pending is not None and pending.peer == peer:
            del self.pending_opens[msg.temp_id]
            if pending.opener:
                self._result(msg.temp_id, msg.reason or "refused")
                self.ctx.note(f"channel refused: {msg.reason}")

    def refused(self, peer: bytes, message: wire.NodeMessage, reason: str) -> None:
        """A step of the handshake with ``peer`` was refused or failed (and undone): the
        request is over; tell the peer why, and, for an open of ours, our operator."""
        temp_id = getattr(message, "temp_id", None)
        if temp_id is None or isinstance(message, wire.OpenRefused):
            return
        pending = self.pending_opens.get(temp_id)
        if pending is not None and pending.peer == peer:
            del self.pending_opens[temp_id]
            if pending.opener:
                self._result(temp_id, f"the peer's answer was refused: {reason}")
        self.ctx.send(peer, wire.OpenRefused(temp_id, reason[:300]))

    def forget_peer(self, peer: bytes) -> None:
        """``peer`` disconnected: the requests it made are dropped (ours to it stay, and
        its answer may still come after it reconnects)."""
        for temp_id, pending in list(self.pending_opens.items()):
            if pending.peer == peer and not pending.opener:
                del self.pending_opens[temp_id]

    def expire(self, now: int) -> None:
        """Drop the requests of peers that did not complete the handshake in time."""
        timeout = self.policy.pending_timeout
        for temp_id, pending in list(self.pending_opens.items()):
            if not pending.opener and now - pending.created > timeout:
                del self.pending_opens[temp_id]
                self.ctx.count("opens_expired")

    def _result(self, temp_id: bytes, result: bytes | str) -> None:
        self.open_results[temp_id] = result
        while len(self.open_results) > MAX_OPEN_RESULTS:
            del self.open_results[next(iter(self.open_results))]

    def create_channel(
        self, params: ChannelParams, me: int, deposits: dict[Asset, tuple[int, int]]
    ) -> Channel:
        """The channel and its machine: everything the backend must accept (the params, our
        key in them, the peer's key) is built first; only then is anything recorded."""
        backend = self.ctx.backends[params.chain]
        account = self.ctx.accounts[params.chain]
        channel_id = _from_backend("channel id", backend.channel_id, params)
        if channel_id in self.ctx.channels:
            raise WrongChannel("a channel with these params exists already")
        ordered = {a: (d if me == 0 else (d[1], d[0])) for a, d in deposits.items()}
        initial = initial_state(channel_id, params.assets, ordered)
        machine = _from_backend(
            "channel", new_machine, backend, account, params, channel_id, me, initial
        )
        record = ChannelRecord(channel_id, params, me, initial)
        if self.ctx.store is not None:
            stored = self.ctx.store.get_channel(channel_id)
            if stored is None:
                self.ctx.store.add_channel(record)
            elif stored != record:  # left by an attempt that was undone or crashed
                raise WrongChannel("a channel with these params but other terms was created")
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
        self._maybe_activate(channel)

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
        """The chain reports a deposit. It matters only for a deposit of ours sent before a
        crash that forgot it: it is confirmed now, and the channel can open."""
        channel = self.ctx.channels.get(event.channel_id)
        store = self.ctx.store
        if channel is None or channel.funded_by_me or event.participant != channel.me:
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
        channel.funded_by_peer = True
        self._maybe_activate(channel)

    def _maybe_activate(self, channel: Channel) -> None:
        if channel.funded_by_me and channel.funded_by_peer and channel.status == "opening":
            channel.status = "active"
            self.ctx.note(f"channel {channel.channel_id.hex()[:8]} is active")

    def reestablish(self, channel: Channel) -> None:
        """Our funding notice may have been lost with the connection (or a crash); it is
        idempotent, so say it again."""
        if channel.funded_by_me and channel.status == "opening":
            self.ctx.send(channel.peer, wire.FundingDone(channel.channel_id, ()))


def _from_backend(what: str, fn: Callable[..., T], *args: object) -> T:
    """Call the backend with what a peer sent: whatever it raises becomes a refusal of the
    peer's message (``InvalidParams``), never a failure of the node."""
    try:
        return fn(*args)
    except ChannelError:
        raise
    except Exception as exc:
        raise InvalidParams(f"{what}: {exc}"[:300]) from exc
