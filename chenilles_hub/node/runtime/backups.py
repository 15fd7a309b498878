"""The node's static channel backup file, rewritten whenever a channel opens or closes.

The timer's tick (on the node's thread) notes the set of channels and their statuses; when
it changed since the last backup, the backup is rebuilt from the store once the tick's job
is durable (so it holds exactly what a restart would), sealed and written atomically
(``backup.write_file``: temporary file, fsync, rename, 0600). With ``[backup] interval``,
a change of any channel's signed version also makes it due, at most once per interval: a
backup older than the latest payments can be refused by the peer on Bitcoin (see
docs/operating-a-hub.md), so operators there shorten how old it can be.
``chenilles backup export`` and ``POST /v1/backup`` write one at any time.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from ...identity import NodeIdentity
from ..config import NodeConfig
from ..hub import backup
from ..hub.backup import read_view
from ..hub.node import Node
from ..store.base import Store, StoreView

log = logging.getLogger("chenilles.node")

#: What the backup file was last written for (:class:`WrittenFor`), kept in the store: a
#: restarted node whose channels and statuses did not change does not write it again (a
#: backup of 100,000 channels reads 500 MB of snapshots).
WRITTEN_KEY = "backup/written"


class WrittenFor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    #: :func:`digest` of the channels and statuses the file holds
    channels: str


def fingerprint(node: Node) -> frozenset[tuple[bytes, str]]:
    return frozenset((c.channel_id, c.status) for c in node.channels.values())


def digest(channels: frozenset[tuple[bytes, str]]) -> str:
    h = hashlib.sha256()
    for channel_id, status in sorted(channels):
        h.update(channel_id + status.encode() + b"\n")
    return h.hexdigest()


def versions(node: Node) -> int:
    """A cheap summary that changes whenever a channel signs a new state (and reads no
    channel's snapshot: a restarted machine reads its own on first use)."""
    return node.persistence.snapshots_taken


class BackupFile:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        #: the channels and statuses the file last held (``None``: not written yet)
        self.written: frozenset[tuple[bytes, str]] | None = None
        self.written_versions = 0
        self.written_at = 0.0
        self.due = False
        self.lock = threading.Lock()

    def note(self, node: Node) -> None:
        """On the node's thread, after each tick: is a new backup due?"""
        if not self.config.backup_auto:
            return
        now = fingerprint(node)
        if self.written is None and self._on_disk_for(node.store, now):
            self.written, self.written_versions = now, versions(node)
        if now != self.written:
            self.due = True
        interval = self.config.backup_interval
        if interval and time.monotonic() - self.written_at >= interval:
            self.due = self.due or versions(node) != self.written_versions

    def _on_disk_for(self, store: Store | None, channels: frozenset[tuple[bytes, str]]) -> bool:
        """After a restart: the file is there and holds these channels and statuses (and no
        ``interval`` asks for states newer than the file: those are not known without
        reading every snapshot, so such a node writes its first backup again)."""
        if store is None or self.config.backup_interval or not self.config.backup_path.exists():
            return False
        raw = store.get_setting(WRITTEN_KEY)
        if raw is None:
            return False
        try:
            written = msgspec.json.decode(raw, type=WrittenFor)
        except msgspec.DecodeError:
            return False
        return written == WrittenFor(str(self.config.backup_path), digest(channels))

    def take(self, store: Store, node: Node) -> PendingBackup:
        """On the node's thread, after a durable job: read what the file will hold (one
        read of the store); :meth:`PendingBackup.finish` seals and writes it on any thread,
        so the node goes on meanwhile (sealing 100,000 channels takes seconds)."""
        return PendingBackup(
            self, store, node.identity, read_view(store), fingerprint(node), versions(node)
        )

    def write(self, store: Store, node: Node) -> dict[str, Any]:
        """Write the backup file now, all on the caller's thread."""
        return self.take(store, node).finish()

    def export(self, store: Store, node: Node) -> dict[str, Any]:
        """The sealed backup for a client (base64) and what it holds."""
        made = backup.collect(store, node.node_id, int(time.time()))
        data = backup.seal(made, node.identity)
        return {
            "backup": base64.b64encode(data).decode(),
            "channels": backup.summary(made),
            "created_at": made.created_at,
        }


@dataclass
class PendingBackup:
    """A backup read from the store, to be sealed and written (:meth:`finish`)."""

    file: BackupFile
    store: Store
    identity: NodeIdentity
    view: StoreView
    channels: frozenset[tuple[bytes, str]]
    signed: int

    def finish(self) -> dict[str, Any]:
        file = self.file
        with file.lock:  # one writer of the file at a time (the timer, the API)
            created_at = int(time.time())
            data, count = backup.seal_view(self.view, self.identity, created_at)
            backup.write_file(file.config.backup_path, data)
            written = WrittenFor(str(file.config.backup_path), digest(self.channels))
            self.store.set_setting(WRITTEN_KEY, msgspec.json.encode(written))
            opened_or_closed = self.channels != file.written
            file.written, file.written_versions, file.due = self.channels, self.signed, False
            file.written_at = time.monotonic()
        log.log(
            logging.INFO if opened_or_closed else logging.DEBUG,
            "wrote the channel backup %s (%d channels)",
            file.config.backup_path,
            count,
        )
        return {"path": str(file.config.backup_path), "channels": count, "created_at": created_at}
