"""Virtual channels (docs/virtual-channels.md): one row per virtual channel this node is an
end or the hub of, written in the same checkpoint transaction as the channel snapshots.

``request_id`` is the channel's handle (hex) from the first message; ``data`` is the node's
record (terms, role, status, V's machine snapshot), opaque to the store like a snapshot.
"""

from __future__ import annotations


def _tables(blob: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE virtual_channels (
            request_id TEXT PRIMARY KEY,
            data {blob} NOT NULL)""",
    )


SQLITE = _tables("BLOB")
POSTGRES = _tables("BYTEA")
