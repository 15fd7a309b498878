"""What the node's timer keeps of its chains' reads between ticks.

Each chain reached over RPC is read on a thread of its own (``chain_fetch``); the timer
(``HubServer._tick``) starts the reads, waits for them a tick at most and hands what they
read to the node's thread. Between ticks it has to remember, per chain: the read still
running (an endpoint that stopped answering: no second read starts beside it), what was
read but failed to apply (applied again before anything newer), how long the last read
took (``/metrics``), and the watcher's clock: which chains' reads should bring it, and the
clock the last read brought, until the watcher's next tick takes it if it is still fresh.
That bookkeeping lives here, in one place; the timer keeps the order of things.

Everything here runs on the event loop, except ``kept_unapplied``, ``applied``,
``take_fresh_clocks`` and ``want_clocks``, which the node's thread calls from the timer's
jobs: the timer awaits each of those jobs, so the two sides never use the dictionaries at
the same time. (``/metrics`` copies ``seconds`` on the node's thread: one ``dict()`` of
floats, atomic under the GIL.)
"""

from __future__ import annotations

import asyncio
import time
from asyncio import wrap_future

from chenilles_hub.backend import ChainBackend

from .chain_fetch import ChainFetchThread, Fetched, fetcher_of

__all__ = ["CLOCK_WANTED_FOR", "ChainReads"]

#: How long (seconds) after the watcher last needed a chain's clock its reads still bring
#: it (``ClockFetcher``): payments come and go between ticks, so "an HTLC in flight at the
#: last tick" would miss most of them, while a clock with every read of an idle chain would
#: double its requests. A hub with HTLCs in flight in the last minute pays the clock's
#: requests with every read of the chain (EVM two, Bitcoin one at most, Solana none); the
#: first HTLC after a quiet minute has its clock read on the node's thread.
CLOCK_WANTED_FOR = 60.0


class ChainReads:
    """Per chain name: its reading thread, its read still running, what it read and the
    node failed to apply, the last read's duration, and the watcher's clock it brings."""

    def __init__(self) -> None:
        #: chain name -> seconds its last read took off the node's thread (the RPC)
        self.seconds: dict[str, float] = {}
        self._threads: dict[str, ChainFetchThread] = {}
        #: chain name -> its read still running, and since when (monotonic)
        self._running: dict[str, tuple[asyncio.Future[Fetched], float]] = {}
        #: chain name -> what its last read returned and the node failed to apply
        self._unapplied: dict[str, Fetched] = {}
        #: chain id -> until when (monotonic) its reads bring its clock
        self._clock_wanted: dict[str, float] = {}
        #: chain id -> the clock the last read brought, and when that read started
        #: (monotonic)
        self._clocks: dict[str, tuple[int, float]] = {}

    def thread(self, name: str, backend: ChainBackend) -> ChainFetchThread | None:
        """The thread chain ``name`` is read on, started on first use; None while its
        backend polls on the node's thread (asked each tick: it may change its answer,
        but not while a read of it runs or waits to be applied: never two reads at once,
        nor a newer one before an older). Raises what ``fetches_off_thread`` raised."""
        if name in self._running or name in self._unapplied:
            return self._threads[name]
        fetcher = fetcher_of(backend)
        if fetcher is None:
            return None
        thread = self._threads.get(name)
        if thread is None:
            thread = self._threads[name] = ChainFetchThread(name, fetcher)
        return thread

    def unapplied(self, name: str) -> Fetched | None:
        """What chain ``name``'s last read returned and the node has not applied yet."""
        return self._unapplied.get(name)

    def start(
        self, name: str, chain: str, thread: ChainFetchThread, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[Fetched]:
        """Chain ``name``'s read: the one still running, or a new one (bringing the
        chain's clock if the watcher wants it)."""
        running = self._running.get(name)
        if running is None:
            with_clock = time.monotonic() < self._clock_wanted.get(chain, 0.0)
            running = (wrap_future(thread.submit(with_clock), loop=loop), time.monotonic())
            self._running[name] = running
        return running[0]

    def ended(self, name: str, future: asyncio.Future[Fetched]) -> Fetched | Exception:
        """Chain ``name``'s read ended: what it read (its time kept for ``/metrics``), or
        why it failed."""
        del self._running[name]
        exc = future.exception()
        if exc is not None:
            return exc if isinstance(exc, Exception) else RuntimeError(exc)
        fetched = future.result()
        self.seconds[name] = fetched.seconds
        return fetched

    def running_for(self, name: str) -> float:
        """Seconds chain ``name``'s read has been running (0 if none is)."""
        running = self._running.get(name)
        return 0.0 if running is None else time.monotonic() - running[1]

    def kept_unapplied(self, name: str, fetched: Fetched) -> None:
        """The node failed to apply ``fetched``: applied again before anything newer."""
        self._unapplied[name] = fetched

    def applied(self, name: str, chain: str, fetched: Fetched | None) -> None:
        """Chain ``name`` was polled, or what it read applied: the clock the read brought
        (if any) is kept for the watcher's next tick."""
        self._unapplied.pop(name, None)
        if fetched is not None and fetched.clock is not None:
            self._clocks[chain] = (fetched.clock, fetched.read_started)

    def take_fresh_clocks(self, max_age: float) -> dict[str, int]:
        """The clocks kept since the last call whose read started at most ``max_age``
        seconds ago (an older one, from a read applied late or a slow queue, is dropped:
        the watcher then reads the chain's clock itself)."""
        clocks, self._clocks = self._clocks, {}
        now = time.monotonic()
        return {
            chain: clock for chain, (clock, read_at) in clocks.items() if now - read_at <= max_age
        }

    def want_clocks(self, chains: set[str]) -> None:
        """The watcher needed these chains' clocks: their reads bring them for
        ``CLOCK_WANTED_FOR`` seconds."""
        if chains:
            until = time.monotonic() + CLOCK_WANTED_FOR
            self._clock_wanted = {**self._clock_wanted, **dict.fromkeys(chains, until)}

    def drop(self) -> None:
        """At shutdown: reads not started never run, and an ended one's error is taken (its
        data is dropped: after a restart each chain's feed is read again from where it
        was, ``chain-origin/<name>``)."""
        for future, _ in self._running.values():
            if not future.cancel() and not future.cancelled():
                future.exception()
        self._running.clear()

    async def stop(self, wait: float) -> None:
        """Every reading thread stopped, each read still running given ``wait`` seconds to
        end (before the node closes the backends' connections)."""
        await asyncio.gather(*(asyncio.to_thread(t.stop, wait) for t in self._threads.values()))
