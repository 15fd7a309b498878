"""The devnet's files besides the kernel's: mempool, RPC cookie, ready file.

Every file is replaced atomically (write a temporary file, then rename), so a process killed
at any instruction leaves either the old or the new content, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

COOKIE_USER = "__cookie__"
MEMPOOL_FILE = "mempool.json"
COOKIE_FILE = ".cookie"
READY_FILE = "ready.json"


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def save_mempool(datadir: Path, entries: list[tuple[bytes, int, int]]) -> None:
    """(raw, entry time, entry height) of each mempool tx, in pool (dependency) order."""
    doc = {"version": 1, "txs": [{"hex": r.hex(), "time": t, "height": h} for r, t, h in entries]}
    write_atomic(datadir / MEMPOOL_FILE, json.dumps(doc).encode())


def load_mempool(datadir: Path) -> list[tuple[bytes, int, int]]:
    """What `save_mempool` wrote; empty when absent or unreadable (it is re-validated anyway)."""
    path = datadir / MEMPOOL_FILE
    try:
        doc = json.loads(path.read_text())
        return [(bytes.fromhex(t["hex"]), int(t["time"]), int(t["height"])) for t in doc["txs"]]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError):
        path.rename(path.with_suffix(".corrupt"))
        return []


def write_cookie(datadir: Path) -> tuple[str, str]:
    """A fresh ``__cookie__:<64 hex>`` credential in DIR/.cookie (mode 0600), as bitcoind."""
    password = secrets.token_hex(32)
    write_atomic(datadir / COOKIE_FILE, f"{COOKIE_USER}:{password}".encode(), mode=0o600)
    return COOKIE_USER, password


def write_ready(datadir: Path, info: dict[str, Any]) -> str:
    line = json.dumps(info)
    write_atomic(datadir / READY_FILE, (line + "\n").encode())
    return line


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
