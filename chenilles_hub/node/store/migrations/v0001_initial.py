"""The initial schema: channels, snapshots, revocations, duties, payments, invoices, settings.

Amounts are decimal TEXT because they go up to 2**256 - 1 (no SQL integer type holds that).
Records whose inner structure only the core understands (channel params, snapshots, duty
payloads) are opaque msgspec-encoded blobs; the columns next to them exist to be queried.
``snapshots.fence`` is the PostgreSQL fencing token of the writer (NULL under SQLite);
``leases`` exists only in PostgreSQL, where a standby may take over.
"""

from __future__ import annotations


def _tables(blob: str, bigint: str, identity: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE channels (
            channel_id {blob} PRIMARY KEY,
            me INTEGER NOT NULL CHECK (me IN (0, 1)),
            status TEXT NOT NULL CHECK (status IN ('open', 'closing', 'closed')),
            data {blob} NOT NULL)""",
        f"""CREATE TABLE snapshots (
            channel_id {blob} PRIMARY KEY REFERENCES channels (channel_id),
            version {bigint} NOT NULL,
            data {blob} NOT NULL,
            fence {bigint})""",
        f"""CREATE TABLE revocations (
            channel_id {blob} NOT NULL REFERENCES channels (channel_id),
            version {bigint} NOT NULL,
            revocation {blob} NOT NULL,
            PRIMARY KEY (channel_id, version))""",
        f"""CREATE TABLE duties (
            id {identity},
            kind TEXT NOT NULL,
            channel_id {blob} NOT NULL,
            dedupe_key TEXT NOT NULL,
            deadline {bigint} NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'cancelled')),
            payload {blob} NOT NULL,
            UNIQUE (channel_id, kind, dedupe_key))""",
        "CREATE INDEX duties_due ON duties (status, deadline, id)",
        f"""CREATE TABLE payments (
            payment_hash {blob} NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            amount TEXT NOT NULL,
            asset_chain TEXT NOT NULL,
            asset_token TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
            preimage {blob},
            failure TEXT NOT NULL,
            created_at {bigint} NOT NULL,
            updated_at {bigint} NOT NULL,
            PRIMARY KEY (payment_hash, direction))""",
        "CREATE INDEX payments_status ON payments (status, created_at)",
        f"""CREATE TABLE invoices (
            payment_hash {blob} PRIMARY KEY,
            amount TEXT NOT NULL,
            asset_chain TEXT NOT NULL,
            asset_token TEXT NOT NULL,
            description TEXT NOT NULL,
            preimage {blob},
            status TEXT NOT NULL CHECK (status IN ('open', 'paid', 'cancelled')),
            created_at {bigint} NOT NULL,
            expires_at {bigint} NOT NULL,
            paid_at {bigint})""",
        f"CREATE TABLE settings (key TEXT PRIMARY KEY, value {blob} NOT NULL)",
    )


SQLITE = _tables("BLOB", "INTEGER", "INTEGER PRIMARY KEY AUTOINCREMENT")
POSTGRES = (
    *_tables("BYTEA", "BIGINT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    """CREATE TABLE leases (
        node_name TEXT PRIMARY KEY,
        holder_id TEXT NOT NULL,
        token BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL)""",
)
