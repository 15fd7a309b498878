"""The node's work pipeline: one work queue, one worker thread, one writer thread.

Everything that changes the ``Node`` (peer frames, API requests, timer ticks, chain
polling) goes through the work queue and runs on the worker thread: the node never sees
two events at once, and the event loop stays free to read sockets and answer the API while
a job waits for a chain. Whatever queued up while the worker was busy runs as one job, in
arrival order, followed by one checkpoint (group commit); the writer writes it and only
then is the job's outbox sent and are its callers answered, so nothing signed leaves before
it is durable, and under load one durable commit serves many messages and requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from chenilles_hub.core import Asset, ChannelSnapshot
from chenilles_hub.core.errors import DecodeError

from ..api.service import TransferFailed
from ..hub.node import Node
from ..store.base import Store
from .work import (
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
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="node")
        #: Writes checkpoints while the worker handles the next job.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="writer")
        #: Handled jobs waiting for their checkpoint to be written, in order.
        self._written: asyncio.Queue[Done] = asyncio.Queue(WRITES_IN_FLIGHT)
        #: Frames and calls waiting for the worker, in arrival order.
        self._work: asyncio.Queue[Frame | Call] = asyncio.Queue(WORK_QUEUE_BOUND)
        #: Set when a checkpoint could not be written: the node then handles nothing more.
        self._store_failed: Exception | None = None
        #: A relaxed write is not yet known to be on disk: synced before anything leaves.
        self._unsynced = False
        #: Callers waiting for a direct transfer to become irrevocable, by ticket.
        self._tickets: dict[int, asyncio.Future[int]] = {}
        #: Callers waiting for a payment of ours to succeed or fail, by payment hash.
        self._payment_waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._next_ticket = 0

    # --- calling the node -------------------------------------------------------------------

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(fn, *args))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the node's thread in the next group commit; return its result
        (or raise its error) once what it queued is durable and sent."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._work.put(Call(functools.partial(fn, *args), answer))
        return await answer

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)`` for the node's thread without waiting for it (a link that
        ends must not wait for the node, nor block a shutdown); ``False`` if the work queue
        is full (the caller's cleanup then waits for a timeout instead)."""
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(_log_failure)
        try:
            self._work.put_nowait(Call(functools.partial(fn, *args), answer))
        except asyncio.QueueFull:
            answer.cancel()
            return False
        return True

    async def put_frame(self, frame: Frame) -> None:
        await self._work.put(frame)

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

    # --- the two stages ---------------------------------------------------------------------

    async def work_loop(self) -> None:
        """Group commit, pipelined: take every frame and call that arrived while the node was
        busy, handle them in one worker job in arrival order and take one checkpoint of what
        they changed; the writer stage writes it (on its own thread) and only then sends what
        the job produced and answers its callers. Meanwhile the worker goes on with the next
        job, so the node computes while the disk syncs. Jobs are written and released in
        order, so nothing leaves before the state it depends on is durable. An idle node
        still handles a lone item at once."""
        assert self.node is not None
        node = self.node
        loop = asyncio.get_running_loop()
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
                return _handle(node, batch)

            try:
                done = await self.in_worker(job)
            except Exception as exc:
                # Every item is isolated in ``_handle``: what fails here is taking the job's
                # checkpoint, so memory may be ahead of what can be written. Like a failed
                # write, that stops the node before it signs anything more.
                self._store_failed = exc
                log.critical("a worker job failed: stopping", exc_info=exc)
                for item in batch:
                    if isinstance(item, Call) and not item.answer.done():
                        item.answer.set_exception(exc)
                self._fail(f"internal error: {exc!r}", 1)
                continue
            finally:
                release_frames(batch)
            self._count("receive_batches")
            if done.more and self._work.empty():
                # The job stopped signing at its limit: a job runs next even if nothing
                # arrives, and proposes more (whatever arrived by then joins it).
                self._work.put_nowait(Call(_more, loop.create_future()))
            await self._written.put(done)  # bounded: the worker waits for a slow disk

    async def write_loop(self) -> None:
        """The writer stage of :meth:`work_loop`: write the checkpoints of every job handled
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
            records: dict[str, bytes | None] = {}
            for done in jobs:
                if done.write is not None:
                    snapshots.update((s.channel_id, s) for s in done.write[0])
                    records.update(done.write[1])
            # Jobs after which nothing leaves (quiet peer frames alone) are written relaxed;
            # before anything leaves, a durable write or a sync puts them on disk.
            relaxed = all(done.quiet for done in jobs)
            if snapshots or records or (self._unsynced and not relaxed):
                try:
                    if snapshots or records:
                        await loop.run_in_executor(
                            self._writer,
                            functools.partial(
                                store.save_checkpoint,
                                list(snapshots.values()),
                                records,
                                durable=not relaxed,
                            ),
                        )
                    else:
                        await loop.run_in_executor(self._writer, store.sync)
                    self._unsynced = relaxed
                except Exception as exc:
                    self._store_failed = exc
                    log.critical("writing a checkpoint failed: stopping", exc_info=exc)
                    for done in jobs:
                        for item in done.batch:
                            if isinstance(item, Call) and not item.answer.done():
                                item.answer.set_exception(exc)
                    self._fail(f"the store failed: {exc!r}", 1)
                    return
                self._count("checkpoint_writes")
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
        for payment_hash in done.paid:
            for paid in self._payment_waiters.get(payment_hash, ()):
                if not paid.done():
                    paid.set_result(None)

    async def shutdown(self) -> None:
        """Let the job and the write in progress finish (a write is atomic). Jobs handled
        but not written are dropped with their outbox: nothing of them left."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._worker.shutdown, True)
        await loop.run_in_executor(None, self._writer.shutdown, True)


def _more() -> None:
    """A job of its own: its checkpoint proposes what the last job left
    (``Node.more_to_propose``)."""


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
    done.paid, node.finished_payments = node.finished_payments, []
    done.more = node.more_to_propose
    done.quiet = (
        node.checkpoint_quiet
        and all(isinstance(item, Frame) for item in batch)
        and not (done.outbox or done.settled or done.paid)
    )
    return done
