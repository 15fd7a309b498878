"""Opening and funding channels: the open handshake between two nodes, the deposits, and
the moment a channel becomes active.

The handshake: the opener sends ``OpenRequest`` (chain, assets, deposits, challenge
duration, its participant key); the acceptor answers ``OpenAccept`` with its key; the opener
fixes the params (and the nonce, which on Bitcoin is its funding txid) and sends
``OpenChannel``. Both then sign version 0, and once it is irrevocable each side sends its
deposits and says so with ``FundingDone``. An app channel's request names the app and the
opening state's app data; the acceptor checks them (``app_checks.refusal``) and that the final
params name that app and no other.

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

import msgspec

from ...backend import Account, ChainBackend, Deployments, OpenTerms
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
from ...core.errors import (
    ChannelError,
    InsufficientBalance,
    InvalidParams,
    WrongChannel,
)
from ...core.watcher import GuardChannel
from ..net import wire
from ..store.base import ChannelRecord, Store
from .app_checks import refusal
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
    app: str = ""
    app_data: bytes = b""
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
        policy=HtlcPolicy(min_lead=min_lead(backend, params), ids_by_payer=True),
        apps=apps,
        rules=backend.channel_rules(params),
    )


def funding_key(channel_id: bytes, asset: Asset) -> str:
    return f"{FUNDING_PREFIX}{channel_id.hex()}/{asset.chain}/{asset.token}"


def was_sent(marker: bytes | None) -> bool:
    """Whether a funding marker says our deposit left the process (``submitted@<time>``,
    or ``submitted`` as older versions wrote it, or ``confirmed``)."""
    return marker is not None and (marker == b"confirmed" or marker.startswith(b"submitted"))


def deposits_sent(store: Store | None, channel: Channel) -> list[Asset]:
    """The assets of ``channel`` whose deposit of ours the funding markers say left."""
    if store is None:
        return []
    return [
        asset
        for asset, (mine, _theirs) in channel.deposits.items()
        if mine > 0 and was_sent(store.get_setting(funding_key(channel.channel_id, asset)))
    ]


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
        #: Our opening channels whose version 0 the peer has not signed: since when (our
        #: clock). Those restored from the store are added by the first ``expire``.
        self.unsigned_since: dict[bytes, int] = {}
        self._restored_seen = False

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
            app,
            app_data,
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
                app,
                app_data,
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
        # Our own salt, never the opener's: keys derived from a salt a peer chooses are keys
        # it can make us reuse (a Bitcoin acceptor's per-commitment secrets, revealed as
        # revocations in one channel, would be those of another channel with that peer).
        salt = secrets.token_bytes(32)
        key = _from_backend("participant key", backend.participant_key, account, salt)
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
            salt,
            msg.opener_key,
            False,
            msg.app,
            msg.app_data,
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
        terms = _terms_refusal(backend, msg.opener_key)
        if terms is not None:
            return terms
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
            app=pending.app,
        )
        channel = self.create_channel(params, 0, pending.deposits, pending.app_data)
        self.unsigned_since[channel.channel_id] = self.ctx.clock()
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
        # the app judges forced moves: never one we did not agree to
        expected = (pending.opener_key, peer, pending.chain, pending.assets, pending.app)
        got = (opener.chain_key, opener.node_id, params.chain, params.assets, params.app)
        if expected != got or params.challenge_duration != pending.challenge_duration:
            raise InvalidParams("the channel params differ from what was requested")
        if acceptor.node_id != self.ctx.node_id or acceptor.chain_key != pending.acceptor_key:
            raise InvalidParams("participant 1 must be this node with the key it gave")
        self.create_channel(params, 1, pending.deposits, pending.app_data)
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
        """Drop the requests of peers that did not complete the handshake in time, and
        abandon our opens whose version 0 the peer never signed."""
        timeout = self.policy.pending_timeout
        for temp_id, pending in list(self.pending_opens.items()):
            if not pending.opener and now - pending.created > timeout:
                del self.pending_opens[temp_id]
                self.ctx.count("opens_expired")
        self._abandon_unsigned(now, timeout)

    def _abandon_unsigned(self, now: int, timeout: int) -> None:
        """A channel we opened whose version 0 the peer has not signed ``timeout`` seconds
        later is abandoned (``closed``). The peer forgot it: it was killed after the
        handshake, before it wrote its acceptance, and its open request died with it, so
        it answers our retransmissions with "no channel". Nothing can be on the chain:
        deposits wait for version 0 signed by both and on disk (``Funding.fund``), and a
        channel whose funding marker says a deposit left is kept. Found by the crash
        harness."""
        if not self._restored_seen:  # after a restart: look at every channel once
            self._restored_seen = True
            for c in self.ctx.channels.values():
                if c.me == 0 and c.status == "opening" and c.machine.latest is None:
                    self.unsigned_since.setdefault(c.channel_id, now)
        for channel_id, since in list(self.unsigned_since.items()):
            channel = self.ctx.channels.get(channel_id)
            if channel is None or channel.status != "opening" or channel.machine.latest is not None:
                del self.unsigned_since[channel_id]
            elif now - since > timeout:
                del self.unsigned_since[channel_id]
                if deposits_sent(self.ctx.store, channel):
                    # A crash between the deposit's marker and version 0 on disk, a store
                    # from before deposits waited for it, or one copied by hand: money may
                    # be on the chain, so the channel stays for the peer's signature (its
                    # Accept comes again on reestablish) or the operator's close.
                    self.ctx.note(
                        f"channel {channel_id.hex()[:8]}: the peer did not sign version 0 "
                        f"in {timeout}s, but our deposit was sent: kept opening"
                    )
                    continue
                channel.status = "closed"
                release_funding(channel)
                self.ctx.count("opens_abandoned")
                self.ctx.note(
                    f"channel {channel_id.hex()[:8]}: abandoned, the peer did not sign "
                    f"version 0 in {timeout}s (nothing was deposited)"
                )

    def _result(self, temp_id: bytes, result: bytes | str) -> None:
        self.open_results[temp_id] = result
        while len(self.open_results) > MAX_OPEN_RESULTS:
            del self.open_results[next(iter(self.open_results))]

    def create_channel(
        self,
        params: ChannelParams,
        me: int,
        deposits: dict[Asset, tuple[int, int]],
        app_data: bytes = b"",
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
        if app_data:
            initial = msgspec.structs.replace(initial, app_data=app_data)
        machine = _from_backend(
            "channel", new_machine, backend, account, params, channel_id, me, initial, self.ctx.apps
        )
        deployment = (
            _from_backend("deployment", backend.deployment, params)
            if isinstance(backend, Deployments)
            else ""
        )
        record = ChannelRecord(channel_id, params, me, initial, deployment=deployment)
        if self.ctx.store is not None:
            stored = self.ctx.store.get_channel(channel_id)
            if stored is None:
                self.ctx.store.add_channel(record)
            elif msgspec.structs.replace(stored, deployment=deployment) != record:
                # left by an attempt that was undone or crashed (one stored before
                # deployments were kept has none: its id says where it lives)
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


def _terms_refusal(backend: ChainBackend, opener_key: str) -> str | None:
    """The backend's refusal of the terms an opener's key carries (``OpenTerms``); a
    backend that raises refuses, with what it raised."""
    if not isinstance(backend, OpenTerms):
        return None
    try:
        return backend.terms_refusal(opener_key)
    except Exception as exc:  # a plugin's surprise is a refusal, never the node's failure
        return f"the opener's terms: {exc}"


def _from_backend(what: str, fn: Callable[..., T], *args: object) -> T:
    """Call the backend with what a peer sent: whatever it raises becomes a refusal of the
    peer's message (``InvalidParams``), never a failure of the node."""
    try:
        return fn(*args)
    except ChannelError:
        raise
    except Exception as exc:
        raise InvalidParams(f"{what}: {exc}"[:300]) from exc


def release_funding(channel: Channel) -> None:
    """Tell the backend a channel's deposit will never be sent (an optional role: Bitcoin
    unreserves the coins of the funding transaction it prepared)."""
    release = getattr(channel.backend, "release_funding", None)
    if release is not None:
        release(channel.params, channel.account)
