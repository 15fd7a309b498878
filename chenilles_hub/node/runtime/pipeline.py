"""The node's work pipeline: one work queue, one worker thread, one writer thread.

Everything that changes the ``Node`` (peer frames, API requests, timer ticks, chain
polling) goes through the work queue and runs on the worker thread: the node never sees
two events at once, and the event loop stays free to read sockets and answer the API while
a job waits for a chain. Whatever queued up while the worker was busy runs as one job, in
arrival order, followed by one checkpoint (group commit). The worker hands the handled job
straight to the writer thread, which writes it and only then hands the job's outbox and
answers to the event loop: nothing signed leaves before it is durable, and under load one
durable commit serves many messages and requests.

The worker takes its work from the queue itself, and the writer hands each write to the
event loop once: a job wakes the event loop once, after its write. Waking a thread costs
~0.1 ms on a small VM (a self-pipe write and a GIL hand-over), and a payment's messages
each make a job on every hop; the worker used to be an executor that reported the end of
every job to the loop, which then handed the job to the writer (docs/performance-history.md,
"Fewer thread crossings per job").
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from chenilles_hub.core import Asset, ChannelSnapshot
from chenilles_hub.core.errors import DecodeError

from ..api.service import TransferFailed
from ..hub.node import Node
from ..hub.records import Payment
from ..store.base import Store, StoreError
from .threads import name_os_thread
from .work import (
    DURABLE_WAIT,
    RECEIVE_BATCH,
    WORK_QUEUE_BOUND,
    WRITES_IN_FLIGHT,
    Call,
    Done,
    Frame,
    Link,
    release_frames,
)

log = logging.getLogger("chenilles.server")
T = TypeVar("T")

Outbox = list[tuple[bytes, bytes]]


class Pipeline:
    """``node`` and ``store`` are set by the server once they exist. ``send_all`` hands a
    released outbox to the peers' senders; ``drop`` disconnects a peer that sent a
    malformed frame; ``fault`` counts a frame the node refused or failed on against its
    peer (who is banned after repeated faults); ``fail`` stops the node when the store
    cannot be written."""

    def __init__(
        self,
        count: Callable[[str], None],
        send_all: Callable[[Outbox], None],
        drop: Callable[[Link, bytes], None],
        fail: Callable[[str, int], None],
        fault: Callable[[Link, bytes, Exception], None] | None = None,
    ) -> None:
        self.node: Node | None = None
        self.store: Store | None = None
        self._count = count
        self._send_all = send_all
        self._drop = drop
        self._fail = fail
        self._fault = fault
        #: What the worker thread is to do, in arrival order: frames and calls (handled in
        #: jobs), functions to run on the node's thread (``in_worker``), or ``_STOP``.
        self._inbox: queue.SimpleQueue[Frame | Call | _Direct | object] = queue.SimpleQueue()
        #: Frames and calls queued, being handled or awaiting their write (event loop only):
        #: readers and callers wait while ``WORK_QUEUE_BOUND`` are (backpressure).
        self._in_flight = 0
        self._room = asyncio.Event()
        self._worker: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Done when the worker thread ends (with its error if a bug ended it).
        self._worker_stopped: asyncio.Future[None] | None = None
        #: Handled jobs waiting for the writer thread, in order; bounded, so the worker
        #: waits for a slow disk. ``None`` stops the writer.
        self._written: queue.Queue[Done | None] = queue.Queue(WRITES_IN_FLIGHT)
        #: Writes checkpoints while the worker handles the next job (:meth:`write_loop`).
        self._writer: threading.Thread | None = None
        #: Set at shutdown: what is handled but not written yet is dropped, unsent.
        self._closing = False
        #: Jobs handed to the writer, and jobs it settled (written, or refused after a
        #: failed write): ``wait_written``.
        self._handed = 0
        self._settled = 0
        self._progress = threading.Condition()
        #: Set when a checkpoint could not be written: the node then handles nothing more.
        self._store_failed: Exception | None = None
        #: A relaxed write is not yet known to be on disk: synced before anything leaves.
        #: (The writer thread's alone.)
        self._unsynced = False
        #: Callers waiting for a direct transfer to become irrevocable, by ticket.
        self._tickets: dict[int, asyncio.Future[int]] = {}
        #: Callers waiting for a payment of ours to succeed or fail, by payment hash.
        self._payment_waiters: dict[bytes, list[asyncio.Future[Payment]]] = {}
        self._next_ticket = 0
        #: Callers of ``call`` and ``in_worker`` not answered yet (event loop only): a stop
        #: drops the jobs it did not write, unanswered, so it refuses these instead.
        self._waiting: set[asyncio.Future[Any]] = set()
        #: How loaded the two threads are (``load``): the worker's time in jobs and direct
        #: calls (wall and its own CPU), the frames and calls its jobs handled, the writer's
        #: time in writes. Each is added to by one thread only.
        self._busy_seconds = 0.0
        self._busy_cpu_seconds = 0.0
        self._items_handled = 0
        self._write_seconds = 0.0

    def load(self) -> dict[str, float | int]:
        """Totals since the start, for ``/metrics``: ``busy_seconds`` (wall time of the
        node's thread in jobs and direct calls: the share of the time it is occupied),
        ``busy_cpu_seconds`` (its own CPU meanwhile: the node's work; the rest it waited,
        for the interpreter's lock, a core, or I/O on its thread such as an embedded
        ledger's poll or a backup waiting for the writer), ``items_handled`` (frames and
        calls handled in jobs; a job that only goes on proposing handles none) and
        ``write_seconds`` (checkpoints written, durable or relaxed, and syncs)."""
        return {
            "busy_seconds": self._busy_seconds,
            "busy_cpu_seconds": self._busy_cpu_seconds,
            "items_handled": self._items_handled,
            "write_seconds": self._write_seconds,
        }

    # --- calling the node -------------------------------------------------------------------

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the node's thread, between jobs, in arrival order; no
        checkpoint follows (a read, or work with its own writes)."""
        loop = self._start_worker()
        answer: asyncio.Future[T] = self._waiter(loop)
        self._inbox.put(_Direct(functools.partial(fn, *args), answer))
        return await answer

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the node's thread in the next group commit; return its result
        (or raise its error) once what it queued is durable and sent."""
        answer: asyncio.Future[T] = self._waiter(asyncio.get_running_loop())
        await self._enqueue(Call(functools.partial(fn, *args), answer))
        return await answer

    def _waiter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        """A caller's answer, refused at once if the node is stopping (nothing would
        answer it), and kept until answered so that a stop can refuse it."""
        answer: asyncio.Future[Any] = loop.create_future()
        if self._closing:
            answer.set_exception(NodeStopping("the node is stopping"))
            return answer
        self._waiting.add(answer)
        answer.add_done_callback(self._waiting.discard)
        return answer

    def _refuse_waiting(self) -> None:
        """At a stop: every caller not answered yet hears that the node stopped (what it
        asked for may have been written, not sent: as after a crash, reestablish resends)."""
        for answer in list(self._waiting):
            if not answer.done():
                answer.set_exception(NodeStopping("the node stopped before answering"))

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)`` for the node's thread without waiting for it (a link that
        ends must not wait for the node, nor block a shutdown); ``False`` if the work queue
        is full (the caller's cleanup then waits for a timeout instead)."""
        loop = self._start_worker()
        if self._in_flight >= WORK_QUEUE_BOUND:
            return False
        answer: asyncio.Future[Any] = loop.create_future()
        answer.add_done_callback(_log_failure)
        self._in_flight += 1
        self._inbox.put(Call(functools.partial(fn, *args), answer))
        return True

    async def put_frame(self, frame: Frame) -> None:
        await self._enqueue(frame)

    async def _enqueue(self, item: Frame | Call) -> None:
        self._start_worker()
        while self._in_flight >= WORK_QUEUE_BOUND:
            self._room.clear()
            await self._room.wait()
        self._in_flight += 1
        self._inbox.put(item)

    def _finished(self, items: int) -> None:
        """``items`` frames and calls are answered (or refused): room for as many more."""
        self._in_flight -= items
        self._room.set()

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
    def payment_outcome(self, payment_hash: bytes) -> Iterator[asyncio.Future[Payment]]:
        """A future done once our payment ``payment_hash`` succeeded or failed (after the
        checkpoint that recorded it), with the payment's record as it was then (read on
        the event loop without a trip to the node's thread). Enter before starting the
        payment: it may finish in the very job that starts it."""
        done: asyncio.Future[Payment] = asyncio.get_running_loop().create_future()
        waiters = self._payment_waiters.setdefault(payment_hash, [])
        waiters.append(done)
        try:
            yield done
        finally:
            waiters.remove(done)
            if not waiters:
                del self._payment_waiters[payment_hash]

    # --- the two stages ---------------------------------------------------------------------

    async def work_loop(self) -> None:
        """Group commit, pipelined: the worker thread takes every frame and call that
        arrived while it was busy, handles them as one job in arrival order and takes one
        checkpoint of what they changed; the writer thread writes it and only then are the
        job's messages sent and its callers answered. Meanwhile the worker goes on with
        the next job, so the node computes while the disk syncs. Jobs are written and
        released in order, so nothing leaves before the state it depends on is durable. An
        idle node still handles a lone item at once. Runs until cancelled; raises if the
        worker thread ended otherwise (a bug of our own)."""
        assert self.node is not None
        self._start_worker()
        assert self._worker_stopped is not None
        try:
            await asyncio.shield(self._worker_stopped)
        except asyncio.CancelledError:
            self._stop_worker()
            raise
        if not self._closing:
            raise RuntimeError("the worker thread stopped")

    @property
    def closing(self) -> bool:
        """The node is stopping: nothing new is taken (a dial loop stops dialling)."""
        return self._closing

    def _start_worker(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._loop = loop
            self._worker_stopped = loop.create_future()
            self._worker = threading.Thread(target=self._work, name="node", daemon=True)
            self._worker.start()
        return loop

    def _stop_worker(self) -> None:
        self._closing = True
        with self._progress:
            self._progress.notify_all()  # a worker in wait_written stops waiting
        self._inbox.put(_STOP)
        self._refuse_waiting()

    def _work(self) -> None:
        """The worker thread's body: jobs and ``in_worker`` functions, in arrival order."""
        name_os_thread(threading.current_thread().name)
        error: BaseException | None = None
        try:
            pending: Frame | Call | _Direct | object | None = None
            while True:
                item = self._inbox.get() if pending is None else pending
                pending = None
                if item is _STOP or self._closing:
                    return
                if isinstance(item, _Direct):
                    self._run_direct(item)
                    continue
                assert isinstance(item, Frame | Call)
                batch: list[Frame | Call] = [item]
                while len(batch) < RECEIVE_BATCH:
                    try:
                        more = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if not isinstance(more, Frame | Call):
                        pending = more  # a function or the stop: after this job
                        break
                    batch.append(more)
                proposing = self._job(batch)
                while proposing and pending is None and self._inbox.empty():
                    # The job stopped signing at its limit: a job runs next even if nothing
                    # arrives, and proposes more (whatever arrives by then joins it).
                    if self._closing:
                        return
                    proposing = self._job([])
        except BaseException as exc:  # a bug of our own: the node must not go on without
            error = exc
            raise
        finally:
            if self._loop is not None and self._worker_stopped is not None:
                _call_soon(self._loop, _settle, self._worker_stopped, error)

    def _job(self, batch: list[Frame | Call]) -> bool:
        """One job on the worker thread, handed to the writer; whether it stopped proposing
        at its limit (``Node.more_to_propose``)."""
        assert self.node is not None and self._loop is not None
        if self._store_failed is not None:  # memory is ahead of disk: do nothing more
            _call_soon(self._loop, self._refuse_items, batch, self._store_failed)
            return False
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            done = _handle(self.node, batch)
        except Exception as exc:
            # Every item is isolated in ``_handle``: what fails here is taking the job's
            # checkpoint, so memory may be ahead of what can be written. Like a failed
            # write, that stops the node before it signs anything more.
            self._store_failed = exc
            log.critical("a worker job failed: stopping", exc_info=exc)
            _call_soon(self._loop, self._job_failed, batch, exc)
            return False
        finally:
            self._add_busy(started, cpu)
            self._items_handled += len(batch)
        self._hand_to_writer(done)
        return done.more

    def _run_direct(self, item: _Direct) -> None:
        assert self._loop is not None
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            result = item.fn()
        except Exception as exc:
            self._add_busy(started, cpu)  # the answer's hand-over to the loop is not work
            _call_soon(self._loop, _settle, item.answer, exc)
        else:
            self._add_busy(started, cpu)
            _call_soon(self._loop, _settle, item.answer, None, result)

    def _add_busy(self, started: float, cpu: float) -> None:
        """Count the node's thread busy since ``started`` (wall) and ``cpu`` (its CPU
        clock), both read in that order: the CPU window lies inside the wall one."""
        self._busy_cpu_seconds += time.thread_time() - cpu
        self._busy_seconds += time.perf_counter() - started

    async def write_loop(self) -> None:
        """The writer stage of :meth:`work_loop`, on a thread of its own: write the
        checkpoints of every job handled since the last write in one transaction (a
        channel's newest snapshot and each record's newest value win), then hand those
        jobs' outboxes and answers to the event loop, in order. While a write syncs, the
        worker handles more jobs and the next write takes them all: one fsync serves
        whatever the node did in the meantime.
        A failed write stops the node: what it remembers would be ahead of what it could
        recover, so it must not sign anything more. Runs until cancelled (the thread then
        stops after the write in progress, see :meth:`shutdown`)."""
        assert self.store is not None
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        self._writer = threading.Thread(
            target=self._write_jobs, args=(loop, stopped), name="writer", daemon=True
        )
        self._writer.start()
        try:
            await asyncio.shield(stopped)  # raises what stopped the thread, if anything
        except asyncio.CancelledError:
            self._stop_writer()
            raise
        if not self._closing:
            raise RuntimeError("the writer thread stopped")

    def _settle(self, jobs: int) -> None:
        with self._progress:
            self._settled += jobs
            self._progress.notify_all()

    def wait_written(self, timeout: float) -> bool:
        """On the worker thread, between jobs: wait until every job handed to the writer so
        far is written (what the store holds is then what the node has handled: a backup
        read now holds every channel the node knows). False if that did not happen within
        ``timeout`` seconds, or the node stops, or a write failed."""
        with self._progress:
            target = self._handed
            self._progress.wait_for(
                lambda: self._settled >= target or self._closing or self._store_failed is not None,
                timeout,
            )
            return self._settled >= target and self._store_failed is None

    def make_durable(self) -> None:
        """On the worker thread, inside a job: put on disk everything the node has done so
        far, before a chain transaction leaves (``Node.durable_barrier``). Waits for the
        writer to write every job handed to it (an older checkpoint must not land after a
        newer one), then writes what the job changed until now itself, durably (or syncs
        the relaxed writes before it). The job's own checkpoint writes the rest as usual.
        Raises if that cannot be done: the transaction is then not sent; a failed write
        also stops the node, as the writer's would."""
        assert self.node is not None and self.store is not None
        if not self.wait_written(DURABLE_WAIT):
            raise StoreError(
                "the store did not confirm the node's earlier writes in time: the chain "
                "transaction waits (the node retries it; see the node's log)"
                if self._store_failed is None
                else f"the store failed: {self._store_failed}"
            )
        started = time.perf_counter()
        try:
            write = self.node.persistence.take_checkpoint()
            if write is not None:
                self.store.save_checkpoint(*write, durable=True)
            elif self._unsynced:
                self.store.sync()
        except Exception as exc:
            self._store_failed = exc
            log.critical("writing before a chain transaction failed: stopping", exc_info=exc)
            if self._loop is not None:
                _call_soon(self._loop, self._write_failed, [], exc)
            raise
        finally:
            self._write_seconds += time.perf_counter() - started
        # The writer is idle (everything handed to it is written, and only this thread
        # hands it more), so its flag is ours to clear.
        self._unsynced = False

    def _hand_to_writer(self, done: Done) -> None:
        """From the worker thread: queue ``done`` for the writer, waiting while the writer
        is ``WRITES_IN_FLIGHT`` jobs behind (a slow disk), unless the node is stopping."""
        while True:
            try:
                self._written.put(done, timeout=0.1)
                with self._progress:
                    self._handed += 1
                return
            except queue.Full:
                if self._closing:
                    return  # the writer has stopped: dropped, as a job not written is

    def _write_jobs(self, loop: asyncio.AbstractEventLoop, stopped: asyncio.Future[None]) -> None:
        """The writer thread's body (:meth:`write_loop`)."""
        name_os_thread(threading.current_thread().name)
        error: BaseException | None = None
        try:
            while True:
                first = self._written.get()
                if first is None or self._closing:
                    return
                jobs = [first]
                while True:
                    try:
                        more = self._written.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:  # queued by ``_stop_writer``, which set ``_closing``
                        break
                    jobs.append(more)
                if self._closing:
                    return  # handled, not written: dropped with their outboxes
                if self._store_failed is not None:  # a write failed before: nothing leaves
                    _call_soon(loop, self._refuse, jobs, self._store_failed)
                    self._settle(len(jobs))
                    continue
                try:
                    wrote = self._write(jobs)
                except Exception as exc:
                    self._store_failed = exc
                    log.critical("writing a checkpoint failed: stopping", exc_info=exc)
                    _call_soon(loop, self._write_failed, jobs, exc)
                    self._settle(len(jobs))
                    continue
                _call_soon(loop, self._release, jobs, wrote)
                self._settle(len(jobs))
        except BaseException as exc:  # a bug of our own: the node must not go on without
            error = exc
            raise
        finally:
            _call_soon(loop, _settle, stopped, error)

    def _write(self, jobs: list[Done]) -> bool:
        """Write ``jobs``' checkpoints as one transaction (or sync, see below); whether the
        store was asked anything."""
        assert self.store is not None
        snapshots: dict[bytes, ChannelSnapshot] = {}
        records: dict[str, bytes | None] = {}
        for done in jobs:
            if done.write is not None:
                snapshots.update((s.channel_id, s) for s in done.write[0])
                records.update(done.write[1])
        # Jobs after which nothing leaves (quiet peer frames alone) are written relaxed;
        # before anything leaves, a durable write or a sync puts them on disk.
        relaxed = all(done.quiet for done in jobs)
        if not (snapshots or records) and not (self._unsynced and not relaxed):
            return False
        started = time.perf_counter()
        try:
            if snapshots or records:
                self.store.save_checkpoint(list(snapshots.values()), records, durable=not relaxed)
            else:
                self.store.sync()
        finally:
            self._write_seconds += time.perf_counter() - started
        self._unsynced = relaxed
        return True

    def _release(self, jobs: list[Done], wrote: bool) -> None:
        """On the event loop, once ``jobs`` are written: send and answer, in order."""
        if self._closing:
            return  # written but not sent, as after a crash: reestablish resends
        if wrote:
            self._count("checkpoint_writes")
        for done in jobs:
            self._count("receive_batches")
            self._send_all(done.outbox)
            self._answer(done)
            release_frames(done.batch)
            self._finished(len(done.batch))

    def _refuse(self, jobs: list[Done], exc: Exception) -> None:
        for done in jobs:
            self._refuse_items(done.batch, exc)

    def _refuse_items(self, batch: list[Frame | Call], exc: Exception) -> None:
        for item in batch:
            if isinstance(item, Call) and not item.answer.done():
                item.answer.set_exception(exc)
        release_frames(batch)
        self._finished(len(batch))

    def _write_failed(self, jobs: list[Done], exc: Exception) -> None:
        self._refuse(jobs, exc)
        self._fail(f"the store failed: {exc!r}", 1)

    def _job_failed(self, batch: list[Frame | Call], exc: Exception) -> None:
        self._refuse_items(batch, exc)
        self._fail(f"internal error: {exc!r}", 1)

    def _stop_writer(self) -> None:
        """Ask the writer thread to stop after the write in progress."""
        self._closing = True
        with self._progress:
            self._progress.notify_all()  # a worker in wait_written stops waiting
        with contextlib.suppress(queue.Full):
            self._written.put_nowait(None)  # full: the writer sees ``_closing`` when it looks

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
            elif isinstance(outcome, DecodeError):
                self._count("messages_malformed")
                log.warning("malformed message from %s: %s", item.peer.hex()[:16], outcome)
                self._drop(item.link, item.peer)
            elif outcome is not None and self._fault is not None:
                self._fault(item.link, item.peer, outcome)
        for ticket, version, reason in done.settled:
            waiter = self._tickets.get(ticket)
            if waiter is None or waiter.done():
                continue
            if version is not None:
                waiter.set_result(version)
            else:
                waiter.set_exception(TransferFailed(reason or "refused"))
        for payment_hash, record in done.paid:
            for paid in self._payment_waiters.get(payment_hash, ()):
                if not paid.done():
                    paid.set_result(record)

    async def shutdown(self) -> None:
        """Let the job and the write in progress finish (a write is atomic). Jobs handled
        but not written are dropped with their outbox: nothing of them left."""
        loop = asyncio.get_running_loop()
        self._stop_writer()  # first: a worker waiting to hand a job over gives up
        self._stop_worker()
        for thread in (self._worker, self._writer):
            if thread is not None:
                await loop.run_in_executor(None, thread.join)


@dataclass
class _Direct:
    """A function to run on the node's thread outside any job (``Pipeline.in_worker``)."""

    fn: Callable[[], Any]
    answer: asyncio.Future[Any]


#: Ends the worker thread.
_STOP = object()


class NodeStopping(RuntimeError):
    """The node stopped (or is stopping) before it could answer a call."""


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)`` on the event loop, from the worker or writer thread; nothing if the loop is
    closed (the process is ending: nothing more is to leave)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def _settle(future: asyncio.Future[Any], error: BaseException | None, result: Any = None) -> None:
    """On the event loop: ``future`` fails with ``error``, or else gets ``result`` (unless
    its caller went away)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _log_failure(answer: asyncio.Future[Any]) -> None:
    if not answer.cancelled() and answer.exception() is not None:
        log.error("a posted call failed", exc_info=answer.exception())


def _handle(node: Node, batch: list[Frame | Call]) -> Done:
    """One worker job: every item in order, then one checkpoint of what they changed."""
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
        try:
            node.receive(item.peer, data)  # contains whatever the message raises
        except Exception as exc:  # only a bug of the node's own: still, this item alone
            log.exception("handling a frame from %s failed", item.peer.hex()[:16])
            node.errors.append(exc)
        new = node.errors[before:]
        malformed = next((e for e in new if isinstance(e, DecodeError)), None)
        if malformed is not None:
            item.link.violated = True  # later frames of this link: ignored
        outcomes.append(malformed if malformed is not None else (new[0] if new else None))
    del node.errors[:-100]  # keep memory bounded on a long-running node
    done = Done(batch, outcomes, node.take_checkpoint(), node.outbox)
    node.outbox = []
    done.settled, node.ticket_outcomes = node.ticket_outcomes, []
    done.paid = [(h, copy.copy(node.payments[h])) for h in node.finished_payments]
    node.finished_payments = []
    done.more = node.more_to_propose
    done.quiet = (
        node.checkpoint_quiet
        and all(isinstance(item, Frame) for item in batch)
        and not (done.outbox or done.settled or done.paid)
    )
    return done
