"""The default store: one SQLite file per node.

WAL with ``synchronous=FULL`` makes each commit durable (the WAL is fsynced) before
``save_snapshot`` returns, and a commit is atomic: a crash leaves the old or the new
snapshot. One connection serves every call, behind a mutex: SQLite allows one writer
anyway, and a single connection means no ``SQLITE_BUSY`` between our own threads. An
exclusive ``flock`` on ``<file>.lock`` stops a second node process from opening the same
file (two writers would each believe their channel state is the latest).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Literal

from .base import StoreError, StoreLocked
from .migrations import MIGRATIONS, Migration
from .sql import Cursor, SqlStore


class SQLiteStore(SqlStore):
    dialect: Literal["sqlite", "postgres"] = "sqlite"
    _integrity_errors = (sqlite3.IntegrityError,)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self.path = str(path)
        self._mutex = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        if self.path != ":memory:":
            self._lock_file = _lock(Path(self.path + ".lock"))
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._configure(self._conn)
            with self._transaction(write=True) as cur:
                self._migrate(cur, migrations, int(time.time()))
        except BaseException:
            self.close()
            raise

    def _configure(self, conn: sqlite3.Connection) -> None:
        if self.path != ":memory:":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"SQLite refused WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        if self.path != ":memory:":
            _reserve_wal(conn)

    @contextlib.contextmanager
    def _transaction(self, *, write: bool, durable: bool = True) -> Iterator[Cursor]:
        with self._mutex:
            if self._conn is None:
                raise StoreError("the store is closed")
            cur = self._conn.cursor()
            relaxed = write and not durable and self.path != ":memory:"
            try:
                if relaxed:
                    # WAL with synchronous=NORMAL: the commit is appended to the WAL but not
                    # fsynced; the next FULL commit's fsync of the WAL covers it (one file,
                    # appended in order), and a checkpoint syncs the WAL before copying it.
                    # Never a corrupt database, only the newest relaxed commits lost on a
                    # power failure.
                    cur.execute("PRAGMA synchronous = NORMAL")
                # IMMEDIATE takes the write lock up front: no deadlock-prone lock upgrade.
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield cur
                    cur.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.rollback()
                    raise
            finally:
                if relaxed:
                    cur.execute("PRAGMA synchronous = FULL")
                cur.close()

    def sync(self) -> None:
        """fsync the WAL: every relaxed commit in it becomes durable (Linux syncs a file's
        data whatever descriptor asks). Without a WAL file there is nothing unsynced."""
        if self.path == ":memory:":
            return
        with self._mutex:
            try:
                fd = os.open(self.path + "-wal", os.O_RDONLY)
            except FileNotFoundError:
                return
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        with self._mutex:
            if getattr(self, "_conn", None) is not None:
                assert self._conn is not None
                self._conn.close()
                self._conn = None
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None

    def load_encoded_snapshot(self, channel_id: bytes) -> bytes | None:
        """One statement, its own read transaction (autocommit): a restarted channel's
        first use reads its snapshot here, in 10 us, not the 18 us of BEGIN ... COMMIT."""
        with self._mutex:
            if self._conn is None:
                raise StoreError("the store is closed")
            row = self._conn.execute(
                "SELECT data FROM snapshots WHERE channel_id = ?", (channel_id,)
            ).fetchone()
        return bytes(row[0]) if row is not None else None

    def settings_with_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        """A range of the primary key (SQLite compares text bytewise), not a scan of every
        setting: a restart asks for four prefixes of a table with a row per channel."""
        if not prefix:
            return super().settings_with_prefix(prefix)
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first key past the prefix
        with self._read() as cur:
            cur.execute(
                "SELECT key, value FROM settings WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, end),
            )
            return [(str(k), bytes(v)) for k, v in cur.fetchall()]


#: Frames the WAL is grown to at open: SQLite's automatic checkpoint runs past 1,000, and
#: the WAL then starts again from its beginning, so a WAL of this size is never appended to.
_WAL_RESERVE_PAGES = 1_100


def _reserve_wal(conn: sqlite3.Connection) -> None:
    """Grow the WAL file to its working size once, at open, so that commits overwrite it.

    A commit that appends to the WAL changes the file's size, and its fsync must then also
    put the inode on disk (an ext4 journal commit): measured here, 0.32 ms per durable
    commit while the WAL grows against 0.17 ms once it is reused, the same data written.
    SQLite deletes the WAL when the last connection closes, so every open would start
    growing it again, for the first ~300 checkpoints of a node. A transaction larger than
    the page cache spills its pages to the WAL as uncommitted frames; rolled back, they are
    never part of the database (nothing reaches the main file, no frame after the last
    commit is ever read), but the file keeps its size. One write, no fsync, a few ms.
    """
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute("PRAGMA cache_size = 16")  # spill early: the pages go to the WAL
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE _wal_reserve (filler BLOB)")
            conn.execute(
                "INSERT INTO _wal_reserve VALUES (zeroblob(?))", (_WAL_RESERVE_PAGES * page_size,)
            )
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.execute(f"PRAGMA cache_size = {int(cache_size)}")


def _lock(path: Path) -> IO[bytes]:
    handle = path.open("a+b")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreLocked(f"{path} is held by another store (is the node running?)") from None
    return handle
