"""The devnet's append-only journal: one checksummed JSON record per line, fsynced.

LiteSVM keeps everything in memory. The server appends a record for every transaction that
landed (and its genesis, and slot-time changes) and fsyncs it *before* answering the client,
so a ``kill -9`` loses nothing a client was told about. At start the journal is read back
in order.

Each line is ``<crc32 as 8 hex digits> <json>\\n``. A crash in the middle of an append
leaves a torn last line: it is dropped (the client never got an answer for it) and the file
is cut back to the last whole record. A bad line anywhere else is corruption, and the
server refuses to start rather than silently forget a confirmed transaction.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JournalCorrupt(Exception):
    """A record other than the last one does not read back."""


def _encode(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def _decode(line: bytes) -> dict[str, Any] | None:
    if len(line) < 10 or line[8:9] != b" " or not line.endswith(b"\n"):
        return None
    body = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class Journal:
    """Open (creating if needed) ``path``; ``records()`` once, then ``append``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        if created:
            _fsync_dir(path.parent)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every whole record in order; cuts a torn tail off the file."""
        good_end = 0
        with open(self.path, "rb") as f:
            lines = f.readlines()
        for i, line in enumerate(lines):
            record = _decode(line)
            if record is None:
                if i == len(lines) - 1:  # torn by a crash mid-append: never acknowledged
                    self._cut(good_end)
                    return
                raise JournalCorrupt(f"{self.path}: record {i + 1} is damaged")
            good_end += len(line)
            yield record

    def append(self, record: dict[str, Any]) -> None:
        """Durable on return (write + fsync), or raises OSError."""
        data = _encode(record)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except OSError:
            # Leave no half record for the next append to follow (that would read back
            # as corruption in the middle of the file).
            self._cut(self._size)
            raise
        self._size += len(data)

    def _cut(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self._size = size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
