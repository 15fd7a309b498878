"""The thread a chain is read on: one read at a time, errors handed back, never in the way
of a stopping node.

The source here is a stand-in for a backend: the thread's own behaviour is under test
(order, errors, stop), not a chain's; test_chain_ticks.py runs it on real chains.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from chenilles_hub.node.runtime.chain_fetch import ChainFetchThread, ChainReadFailed, fetcher_of

pytestmark = pytest.mark.node


class Source:
    """Counts its reads, notes whether two ever overlapped, and blocks while ``gate`` is
    closed (an endpoint that stopped answering)."""

    def __init__(self) -> None:
        self.reads = 0
        self.inside = 0
        self.overlapped = False
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None

    def fetches_off_thread(self) -> bool:
        return True

    def fetch_events(self) -> object:
        self.inside += 1
        self.overlapped |= self.inside > 1
        try:
            self.gate.wait()
            time.sleep(0.001)
            if self.fail is not None:
                raise self.fail
            self.reads += 1
            return self.reads
        finally:
            self.inside -= 1

    def apply_events(self, fetched: object) -> list[object]:
        return []


def test_reads_run_one_at_a_time_in_order_and_report_their_time() -> None:
    source = Source()
    thread = ChainFetchThread("evm", source)  # type: ignore[arg-type]
    try:
        futures = [thread.submit() for _ in range(20)]
        results = [f.result(10) for f in futures]
        assert [r.data for r in results] == list(range(1, 21))
        assert all(r.seconds > 0 for r in results)
        assert not source.overlapped
    finally:
        thread.stop(5)


def test_a_failed_read_is_handed_back_and_the_next_one_runs() -> None:
    source = Source()
    thread = ChainFetchThread("bitcoin", source)  # type: ignore[arg-type]
    try:
        source.fail = ConnectionRefusedError("down")
        with pytest.raises(ChainReadFailed) as failed:
            thread.submit().result(10)
        assert str(failed.value) == "ConnectionRefusedError: down"
        assert isinstance(failed.value.__cause__, ConnectionRefusedError)
        # whatever the backend raises reaches the timer as an ordinary error, even what
        # asyncio would take for its own cancellation
        source.fail = concurrent.futures.CancelledError()
        with pytest.raises(ChainReadFailed):
            thread.submit().result(10)
        source.fail = None
        assert thread.submit().result(10).data == 1
    finally:
        thread.stop(5)


def test_a_read_stuck_on_a_dead_endpoint_does_not_hold_up_a_stop() -> None:
    source = Source()
    source.gate.clear()
    thread = ChainFetchThread("solana", source)  # type: ignore[arg-type]
    stuck = thread.submit()
    queued = thread.submit()
    assert queued.cancel()  # not started: dropped
    started = time.monotonic()
    thread.stop(0.2)
    assert time.monotonic() - started < 2
    assert thread._thread.daemon  # the process may exit with it still waiting
    source.gate.set()
    assert stuck.result(10).data == 1  # its answer, if it comes, goes nowhere harmful


def test_only_a_backend_that_reads_off_the_thread_now_gets_a_thread() -> None:
    source = Source()
    assert fetcher_of(source) is source
    source.fetches_off_thread = lambda: False  # type: ignore[method-assign]
    assert fetcher_of(source) is None  # an embedded ledger: polled on the node's thread
    assert fetcher_of(object()) is None  # no EventFetcher role


class ClockedSource(Source):
    """A source that also plays ``ClockFetcher``: its clock is its read count, or fails."""

    def __init__(self) -> None:
        super().__init__()
        self.clock_reads: list[str] = []
        self.clock_fails: BaseException | None = None

    def fetch_clock(self, fetched: object) -> int:
        self.clock_reads.append(threading.current_thread().name)
        if self.clock_fails is not None:
            raise self.clock_fails
        assert fetched == self.reads  # what the fetch just returned
        return 1_000 + self.reads


def test_the_clock_is_read_after_the_events_on_the_reading_thread_only_when_asked() -> None:
    source = ClockedSource()
    thread = ChainFetchThread("evm", source)  # type: ignore[arg-type]
    try:
        plain = thread.submit().result(10)
        assert plain.clock is None and source.clock_reads == []  # not asked: no round trip
        asked = time.monotonic()
        clocked = thread.submit(with_clock=True).result(10)
        assert clocked.data == 2 and clocked.clock == 1_002  # read after that fetch's events
        assert source.clock_reads == ["chain-fetch-evm"]
        assert asked <= clocked.read_started <= time.monotonic()  # when the clock's read began
        # a clock that cannot be read: the events stand, and why is handed back
        source.clock_fails = concurrent.futures.CancelledError()
        failed = thread.submit(with_clock=True).result(10)
        assert failed.data == 3 and failed.clock is None
        assert failed.clock_error.startswith("CancelledError")
        source.clock_fails = None
        assert thread.submit(with_clock=True).result(10).clock == 1_004  # the thread lives on
        # a failed fetch reads no clock
        source.fail = ConnectionRefusedError("down")
        with pytest.raises(ChainReadFailed):
            thread.submit(with_clock=True).result(10)
        assert len(source.clock_reads) == 3
    finally:
        thread.stop(5)


def test_a_source_without_a_clock_role_gets_no_clock() -> None:
    thread = ChainFetchThread("bitcoin", Source())  # type: ignore[arg-type]
    try:
        fetched = thread.submit(with_clock=True).result(10)
        assert fetched.clock is None and fetched.clock_error == ""
    finally:
        thread.stop(5)
