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
import logging
import time
from typing import Any

from ..config import NodeConfig
from ..hub import backup
from ..hub.node import Node
from ..store.base import Store

log = logging.getLogger("chenilles.node")


def fingerprint(node: Node) -> frozenset[tuple[bytes, str]]:
    return frozenset((c.channel_id, c.status) for c in node.channels.values())


def versions(node: Node) -> int:
    """A cheap summary that changes whenever a channel signs a new state."""
    return sum(c.machine.state.version for c in node.channels.values())


class BackupFile:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        #: the channels and statuses the file last held (``None``: not written yet)
        self.written: frozenset[tuple[bytes, str]] | None = None
        self.written_versions = 0
        self.written_at = 0.0
        self.due = False

    def note(self, node: Node) -> None:
        """On the node's thread, after each tick: is a new backup due?"""
        if not self.config.backup_auto:
            return
        if fingerprint(node) != self.written:
            self.due = True
        interval = self.config.backup_interval
        if interval and time.monotonic() - self.written_at >= interval:
            self.due = self.due or versions(node) != self.written_versions

    def write(self, store: Store, node: Node) -> dict[str, Any]:
        """Write the backup file now (on the node's thread, after a durable job)."""
        state, signed = fingerprint(node), versions(node)
        opened_or_closed = state != self.written
        made = backup.collect(store, node.node_id, int(time.time()))
        backup.write_file(self.config.backup_path, backup.seal(made, node.identity))
        self.written, self.written_versions, self.due = state, signed, False
        self.written_at = time.monotonic()
        log.log(
            logging.INFO if opened_or_closed else logging.DEBUG,
            "wrote the channel backup %s (%d channels)",
            self.config.backup_path,
            len(made.channels),
        )
        return {
            "path": str(self.config.backup_path),
            "channels": len(made.channels),
            "created_at": made.created_at,
        }

    def export(self, store: Store, node: Node) -> dict[str, Any]:
        """The sealed backup for a client (base64) and what it holds."""
        made = backup.collect(store, node.node_id, int(time.time()))
        data = backup.seal(made, node.identity)
        return {
            "backup": base64.b64encode(data).decode(),
            "channels": backup.summary(made),
            "created_at": made.created_at,
        }
