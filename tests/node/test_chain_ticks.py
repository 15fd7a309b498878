"""A node with several chains handles its peers while it reads the chains.

Each timer tick polls every chain, and a poll waits on that chain's RPC (round trips to a
remote endpoint, often tens of milliseconds each). A backend that splits its poll
(``EventFetcher``: the three built-in ones, over RPC) is read on a thread of its own, and
only what was read is handed to the node's thread: a peer's payment never waits for a
chain's round trips. A chain polled on the node's thread (an embedded ledger, or a backend
without the split) is polled in a job of its own, so what peers sent meanwhile is handled
before the next chain is polled. ``/metrics`` shows how long each chain's last read took
and how long its last poll held the node's thread; ``GET /v1/info`` shows a chain that
cannot be read.

In-process servers over real TCP: Alice and Bob share a channel on anvil; Alice also
watches a Bitcoin devnet server (a real ledger process). Alice's EVM endpoint is made
slow, as a far one is; Bob pays her while it is read.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chenilles_hub.core import Asset
from chenilles_hub.core.watcher import RefundOutgoing
from chenilles_hub.node.api.client import NodeClient
from chenilles_hub.node.runtime import server as server_module
from chenilles_hub.node.runtime.chain_fetch import fetcher_of
from tests.bitcoin.devnet_harness import Devnet, running

from .test_server_harness import AnvilChain, anvil
from .test_server_peers import Pair, _until, run, with_pair

pytestmark = [
    pytest.mark.node,
    pytest.mark.bitcoin,
    pytest.mark.devnet,
    pytest.mark.xdist_group("node-processes"),
]
__all__ = ["anvil"]

#: How long Alice's EVM poll lasts once Bob's proposal is waiting (a remote endpoint).
SLOW_POLL = 0.2


@pytest.fixture
def bitcoin_devnet(tmp_path: Path) -> Iterator[Devnet]:
    yield from running(tmp_path / "bitcoin-devnet")


def _bitcoin_chain(devnet: Devnet) -> str:
    return f"""
[chains.bitcoin]
backend = "bitcoin"
url = "{devnet.url}"
cookie_file = "{devnet.cookie_file}"
account_key = "{secrets.token_hex(32)}"
"""


async def _scrape(pair: Pair, prefix: str) -> dict[str, float]:
    """Alice's ``/metrics`` lines of one family, by chain."""
    alice = pair.alice
    client = NodeClient(f"http://127.0.0.1:{alice.api_port}", alice.config.read_token())
    with client:
        text = await asyncio.get_running_loop().run_in_executor(None, client.get, "/metrics")
    return {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix + "{")
    }


def _bob_pays_alice_meanwhile(
    pair: Pair, seen: dict[str, Any], loop: asyncio.AbstractEventLoop, done: Callable[[], bool]
) -> None:
    """What a slow endpoint's read does, on whatever thread it runs: Bob pays Alice 1
    (``seen["transfer"]``; Alice's version before it in ``seen["before"]``, and when the
    read ends in ``seen["during"]``), and the read lasts until ``done()`` (30 s at most,
    however loaded the machine) and ``SLOW_POLL`` more."""
    assert pair.alice.node is not None
    channel = pair.alice.node.channels[pair.channel_id]
    seen["before"] = channel.machine.latest.version
    asset = Asset(channel.params.chain, "native")
    seen["transfer"] = asyncio.run_coroutine_threadsafe(
        pair.bob.transfer(pair.channel_id, asset, 1), loop
    )
    deadline = time.monotonic() + 30
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    seen["during"] = channel.machine.latest.version
    time.sleep(SLOW_POLL)


def test_a_peers_payment_is_handled_while_a_chain_is_read(
    anvil: AnvilChain, tmp_path: Path, bitcoin_devnet: Devnet
) -> None:
    async def body(pair: Pair) -> None:
        alice = pair.alice
        assert alice.node is not None and alice.chains is not None
        evm = alice.chains.backends[alice.chains.names["evm"]]
        btc = alice.chains.backends[alice.chains.names["bitcoin"]]
        assert fetcher_of(evm) is not None and fetcher_of(btc) is not None  # both over RPC
        channel = alice.node.channels[pair.channel_id]
        loop = asyncio.get_running_loop()
        seen: dict[str, Any] = {}
        armed = threading.Event()
        evm_fetch = evm.fetch_events

        def slow_evm_fetch() -> Any:
            if armed.is_set() and "before" not in seen:
                # this read lasts until Alice's node took Bob's transfer (it never would,
                # were the read on the node's thread)
                _bob_pays_alice_meanwhile(
                    pair, seen, loop, lambda: channel.machine.latest.version != seen["before"]
                )
                seen["read"] = True
            return evm_fetch()

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(evm, "fetch_events", slow_evm_fetch)
            armed.set()
            await _until(lambda: "read" in seen, timeout=60)
            # Bob's transfer was handled while Alice's node read the EVM chain
            assert seen["during"] == seen["before"] + 1, seen
            await asyncio.wrap_future(seen["transfer"])
            await _until(lambda: "evm" in alice.chain_fetches, timeout=30)  # that read ended
        # the operator sees each chain's read, and how little of it the node's thread held
        fetches = await _scrape(pair, "chenilles_chain_fetch_seconds")
        polls = await _scrape(pair, "chenilles_chain_poll_seconds")
        assert set(fetches) == set(polls) == {"evm", "bitcoin"}, (fetches, polls)
        assert all(seconds > 0 for seconds in fetches.values()), fetches

    run(with_pair(tmp_path, anvil, body, alice_tail=_bitcoin_chain(bitcoin_devnet)))


def test_a_chain_that_cannot_be_read_is_shown_and_holds_nothing_up(
    anvil: AnvilChain, tmp_path: Path, bitcoin_devnet: Devnet
) -> None:
    """An endpoint that fails: counted, shown in ``GET /v1/info`` until it answers again;
    the other chain is read and the watcher's tick comes meanwhile."""

    async def body(pair: Pair) -> None:
        alice = pair.alice
        assert alice.node is not None and alice.chains is not None
        evm = alice.chains.backends[alice.chains.names["evm"]]
        btc = alice.chains.backends[alice.chains.names["bitcoin"]]
        evm_fetch, btc_fetch, node_tick = evm.fetch_events, btc.fetch_events, alice.node.tick
        seen: dict[str, int] = {"btc": 0, "ticks": 0}
        failing = threading.Event()

        def refused() -> Any:
            if failing.is_set():
                raise ConnectionRefusedError("the EVM endpoint is down")
            return evm_fetch()

        def counted_btc() -> Any:
            seen["btc"] += failing.is_set()
            return btc_fetch()

        def counted_tick(*args: Any) -> None:
            seen["ticks"] += failing.is_set()
            node_tick(*args)

        errors_before = alice.stats.get("chain_poll_errors", 0)
        client = NodeClient(f"http://127.0.0.1:{alice.api_port}", alice.config.read_token())
        loop = asyncio.get_running_loop()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(evm, "fetch_events", refused)
            mp.setattr(btc, "fetch_events", counted_btc)
            mp.setattr(alice.node, "tick", counted_tick)
            failing.set()
            await _until(
                lambda: (
                    seen["btc"] >= 2
                    and seen["ticks"] >= 2
                    and alice.stats.get("chain_poll_errors", 0) >= errors_before + 2
                ),
                timeout=30,
            )
            with client:
                info = await loop.run_in_executor(None, client.get, "/v1/info")
            shown = {e["task"]: e["error"] for e in info["background_errors"]}
            assert shown.get("poll evm", "").startswith("ConnectionRefusedError"), shown
            assert "poll bitcoin" not in shown, shown
            failing.clear()  # the endpoint is back: the error goes away
            await _until(lambda: "poll evm" not in alice.background_errors, timeout=30)

    run(with_pair(tmp_path, anvil, body, alice_tail=_bitcoin_chain(bitcoin_devnet)))


def test_an_endpoint_that_stops_answering_holds_up_neither_the_watcher_nor_other_chains(
    anvil: AnvilChain, tmp_path: Path, bitcoin_devnet: Devnet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that never ends (a hung endpoint, up to the client's timeout or forever):
    the watcher's tick and the other chain's reads go on, no second read of that chain
    starts, the operator sees it stalled; once it answers, what it read is applied."""
    monkeypatch.setattr(server_module, "READ_STALLED", 1.0)

    async def body(pair: Pair) -> None:
        alice = pair.alice
        assert alice.node is not None and alice.chains is not None
        evm = alice.chains.backends[alice.chains.names["evm"]]
        btc = alice.chains.backends[alice.chains.names["bitcoin"]]
        evm_fetch, btc_fetch, node_tick = evm.fetch_events, btc.fetch_events, alice.node.tick
        seen: dict[str, int] = {"evm": 0, "btc": 0, "ticks": 0}
        hung, answering = threading.Event(), threading.Event()

        def hanging() -> Any:
            if hung.is_set():
                seen["evm"] += 1
                answering.wait(60)
            return evm_fetch()

        def counted_btc() -> Any:
            seen["btc"] += hung.is_set()
            return btc_fetch()

        def counted_tick(*args: Any) -> None:
            seen["ticks"] += hung.is_set()
            node_tick(*args)

        evm_poll = evm.poll_events

        def polled_on_the_nodes_thread() -> Any:
            seen["evm_polls"] = seen.get("evm_polls", 0) + 1
            return evm_poll()

        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(evm, "fetch_events", hanging)
                mp.setattr(btc, "fetch_events", counted_btc)
                mp.setattr(alice.node, "tick", counted_tick)
                mp.setattr(evm, "poll_events", polled_on_the_nodes_thread)
                hung.set()
                await _until(lambda: seen["evm"] == 1, timeout=30)
                with pytest.MonkeyPatch.context() as switched:
                    # the backend asks to be polled on the node's thread: not while its read runs
                    switched.setattr(evm, "fetches_off_thread", lambda: False)
                    await _until(lambda: "poll evm" in alice.background_errors, timeout=30)
                    ticks, reads = seen["ticks"], seen["btc"]
                    await _until(
                        lambda: seen["ticks"] >= ticks + 3 and seen["btc"] >= reads + 3, 30
                    )
                    assert seen["evm"] == 1, seen  # one read of the hung chain, not one per tick
                    assert "evm_polls" not in seen, seen  # nor a poll beside it
                error, _ = alice.background_errors["poll evm"]
                assert "has not ended" in error, error
                heights, evm_chain = alice.node.chain_actions.heights, alice.chains.names["evm"]
                height = heights.get(evm_chain, -1)
                anvil.mine(1)  # something new for the read to find once the endpoint answers
                answering.set()
                await _until(lambda: "poll evm" not in alice.background_errors, timeout=30)
                await _until(lambda: heights.get(evm_chain, -1) > height, timeout=30)
        finally:
            answering.set()  # the read ends before the node stops, whatever happened

    run(with_pair(tmp_path, anvil, body, alice_tail=_bitcoin_chain(bitcoin_devnet)))


def test_what_was_read_but_not_applied_is_applied_again_before_anything_newer(
    anvil: AnvilChain, tmp_path: Path, bitcoin_devnet: Devnet
) -> None:
    """The node's half of a poll fails (the backend's apply calls the chain, which may
    refuse for a moment), twice: what the read returned is not lost, it is applied again
    until it is taken, and no newer read of that chain starts meanwhile."""

    async def body(pair: Pair) -> None:
        alice = pair.alice
        assert alice.node is not None and alice.chains is not None
        btc = alice.chains.backends[alice.chains.names["bitcoin"]]
        btc_fetch, btc_apply = btc.fetch_events, btc.apply_events
        log: list[tuple[str, int]] = []
        armed = threading.Event()

        def logged_fetch() -> Any:
            fetched = btc_fetch()
            if armed.is_set():
                log.append(("read", id(fetched)))
            return fetched

        def flaky_apply(fetched: object) -> Any:
            if armed.is_set():
                log.append(("apply", id(fetched)))
                if sum(1 for what, _ in log if what == "apply") <= 2:
                    raise ConnectionResetError("bitcoind went away for a moment")
            return btc_apply(fetched)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(btc, "fetch_events", logged_fetch)
            mp.setattr(btc, "apply_events", flaky_apply)
            armed.set()
            await _until(lambda: sum(1 for what, _ in log if what == "apply") >= 4, timeout=30)
        applies = [(i, ident) for i, (what, ident) in enumerate(log) if what == "apply"]
        (first_at, first), (_, second), (third_at, third) = applies[:3]
        assert first == second == third, log  # the same data again, until it is taken
        assert not [what for what, _ in log[first_at + 1 : third_at] if what == "read"], log
        assert "poll bitcoin" not in alice.background_errors

    run(with_pair(tmp_path, anvil, body, alice_tail=_bitcoin_chain(bitcoin_devnet)))


def test_the_watchers_clock_comes_with_the_read_not_from_the_nodes_thread(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """An HTLC in flight needs its chain's clock at every watcher tick (is it time to go
    on-chain?): two round trips to the EVM endpoint a tick. They are made with the chain's
    read, on its thread (``ClockFetcher``), and the watcher judges the deadline with what
    that read returned: once the read says the HTLC expired, the watcher acts, though a
    clock read on the node's thread would not have said so. A clock whose read started
    more than a tick before the watcher's tick is not used."""

    async def body(pair: Pair) -> None:
        alice = pair.alice
        assert alice.node is not None and alice.chains is not None
        node = alice.node
        evm = alice.chains.backends[alice.chains.names["evm"]]
        evm_clock, evm_fetch_clock = evm.next_block_time, evm.fetch_clock
        reads: list[str] = []  # the thread of every clock read, in order
        lie: dict[str, float] = {}

        def next_block_time() -> int:
            reads.append(threading.current_thread().name)
            return evm_clock()

        def fetch_clock(fetched: object) -> int:
            reads.append("fetch_clock")
            if lie.get("fail"):
                raise ConnectionResetError("the endpoint dropped the clock's read")
            time.sleep(lie.get("slow", 0.0))
            return int(lie.get("time", 0)) or evm_fetch_clock(fetched)

        def node_thread_reads_since(mark: int) -> list[str]:
            return [r for r in reads[mark:] if r not in ("fetch_clock", "chain-fetch-evm")]

        expiry = evm.now() + 86_400  # an HTLC of ours: refunded on-chain once expired
        duty = RefundOutgoing(pair.channel_id, 1_001, expiry)
        await alice.call(node.ctx.watcher.add, duty)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(evm, "next_block_time", next_block_time)
            mp.setattr(evm, "fetch_clock", fetch_clock)
            await _until(lambda: "fetch_clock" in reads, timeout=30)
            first = reads.index("fetch_clock")
            await _until(lambda: reads[first:].count("fetch_clock") >= 8, timeout=30)
            # once the reads bring it, the watcher does not call the chain (one call
            # allowed: a read that ends after the tick's deadline on a loaded machine)
            assert len(node_thread_reads_since(first)) <= 1, reads
            where = await _scrape(pair, "chenilles_watcher_clock_reads_total")
            assert where["with_read"] >= 5, where  # the operator sees where clocks came from
            # a clock that cannot be read with the read: shown until one is, and the
            # watcher reads the chain itself meanwhile
            lie["fail"] = 1
            mark = len(reads)
            await _until(lambda: "clock evm" in alice.background_errors, timeout=30)
            client = NodeClient(f"http://127.0.0.1:{alice.api_port}", alice.config.read_token())
            with client:
                info = await asyncio.get_running_loop().run_in_executor(
                    None, client.get, "/v1/info"
                )
            shown = {e["task"]: e["error"] for e in info["background_errors"]}
            assert shown["clock evm"].startswith("ConnectionResetError"), shown
            await _until(lambda: node_thread_reads_since(mark), timeout=30)
            del lie["fail"]
            await _until(lambda: "clock evm" not in alice.background_errors, timeout=30)
            # a read's clock past the expiry, but read more than a tick before the
            # watcher's tick (the read outlasts the tick): not used
            tick = alice.config.tick_interval
            lie.update(time=expiry + 1, slow=1.5 * tick)
            mark = len(reads)
            await _until(lambda: reads[mark:].count("fetch_clock") >= 4, timeout=30)
            assert "watcher_RefundOnChain" not in node.ctx.counters
            assert node_thread_reads_since(mark), reads  # the watcher read the chain itself
            # the same clock, fresh: the watcher refunds, which its own read would not do
            lie["slow"] = 0.0
            await _until(lambda: "watcher_RefundOnChain" in node.ctx.counters, 30)
            assert evm_clock() < expiry

    run(with_pair(tmp_path, anvil, body, closes=True))


def test_a_chain_polled_on_the_nodes_thread_holds_a_payment_for_its_own_poll_only(
    anvil: AnvilChain, tmp_path: Path, bitcoin_devnet: Devnet
) -> None:
    async def body(pair: Pair) -> None:
        alice = pair.alice
        assert alice.node is not None and alice.chains is not None
        names = list(alice.chains.names)
        assert names == ["evm", "bitcoin"], names  # polled in the config's order
        evm = alice.chains.backends[alice.chains.names["evm"]]
        btc = alice.chains.backends[alice.chains.names["bitcoin"]]
        channel = alice.node.channels[pair.channel_id]
        loop = asyncio.get_running_loop()
        seen: dict[str, Any] = {}
        armed = threading.Event()
        evm_poll, btc_poll = evm.poll_events, btc.poll_events

        def slow_evm_poll() -> Any:
            if armed.is_set() and "before" not in seen:
                # Alice's node's thread waits on this poll until Bob's proposal waits there
                _bob_pays_alice_meanwhile(
                    pair, seen, loop, lambda: not alice.pipeline._inbox.empty()
                )
            return evm_poll()

        def watching_btc_poll() -> Any:
            if "before" in seen and "at_next_chain" not in seen:
                seen["at_next_chain"] = channel.machine.latest.version
            return btc_poll()

        node_tick = alice.node.tick

        def watching_tick(*args: Any) -> None:
            if "at_next_chain" in seen:
                seen["watched"] = True  # the watcher's tick still comes after the chains
            node_tick(*args)

        with pytest.MonkeyPatch.context() as mp:
            for backend in (evm, btc):  # as embedded ledgers are (or a backend without
                mp.setattr(backend, "fetches_off_thread", lambda: False)  # the split)
            mp.setattr(evm, "poll_events", slow_evm_poll)
            mp.setattr(btc, "poll_events", watching_btc_poll)
            mp.setattr(alice.node, "tick", watching_tick)
            armed.set()
            await _until(lambda: "watched" in seen, timeout=60)
            await asyncio.wrap_future(seen["transfer"])
        # Bob's transfer was handled between the two chains' polls, not after both
        assert seen["at_next_chain"] == seen["before"] + 1, seen
        # the operator sees how long each chain's poll holds the node's thread
        polls = await _scrape(pair, "chenilles_chain_poll_seconds")
        assert set(polls) == {"evm", "bitcoin"}, polls
        assert all(seconds > 0 for seconds in polls.values()), polls

    run(with_pair(tmp_path, anvil, body, alice_tail=_bitcoin_chain(bitcoin_devnet)))
