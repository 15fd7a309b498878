"""Ordered schema migrations, one list for both SQL backends.

Each migration has a version, a name and its statements per dialect (the tables are the
same; only column types and identity syntax differ). A store applies, at open and in one
transaction per migration, every migration newer than the database, records it in
``schema_migrations``, and refuses a database whose recorded history is not a prefix of
this list (a newer program wrote it, or the history was edited): running old code on a
newer schema is how data gets silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import (
    v0001_initial,
    v0002_virtual_channels,
    v0003_guards_and_quotes_as_records,
    v0004_snapshot_withdrawn_flag,
    v0005_snapshot_holdings,
    v0006_in_flight_as_records,
    v0007_watcher_duties_as_records,
    v0008_lease_holder_connection,
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", v0001_initial.SQLITE, v0001_initial.POSTGRES),
    Migration(
        2,
        "virtual channels",
        v0002_virtual_channels.SQLITE,
        v0002_virtual_channels.POSTGRES,
    ),
    Migration(
        3,
        "guards and quotes as records",
        v0003_guards_and_quotes_as_records.SQLITE,
        v0003_guards_and_quotes_as_records.POSTGRES,
    ),
    Migration(
        4,
        "snapshot withdrawn flag",
        v0004_snapshot_withdrawn_flag.SQLITE,
        v0004_snapshot_withdrawn_flag.POSTGRES,
    ),
    Migration(
        5,
        "snapshot holdings",
        v0005_snapshot_holdings.SQLITE,
        v0005_snapshot_holdings.POSTGRES,
    ),
    Migration(
        6,
        "in-flight HTLCs, links and preimages as records",
        v0006_in_flight_as_records.SQLITE,
        v0006_in_flight_as_records.POSTGRES,
    ),
    Migration(
        7,
        "watcher duties as records",
        v0007_watcher_duties_as_records.SQLITE,
        v0007_watcher_duties_as_records.POSTGRES,
    ),
    Migration(
        8,
        "lease holder's connection",
        v0008_lease_holder_connection.SQLITE,
        v0008_lease_holder_connection.POSTGRES,
    ),
)

BOOTSTRAP = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
)
