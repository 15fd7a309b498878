"""A node with several chains handles its peers between two chains' polls.

Each timer tick polls every chain, and a poll waits on that chain's RPC (round trips to a
remote endpoint, often tens of milliseconds each). The tick used to poll every chain in one
job of the node's thread, so a payment arriving at its start waited for all of them in a
row; now each chain's poll is a job of its own, and what peers sent meanwhile is handled
before the next chain is polled. ``/metrics`` shows how long each chain's last poll took.

In-process servers over real TCP: Alice and Bob share a channel on anvil; Alice also
watches a Bitcoin devnet server (a real ledger process). Alice's EVM poll is made slow, as
a far endpoint is; Bob pays her while it runs.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chenilles_hub.core import Asset
from chenilles_hub.node.api.client import NodeClient
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


def test_a_peers_payment_waits_for_one_chains_poll_not_every_chains(
    anvil: AnvilChain, tmp_path: Path, bitcoin_devnet: Devnet
) -> None:
    async def body(pair: Pair) -> None:
        alice, bob = pair.alice, pair.bob
        assert alice.node is not None and alice.chains is not None and bob.node is not None
        names = list(alice.chains.names)
        assert names == ["evm", "bitcoin"], names  # polled in the config's order
        evm = alice.chains.backends[alice.chains.names["evm"]]
        btc = alice.chains.backends[alice.chains.names["bitcoin"]]
        channel = alice.node.channels[pair.channel_id]
        asset = Asset(channel.params.chain, "native")
        loop = asyncio.get_running_loop()
        seen: dict[str, Any] = {}
        armed = threading.Event()
        evm_poll, btc_poll = evm.poll_events, btc.poll_events

        def slow_evm_poll() -> Any:
            if armed.is_set() and "before" not in seen:
                seen["before"] = channel.machine.latest.version
                # Bob pays Alice while her node's thread waits on this chain
                seen["transfer"] = asyncio.run_coroutine_threadsafe(
                    bob.transfer(pair.channel_id, asset, 1), loop
                )
                # a slow endpoint: this poll lasts until Bob's proposal waits at Alice's
                # node (however loaded the machine), and a little longer
                deadline = time.monotonic() + 30
                while alice.pipeline._inbox.empty() and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(SLOW_POLL)
            return evm_poll()

        def watching_btc_poll() -> Any:
            if "before" in seen and "at_next_chain" not in seen:
                seen["at_next_chain"] = channel.machine.latest.version
            return btc_poll()

        node_tick = alice.node.tick

        def watching_tick() -> None:
            if "at_next_chain" in seen:
                seen["watched"] = True  # the watcher's tick still comes after the chains
            node_tick()

        evm.poll_events = slow_evm_poll  # type: ignore[method-assign]
        btc.poll_events = watching_btc_poll  # type: ignore[method-assign]
        alice.node.tick = watching_tick  # type: ignore[method-assign]
        try:
            armed.set()
            await _until(lambda: "watched" in seen, timeout=60)
            await asyncio.wrap_future(seen["transfer"])
        finally:
            evm.poll_events = evm_poll  # type: ignore[method-assign]
            btc.poll_events = btc_poll  # type: ignore[method-assign]
            alice.node.tick = node_tick  # type: ignore[method-assign]
        # Bob's transfer was handled between the two chains' polls, not after both
        assert seen["at_next_chain"] == seen["before"] + 1, seen
        # the operator sees how long each chain's poll holds the node's thread
        client = NodeClient(f"http://127.0.0.1:{alice.api_port}", alice.config.read_token())
        with client:
            text = await loop.run_in_executor(None, client.get, "/metrics")
        polls = {
            line.split('"')[1]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("chenilles_chain_poll_seconds{")
        }
        assert set(polls) == {"evm", "bitcoin"}, text
        assert all(seconds > 0 for seconds in polls.values()), polls

    run(with_pair(tmp_path, anvil, body, alice_tail=_bitcoin_chain(bitcoin_devnet)))
