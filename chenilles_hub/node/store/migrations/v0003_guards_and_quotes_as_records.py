"""The watcher's guards (``guard/<channel>``) and the issued quotes (``quote/<id>``) are
settings of their own, no longer inside the node's state (``node-state/v1``).

No statement: the node moves what an older store holds at its first checkpoint after the
upgrade (``Persistence.restore``). The migration is recorded so that an older program
refuses this store (``SchemaError``) instead of opening it without reading the guard
records: it would no longer refute a peer's stale registration on any of its channels.
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = ()
POSTGRES: tuple[str, ...] = ()
