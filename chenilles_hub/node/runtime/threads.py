"""Naming the node's threads in the operating system.

Python names its threads for itself only (until 3.14): ``top -H``, ``ps -L``, py-spy and
``/proc/PID/task/TID/comm`` show every thread of a node as ``python``. An operator asking
which part of a busy node uses the CPU (the worker that signs, the writer that syncs the
store, the event loop that reads sockets and answers the API) needs the names there, and
so does the benchmark that reports a node's CPU per signed state thread by thread
(``scripts/bench_nodes.py``).
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

#: ``prctl(PR_SET_NAME, ...)`` names the calling thread (Linux).
_PR_SET_NAME = 15
#: Linux keeps 15 bytes of a thread's name (16 with the terminating zero).
_NAME_BYTES = 15


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # the process's own symbols, libc's among them: no search (``find_library`` would
        # run ``ldconfig`` in a subprocess at import)
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return getattr(libc, "prctl", None)


_prctl = _load_prctl()


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` (its first 15 bytes) in the operating system, where
    the platform allows it; elsewhere nothing happens (a name is a convenience, never a
    reason to fail)."""
    if _prctl is None:
        return
    # cut at a character's edge: a chain's name (``[chains.NAME]``) may be any text, and a
    # half character would leave a name that ``/proc`` readers cannot decode
    encoded = name.encode("utf-8")[:_NAME_BYTES].decode("utf-8", "ignore").encode("utf-8")
    try:
        _prctl(_PR_SET_NAME, ctypes.c_char_p(encoded), 0, 0, 0)
    except Exception:  # a thread body calls this first: nothing here may end the thread
        return
