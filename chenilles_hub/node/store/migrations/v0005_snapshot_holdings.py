"""``snapshots.holdings``: the latest state's amounts per asset (``core.Holdings``: its
version, free balances and HTLC-locked totals), written with the snapshot.

A restart reads a channel's snapshot only on the channel's first use, but the node's
announcement of its capacities and its ``/metrics`` read every channel's balances: after a
restart of 100,000 channels the first announcement decoded and checked every snapshot
(13-15 s on the node's thread, nothing else served meanwhile). With this column a restored
machine answers them from the ~200 bytes kept beside its snapshot.

Rows already there have none (NULL) until their channel's next state rewrites them; such
a machine reads its snapshot the first time it is asked, as before. A program of an older
schema that writes a row (a standby that opened the store before this migration) rewrites
the snapshot and leaves these behind: the holdings carry their version, and the store
hands out only those of their row's version (``core.holdings_match``).
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = ("ALTER TABLE snapshots ADD COLUMN holdings BLOB",)
POSTGRES: tuple[str, ...] = ("ALTER TABLE snapshots ADD COLUMN holdings BYTEA",)
