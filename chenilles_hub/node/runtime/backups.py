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
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
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
    """The file as written, told apart from any other: its path, the node that sealed it,
    its nonce and length (a stale copy, another machine's file after a PostgreSQL
    failover, or a damaged one differ), and the channels and statuses it holds."""

    path: str
    node_id: str
    #: the sealed file's 12 bytes after its magic (its nonce, or its nonce prefix and the
    #: first ciphertext bytes), hex
    nonce: str
    size: int
    #: :func:`digest` of the channels and statuses the file holds
    channels: str


_HEAD = len(backup.MAGIC) + backup.NONCE_BYTES


def _file_identity(path: Path) -> tuple[str, int] | None:
    """The 12 bytes after the magic of the backup file at ``path`` (hex), and its length;
    ``None`` if there is no such file."""
    try:
        with path.open("rb") as file:
            head = file.read(_HEAD)
            size = os.fstat(file.fileno()).st_size
    except OSError:
        return None
    return _identity(head, size)


def _identity(head: bytes, size: int) -> tuple[str, int] | None:
    magic = head[: len(backup.MAGIC)]
    if len(head) < _HEAD or magic not in (backup.MAGIC, backup.MAGIC_CHUNKED):
        return None
    return head[len(magic) : _HEAD].hex(), size


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
        #: one writer of the file at a time (the timer, the API)
        self.lock = threading.Lock()
        #: a backup is being sealed and written on another thread (the timer waits for it)
        self.writing = False
        #: views taken, and the newest one written: an older view never replaces a newer
        self._taken = 0
        self._finished = 0
        #: failed writes in a row, and when the timer may try again (monotonic)
        self.failures = 0
        self.retry_at = 0.0

    def note(self, node: Node) -> None:
        """On the node's thread, after each tick: is a new backup due?"""
        if not self.config.backup_auto:
            return
        now = fingerprint(node)
        if self.written is None and self._on_disk_for(node.store, node.node_id, now):
            self.written, self.written_versions = now, versions(node)
        if now != self.written:
            self.due = True
        interval = self.config.backup_interval
        if interval and time.monotonic() - self.written_at >= interval:
            self.due = self.due or versions(node) != self.written_versions

    def may_write(self) -> bool:
        """The timer's question: due, none being written, and not backing off a failure."""
        return self.due and not self.writing and time.monotonic() >= self.retry_at

    def failed(self, tick: float) -> None:
        """A write failed: the next try waits 2, 4, 8 ... ticks (at most a minute), since
        each try reads the whole store on the node's thread."""
        self.failures += 1
        self.retry_at = time.monotonic() + min(60.0, tick * 2**self.failures)

    def _on_disk_for(
        self, store: Store | None, node_id: bytes, channels: frozenset[tuple[bytes, str]]
    ) -> bool:
        """After a restart: the file this node last wrote is there, unchanged, and holds
        these channels and statuses (and no ``interval`` asks for states newer than the
        file: those are not known without reading every snapshot, so such a node writes its
        first backup again)."""
        if store is None or self.config.backup_interval:
            return False
        on_disk = _file_identity(self.config.backup_path)
        raw = store.get_setting(WRITTEN_KEY)
        if on_disk is None or raw is None:
            return False
        try:
            written = msgspec.json.decode(raw, type=WrittenFor)
        except msgspec.DecodeError:
            return False
        nonce, size = on_disk
        path = str(self.config.backup_path)
        return written == WrittenFor(path, node_id.hex(), nonce, size, digest(channels))

    def take(self, store: Store, node: Node) -> PendingBackup:
        """On the node's thread, between jobs, once every job handed to the writer is
        written (``Pipeline.wait_written``: what the store holds is what the node knows):
        read what the file will hold (one read of the store).
        :meth:`PendingBackup.finish` seals and writes it on any thread, so the node goes on
        meanwhile (sealing 100,000 channels takes seconds)."""
        self._taken += 1
        return PendingBackup(
            self,
            store,
            node.identity,
            read_view(store),
            fingerprint(node),
            versions(node),
            self._taken,
        )

    def write(self, store: Store, node: Node) -> dict[str, Any]:
        """Write the backup file now, all on the caller's thread (a node whose checkpoints
        are written by the caller: nothing is behind)."""
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
    view: StoreView | None
    channels: frozenset[tuple[bytes, str]]
    signed: int
    #: the view's number (``BackupFile.take``)
    number: int

    def finish(self) -> dict[str, Any]:
        file, view = self.file, self.view
        path = file.config.backup_path
        assert view is not None, "a pending backup is finished once"
        self.view = None  # hundreds of MB with many channels: not kept once written
        with file.lock:
            if self.number < file._finished:  # a newer view is already in the file
                return {"path": str(path), "channels": None, "superseded": True}
            created_at = int(time.time())
            data, count = backup.seal_view(view, self.identity, created_at)
            del view
            backup.write_file(path, data)
            identity = _identity(b"".join(data[:2])[:_HEAD], sum(len(piece) for piece in data))
            assert identity is not None
            del data
            written = WrittenFor(
                str(path), self.identity.node_id.hex(), *identity, digest(self.channels)
            )
            self.store.set_setting(WRITTEN_KEY, msgspec.json.encode(written))
            opened_or_closed = self.channels != file.written
            file.written, file.written_versions, file.due = self.channels, self.signed, False
            file.written_at = time.monotonic()
            file._finished = self.number
            file.failures, file.retry_at = 0, 0.0
        log.log(
            logging.INFO if opened_or_closed else logging.DEBUG,
            "wrote the channel backup %s (%d channels)",
            path,
            count,
        )
        return {"path": str(path), "channels": count, "created_at": created_at}
