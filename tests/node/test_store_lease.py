"""PostgreSQL failover: the leader lease, fencing tokens, and a stale primary refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from chenilles_hub.node.store.base import NotLeader, snapshot_version

from . import channel_record, postgres_schema, require_postgres, synthetic_snapshot

pytestmark = pytest.mark.node

CID = b"\x42" * 32

try:
    from chenilles_hub.node.store.postgres import PostgresStore
except ImportError:  # psycopg missing: require_postgres() skips (or fails) with the reason
    PostgresStore = None  # type: ignore[assignment,misc]


@pytest.fixture
def pair() -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """A primary and a standby over the same database schema."""
    dsn = require_postgres()
    schemas = postgres_schema()
    schema = next(schemas)
    primary = PostgresStore(dsn, schema=schema)
    standby = PostgresStore(dsn, schema=schema)
    yield primary, standby
    primary.close()
    standby.close()
    schemas.close()


def test_writes_need_the_lease_reads_do_not(pair: tuple[PostgresStore, PostgresStore]) -> None:
    primary, standby = pair
    with pytest.raises(NotLeader):
        primary.add_channel(channel_record(CID))
    assert primary.acquire_lease("hub", "primary", ttl=30)
    primary.add_channel(channel_record(CID))
    primary.save_snapshot(CID, synthetic_snapshot(CID, 1))
    with pytest.raises(NotLeader):
        standby.save_snapshot(CID, synthetic_snapshot(CID, 2))
    with pytest.raises(NotLeader):
        standby.set_setting("k", b"v")
    assert standby.load_snapshot(CID) == synthetic_snapshot(CID, 1)  # a standby may read


def test_concurrent_acquire_has_one_winner(pair: tuple[PostgresStore, PostgresStore]) -> None:
    for round_ in range(20):
        barrier = threading.Barrier(2)
        results: dict[str, bool] = {}

        def contend(
            store: PostgresStore,
            holder: str,
            barrier: threading.Barrier,
            results: dict[str, bool],
            name: str,
        ) -> None:
            barrier.wait()
            results[holder] = store.acquire_lease(name, holder, ttl=30)

        threads = [
            threading.Thread(
                target=contend, args=(store, holder, barrier, results, f"hub-{round_}")
            )
            for store, holder in zip(pair, ("a", "b"), strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results.values()) == [False, True], results


def test_takeover_after_expiry_fences_the_stale_primary(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    primary, standby = pair
    assert primary.acquire_lease("hub", "primary", ttl=0.5)
    primary.add_channel(channel_record(CID))
    primary.save_snapshot(CID, synthetic_snapshot(CID, 1))
    assert not standby.acquire_lease("hub", "standby", ttl=30)  # still live
    time.sleep(0.7)  # the primary stalls past its lease
    assert standby.acquire_lease("hub", "standby", ttl=30)
    assert standby.lease is not None and primary.lease is not None
    assert standby.lease.token > primary.lease.token
    with pytest.raises(NotLeader):  # the stale primary wakes up and tries to write
        primary.save_snapshot(CID, synthetic_snapshot(CID, 2))
    assert not primary.renew_lease()
    standby.save_snapshot(CID, synthetic_snapshot(CID, 3))
    loaded = standby.load_snapshot(CID)
    assert loaded is not None and snapshot_version(loaded) == 3
    with standby._read() as cur:
        cur.execute("SELECT fence FROM snapshots WHERE channel_id = ?", (CID,))
        assert cur.fetchone()[0] == standby.lease.token


def test_renewal_keeps_and_release_hands_over(pair: tuple[PostgresStore, PostgresStore]) -> None:
    primary, standby = pair
    assert primary.acquire_lease("hub", "primary", ttl=0.4)
    for _ in range(5):
        time.sleep(0.15)
        assert primary.renew_lease()
        assert not standby.acquire_lease("hub", "standby", ttl=30)
    primary.release_lease()
    assert primary.lease is None
    assert standby.acquire_lease("hub", "standby", ttl=30)  # no need to wait for expiry
    with pytest.raises(NotLeader):
        primary.set_setting("k", b"v")


def test_takeover_waits_for_an_in_flight_write(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """The lease check and the write share one transaction: a standby cannot slip in."""
    primary, standby = pair
    assert primary.acquire_lease("hub", "primary", ttl=0.3)
    primary.add_channel(channel_record(CID))
    took_over = threading.Event()

    def take_over() -> None:
        assert standby.acquire_lease("hub", "standby", ttl=30)
        took_over.set()

    with primary._write() as cur:  # lease checked (and its row share-locked) here
        time.sleep(0.5)  # the lease expires while the write is in flight
        thread = threading.Thread(target=take_over)
        thread.start()
        assert not took_over.wait(0.3)  # blocked behind our transaction
        cur.execute(
            "INSERT INTO snapshots (channel_id, version, data, fence) VALUES (?, 1, ?, ?)",
            (CID, b"{}", primary.lease.token if primary.lease else None),
        )
    thread.join(5)
    assert took_over.is_set()
    with pytest.raises(NotLeader):
        primary.set_setting("k", b"v")


_HOLDER = """
import sys, time
from chenilles_hub.node.store.postgres import PostgresStore
store = PostgresStore(sys.argv[1], schema=sys.argv[2])
assert store.acquire_lease("hub", "doomed", ttl=300)
print("held", flush=True)
time.sleep(600)
"""


def _kill_9_while_holding(dsn: str, schema: str) -> None:
    """A real process takes a five-minute lease and is killed with SIGKILL: it releases
    nothing, and only its closed connection tells the database it is gone."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, dsn, schema], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()


def test_a_killed_holders_lease_is_taken_at_once_not_after_its_ttl(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """``kill -9`` of the leader: its restart (or a standby) must not wait out the lease,
    since the dead process can write nothing more; the taker's token fences any write."""
    primary, standby = pair
    assert standby.acquire_lease("other", "standby", ttl=300)  # the connection is alive
    assert not primary.acquire_lease("other", "primary", ttl=300)  # ...so no takeover
    schema = primary._conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[union-attr]
    _kill_9_while_holding(require_postgres(), schema)
    deadline = time.monotonic() + 5  # the server notices the closed socket in milliseconds
    while not primary.acquire_lease("hub", "restarted", ttl=300):
        assert time.monotonic() < deadline, "the dead holder's lease was not taken"
        time.sleep(0.05)
    assert primary.lease is not None and primary.lease.token == 2
    primary.set_setting("k", b"v")  # the new holder writes
    assert not standby.acquire_lease("hub", "standby", ttl=300)  # and is not taken from
