"""``snapshots.withdrawn``: whether the snapshot holds proposals of ours the peer refused
(``ChannelSnapshot.withdrawn`` not empty), written with the snapshot.

A restart then learns which channels have a refusal to bury from this column alone, and
reads a channel's snapshot only when the channel is first used (restoring 100,000
channels read 390 MB of snapshots, most of them for channels nothing touched).

The flag is read through a partial index of the rows that have it (or may have it; the
index holds the flag too, so the rows are not read): a column of a row is otherwise
reached through the row's 4 KB snapshot, and reading every
row's flag took 0.19 s for 100,000 channels, against 0.035 s for their ids (the key's own
index) and this index together. A row enters the index only when it gets the flag, so
the writes of the payment path, which leave it at 0, do not touch it.

The rows already there get the flag from their bytes, once: a snapshot is canonical JSON
with ``withdrawn`` its last field, so one ending in ``,"withdrawn":[]}`` has none (the
test of ``core.machine_core.nothing_withdrawn``, written out here as it was when this
migration was made). Any other ending is flagged, which at worst reads that snapshot at
every restart until the channel's next state rewrites it. NULL, should a row ever hold
it, means "not known" and is read at once.
"""

from __future__ import annotations

#: ``,"withdrawn":[]}``, 16 bytes.
_NOTHING_WITHDRAWN = "2c2277697468647261776e223a5b5d7d"

#: The rows a restart reads at once (``SqlStore.snapshot_index`` asks with these words).
FLAGGED = "withdrawn IS NULL OR withdrawn <> 0"

_INDEX = f"CREATE INDEX snapshots_flagged ON snapshots (channel_id, withdrawn) WHERE {FLAGGED}"

SQLITE: tuple[str, ...] = (
    "ALTER TABLE snapshots ADD COLUMN withdrawn INTEGER",
    "UPDATE snapshots SET withdrawn = "
    f"CASE WHEN substr(data, -16) = X'{_NOTHING_WITHDRAWN}' THEN 0 ELSE 1 END",
    _INDEX,
)
POSTGRES: tuple[str, ...] = (
    "ALTER TABLE snapshots ADD COLUMN withdrawn INTEGER",
    "UPDATE snapshots SET withdrawn = CASE WHEN length(data) >= 16 AND "
    f"substring(data FROM length(data) - 15) = decode('{_NOTHING_WITHDRAWN}', 'hex') "
    "THEN 0 ELSE 1 END",
    _INDEX,
)
