"""Snapshot write throughput, single and group-committed, on both stores.

As a test it runs a few hundred writes (a smoke check that batching helps). For the numbers:

    .venv/bin/python -m tests.node.test_store_bench [writes]
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from chenilles_hub.node.store.sql import SqlStore
from chenilles_hub.node.store.sqlite import SQLiteStore

from . import channel_record, postgres_schema, require_postgres, synthetic_snapshot

pytestmark = pytest.mark.node

BATCHES = (1, 10, 100)


def measure(store: SqlStore, writes: int, batch: int) -> float:
    """Snapshot writes per second, ``batch`` channels' snapshots per transaction."""
    ids = [hashlib.sha256(b"bench %d" % i).digest() for i in range(batch)]
    for cid in ids:
        if store.get_channel(cid) is None:
            store.add_channel(channel_record(cid))
    rounds = max(1, writes // batch)
    work = [[synthetic_snapshot(cid, r) for cid in ids] for r in range(rounds)]
    start = time.perf_counter()
    for snapshots in work:
        if batch == 1:
            store.save_snapshot(snapshots[0].channel_id, snapshots[0])
        else:
            store.save_snapshots(snapshots)
    return rounds * batch / (time.perf_counter() - start)


def bench_sqlite(directory: Path, writes: int) -> dict[int, float]:
    with SQLiteStore(directory / "bench.sqlite") as store:
        return {batch: measure(store, writes, batch) for batch in BATCHES}


def bench_postgres(dsn: str, schema: str, writes: int) -> dict[int, float]:
    from chenilles_hub.node.store.postgres import PostgresStore

    with PostgresStore(dsn, schema=schema) as store:
        assert store.acquire_lease("bench", uuid.uuid4().hex, ttl=600)
        return {batch: measure(store, writes, batch) for batch in BATCHES}


def _report(name: str, rates: dict[int, float]) -> str:
    cells = ", ".join(f"batch {b}: {r:,.0f}/s" for b, r in rates.items())
    return f"{name:>9} snapshot writes  {cells}"


def test_sqlite_group_commit_helps(tmp_path: Path) -> None:
    rates = bench_sqlite(tmp_path, 300)
    print(_report("sqlite", rates))
    assert rates[100] > rates[1]


def test_postgres_group_commit_helps() -> None:
    dsn = require_postgres()
    for schema in postgres_schema():
        rates = bench_postgres(dsn, schema, 300)
        print(_report("postgres", rates))
        assert rates[100] > rates[1]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        print(_report("sqlite", bench_sqlite(Path(tmp), count)))
    try:
        dsn = require_postgres()
    except BaseException as exc:  # pytest's skip/fail outcomes are BaseExceptions
        print(f"postgres skipped: {exc}")
    else:
        for schema in postgres_schema():
            print(_report("postgres", bench_postgres(dsn, schema, count)))
