"""The server's writer: a batch of quiet jobs (peers' Acks, nothing to send or answer) is
written relaxed, and nothing leaves before every relaxed write is on disk (a durable write
or a sync first). docs/security.md, "Relaxed writes"."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from chenilles_hub.node.runtime.pipeline import Pipeline
from chenilles_hub.node.runtime.work import Done
from chenilles_hub.node.store.sqlite import SQLiteStore

pytestmark = pytest.mark.node


class Recording(SQLiteStore):
    """A real SQLite store that also logs what the writer asked of it, in order."""

    def __init__(self, path: Path, log: list[str]) -> None:
        super().__init__(path)
        self.log = log

    def save_checkpoint(self, snapshots: Any, settings: Any, *, durable: bool = True) -> None:
        super().save_checkpoint(snapshots, settings, durable=durable)
        self.log.append("durable write" if durable else "relaxed write")

    def sync(self) -> None:
        super().sync()
        self.log.append("sync")


def _run(tmp_path: Path, jobs: list[Done]) -> list[str]:
    log: list[str] = []

    async def main() -> None:
        pipeline = Pipeline(
            count=lambda _key: None,
            send_all=lambda outbox: log.extend(f"send {data.decode()}" for _, data in outbox),
            drop=lambda _link, _peer: None,
            fail=lambda reason, _code: log.append(f"failed {reason}"),
        )
        store = Recording(tmp_path / "node.sqlite", log)
        pipeline.store = store
        writer = asyncio.create_task(pipeline.write_loop())
        try:
            for done in jobs:  # one at a time: each batch of the writer is one job
                pipeline._written.put(done)
                while not pipeline._written.empty():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
        finally:
            writer.cancel()
            await pipeline.shutdown()
            store.close()

    asyncio.run(main())
    return log


def _done(write: dict[str, bytes] | None, outbox: list[bytes], quiet: bool) -> Done:
    return Done(
        batch=[],
        outcomes=[],
        write=([], write) if write is not None else None,
        outbox=[(b"peer", data) for data in outbox],
        quiet=quiet,
    )


def test_quiet_jobs_are_relaxed_and_synced_before_anything_leaves(tmp_path: Path) -> None:
    log = _run(
        tmp_path,
        [
            _done({"ack/1": b"revocation 1"}, [], quiet=True),
            _done({"ack/2": b"revocation 2"}, [], quiet=True),
            _done(None, [b"propose 3"], quiet=False),  # nothing to write, a message to send
        ],
    )
    assert log == ["relaxed write", "relaxed write", "sync", "send propose 3"]


def test_a_job_that_sends_is_durable_and_covers_the_relaxed_writes(tmp_path: Path) -> None:
    log = _run(
        tmp_path,
        [
            _done({"ack/1": b"revocation 1"}, [], quiet=True),
            _done({"state/2": b"signed"}, [b"accept 2"], quiet=False),
            _done(None, [b"accept 2 again"], quiet=False),  # synced already: no sync
        ],
    )
    assert log == ["relaxed write", "durable write", "send accept 2", "send accept 2 again"]
