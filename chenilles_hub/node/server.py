"""The node process: the asyncio shell that drives a :class:`~.hub.Node`.

The node's logic has no event loop; this module gives it one. Everything that touches the
``Node`` (peer messages, API requests, timer ticks, chain polling) runs on **one worker
thread**, one call at a time: the node never sees two events at once, and the event loop
stays free to read sockets and answer the API while a call waits for a chain. After each
call the outbox is taken *after* the call returned (the node checkpointed by then) and
only then sent, so nothing signed leaves before it is durable.

Connections: we dial every configured peer (with exponential backoff) and accept any
authenticated peer (unless ``accept_unknown_peers = false``). When two connections to one
peer exist (both sides dialled), both sides keep the one initiated by the smaller node id,
or the newest if one side initiated both (a restarted peer). On every (re)connection the
node re-sends what the peer may have missed (``Node.reestablish``); the channel protocol
is idempotent, so duplicates are harmless.

A peer that sends a frame that does not decode (garbage, wrong types, oversized) is
disconnected; the transport already drops frames that fail authentication (tampered or
replayed ciphertext) and oversized frames. Other peers and channels are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..backend import NewBlock
from ..core.errors import DecodeError
from . import wire
from .bootstrap import (
    Chains,
    build_chains,
    build_policy,
    holder_id,
    load_identity,
    load_token,
    open_store,
)
from .config import NodeConfig, PeerConfig
from .gossip import (
    GOSSIP_PREFIX,
    Announcement,
    GraphView,
    decode_announcement,
    encode_announcement,
    own_announcement,
)
from .hub import Node
from .store import Store
from .transport import Listener, PeerConnection, TcpTransport, Transport, TransportError

log = logging.getLogger("chenilles.server")
T = TypeVar("T")

#: Messages kept for a peer that is offline: opening and funding notices (channel messages
#: are not kept: ``reestablish`` regenerates them on reconnection).
MAX_PENDING_PER_PEER = 64
_CHANNEL_MESSAGE_TYPES = ("propose", "accept", "ack", "reject", "reestablish")


#: Most channel messages handled in one worker job and one durable commit.
RECEIVE_BATCH = 64


@dataclass
class _Link:
    conn: PeerConnection
    initiator: bytes
    started: float = field(default_factory=time.monotonic)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class HubServer:
    """One running node: transport, API, timers and the store, from a :class:`NodeConfig`.

    ``chains``/``store``/``transport`` may be given (in-process tests); otherwise they are
    built from the config. ``clock`` defaults to wall-clock unix seconds.
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        chains: Chains | None = None,
        store: Store | None = None,
        transport: Transport | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.identity = load_identity(config.identity_file)
        self.token = load_token(config.token_file)
        self._given_chains = chains
        self._given_store = store
        self.transport = transport or TcpTransport(self.identity)
        self.clock = clock or (lambda: int(time.time()))
        self.node: Node | None = None
        self.chains: Chains | None = None
        self.store: Store | None = None
        self.graph = GraphView()
        self.links: dict[bytes, _Link] = {}
        self.pending: dict[bytes, list[bytes]] = {}
        self.peers: dict[bytes, PeerConfig] = {p.node_id: p for p in config.peers}
        self.role = "starting"  # starting, standby, leader, stopping
        self.started_at = time.time()
        self.stats: dict[str, int] = {}
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="node")
        #: Channel messages waiting for the receive loop: (peer, frame, answer).
        self._inbox: asyncio.Queue[tuple[bytes, bytes, asyncio.Future[BaseException | None]]]
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: Listener | None = None
        self._api_runner: Any = None
        self._last_announcement: Announcement | None = None
        self._last_announced_at = 0.0
        self.listen_port = config.listen_port
        self.api_port = config.api_port

    # === life cycle ==========================================================================

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def request_stop(self, reason: str = "requested", exit_code: int = 0) -> None:
        if not self._stop.is_set():
            log.info("stopping: %s", reason)
            self.exit_code = exit_code
            self._stop.set()

    async def run(self, *, install_signals: bool = True) -> int:
        """Serve until stopped (SIGTERM/SIGINT, ``POST /v1/stop``, a lost lease)."""
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.shutdown()
        return self.exit_code

    async def start(self) -> None:
        from .api import start_api  # aiohttp is only needed by a running node

        phase = time.monotonic()
        timings: dict[str, float] = {}

        def lap(name: str) -> None:
            nonlocal phase
            now = time.monotonic()
            timings[name] = round(now - phase, 3)
            phase = now

        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_pid()
        self._api_runner, self.api_port = await start_api(self)
        self.store = self._given_store or await self._in_worker(open_store, self.config)
        lap("api_and_store")
        await self._acquire_lease()
        if self._stop.is_set():
            return
        lap("lease")
        chains = self._given_chains
        if chains is None:
            chains = await self._in_worker(build_chains, self.config, self.store)
        self.chains = chains
        self.node = Node(
            identity=self.identity,
            backends=chains.backends,
            accounts=chains.accounts,
            clock=self.clock,
            name=self.config.name,
            policy=build_policy(self.config),
            store=self.store,
        )
        lap("chains")
        await self._in_worker(self.node.restore)
        self.node.autocommit = False  # the receive loop and ``call`` checkpoint per job
        self._inbox = asyncio.Queue()
        self._spawn(self._receive_loop())
        lap("restore")
        self._listener = await self.transport.serve(
            self.config.listen_host, self.config.listen_port, self._on_incoming, allow=self._allow
        )
        self.listen_port = self._listener.port
        self.role = "leader"
        for peer in self.config.peers:
            self._spawn(self._dial_loop(peer))
        self._spawn(self._timer_loop())
        log.info("start-up phases (s): %s", timings, extra={"phases": timings})
        log.info(
            "node %s (%s) serving peers on %s:%d, API on %s:%d",
            self.config.name,
            self.node_id.hex(),
            self.config.listen_host,
            self.listen_port,
            self.config.api_host,
            self.api_port,
        )

    async def shutdown(self) -> None:
        self.role = "stopping"
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listener is not None:
            await self._listener.close()
        for link in list(self.links.values()):
            await link.conn.close()
        if self._api_runner is not None:
            await self._api_runner.cleanup()
        # Let the call in progress finish (it is atomic for the store), then close.
        await asyncio.get_running_loop().run_in_executor(None, self._worker.shutdown, True)
        if self.chains is not None and self._given_chains is None:
            self.chains.close()
        if self.store is not None and self._given_store is None:
            self.store.close()
        with contextlib.suppress(OSError):
            if self.config.pid_file.read_text().strip() == str(os.getpid()):
                self.config.pid_file.unlink()
        log.info("node %s stopped", self.config.name)

    def _write_pid(self) -> None:
        self.config.pid_file.write_text(f"{os.getpid()}\n")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a node task failed", exc_info=task.exception())
            self.request_stop(f"internal error: {task.exception()!r}", exit_code=1)

    # === the leader lease (PostgreSQL) =======================================================

    async def _acquire_lease(self) -> None:
        acquire = getattr(self.store, "acquire_lease", None)
        if acquire is None:
            return  # SQLite: the file lock already makes this process the only writer
        holder = holder_id()
        ttl = self.config.lease_ttl
        self.role = "standby"
        while not self._stop.is_set():
            if await self._in_worker(acquire, self.config.name, holder, ttl):
                log.info("holding the leader lease for %s as %s", self.config.name, holder)
                self._spawn(self._lease_loop())
                return
            log.info("standby: the lease on %s is held by another process", self.config.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), ttl / 3)

    async def _lease_loop(self) -> None:
        renew = self.store.renew_lease  # type: ignore[union-attr]
        while True:
            await asyncio.sleep(self.config.lease_ttl / 3)
            ok = await asyncio.get_running_loop().run_in_executor(None, renew)
            if not ok:
                # Someone else may be writing already: stop at once, sign nothing more.
                log.critical("lost the leader lease: stopping")
                self.request_stop("lost the leader lease", exit_code=3)
                return

    # === calling the node ====================================================================

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(fn, *args))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the node's thread, then send what it queued."""

        def job() -> tuple[T | None, BaseException | None, list[tuple[bytes, bytes]]]:
            assert self.node is not None
            try:
                result, error = fn(*args), None
            except Exception as exc:  # reported to the caller, after the outbox is handled
                result, error = None, exc
            self.node.checkpoint()  # durable before anything the call queued is sent
            outbox, self.node.outbox = self.node.outbox, []
            return result, error, outbox

        result, error, outbox = await self._in_worker(job)
        await self._send_all(outbox)
        if error is not None:
            raise error
        return result  # type: ignore[return-value]

    async def _send_all(self, outbox: list[tuple[bytes, bytes]]) -> None:
        for peer, data in outbox:
            link = self.links.get(peer)
            if link is not None and not link.conn.closed:
                try:
                    async with link.send_lock:
                        await link.conn.send(data)
                    self.count("messages_sent")
                    continue
                except TransportError as exc:
                    log.info("send to %s failed: %s", peer.hex()[:16], exc)
                    await link.conn.close()
            self._keep_for_later(peer, data)

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

    # === peers ===============================================================================

    async def _allow(self, peer: bytes) -> bool:
        return self.config.accept_unknown_peers or peer in self.peers

    async def _on_incoming(self, conn: PeerConnection) -> None:
        await self._serve_peer(conn, initiator=conn.peer_id)

    async def _dial_loop(self, peer: PeerConfig) -> None:
        delay = self.config.reconnect_min
        while True:
            link = self.links.get(peer.node_id)
            if link is not None and not link.conn.closed:
                await asyncio.sleep(self.config.reconnect_min)
                continue
            try:
                conn = await self.transport.connect(peer.host, peer.port, peer.node_id)
            except (OSError, TransportError) as exc:
                log.debug("connecting to %s failed: %s", peer.node_id.hex()[:16], exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max)
                continue
            delay = self.config.reconnect_min
            await self._serve_peer(conn, initiator=self.node_id)
            await asyncio.sleep(self.config.reconnect_min)

    def _prefer_existing(self, existing: _Link, initiator: bytes) -> bool:
        if existing.conn.closed:
            return False
        if existing.initiator == initiator:
            return False  # the same side dialled again (it restarted): the newest wins
        return existing.initiator < initiator

    async def _serve_peer(self, conn: PeerConnection, initiator: bytes) -> None:
        peer = conn.peer_id
        if self.node is None or peer == self.node_id:
            await conn.close()
            return
        existing = self.links.get(peer)
        if existing is not None:
            if self._prefer_existing(existing, initiator):
                await conn.close()
                return
            await existing.conn.close()
        link = _Link(conn, initiator)
        self.links[peer] = link
        self.count("connections")
        log.info("peer %s connected", peer.hex()[:16])
        try:
            for data in self.pending.pop(peer, []):
                async with link.send_lock:
                    await conn.send(data)
            await self.call(self.node.reestablish, peer)
            await self._announce_to(link, force=True)
            while True:
                data = await conn.recv()
                if not await self._on_frame(peer, data):
                    self.count("peers_dropped")
                    log.warning("disconnecting %s: protocol violation", peer.hex()[:16])
                    break
        except TransportError as exc:
            log.info("peer %s disconnected: %s", peer.hex()[:16], exc)
        finally:
            if self.links.get(peer) is link:
                del self.links[peer]
            await conn.close()

    async def _on_frame(self, peer: bytes, data: bytes) -> bool:
        """Handle one frame; ``False`` if the peer must be disconnected."""
        assert self.node is not None
        self.count("messages_received")
        if data.startswith(GOSSIP_PREFIX):
            try:
                announcement = decode_announcement(data)
            except DecodeError as exc:
                log.warning("bad announcement from %s: %s", peer.hex()[:16], exc)
                self.count("messages_malformed")
                return False
            self.graph.accept(peer, announcement)
            return True
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        await self._inbox.put((peer, data, done))
        malformed = await done
        if malformed is not None:
            self.count("messages_malformed")
            log.warning("malformed message from %s: %s", peer.hex()[:16], malformed)
            return False
        return True

    async def _receive_loop(self) -> None:
        """Group commit: take every channel message that arrived while the node was busy,
        handle them in one worker job, checkpoint once, then send what they produced.
        Under load this turns one durable commit per message into one per batch; an idle
        node still answers a lone message at once."""
        assert self.node is not None
        node = self.node
        while True:
            batch = [await self._inbox.get()]
            while len(batch) < RECEIVE_BATCH and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())

            def job(
                batch: list[tuple[bytes, bytes, Any]] = batch,
            ) -> tuple[list[BaseException | None], list[tuple[bytes, bytes]]]:
                results: list[BaseException | None] = []
                for peer, data, _ in batch:
                    before = len(node.errors)
                    node.receive(peer, data)
                    new = node.errors[before:]
                    results.append(next((e for e in new if isinstance(e, DecodeError)), None))
                del node.errors[:-100]  # keep memory bounded on a long-running node
                node.checkpoint()
                outbox, node.outbox = node.outbox, []
                return results, outbox

            try:
                results, outbox = await self._in_worker(job)
            except Exception as exc:  # the node's own bug: fail these frames, keep serving
                log.exception("receiving a batch failed")
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            self.count("receive_batches")
            await self._send_all(outbox)
            for (_, _, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)

    async def _announce_to(self, link: _Link, force: bool = False) -> None:
        if self.node is None:
            return
        announcement = await self._in_worker(own_announcement, self.node)
        try:
            async with link.send_lock:
                await link.conn.send(encode_announcement(announcement))
        except TransportError:
            await link.conn.close()

    async def _announce_all(self) -> None:
        assert self.node is not None
        announcement = await self._in_worker(own_announcement, self.node)
        now = time.monotonic()
        stale = now - self._last_announced_at > 30 * self.config.announce_interval
        if announcement == self._last_announcement and not stale:
            return
        self._last_announcement, self._last_announced_at = announcement, now
        frame = encode_announcement(announcement)
        for link in list(self.links.values()):
            try:
                async with link.send_lock:
                    await link.conn.send(frame)
            except TransportError:
                await link.conn.close()

    def add_peer(self, peer: PeerConfig) -> None:
        """A peer added at run time (API): dialled like a configured one (not persisted)."""
        if peer.node_id in self.peers:
            return
        self.peers[peer.node_id] = peer
        self._spawn(self._dial_loop(peer))

    # === time and chains =====================================================================

    async def _timer_loop(self) -> None:
        last_announce = 0.0
        while True:
            await asyncio.sleep(self.config.tick_interval)
            await self.call(self._chain_tick)
            if time.monotonic() - last_announce >= self.config.announce_interval:
                last_announce = time.monotonic()
                await self._announce_all()

    def _chain_tick(self) -> None:
        """Poll every chain, hand the events to the watcher, then let time pass."""
        assert self.node is not None and self.chains is not None and self.store is not None
        for name, chain in self.chains.names.items():
            backend = self.chains.backends[chain]
            try:
                events = backend.poll_events()
            except Exception as exc:  # an unreachable chain must not stop the others
                self.count("chain_poll_errors")
                log.warning("polling %s failed: %s", chain, exc)
                continue
            if events:
                self.node.on_chain_events(chain, events)
            key = f"chain-origin/{name}"
            heights = [e.height for e in events if isinstance(e, NewBlock)]
            if heights and self.store.get_setting(key) is None:
                # Where to resume the event feed after a restart: a little before the
                # first block seen, so nothing between connecting and polling is missed.
                self.store.set_setting(key, str(max(0, heights[0] - 64)).encode())
        self.node.tick()
