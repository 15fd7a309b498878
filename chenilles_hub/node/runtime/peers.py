"""The node's connections to its peers: dialling, accepting, one live link per peer, a
bounded sender per link, and what is kept for a peer that is offline.

We dial every configured peer (with exponential backoff) and accept any authenticated peer
(unless ``accept_unknown_peers = false``). When two connections to one peer exist (both
sides dialled), both sides keep the one initiated by the smaller node id, or the newest if
one side initiated both (a restarted peer). On every (re)connection the node re-sends what
the peer may have missed (``Node.reestablish``); the channel protocol is idempotent, so
duplicates are harmless.

Frames from one connection are read ahead without waiting for the previous one to be
handled (the work queue is bounded, so a flood blocks the socket, not memory). A peer that
sends a frame that does not decode (garbage, wrong types, oversized) is disconnected; the
transport already drops frames that fail authentication (tampered or replayed ciphertext)
and oversized frames. A peer whose messages are refused again and again is disconnected and
banned for a while (``bans.py``, ``[policy.peers]``). When a link ends, what its peer asked
for and did not finish (open requests) is dropped. Other peers and channels are not
affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Coroutine, Mapping
from typing import Any

from chenilles_hub.core import Asset
from chenilles_hub.core.errors import DecodeError, MessageTooLarge

from ..config import NodeConfig, PeerConfig
from ..hub.gossip import (
    GOSSIP_PREFIX,
    MAX_PARTS,
    Announcement,
    decode_announcement,
    encode_announcement,
    own_announcement,
    split,
)
from ..hub.graph_view import GraphView
from ..hub.node import Node
from ..net import wire
from ..net.transport import PeerConnection, Transport, TransportError
from .bans import Bans, is_fault
from .bootstrap import build_member_stakes
from .pipeline import NodeStopping, Pipeline
from .work import MAX_SEND_BATCH, SEND_TIMEOUT, Frame, Link

log = logging.getLogger("chenilles.server")

#: Messages kept for a peer that is offline: opening and funding notices (channel messages
#: are not kept: ``reestablish`` regenerates them on reconnection).
MAX_PENDING_PER_PEER = 64
_CHANNEL_MESSAGE_TYPES = ("propose", "accept", "ack", "reject", "reestablish")


class Peers:
    def __init__(
        self,
        config: NodeConfig,
        node_id: bytes,
        transport: Transport,
        graph: GraphView,
        pipeline: Pipeline,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        count: Callable[..., None],
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.transport = transport
        self.graph = graph
        self.pipeline = pipeline
        self._spawn = spawn
        self._count = count
        self.links: dict[bytes, Link] = {}
        #: the links of strangers (``strangers_linked``; at most ``max_strangers`` peers and
        #: their links being replaced), kept by link: a peer's new link replaces its old one
        #: before the old one's end is seen
        self._stranger_links: set[Link] = set()
        #: connections waiting for the node's thread to say whether their peer is a member
        self._admitting = 0
        #: strangers that gave way to a newcomer, and when (within ``stranger_tenure``)
        self._gave_way: dict[bytes, float] = {}
        #: since when each stranger holds its place
        self._place_since: dict[bytes, float] = {}
        #: (since, left at) of strangers whose last link ended less than a tenure ago: one
        #: that takes a place again within a tenure resumes its old one, so connecting
        #: again (the old link's end may come first) starts no new tenure
        self._left: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        #: checks on the node's thread of whether a stranger about to give way is a member
        self._checking_victims = 0
        #: where the next check of members' standing starts (``demote_lapsed``): after the
        #: last peer asked about, in peer id order
        self._asked_after = b""
        self.bans = Bans(config.peer_policy)
        #: the least deposit of a peer's own, per asset, that makes it a member
        self.min_stake = build_member_stakes(config)
        self.pending: dict[bytes, list[bytes]] = {}
        #: Peers we dial: configured, or added at run time.
        self.configured: dict[bytes, PeerConfig] = {p.node_id: p for p in config.peers}
        self._last_announcement: Announcement | None = None
        self._last_announced_at = 0.0
        #: Our announcement as last built, and what our channels were then
        #: (``_current_announcement``).
        self._current: Announcement | None = None
        self._announced_mark: tuple[object, ...] = ()
        #: numbers our announcements' parts (``gossip.split``), from a random start: a
        #: peer still holding parts from before a restart never completes them with ours
        self._serial = secrets.randbits(48)
        #: how many of our edges the last announcement left out (too many to announce)
        self._left_out = 0

    @property
    def max_strangers(self) -> int:
        return self.config.peer_policy.max_strangers

    def strangers_linked(self) -> int:
        """Links of strangers now: peers that, when they connected, were neither dialled by
        us (configured or added) nor members of a channel of ours with something in it
        (``Node.is_member``); what ``[policy.peers] max_strangers`` bounds."""
        return len(self._stranger_peers())

    def _stranger_peers(self) -> set[bytes]:
        """The peers holding a stranger's place (a peer whose new link replaces its old one
        holds one place)."""
        return {link.conn.peer_id for link in self._stranger_links}

    async def promote_members(self, node: Node) -> int:
        """Links of strangers whose peer has become a member since it connected (its channel
        with us funded: ``Node.is_member``), or whom the operator added since, stop counting
        as strangers; how many did. A new customer connects as a stranger, then opens and
        funds its channel: it would otherwise hold a stranger's place for as long as it
        stays connected, and ``max_strangers`` customers would shut out every next one.
        Asked on the node's thread, and only while strangers are linked (the timer's tick)."""
        linked = self._stranger_peers()
        if not linked:
            return 0
        unknown = sorted(linked - self.configured.keys())
        members = set(linked & self.configured.keys())
        if unknown:
            members.update(
                await self.pipeline.in_worker(_members_among, node, unknown, self.min_stake)
            )
        return self._no_longer_strangers(members)

    async def demote_lapsed(self, node: Node) -> int:
        """Links of members whose standing has lapsed (every channel of theirs with us
        closed, or under the stake asked: ``Node.is_member``) count as strangers again; how
        many lapsed. Without it, a peer that funded a channel once and closed it kept its
        link, uncounted, for as long as it stayed connected: enough identities doing so,
        each at the cost of two transactions, held links beyond ``max_strangers``.

        A lapsed member takes a free stranger's place with a new tenure, as a newcomer
        would; with no place free its connection is closed (it may connect again and wait
        for a place). Asked on the node's thread, at most ``_ASKED_PER_TICK`` members a
        tick, in turn, so a hub with thousands of members spreads the question over
        ticks; a batch whose question failed is asked again at the next tick."""
        batch = self._members_to_ask()
        if not batch:
            return 0
        peers = [peer for peer, _ in batch]
        standing = set(await self.pipeline.in_worker(_members_among, node, peers, self.min_stake))
        self._asked_after = peers[-1]
        return self._count_again([(p, link) for p, link in batch if p not in standing])

    def _members_to_ask(self) -> list[tuple[bytes, Link]]:
        """The next members' links whose standing is asked about, in peer id order from
        where the last check stopped (then from the start): at most ``_ASKED_PER_TICK``,
        picked without sorting every link."""
        members = [
            peer
            for peer, link in self.links.items()
            if not link.stranger and peer not in self.configured and not link.conn.closed
        ]
        after = self._asked_after
        batch = heapq.nsmallest(_ASKED_PER_TICK, (p for p in members if p > after))
        if len(batch) < _ASKED_PER_TICK:
            rest = (p for p in members if p <= after)  # none of them is in the batch
            batch += heapq.nsmallest(_ASKED_PER_TICK - len(batch), rest)
        return [(peer, self.links[peer]) for peer in batch]

    def _count_again(self, lapsed: list[tuple[bytes, Link]]) -> int:
        """The links of ``lapsed`` members count as strangers' again, each at a free place
        with a new tenure, or closed if none is free; how many lapsed. A link replaced
        while the node's thread was asked (its new one was asked about at its admission),
        closed, or whose peer the operator added meanwhile, is left as it is."""
        now = time.monotonic()
        linked = self.strangers_linked()
        counted = closed = 0
        for peer, link in lapsed:
            if self.links.get(peer) is not link or link.conn.closed or peer in self.configured:
                continue
            if linked < self.max_strangers:
                link.stranger = True
                self._left.pop(peer, None)
                self._place_since[peer] = now  # a new tenure, not the link's start
                self._add_stranger(link)
                linked += 1
                counted += 1
            else:
                self._spawn(link.conn.close())  # its _serve ends and forgets the link
                closed += 1
        if counted or closed:
            self._count("members_lapsed", counted + closed)
            log.info(
                "%d member(s) lost their standing: %d strangers again, %d disconnected "
                "(no stranger's place free)",
                counted + closed,
                counted,
                closed,
            )
        return counted + closed

    def _evict_oldest(self, newcomer: bytes, node: Node, cleared: bytes | None) -> bool:
        """Make room for ``newcomer``, a stranger arriving while every place is taken: the
        stranger that has held its place longest gives way (:func:`stranger_to_evict`), if
        it has held it ``stranger_tenure`` seconds (every link of its peer is closed;
        nothing of its channels is lost, it may connect again and wait for a place), and
        if it was the one asked about (``cleared``) or has no channel of ours. Whether
        one gave way. A peer that gave way less than a tenure ago makes nobody give way in
        turn: a stranger that redials at once (a hub does) would otherwise push out the
        next, and that one the next, every stranger off its place for one newcomer.

        Without it, whoever took every place once (identities and connections cost
        nothing) kept every newcomer out for as long as it stayed connected, a new
        customer included. Now holding the places means connecting again and again, each
        time through the handshake's bounds, and every stranger let in keeps its place for
        ``stranger_tenure`` seconds at least."""
        now = time.monotonic()
        victim = self._victim(newcomer, now)
        if victim is None:
            return False
        if victim != cleared and node.may_be_member(victim):
            return False  # not the one asked about: it may have become a member meanwhile
        for link in [link for link in self._stranger_links if link.conn.peer_id == victim]:
            self._drop_stranger(link, remember=False)  # back at a free place: a new tenure
            self._spawn(link.conn.close())  # its _serve ends and forgets the link
        self._gave_way[victim] = now
        self._count("strangers_evicted")
        log.info("stranger %s gave way to a newcomer", victim.hex()[:16])
        return True

    def _victim(self, newcomer: bytes, now: float) -> bytes | None:
        """The stranger that would give way to ``newcomer`` now (:func:`stranger_to_evict`),
        or ``None``: none has held its place for the tenure, there are no places, or the
        newcomer itself gave way less than a tenure ago."""
        tenure = self.config.peer_policy.stranger_tenure
        for peer, when in list(self._gave_way.items()):
            if now - when >= tenure:
                del self._gave_way[peer]
        if self.max_strangers == 0 or newcomer in self._gave_way:
            return None
        return stranger_to_evict(self._place_since, newcomer, now, tenure, self.configured)

    def _no_longer_strangers(self, peers: set[bytes]) -> int:
        """The stranger links of ``peers`` count no more (and their graph changes are built
        in at once, as a member's); how many peers did."""
        links = [link for link in self._stranger_links if link.conn.peer_id in peers]
        for link in links:
            self._drop_stranger(link, remember=False)
            link.stranger = False
        promoted = len({link.conn.peer_id for link in links})
        if promoted:
            self._count("strangers_promoted", promoted)
            log.info("%d stranger(s) now members or added peers", promoted)
        return promoted

    def _add_stranger(self, link: Link) -> None:
        self._stranger_links.add(link)
        peer = link.conn.peer_id
        if peer not in self._place_since:
            since, left = self._left.pop(peer, (link.started, 0.0))
            recent = link.started - left < self.config.peer_policy.stranger_tenure
            self._place_since[peer] = since if recent else link.started

    def _drop_stranger(self, link: Link, *, remember: bool = True) -> None:
        """``link`` counts no more; its peer's place goes with its last stranger link. A
        link that ended (``remember``) leaves its place remembered for a tenure, so that
        connecting again resumes it; one that gave way or stopped being a stranger's does
        not. At most ``max(_LEFT_KEPT, 4 * max_strangers)`` places are remembered, the
        oldest forgotten first (kept in the order they were left: pruned from the front)."""
        if link not in self._stranger_links:
            return
        self._stranger_links.discard(link)
        peer = link.conn.peer_id
        if any(other.conn.peer_id == peer for other in self._stranger_links):
            return
        since = self._place_since.pop(peer, None)
        if since is None or not remember:
            return
        now = time.monotonic()
        tenure = self.config.peer_policy.stranger_tenure
        self._left[peer] = (since, now)
        self._left.move_to_end(peer)
        kept = max(_LEFT_KEPT, 4 * self.max_strangers)
        while self._left:
            _, left = next(iter(self._left.values()))
            if now - left < tenure and len(self._left) <= kept:
                break
            self._left.popitem(last=False)

    def connections(self) -> dict[bytes, bool]:
        """Peers connected now, each with whether it dialled us (inbound)."""
        return {
            peer: link.initiator == peer
            for peer, link in self.links.items()
            if not link.conn.closed
        }

    def add(self, peer: PeerConfig) -> None:
        """A peer added at run time (API; the node persists it): dialled like a configured
        one. A new address for a known peer replaces the old one."""
        known = self.configured.get(peer.node_id)
        if known == peer:
            return
        self.configured[peer.node_id] = peer  # an old dial loop sees it is replaced and ends
        # linked as a stranger before: no longer one
        self._no_longer_strangers({peer.node_id})
        self._spawn(self.dial_loop(peer))

    def remove(self, node_id: bytes) -> bool:
        """Stop dialling ``node_id`` and close its link if any; True if it was known."""
        known = self.configured.pop(node_id, None) is not None
        link = self.links.get(node_id)
        if link is not None:
            self._spawn(link.conn.close())
        return known or link is not None

    async def close_all(self) -> None:
        for link in list(self.links.values()):
            await link.conn.close()

    # --- sending ----------------------------------------------------------------------------

    def send_all(self, outbox: list[tuple[bytes, bytes]]) -> None:
        """Hand each message to its peer's sender without waiting for the network: a slow
        or silent peer must never hold up the node (the writer releases every job's
        outbox through here)."""
        for peer, data in outbox:
            link = self.links.get(peer)
            if link is not None and not link.conn.closed:
                try:
                    link.outbox.put_nowait(data)
                    continue
                except asyncio.QueueFull:
                    self._count("peers_not_reading")
                    log.warning("peer %s does not read: dropping the link", peer.hex()[:16])
                    link.conn.abort()
            self._keep_for_later(peer, data)

    async def _send_loop(self, link: Link, peer: bytes) -> None:
        """The link's sender: writes its outbox in order; a send that fails or takes longer
        than ``SEND_TIMEOUT`` ends the link. What was not sent is kept for the next
        connection where it is not regenerated by reestablish."""
        batch: list[bytes] = []
        try:
            while True:
                batch = [await link.outbox.get()]
                while not link.outbox.empty():
                    batch.append(link.outbox.get_nowait())
                async with asyncio.timeout(SEND_TIMEOUT):  # one timer for what is queued
                    while batch:
                        await link.conn.send_many(batch[:MAX_SEND_BATCH])
                        sent = min(len(batch), MAX_SEND_BATCH)
                        del batch[:sent]
                        self._count("messages_sent", sent)
        except (TransportError, TimeoutError) as exc:
            log.info("sending to %s failed: %s", peer.hex()[:16], exc or "timeout")
            link.conn.abort()
        finally:
            while not link.outbox.empty():
                batch.append(link.outbox.get_nowait())
            for message in batch:
                self._keep_for_later(peer, message)

    def _keep_for_later(self, peer: bytes, data: bytes) -> None:
        try:
            message = wire.decode(data)
        except DecodeError:
            return
        if type(message).__struct_config__.tag in _CHANNEL_MESSAGE_TYPES:
            return  # regenerated by reestablish
        queue = self.pending.setdefault(peer, [])
        if len(queue) < MAX_PENDING_PER_PEER:
            queue.append(data)

    # --- connecting -------------------------------------------------------------------------

    async def allow(self, peer: bytes) -> bool:
        if self.bans.banned(peer):
            self._count("handshakes_banned")
            return False
        return self.config.accept_unknown_peers or peer in self.configured

    async def on_incoming(self, conn: PeerConnection) -> None:
        await self._serve(conn, initiator=conn.peer_id)

    async def dial_loop(self, peer: PeerConfig) -> None:
        delay = self.config.reconnect_min
        # Until removed or replaced, or the node stops (a cancellation lost on the way, as
        # Python 3.11's wait_for could lose one, must not keep a stopping node dialling).
        while self.configured.get(peer.node_id) is peer and not self.pipeline.closing:
            link = self.links.get(peer.node_id)
            if link is not None and not link.conn.closed:
                await asyncio.sleep(self.config.reconnect_min)
                continue
            if self.bans.banned(peer.node_id):
                await asyncio.sleep(
                    max(self.config.reconnect_min, self.bans.remaining(peer.node_id))
                )
                continue
            try:
                conn = await self.transport.connect(peer.host, peer.port, peer.node_id)
            except (OSError, TransportError) as exc:
                log.debug("connecting to %s failed: %s", peer.node_id.hex()[:16], exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max)
                continue
            delay = self.config.reconnect_min
            await self._serve(conn, initiator=self.node_id)
            await asyncio.sleep(self.config.reconnect_min)

    def _prefer_existing(self, existing: Link, initiator: bytes) -> bool:
        if existing.conn.closed:
            return False
        if existing.initiator == initiator:
            return False  # the same side dialled again (it restarted): the newest wins
        return existing.initiator < initiator

    async def _admit(self, conn: PeerConnection, initiator: bytes, node: Node) -> Link | None:
        """``conn``'s link, entered in ``links`` (replacing its peer's older one), or
        ``None`` once it is closed: a stranger beyond ``max_strangers``, or another
        connection of the same peer took the place meanwhile."""
        peer = conn.peer_id
        stranger = peer not in self.configured
        if stranger and node.may_be_member(peer):
            # A peer with a channel of ours: whether one has something in it is the node's
            # thread's to say (a channel opened and never funded, two messages, gives no
            # standing), within a bound: a connection waiting for the answer holds a
            # socket outside the handshake's.
            if self._admitting >= self.config.peer_policy.max_handshakes:
                self._count("strangers_refused")
                await conn.close()
                return None
            self._admitting += 1
            try:
                stranger = not await self.pipeline.in_worker(node.is_member, peer, self.min_stake)
            except NodeStopping:
                await conn.close()
                return None
            finally:
                self._admitting -= 1
        cleared: bytes | None = None
        if stranger:
            room, cleared = await self._spare_a_member(peer, node)
            if not room:
                self._count("strangers_refused")
                await conn.close()
                return None
        existing = self.links.get(peer)
        if existing is not None:
            if self._prefer_existing(existing, initiator):
                await conn.close()
                return None
            await existing.conn.close()
            if self.links.get(peer) not in (None, existing):
                await conn.close()  # another connection of the peer took its place meanwhile
                return None
        # No await from here to the link's entry: the count is the one the link joins (other
        # peers': this peer's old links are being replaced, their ends not yet seen).
        stranger = stranger and peer not in self.configured  # added meanwhile: not one
        others = self._stranger_peers() - {peer}
        full = stranger and len(others) >= self.max_strangers
        if full and not self._evict_oldest(peer, node, cleared):
            # Identities cost nothing: without a bound, links (a socket, a task, an
            # announcement in every graph build) would be a stranger's to multiply.
            self._count("strangers_refused")
            log.debug("refused stranger %s: max_strangers links", peer.hex()[:16])
            await conn.close()
            return None
        link = Link(conn, initiator, stranger=stranger)
        self.links[peer] = link
        if stranger:
            self._add_stranger(link)
        return link

    async def _spare_a_member(self, newcomer: bytes, node: Node) -> tuple[bool, bytes | None]:
        """Before ``newcomer``, a stranger, arrives at full places: whether it may be let
        in, and the stranger found not to be a member that may give way to it.

        Refused at once, with no work on the node's thread, if it would be refused in any
        case (it gave way less than a tenure ago, or nobody has held a place for the
        tenure). Else the stranger that would give way, if it has a channel of ours, is
        asked about on the node's thread: whether that channel made it a member since the
        last tick (a customer funded meanwhile: likely the one there longest,
        confirmations take longer than a tenure); a member stops counting and keeps its
        link. One such question at a time: a newcomer arriving meanwhile is refused, so a
        flood makes no queue of jobs. The entry decides again without awaits, and gives
        way only with the stranger cleared here or one without a channel of ours."""
        if len(self._stranger_peers() - {newcomer}) < self.max_strangers:
            return True, None  # a place is free
        victim = self._victim(newcomer, time.monotonic())
        if victim is None:
            return False, None
        if not node.may_be_member(victim):
            return True, None
        if self._checking_victims:
            return False, None
        self._checking_victims += 1
        try:
            member = await self.pipeline.in_worker(node.is_member, victim, self.min_stake)
        except NodeStopping:
            return False, None
        except Exception as exc:  # cannot tell: nobody gives way
            self._failed_check(exc)
            return False, None
        finally:
            self._checking_victims -= 1
        if member:
            self._no_longer_strangers({victim})
            return True, None
        return True, victim

    def _failed_check(self, exc: Exception) -> None:
        self._count("stranger_check_errors")
        log.error("asking whether a stranger is a member failed", exc_info=exc)

    async def _serve(self, conn: PeerConnection, initiator: bytes) -> None:
        peer = conn.peer_id
        node = self.pipeline.node
        if node is None or peer == self.node_id or self.bans.banned(peer):
            await conn.close()
            return
        link = await self._admit(conn, initiator, node)
        if link is None:
            return
        self._count("connections")
        log.info("peer %s connected", peer.hex()[:16])
        sender = asyncio.get_running_loop().create_task(self._send_loop(link, peer))
        try:
            self.send_all([(peer, data) for data in self.pending.pop(peer, [])])
            await self.pipeline.call(node.reestablish, peer)
            await self.announce_to(link)
            while not link.violated:
                data = await conn.recv()
                if not await self._on_frame(peer, data, link):
                    self.drop(link, peer)
                    break
        except TransportError as exc:
            log.info("peer %s disconnected: %s", peer.hex()[:16], exc)
        except Exception:  # never the node's end: this link's alone
            self._count("link_errors")
            log.exception("serving peer %s failed", peer.hex()[:16])
        finally:
            self._drop_stranger(link)
            if self.links.get(peer) is link:
                del self.links[peer]
                # What the peer asked for and did not finish goes with it (or expires).
                self.pipeline.post(node.peer_disconnected, peer)
                self.graph.forget(peer, waits=link.stranger)
            await conn.close()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _on_frame(self, peer: bytes, data: bytes, link: Link) -> bool:
        """Queue one frame for the worker; ``False`` if the peer must be disconnected now.
        (A channel message that does not decode is found by the worker, which drops the
        link then.)"""
        self._count("messages_received")
        if data.startswith(GOSSIP_PREFIX):
            try:
                announcement = decode_announcement(data)
            except DecodeError as exc:
                log.warning("bad announcement from %s: %s", peer.hex()[:16], exc)
                self._count("messages_malformed")
                return False
            # A peer the operator configured or added may announce in parts; a stranger
            # (``accept_unknown_peers``) in one frame, at most MAX_EDGES edges.
            configured = peer in self.configured
            self.graph.accept(
                peer,
                announcement,
                MAX_PARTS if configured else 1,
                configured=configured,
                waits=link.stranger,
            )
            return True
        await link.queued.acquire()  # released once the worker handled the frame
        await self.pipeline.put_frame(Frame(peer, data, link))
        return True

    def drop(self, link: Link, peer: bytes) -> None:
        link.violated = True
        if not link.dropped:
            link.dropped = True
            self._count("peers_dropped")
            log.warning("disconnecting %s: protocol violation", peer.hex()[:16])
            self._spawn(link.conn.close())

    def fault(self, link: Link, peer: bytes, error: Exception) -> None:
        """The node refused (or failed on) a message of ``peer``: count it, and after too
        many, disconnect and ban the peer."""
        if not is_fault(error):
            return
        self._count("peer_faults")
        if self.bans.fault(peer):
            self._count("peers_banned")
            log.warning(
                "banning %s for %.0f s: %d refused messages within %.0f s (last: %s)",
                peer.hex()[:16],
                self.config.peer_policy.ban_seconds,
                self.config.peer_policy.max_faults,
                self.config.peer_policy.fault_window,
                error,
            )
            self.drop(link, peer)

    # --- announcements ----------------------------------------------------------------------

    async def announce_to(self, link: Link) -> None:
        node = self.pipeline.node
        if node is None:
            return
        try:
            announcement = await self.pipeline.in_worker(self._current_announcement, node)
            frames, _ = self._frames(announcement)
        except MessageTooLarge as exc:  # ours, not the link's: the timer's announce says so
            log.warning("cannot announce our channels to a new peer: %s", exc)
            return
        self.send_all([(link.conn.peer_id, frame) for frame in frames])

    async def announce_all(self) -> int:
        """Announce our channels to every peer if they changed (or long ago); returns how
        many of our edges did not fit in an announcement (``gossip.split``)."""
        node = self.pipeline.node
        assert node is not None
        now = time.monotonic()
        stale = now - self._last_announced_at > 30 * self.config.announce_interval
        announcement = await self.pipeline.in_worker(self._current_announcement, node, stale)
        if announcement is self._last_announcement and not stale:
            return self._left_out
        self._last_announcement, self._last_announced_at = announcement, now
        frames, self._left_out = self._frames(announcement)
        self.send_all([(peer, frame) for peer in list(self.links) for frame in frames])
        return self._left_out

    def _current_announcement(self, node: Node, rebuild: bool = False) -> Announcement:
        """On the node's thread: our announcement, built again only if one of our edges
        changed since it was built (``OwnEdges.revision``: a channel's capacity, our fees,
        a channel opened or closed), our rates did, or ``rebuild`` (the timer's long
        interval: the chains' time models): every ``announce_interval`` and every new link
        read every channel (0.4-1 s for 100,000 channels). One equal to the last keeps its
        object (``announce_all`` compares identities)."""
        mark = (node.own_edges().revision, tuple(node.policy.rates.items()))
        if self._current is None or mark != self._announced_mark or rebuild:
            built = own_announcement(node)
            if built != self._current:
                self._current = built
            self._announced_mark = mark
        return self._current

    def _frames(self, announcement: Announcement) -> tuple[list[bytes], int]:
        self._serial += 1  # each announcement's parts apart from the previous one's
        parts, left_out = split(announcement, self._serial)
        return [encode_announcement(part) for part in parts], left_out


def _members_among(node: Node, peers: list[bytes], min_stake: Mapping[Asset, int]) -> list[bytes]:
    """The ``peers`` that are members of one of our channels (on the node's thread)."""
    return [peer for peer in peers if node.is_member(peer, min_stake)]


#: Members' links whose standing one tick asks about (``Peers.demote_lapsed``): a look at
#: each of the peer's channels on the node's thread (``Node.is_member``).
_ASKED_PER_TICK = 256

#: Places of strangers gone remembered for their tenure (``Peers._drop_stranger``): beyond,
#: the oldest are forgotten (a peer whose place is forgotten starts a new tenure).
_LEFT_KEPT = 4096


def stranger_to_evict(
    places: Mapping[bytes, float],
    newcomer: bytes,
    now: float,
    tenure: float,
    spared: Container[bytes],
) -> bytes | None:
    """The stranger that gives way to ``newcomer``: of ``places`` (each stranger's peer id
    and since when it holds its place), the one that has held it longest, if for
    ``tenure`` seconds; never ``newcomer`` itself nor a peer in ``spared`` (configured or
    added)."""
    held = {p: since for p, since in places.items() if p != newcomer and p not in spared}
    if not held:
        return None
    victim = min(held, key=held.__getitem__)
    return victim if now - held[victim] >= tenure else None
