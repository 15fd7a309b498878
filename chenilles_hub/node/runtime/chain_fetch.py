"""Reading the chains off the node's thread: one daemon thread per chain reached over RPC.

A chain poll waits on the chain's RPC: several round trips a tick, tens of milliseconds
each against a remote endpoint. On the node's thread every peer's message and every API
call waited for them. A backend that plays the ``EventFetcher`` role splits its poll in
two: ``fetch_events`` (the RPC) runs here, and only what it read goes to the node's thread
(``apply_events``). Each chain has a thread of its own, so a slow endpoint delays its own
chain's events and nothing else, and a chain's fetches never overlap (the backend may keep
cursors without a lock). A backend that also plays ``ClockFetcher`` reads the watcher's
clock here too, with the read that follows a tick whose watcher needed it.

The threads are daemons: a fetch stuck on an endpoint that stopped answering must not keep
a stopping node alive (an executor's threads are joined at exit).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from chenilles_hub.backend import ClockFetcher, EventFetcher

from .threads import name_os_thread

__all__ = ["ChainFetchThread", "ChainReadFailed", "Fetched", "fetcher_of"]


class ChainReadFailed(Exception):
    """A chain's ``fetch_events`` raised (its error is the cause). Whatever it raised, even
    a ``CancelledError`` from the backend's own client, reaches the timer as an ordinary
    error: counted and shown, and the next tick reads again."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one fetch read, and how long it took (the endpoint's latency, as the operator
    sees it in ``chenilles_chain_fetch_seconds``). ``clock``: the chain's
    ``fetch_clock``, if it was asked for and read; ``read_started``: when the fetch began
    (``time.monotonic()``), the clock's age (it may come from what the fetch read): a
    clock is used only while it is fresh; ``clock_error``: why the clock asked for could
    not be read."""

    data: object
    seconds: float
    clock: int | None = None
    read_started: float = 0.0
    clock_error: str = ""


def fetcher_of(backend: object) -> EventFetcher | None:
    """``backend`` if its poll may be fetched off the node's thread now, else None (no
    split, or an embedded ledger: it is polled on the node's thread as before)."""
    if isinstance(backend, EventFetcher) and backend.fetches_off_thread():
        return backend
    return None


class ChainFetchThread:
    """Runs one chain's ``fetch_events`` (and ``fetch_clock`` when asked) on a daemon
    thread, one read at a time."""

    def __init__(self, name: str, source: EventFetcher) -> None:
        self.name = name
        self._source = source
        self._jobs: queue.SimpleQueue[tuple[Future[Fetched], bool] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"chain-fetch-{name}", daemon=True)
        self._thread.start()

    def submit(self, with_clock: bool = False) -> Future[Fetched]:
        """A fetch, started as soon as the previous one of this chain ended; ``with_clock``:
        then the chain's ``fetch_clock`` too, if its backend has one (a clock that cannot be
        read leaves ``clock`` None: the events read are good all the same, and the
        watcher reads the clock on the node's thread as it would without the role)."""
        future: Future[Fetched] = Future()
        self._jobs.put((future, with_clock))
        return future

    def stop(self, wait: float) -> None:
        """No fetch after the one running (if any), which is given ``wait`` seconds to end
        before the node closes its backends (a fetch still running then fails or is
        dropped with the daemon thread)."""
        self._jobs.put(None)
        self._thread.join(wait)

    def _run(self) -> None:
        name_os_thread(f"fetch-{self.name}")  # 15 bytes in all: room for the chain's name
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, with_clock = job
            if not future.set_running_or_notify_cancel():
                continue
            started = time.perf_counter()
            read_started = time.monotonic()  # a clock from what the fetch read is this old
            try:
                data = self._source.fetch_events()
            except BaseException as exc:  # handed to the awaiting tick, which reports it
                failed = ChainReadFailed(f"{type(exc).__name__}: {exc}")
                failed.__cause__ = exc
                future.set_exception(failed)
                continue
            seconds = time.perf_counter() - started
            clock, clock_error = self._clock(data) if with_clock else (None, "")
            future.set_result(Fetched(data, seconds, clock, read_started, clock_error))

    def _clock(self, fetched: object) -> tuple[int | None, str]:
        """The chain's ``fetch_clock``, or None and why not (the watcher then reads the
        clock on the node's thread, as without the role)."""
        source = self._source
        if not isinstance(source, ClockFetcher):
            return None, ""
        try:
            return int(source.fetch_clock(fetched)), ""
        except BaseException as exc:  # as a fetch's: nothing a backend raises ends the thread
            return None, f"{type(exc).__name__}: {exc}"
