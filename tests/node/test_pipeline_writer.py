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

from chenilles_hub.node.runtime.pipeline import Pipeline
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
            blocked = pipeline._worker.submit(pipeline._hand_to_writer, _job(loop, "c", b"c"))
            await asyncio.sleep(0.3)
            assert not blocked.done()
            writer.cancel()
            t0 = time.monotonic()
            stopping = asyncio.create_task(pipeline.shutdown())
            await asyncio.sleep(0.3)
            store.go.set()  # the write in progress completes (a write is atomic)
            await asyncio.wait_for(stopping, 5)
            assert time.monotonic() - t0 < 5
            assert blocked.done()
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
    blocked = pipeline._worker.submit(pipeline._hand_to_writer, _job(loop, "b", b"b"))
    time.sleep(0.3)
    assert not blocked.done()
    stopping = threading.Thread(target=asyncio.run, args=(pipeline.shutdown(),), daemon=True)
    stopping.start()
    stopping.join(5)
    try:
        assert not stopping.is_alive(), "shutdown waits for a worker that waits for room"
        assert blocked.done()
    finally:
        with contextlib.suppress(queue.Empty):
            pipeline._written.get_nowait()  # frees the worker if shutdown did not
        stopping.join(5)
        loop.close()
