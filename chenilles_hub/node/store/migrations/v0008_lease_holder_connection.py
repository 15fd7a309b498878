"""The leader lease records its holder's database connection (``holder_backend``, the
PostgreSQL backend pid of the connection that took or last renewed it).

A process killed with ``kill -9`` cannot release its lease; before, its restart (or a
standby) waited out ``lease_ttl``. PostgreSQL closes a dead process's connection at once, so
a lease whose holder's connection is gone is taken at once: the holder can write nothing
more (every write is fenced by the lease token in the same transaction, and a new
connection of a paused holder would find the token moved on). A holder whose connection is
still open (a paused or partitioned process) keeps its lease until it expires, as before.

SQLite has no lease: no statement there. Rows written before this migration have no
connection recorded and wait for their expiry.
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = ()
POSTGRES: tuple[str, ...] = ("ALTER TABLE leases ADD COLUMN holder_backend INTEGER",)
