"""File modes of what the node keeps on disk: nobody but its user may read its secrets.

The data directory is 0700; the store (``node.sqlite``, which holds invoice preimages and
every signed state, with its WAL and lock files), the identity seed, the API token, the TLS
key and the channel backup are 0600. A file or directory found with looser modes (an old
data directory, a copy made with a permissive umask) is tightened and the fix logged, so
an operator learns that it was readable before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("chenilles.node")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def tighten(path: Path, mode: int) -> bool:
    """Give ``path`` at most ``mode`` (no bit for group or others); ``True`` if it had to
    change. A missing path is left alone."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return False
    if current & ~mode & 0o077 == 0:
        return False
    os.chmod(path, current & mode)
    log.warning("%s was accessible to others (mode %o): set to %o", path, current, current & mode)
    return True


def private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) or tighten it."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    tighten(path, PRIVATE_DIR)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing (so a library that opens it later,
    SQLite for one, never creates it world-readable), else tighten it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        return
    tighten(path, PRIVATE_FILE)


def store_files(sqlite_path: Path) -> list[Path]:
    """The SQLite file and its companions (WAL, shared memory, the node's lock file)."""
    return [sqlite_path, *(sqlite_path.with_name(sqlite_path.name + s) for s in _COMPANIONS)]


_COMPANIONS = ("-wal", "-shm", ".lock")


def secure_data_dir(data_dir: Path, secrets: list[Path]) -> None:
    """The data directory 0700, and every secret file in ``secrets`` that exists 0600."""
    private_dir(data_dir)
    for path in secrets:
        tighten(path, PRIVATE_FILE)
