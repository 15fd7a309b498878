"""The server's writer thread: what reaches the event loop after a write, after a failed
write, and at shutdown with the worker waiting for a slow disk. The store is a real SQLite
store; the failure or the slow disk is injected at its ``save_checkpoint``."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chenilles_hub.node.runtime.pipeline import NodeStopping, Pipeline
from chenilles_hub.node.runtime.work import Call, Done
from chenilles_hub.node.store.sqlite import SQLiteStore

pytestmark = pytest.mark.node


class Failing(SQLiteStore):
    """Fails the ``fail_at``-th checkpoint (1-based), and every one after it."""

    def __init__(self, path: Path, fail_at: int) -> None:
        super().__init__(path)
        self.fail_at = fail_at
        self.saved = 0

    def save_checkpoint(self, snapshots: Any, settings: Any, *, durable: bool = True) -> None:
        if self.saved + 1 >= self.fail_at:
            raise OSError("disk full")
        super().save_checkpoint(snapshots, settings, durable=durable)
        self.saved += 1


class Slow(SQLiteStore):
    """Every checkpoint waits for ``go`` (a disk that stalls)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.go = threading.Event()
        self.started = threading.Event()

    def save_checkpoint(self, snapshots: Any, settings: Any, *, durable: bool = True) -> None:
        self.started.set()
        self.go.wait(10)
        super().save_checkpoint(snapshots, settings, durable=durable)


def _job(loop: asyncio.AbstractEventLoop, key: str, message: bytes) -> Done:
    answer: asyncio.Future[Any] = loop.create_future()
    return Done(
        batch=[Call(lambda: None, answer)],
        outcomes=[(key, None)],
        write=([], {key: b"value of " + key.encode()}),
        outbox=[(b"peer", message)],
    )


def _pipeline(sent: list[bytes], failures: list[str]) -> Pipeline:
    return Pipeline(
        count=lambda _key: None,
        send_all=lambda outbox: sent.extend(data for _, data in outbox),
        drop=lambda _link, _peer: None,
        fail=lambda reason, _code: failures.append(reason),
    )


def _worker_handing_over(pipeline: Pipeline, done: Done) -> threading.Thread:
    """A thread doing what the worker does with a handled job."""
    thread = threading.Thread(target=pipeline._hand_to_writer, args=(done,), daemon=True)
    thread.start()
    return thread


async def _settled(futures: list[asyncio.Future[Any]], timeout: float = 5.0) -> None:
    await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout)


def test_after_a_failed_write_nothing_leaves_and_every_caller_hears_why(tmp_path: Path) -> None:
    sent: list[bytes] = []
    failures: list[str] = []
    outcomes: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipeline = _pipeline(sent, failures)
        store = Failing(tmp_path / "node.sqlite", fail_at=2)
        pipeline.store = store
        writer = asyncio.create_task(pipeline.write_loop())
        jobs = [_job(loop, f"k{i}", f"message {i}".encode()) for i in range(3)]
        answers = [job.batch[0].answer for job in jobs]  # type: ignore[union-attr]
        try:
            pipeline._written.put(jobs[0])
            await _settled(answers[:1])
            pipeline._written.put(jobs[1])  # this write fails
            await _settled(answers[1:2])
            pipeline._written.put(jobs[2])  # handled after the failure: never written
            await _settled(answers)
            assert store.get_setting("k0") == b"value of k0"
            assert store.get_setting("k1") is None and store.get_setting("k2") is None
        finally:
            writer.cancel()
            await pipeline.shutdown()
            store.close()
        for answer in answers:
            outcomes.append(answer.exception() or answer.result())

    asyncio.run(main())
    assert sent == [b"message 0"]
    assert outcomes[0] == "k0"
    assert all(isinstance(o, OSError) for o in outcomes[1:])
    assert len(failures) == 1 and "disk full" in failures[0]


def test_shutdown_does_not_wait_forever_for_a_worker_blocked_on_a_full_queue(
    tmp_path: Path,
) -> None:
    sent: list[bytes] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipeline = _pipeline(sent, [])
        pipeline._written = queue.Queue(1)  # one job may wait for the writer
        store = Slow(tmp_path / "node.sqlite")
        pipeline.store = store
        writer = asyncio.create_task(pipeline.write_loop())
        try:
            pipeline._written.put(_job(loop, "a", b"a"))  # being written, stalled
            assert await loop.run_in_executor(None, store.started.wait, 5)
            pipeline._written.put(_job(loop, "b", b"b"))  # the queue is full now
            # the worker hands the next job over: it waits for room
            blocked = _worker_handing_over(pipeline, _job(loop, "c", b"c"))
            await asyncio.sleep(0.3)
            assert blocked.is_alive()
            writer.cancel()
            t0 = time.monotonic()
            stopping = asyncio.create_task(pipeline.shutdown())
            await asyncio.sleep(0.3)
            store.go.set()  # the write in progress completes (a write is atomic)
            await asyncio.wait_for(stopping, 5)
            assert time.monotonic() - t0 < 5
            blocked.join(1)
            assert not blocked.is_alive()
        finally:
            store.go.set()
            store.close()

    asyncio.run(main())
    assert sent == []  # stopping: nothing handed to the loop leaves any more


def test_shutdown_frees_a_worker_waiting_for_a_writer_that_is_gone(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()  # for the jobs' answer futures only
    pipeline = _pipeline([], [])
    pipeline._written = queue.Queue(1)
    pipeline._written.put(_job(loop, "a", b"a"))  # full, and no writer takes it
    blocked = _worker_handing_over(pipeline, _job(loop, "b", b"b"))
    time.sleep(0.3)
    assert blocked.is_alive()
    stopping = threading.Thread(target=asyncio.run, args=(pipeline.shutdown(),), daemon=True)
    stopping.start()
    stopping.join(5)
    try:
        assert not stopping.is_alive(), "shutdown waits for a worker that waits for room"
        blocked.join(1)
        assert not blocked.is_alive()
    finally:
        with contextlib.suppress(queue.Empty):
            pipeline._written.get_nowait()  # frees the worker if shutdown did not
        stopping.join(5)
        loop.close()


class StubNode:
    """What the worker asks of a ``Node`` (the node itself is not what these tests are
    about): each job's checkpoint is one record; ``proposing`` jobs report more to
    propose; ``broken`` makes taking a checkpoint fail."""

    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.outbox: list[tuple[bytes, bytes]] = []
        self.ticket_outcomes: list[Any] = []
        self.finished_payments: list[bytes] = []
        self.checkpoint_quiet = False
        self.checkpoints = 0
        self.proposing = 0
        self.broken = False
        self.threads: set[str] = set()

    @property
    def more_to_propose(self) -> bool:
        return self.proposing > 0

    def take_checkpoint(self) -> Any:
        self.threads.add(threading.current_thread().name)
        if self.broken:
            raise RuntimeError("cannot encode the node's state")
        self.checkpoints += 1
        self.proposing = max(0, self.proposing - 1)
        self.outbox.append((b"peer", f"after checkpoint {self.checkpoints}".encode()))
        return [], {f"checkpoint/{self.checkpoints}": b"x"}


def _with_stub(tmp_path: Path, body: Any) -> tuple[list[bytes], list[str]]:
    sent: list[bytes] = []
    failures: list[str] = []

    async def main() -> None:
        pipeline = _pipeline(sent, failures)
        pipeline.store = SQLiteStore(tmp_path / "node.sqlite")
        pipeline.node = StubNode()  # type: ignore[assignment]
        tasks = [
            asyncio.create_task(pipeline.work_loop()),
            asyncio.create_task(pipeline.write_loop()),
        ]
        try:
            await asyncio.wait_for(body(pipeline), 10)
        finally:
            for task in tasks:
                task.cancel()
            await pipeline.shutdown()
            pipeline.store.close()

    asyncio.run(main())
    return sent, failures


def test_calls_run_on_the_node_thread_and_are_answered_after_their_write(
    tmp_path: Path,
) -> None:
    async def body(pipeline: Pipeline) -> None:
        node: Any = pipeline.node
        order: list[str] = []
        first = await pipeline.call(lambda: order.append("call") or threading.current_thread().name)
        read = await pipeline.in_worker(lambda: order.append("read") or node.checkpoints)
        assert first == "node" and node.threads == {"node"}
        assert read == 1  # the call's job ran, and was checkpointed, before the read
        assert pipeline.store is not None and pipeline.store.get_setting("checkpoint/1") == b"x"
        assert order == ["call", "read"]

    sent, failures = _with_stub(tmp_path, body)
    assert sent == [b"after checkpoint 1"] and failures == []


def test_a_job_at_its_proposal_limit_is_followed_without_anything_arriving(
    tmp_path: Path,
) -> None:
    async def body(pipeline: Pipeline) -> None:
        node: Any = pipeline.node
        node.proposing = 4  # jobs until everything is proposed, the call's included
        await pipeline.call(lambda: None)
        for _ in range(100):
            if node.checkpoints == 4:
                break
            await asyncio.sleep(0.02)
        assert node.checkpoints == 4  # the call's job, then 3 that propose what was left

    sent, _ = _with_stub(tmp_path, body)
    assert sent[:4] == [f"after checkpoint {i}".encode() for i in range(1, 5)]


def test_a_job_that_cannot_take_its_checkpoint_stops_the_node(tmp_path: Path) -> None:
    async def body(pipeline: Pipeline) -> None:
        node: Any = pipeline.node
        node.broken = True
        with pytest.raises(RuntimeError, match="cannot encode"):
            await pipeline.call(lambda: None)
        node.broken = False  # too late: memory may be ahead of the disk
        with pytest.raises(RuntimeError, match="cannot encode"):
            await pipeline.call(lambda: None)

    sent, failures = _with_stub(tmp_path, body)
    assert sent == [] and len(failures) == 1 and "internal error" in failures[0]


def test_a_stop_refuses_the_calls_it_leaves_unanswered(tmp_path: Path) -> None:
    """A stop drops the jobs it did not write: their callers hear that the node stopped,
    and so does a call made after it, instead of waiting forever (a shutdown that
    gathers such a caller would never end)."""

    async def body(pipeline: Pipeline) -> None:
        go = threading.Event()
        running = asyncio.ensure_future(pipeline.call(go.wait, 5))  # the job in progress
        await asyncio.sleep(0.2)
        behind = asyncio.ensure_future(pipeline.call(lambda: None))
        read = asyncio.ensure_future(pipeline.in_worker(lambda: None))
        await asyncio.sleep(0.1)
        stopping = asyncio.ensure_future(pipeline.shutdown())
        await asyncio.sleep(0.1)
        go.set()
        await asyncio.wait_for(stopping, 5)
        for answer in (running, behind, read):
            with pytest.raises(NodeStopping):
                await asyncio.wait_for(answer, 5)
        with pytest.raises(NodeStopping, match="stopping"):
            await asyncio.wait_for(pipeline.call(lambda: None), 5)

    _, failures = _with_stub(tmp_path, body)
    assert failures == []


def test_wait_written_returns_once_every_job_handed_over_is_in_the_store(tmp_path: Path) -> None:
    """A backup reads the store from the node's thread: it first waits for the writer to
    have written every job handed to it, or the file would miss what the node already knows
    (a channel just opened) while its record says the file holds it."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipeline = _pipeline([], [])
        store = Slow(tmp_path / "node.sqlite")
        pipeline.store = store
        writer = asyncio.create_task(pipeline.write_loop())
        try:
            assert pipeline.wait_written(0.01)  # nothing handed over: nothing to wait for
            handing = _worker_handing_over(pipeline, _job(loop, "a", b"a"))
            assert await loop.run_in_executor(None, store.started.wait, 5)  # being written
            handing.join(1)
            assert not await loop.run_in_executor(None, pipeline.wait_written, 0.2)
            assert store.get_setting("a") is None
            waiting = loop.run_in_executor(None, pipeline.wait_written, 5.0)
            await asyncio.sleep(0.1)
            store.go.set()
            assert await waiting
            assert store.get_setting("a") == b"value of a"  # in the store when it returns
        finally:
            store.go.set()
            writer.cancel()
            await pipeline.shutdown()
            store.close()

    asyncio.run(main())


class SlowFirst(Slow):
    """Only the first checkpoint (the writer's) stalls until ``go``."""

    def save_checkpoint(self, snapshots: Any, settings: Any, *, durable: bool = True) -> None:
        if self.started.is_set():
            SQLiteStore.save_checkpoint(self, snapshots, settings, durable=durable)
        else:
            super().save_checkpoint(snapshots, settings, durable=durable)


class _Pending:
    """What ``make_durable`` takes from the node: the job's changes until now."""

    def __init__(self, records: dict[str, bytes]) -> None:
        self.persistence = self
        self.records = records

    def take_checkpoint(self) -> Any:
        records, self.records = self.records, {}
        return ([], records) if records else None


def test_before_a_chain_transaction_older_jobs_are_written_then_the_job_so_far(
    tmp_path: Path,
) -> None:
    """Found by review: a chain transaction (a refutation, a registration) left while the
    state it relies on was still in a job the writer had not written: a crash then lost
    that state (and a preimage learned with it) while the chain had the transaction. Now
    the worker first waits for the writer, then writes what its job changed so far,
    durably, before the transaction; waiting first keeps an older checkpoint from
    landing over the newer one."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipeline = _pipeline([], [])
        store = SlowFirst(tmp_path / "node.sqlite")
        pipeline.store = store
        pipeline.node = _Pending({"a": b"newer, from the job in hand"})  # type: ignore[assignment]
        writer = asyncio.create_task(pipeline.write_loop())
        try:
            handing = _worker_handing_over(pipeline, _job(loop, "a", b"a"))
            assert await loop.run_in_executor(None, store.started.wait, 5)  # being written
            handing.join(1)
            barrier = loop.run_in_executor(None, pipeline.make_durable)
            await asyncio.sleep(0.2)
            assert not barrier.done(), "wrote before the older job was on disk"
            store.go.set()
            await asyncio.wait_for(barrier, 5)
            assert store.get_setting("a") == b"newer, from the job in hand"
            pipeline.node.records = {}  # type: ignore[attr-defined]
            await loop.run_in_executor(None, pipeline.make_durable)  # nothing more: no write
        finally:
            store.go.set()
            writer.cancel()
            await pipeline.shutdown()
            store.close()

    asyncio.run(main())


def test_a_failed_write_before_a_chain_transaction_stops_the_node(tmp_path: Path) -> None:
    failures: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipeline = _pipeline([], failures)
        pipeline._loop = loop  # as the worker's start sets it
        store = Failing(tmp_path / "node.sqlite", fail_at=1)
        pipeline.store = store
        pipeline.node = _Pending({"a": b"x"})  # type: ignore[assignment]
        try:
            with pytest.raises(OSError, match="disk full"):
                await loop.run_in_executor(None, pipeline.make_durable)
            assert not pipeline.wait_written(0.01)  # nothing more is written or released
            await asyncio.sleep(0.05)  # the stop is handed to the event loop
        finally:
            await pipeline.shutdown()
            store.close()

    asyncio.run(main())
    assert len(failures) == 1 and "disk full" in failures[0]
