"""The timer's bookkeeping of its chains' reads (``ChainReads``): one read of a chain at a
time, what failed to apply kept, and the watcher's clock asked for while it is wanted and
handed over only while fresh. The chain stands in as in test_chain_fetch.py; the node's
tick over real chains is test_chain_ticks.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from chenilles_hub.node.runtime import chain_reads
from chenilles_hub.node.runtime.chain_fetch import ChainFetchThread, Fetched
from chenilles_hub.node.runtime.chain_reads import ChainReads

from .test_chain_fetch import ClockedSource

pytestmark = pytest.mark.node

CHAIN = "eip155:1"


def test_a_chain_has_one_read_at_a_time_and_its_clock_only_while_wanted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def read(reads: ChainReads, thread: ChainFetchThread) -> Fetched:
        future = reads.start("evm", CHAIN, thread, asyncio.get_running_loop())
        assert reads.start("evm", CHAIN, thread, asyncio.get_running_loop()) is future
        await asyncio.wait([future], timeout=10)
        fetched = reads.ended("evm", future)
        assert isinstance(fetched, Fetched)
        return fetched

    async def body() -> None:
        reads = ChainReads()
        thread = reads.thread("evm", ClockedSource())  # type: ignore[arg-type]
        assert thread is not None
        try:
            fetched = await read(reads, thread)
            assert fetched.clock is None  # not wanted: no round trip for it
            assert reads.seconds["evm"] == fetched.seconds
            reads.want_clocks({CHAIN})
            assert (await read(reads, thread)).clock == 1_002
            assert (await read(reads, thread)).clock == 1_003  # still wanted
            monkeypatch.setattr(chain_reads, "CLOCK_WANTED_FOR", 0.0)
            reads.want_clocks({CHAIN})  # wanted until now: no longer
            assert (await read(reads, thread)).clock is None
        finally:
            await reads.stop(5)

    asyncio.run(body())


def test_what_failed_to_apply_keeps_its_thread_and_waits_to_be_applied() -> None:
    reads = ChainReads()
    source = ClockedSource()
    thread = reads.thread("evm", source)  # type: ignore[arg-type]
    try:
        stale = Fetched(data=1, seconds=0.1)
        reads.kept_unapplied("evm", stale)
        source.fetches_off_thread = lambda: False  # type: ignore[method-assign]
        # the backend now asks to be polled on the node's thread: not before that is applied
        assert reads.thread("evm", source) is thread  # type: ignore[arg-type]
        assert reads.unapplied("evm") is stale
        reads.applied("evm", CHAIN, stale)
        assert reads.unapplied("evm") is None
        assert reads.thread("evm", source) is None  # type: ignore[arg-type]
    finally:
        asyncio.run(reads.stop(5))


def test_a_clock_is_handed_over_once_and_only_while_fresh() -> None:
    reads = ChainReads()
    now = time.monotonic()
    reads.applied("evm", CHAIN, Fetched(1, 0.1, clock=500, read_started=now))
    reads.applied("sol", "solana:x", Fetched(2, 0.1, clock=700, read_started=now - 1.0))
    reads.applied("btc", "bip122:x", Fetched(3, 0.1))  # no clock asked
    assert reads.take_fresh_clocks(0.5) == {CHAIN: 500}  # the second is a second old
    assert reads.take_fresh_clocks(0.5) == {}  # each is taken once


def test_a_running_read_keeps_its_thread_and_a_failed_one_says_why() -> None:
    async def body() -> None:
        reads = ChainReads()
        source = ClockedSource()
        thread = reads.thread("evm", source)  # type: ignore[arg-type]
        assert thread is not None
        try:
            source.gate.clear()  # an endpoint that stopped answering
            future = reads.start("evm", CHAIN, thread, asyncio.get_running_loop())
            source.fetches_off_thread = lambda: False  # type: ignore[method-assign]
            # not polled on the node's thread beside the read still running
            assert reads.thread("evm", source) is thread  # type: ignore[arg-type]
            assert reads.running_for("evm") > 0
            source.fail = ConnectionRefusedError("down")
            source.gate.set()
            await asyncio.wait([future], timeout=10)
            failed = reads.ended("evm", future)
            assert isinstance(failed, Exception) and "ConnectionRefusedError" in str(failed)
            assert "evm" not in reads.seconds and reads.running_for("evm") == 0.0
            assert reads.thread("evm", source) is None  # type: ignore[arg-type]
        finally:
            await reads.stop(5)

    asyncio.run(body())
