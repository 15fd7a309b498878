"""The PostgreSQL store, for operators who run a standby node that can take over.

Same schema and behaviour as SQLite (``SqlStore``), plus a leader lease per node name:
only the live lease holder may write. Every write transaction first reads the lease row
``FOR SHARE`` and checks holder, fencing token and expiry (by the database's clock, so the
nodes' clocks do not matter); the row lock then keeps a standby's takeover waiting until
that transaction commits. So a stale primary that lost its lease (paused, partitioned)
cannot write after a standby took over: its write raises ``NotLeader`` and rolls back.

The fencing token grows by one at every acquisition, and is stored with each snapshot.
``holder_id`` must be unique per process (a UUID): the same holder id re-acquires freely.
Commits use ``synchronous_commit = on``: durable (on the primary's disk) before return.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
import psycopg.errors

from .base import NotLeader, StoreError
from .migrations import MIGRATIONS, Migration
from .sql import Cursor, SqlStore

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Lease:
    node_name: str
    holder_id: str
    token: int
    ttl: float


class _PgCursor:
    """Adapts the shared SQL's ``?`` placeholders to psycopg's ``%s``."""

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cur.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cur.executemany(sql.replace("?", "%s"), params)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()


class PostgresStore(SqlStore):
    dialect: Literal["sqlite", "postgres"] = "postgres"
    _integrity_errors = (psycopg.errors.IntegrityError,)

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
        connect_timeout: int = 10,
    ) -> None:
        if schema is not None and not _IDENTIFIER.match(schema):
            raise ValueError(f"bad schema name {schema!r}")
        self._mutex = threading.Lock()
        self._lease: Lease | None = None
        self._conn: psycopg.Connection[Any] | None = psycopg.connect(
            dsn, autocommit=True, connect_timeout=connect_timeout
        )
        try:
            conn = self._conn
            conn.execute("SET synchronous_commit = on")
            if schema is not None:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                conn.execute(f'SET search_path TO "{schema}"')
            with conn.transaction(), conn.cursor() as raw:
                # Two nodes starting at once must not both run the same migration.
                raw.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
                self._migrate(_PgCursor(raw), migrations, int(time.time()))
            #: Whether the lease records its holder's connection (migration 8; a store
            #: opened with fewer migrations, as tests of upgrades do, takes leases without).
            self._holder_backend = any(m.version == 8 for m in migrations)
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def _transaction(self, *, write: bool, durable: bool = True) -> Iterator[Cursor]:
        # Every commit is synchronous here, relaxed or not (``Store.save_checkpoint``): a
        # standby may take over from this database, and ``sync`` has no cheap equivalent.
        with self._mutex:
            conn = self._conn
            if conn is None:
                raise StoreError("the store is closed")
            with conn.transaction(), conn.cursor() as raw:
                if write:
                    self._check_lease(raw)
                yield _PgCursor(raw)

    def _check_lease(self, raw: psycopg.Cursor[Any]) -> None:
        lease = self._lease
        if lease is None:
            raise NotLeader("this store holds no leader lease")
        raw.execute(
            "SELECT holder_id, token, expires_at > clock_timestamp() FROM leases "
            "WHERE node_name = %s FOR SHARE",
            (lease.node_name,),
        )
        row = raw.fetchone()
        if row is None or row[0] != lease.holder_id or row[1] != lease.token or not row[2]:
            raise NotLeader(f"the lease on {lease.node_name!r} was lost (token {lease.token})")

    # --- the leader lease ----------------------------------------------------------------------

    @property
    def lease(self) -> Lease | None:
        """The lease this store believes it holds (the database has the final word)."""
        return self._lease

    @property
    def _fence(self) -> int | None:  # type: ignore[override]
        return self._lease.token if self._lease is not None else None

    def acquire_lease(self, node_name: str, holder_id: str, ttl: float) -> bool:
        """Take the lease if it is free, expired, already ours, or held over a database
        connection that is gone (its process died: migration 8); a new token each time.

        One statement: two contenders are ordered by the row's lock, and the second sees
        the first's connection alive. A backend pid reused by another connection only makes
        us wait for the expiry; a pooler that closes the holder's server connection while
        the holder lives makes it lose the lease (it stops, exit 3), never write twice."""
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if self._holder_backend:
            sql = (
                "INSERT INTO leases (node_name, holder_id, token, expires_at, holder_backend) "
                "VALUES (%s, %s, 1, clock_timestamp() + %s * interval '1 second', "
                "pg_backend_pid()) "
                "ON CONFLICT (node_name) DO UPDATE SET holder_id = excluded.holder_id, "
                "token = leases.token + 1, expires_at = excluded.expires_at, "
                "holder_backend = excluded.holder_backend "
                "WHERE leases.holder_id = excluded.holder_id "
                "OR leases.expires_at <= clock_timestamp() "
                "OR (leases.holder_backend IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM pg_stat_activity WHERE pid = leases.holder_backend)) "
                "RETURNING token"
            )
        else:
            sql = (
                "INSERT INTO leases (node_name, holder_id, token, expires_at) "
                "VALUES (%s, %s, 1, clock_timestamp() + %s * interval '1 second') "
                "ON CONFLICT (node_name) DO UPDATE SET holder_id = excluded.holder_id, "
                "token = leases.token + 1, expires_at = excluded.expires_at "
                "WHERE leases.holder_id = excluded.holder_id "
                "OR leases.expires_at <= clock_timestamp() "
                "RETURNING token"
            )
        row = self._lease_statement(sql, (node_name, holder_id, ttl))
        if row is None:
            if self._lease is not None and self._lease.node_name == node_name:
                self._lease = None
            return False
        self._lease = Lease(node_name, holder_id, int(row[0]), ttl)
        return True

    def renew_lease(self, ttl: float | None = None) -> bool:
        """Extend a live lease (same token); ``False`` if it expired or was taken over."""
        lease = self._lease
        if lease is None:
            return False
        ttl = lease.ttl if ttl is None else ttl
        row = self._lease_statement(
            "UPDATE leases SET expires_at = clock_timestamp() + %s * interval '1 second'"
            + (", holder_backend = pg_backend_pid() " if self._holder_backend else " ")
            + "WHERE node_name = %s AND holder_id = %s AND token = %s "
            "AND expires_at > clock_timestamp() RETURNING token",
            (ttl, lease.node_name, lease.holder_id, lease.token),
        )
        if row is None:
            self._lease = None
            return False
        self._lease = Lease(lease.node_name, lease.holder_id, lease.token, ttl)
        return True

    def release_lease(self) -> None:
        """Give the lease up now, so a standby need not wait for it to expire."""
        lease, self._lease = self._lease, None
        if lease is not None:
            self._lease_statement(
                "UPDATE leases SET expires_at = clock_timestamp() "
                "WHERE node_name = %s AND holder_id = %s AND token = %s RETURNING token",
                (lease.node_name, lease.holder_id, lease.token),
            )

    def _lease_statement(self, sql: str, params: Sequence[Any]) -> Any:
        with self._mutex:
            conn = self._conn
            if conn is None:
                raise StoreError("the store is closed")
            with conn.transaction(), conn.cursor() as raw:
                raw.execute(sql, params)
                return raw.fetchone()

    def close(self) -> None:
        """Close, giving up the lease first so a restarted or standby node need not wait."""
        with contextlib.suppress(psycopg.Error, StoreError):
            self.release_lease()
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
