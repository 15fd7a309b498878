"""SQLite under SIGKILL: a child writes snapshots in a loop and is killed at random points.

After every kill the file must open, pass SQLite's integrity check, and hold a snapshot
that decodes to exactly one the child wrote: the last one it reported as saved (reported
only after ``save_snapshot`` returned, so durable), or the one in flight at the kill.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chenilles_hub.node.store.base import snapshot_version
from chenilles_hub.node.store.sqlite import SQLiteStore

from . import synthetic_snapshot

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[2]
CID = b"\x11" * 32
KILLS = 25

CHILD = """
import sys
from chenilles_hub.node.store.sqlite import SQLiteStore
from tests.node import channel_record, synthetic_snapshot

path, version = sys.argv[1], int(sys.argv[2])
cid = b"\\x11" * 32
store = SQLiteStore(path)
if store.get_channel(cid) is None:
    store.add_channel(channel_record(cid))
print("ready", flush=True)
while True:
    store.save_snapshot(cid, synthetic_snapshot(cid, version, htlcs=version % 29))
    print(version, flush=True)  # only after save_snapshot returned
    version += 1
"""


def _run_and_kill(path: Path, start: int, rng: random.Random) -> list[int]:
    """Start the writer, SIGKILL it at a random moment, return the versions it reported."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(start)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line.strip())
            ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert ready.wait(30), "the writer did not start"
    time.sleep(rng.uniform(0.0, 0.25))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    reader.join(10)
    assert lines[0] == "ready"
    return [int(v) for v in lines[1:]]


def test_sigkill_never_loses_or_corrupts_a_committed_snapshot(tmp_path: Path) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    path = tmp_path / "node.sqlite"
    committed = -1  # the newest version known durable
    writes = 0
    for _ in range(KILLS):
        reported = _run_and_kill(path, committed + 1, rng)
        writes += len(reported)
        last_reported = reported[-1] if reported else committed
        with SQLiteStore(path) as store:
            snapshot = store.load_snapshot(CID)
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if last_reported < 0:
            assert snapshot is None or snapshot_version(snapshot) == 0
        assert snapshot is not None or last_reported < 0
        if snapshot is None:
            continue
        version = snapshot_version(snapshot)
        # durable before return: never older than reported; at most the one in flight
        assert version in (last_reported, last_reported + 1), (version, last_reported)
        assert snapshot == synthetic_snapshot(CID, version, htlcs=version % 29)
        committed = version
    assert writes > KILLS  # the kills did land between (and inside) real writes
