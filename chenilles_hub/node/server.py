"""The node process: the asyncio shell that drives a :class:`~.hub.Node`.

The node's logic has no event loop; this module gives it one. Everything that changes the
``Node`` (peer messages, API requests, timer ticks, chain polling) goes through **one work
queue** and runs on **one worker thread**: the node never sees two events at once, and the
event loop stays free to read sockets and answer the API while a job waits for a chain.
Whatever queued up while the worker was busy runs as one job, in arrival order, followed by
one checkpoint (group commit); only then is the job's outbox sent and are its callers
answered, so nothing signed leaves before it is durable, and under load one durable commit
serves many messages and requests. Frames from one connection are read ahead without waiting
for the previous one to be handled (the queue is bounded, so a flood blocks the socket, not
memory): a connection's messages pipeline into the same commits.

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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..backend import NewBlock
from ..core import Asset, ChannelSnapshot
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
from .work import (
    RECEIVE_BATCH,
    SEND_TIMEOUT,
    WORK_QUEUE_BOUND,
    WRITES_IN_FLIGHT,
    Call,
    Done,
    Frame,
    Link,
    TransferFailed,
    release_frames,
)

log = logging.getLogger("chenilles.server")
T = TypeVar("T")

#: Messages kept for a peer that is offline: opening and funding notices (channel messages
#: are not kept: ``reestablish`` regenerates them on reconnection).
MAX_PENDING_PER_PEER = 64
_CHANNEL_MESSAGE_TYPES = ("propose", "accept", "ack", "reject", "reestablish")


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
        self.links: dict[bytes, Link] = {}
        self.pending: dict[bytes, list[bytes]] = {}
        self.peers: dict[bytes, PeerConfig] = {p.node_id: p for p in config.peers}
        self.role = "starting"  # starting, standby, leader, stopping
        self.started_at = time.time()
        self.stats: dict[str, int] = {}
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="node")
        #: Writes checkpoints while the worker handles the next job.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="writer")
        #: Handled jobs waiting for their checkpoint to be written, in order.
        self._written: asyncio.Queue[Done] = asyncio.Queue(WRITES_IN_FLIGHT)
        #: Frames and calls waiting for the worker, in arrival order.
        self._work: asyncio.Queue[Frame | Call] = asyncio.Queue(WORK_QUEUE_BOUND)
        #: Set when a checkpoint could not be written: the node then handles nothing more.
        self._store_failed: Exception | None = None
        #: Callers waiting for a direct transfer to become irrevocable, by ticket.
        self._tickets: dict[int, asyncio.Future[int]] = {}
        #: Callers waiting for a payment of ours to succeed or fail, by payment hash.
        self._payment_waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._next_ticket = 0
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
        self.node.report_outcomes = True  # transfers and payments callers wait for
        self._spawn(self._work_loop())
        self._spawn(self._write_loop())
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
        # Let the job and the write in progress finish (a write is atomic), then close. Jobs
        # handled but not written are dropped with their outbox: nothing of them left.
        await asyncio.get_running_loop().run_in_executor(None, self._worker.shutdown, True)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.shutdown, True)
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

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read of the node's state (an API view) in the work queue: it is answered
        after the write of its job, so it never shows anything a crash could take back."""
        return await self.call(fn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the node's thread in the next group commit; return its result
        (or raise its error) once what it queued is durable and sent."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._work.put(Call(functools.partial(fn, *args), answer))
        return await answer

    async def transfer(self, channel_id: bytes, asset: Asset, amount: int) -> int:
        """Pay the channel's peer ``amount`` directly; return the version of the signed state
        that carries it once both sides hold it (raises :class:`TransferFailed` if the
        channel or the peer refused it)."""
        (outcome,) = await self.transfers([(channel_id, asset, amount)])
        if isinstance(outcome, TransferFailed):
            raise outcome
        return outcome

    async def transfers(self, items: list[tuple[bytes, Asset, int]]) -> list[int | TransferFailed]:
        """Several direct transfers queued in one job (one per item, in order, each its own
        update; those on one channel go out together where they fit in one state). Per item:
        the version that carries it, or why it failed."""
        assert self.node is not None
        node = self.node
        loop = asyncio.get_running_loop()
        tickets: list[int] = []
        for _ in items:
            self._next_ticket += 1
            tickets.append(self._next_ticket)
            self._tickets[self._next_ticket] = loop.create_future()

        def queue_all() -> None:  # checked again here: the channel may have changed since
            node.transfer_many([(c, a, n, t) for (c, a, n), t in zip(items, tickets, strict=True)])

        try:
            await self.call(queue_all)
            outcomes = await asyncio.gather(
                *(self._tickets[t] for t in tickets), return_exceptions=True
            )
        finally:
            for ticket in tickets:
                self._tickets.pop(ticket, None)
        results: list[int | TransferFailed] = []
        for outcome in outcomes:
            if isinstance(outcome, TransferFailed | int):
                results.append(outcome)
            else:
                raise outcome  # cancelled, or the node's own bug
        return results

    @contextlib.contextmanager
    def payment_outcome(self, payment_hash: bytes) -> Iterator[asyncio.Future[None]]:
        """A future done once our payment ``payment_hash`` succeeded or failed (after the
        checkpoint that recorded it). Enter before starting the payment: it may finish in
        the very job that starts it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._payment_waiters.setdefault(payment_hash, [])
        waiters.append(done)
        try:
            yield done
        finally:
            waiters.remove(done)
            if not waiters:
                del self._payment_waiters[payment_hash]

    def _send_all(self, outbox: list[tuple[bytes, bytes]]) -> None:
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
                    self.count("peers_not_reading")
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
                        await link.conn.send(batch[0])
                        del batch[0]
                        self.count("messages_sent")
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

    def _prefer_existing(self, existing: Link, initiator: bytes) -> bool:
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
        link = Link(conn, initiator)
        self.links[peer] = link
        self.count("connections")
        log.info("peer %s connected", peer.hex()[:16])
        sender = asyncio.get_running_loop().create_task(self._send_loop(link, peer))
        try:
            self._send_all([(peer, data) for data in self.pending.pop(peer, [])])
            await self.call(self.node.reestablish, peer)
            await self._announce_to(link, force=True)
            while not link.violated:
                data = await conn.recv()
                if not await self._on_frame(peer, data, link):
                    self._drop(link, peer)
                    break
        except TransportError as exc:
            log.info("peer %s disconnected: %s", peer.hex()[:16], exc)
        finally:
            if self.links.get(peer) is link:
                del self.links[peer]
            await conn.close()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _on_frame(self, peer: bytes, data: bytes, link: Link) -> bool:
        """Queue one frame for the worker; ``False`` if the peer must be disconnected now.
        (A channel message that does not decode is found by the worker, which drops the
        link then.)"""
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
        await link.queued.acquire()  # released once the worker handled the frame
        await self._work.put(Frame(peer, data, link))
        return True

    def _drop(self, link: Link, peer: bytes) -> None:
        link.violated = True
        if not link.dropped:
            link.dropped = True
            self.count("peers_dropped")
            log.warning("disconnecting %s: protocol violation", peer.hex()[:16])
            self._spawn(link.conn.close())

    async def _work_loop(self) -> None:
        """Group commit, pipelined: take every frame and call that arrived while the node was
        busy, handle them in one worker job in arrival order and take one checkpoint of what
        they changed; the writer stage writes it (on its own thread) and only then sends what
        the job produced and answers its callers. Meanwhile the worker goes on with the next
        job, so the node computes while the disk syncs. Jobs are written and released in
        order, so nothing leaves before the state it depends on is durable. An idle node
        still handles a lone item at once."""
        assert self.node is not None
        node = self.node
        while True:
            batch = [await self._work.get()]
            while len(batch) < RECEIVE_BATCH and not self._work.empty():
                batch.append(self._work.get_nowait())
            if self._store_failed is not None:  # memory is ahead of disk: do nothing more
                for item in batch:
                    if isinstance(item, Call) and not item.answer.done():
                        item.answer.set_exception(self._store_failed)
                release_frames(batch)
                continue

            def job(batch: list[Frame | Call] = batch) -> Done:
                outcomes: list[Any] = []
                for item in batch:
                    if isinstance(item, Call):
                        try:
                            outcomes.append((item.fn(), None))
                        except Exception as exc:  # reported to the caller after the write
                            outcomes.append((None, exc))
                        continue
                    if item.link.violated:
                        outcomes.append(None)  # sent after a malformed frame: ignored
                        continue
                    before = len(node.errors)
                    data, item.data = item.data, b""  # not kept while the job awaits its write
                    node.receive(item.peer, data)
                    new = node.errors[before:]
                    malformed = next((e for e in new if isinstance(e, DecodeError)), None)
                    if malformed is not None:
                        item.link.violated = True  # later frames of this link: ignored
                    outcomes.append(malformed)
                del node.errors[:-100]  # keep memory bounded on a long-running node
                done = Done(batch, outcomes, node.take_checkpoint(), node.outbox)
                node.outbox = []
                done.settled, node.ticket_outcomes = node.ticket_outcomes, []
                done.paid, node.finished_payments = node.finished_payments, []
                return done

            try:
                done = await self._in_worker(job)
            except Exception as exc:  # the node's own bug: fail the job's callers
                log.exception("a worker job failed")
                for item in batch:
                    if isinstance(item, Call) and not item.answer.done():
                        item.answer.set_exception(exc)
                continue
            finally:
                release_frames(batch)
            self.count("receive_batches")
            await self._written.put(done)  # bounded: the worker waits for a slow disk

    async def _write_loop(self) -> None:
        """The writer stage of :meth:`_work_loop`: write the checkpoints of every job handled
        since the last write in one transaction (a channel's newest snapshot and each
        record's newest value win), then release those jobs' outboxes and answers in order.
        While a write syncs, the worker handles more jobs and the next write takes them all:
        one fsync serves whatever the node did in the meantime.
        A failed write stops the node: what it remembers would be ahead of what it could
        recover, so it must not sign anything more."""
        assert self.store is not None
        store = self.store
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._written.get()]
            while not self._written.empty():
                jobs.append(self._written.get_nowait())
            snapshots: dict[bytes, ChannelSnapshot] = {}
            records: dict[str, bytes] = {}
            for done in jobs:
                if done.write is not None:
                    snapshots.update((s.channel_id, s) for s in done.write[0])
                    records.update(done.write[1])
            if snapshots or records:
                try:
                    await loop.run_in_executor(
                        self._writer, store.save_checkpoint, list(snapshots.values()), records
                    )
                except Exception as exc:
                    self._store_failed = exc
                    log.critical("writing a checkpoint failed: stopping", exc_info=exc)
                    for done in jobs:
                        for item in done.batch:
                            if isinstance(item, Call) and not item.answer.done():
                                item.answer.set_exception(exc)
                    self.request_stop(f"the store failed: {exc!r}", exit_code=1)
                    return
                self.count("checkpoint_writes")
            for done in jobs:
                self._send_all(done.outbox)
                self._answer(done)

    def _answer(self, done: Done) -> None:
        for item, outcome in zip(done.batch, done.outcomes, strict=True):
            if isinstance(item, Call):
                result, error = outcome
                if item.answer.done():
                    continue  # the caller went away (a cancelled API request)
                if error is not None:
                    item.answer.set_exception(error)
                else:
                    item.answer.set_result(result)
            elif outcome is not None:
                self.count("messages_malformed")
                log.warning("malformed message from %s: %s", item.peer.hex()[:16], outcome)
                self._drop(item.link, item.peer)
        for ticket, version, reason in done.settled:
            waiter = self._tickets.get(ticket)
            if waiter is None or waiter.done():
                continue
            if version is not None:
                waiter.set_result(version)
            else:
                waiter.set_exception(TransferFailed(reason or "refused"))
        for payment_hash in done.paid:
            for paid in self._payment_waiters.get(payment_hash, ()):
                if not paid.done():
                    paid.set_result(None)

    async def _announce_to(self, link: Link, force: bool = False) -> None:
        if self.node is None:
            return
        announcement = await self._in_worker(own_announcement, self.node)
        self._send_all([(link.conn.peer_id, encode_announcement(announcement))])

    async def _announce_all(self) -> None:
        assert self.node is not None
        announcement = await self._in_worker(own_announcement, self.node)
        now = time.monotonic()
        stale = now - self._last_announced_at > 30 * self.config.announce_interval
        if announcement == self._last_announcement and not stale:
            return
        self._last_announcement, self._last_announced_at = announcement, now
        frame = encode_announcement(announcement)
        self._send_all([(peer, frame) for peer in list(self.links)])

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
