"""``holdings``: the funding output counts for the channel once it is deep enough, pays the
channel's own 2-of-2 script, and is unspent; ``next_block_time``: the next height's time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_bitcoin.backend import BitcoinBackend

from chenilles_hub.core import Close, Transfer

from .test_backend_harness import BTC, Channel, fresh_backend, opened

pytestmark = pytest.mark.bitcoin


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def test_the_funding_output_counts_once_deep_enough(backend: BitcoinBackend) -> None:
    channel = Channel.create(backend, (1_000_000, 0))
    channel.open()
    assert backend.holdings(channel.params, 1) == {BTC: [0, 0]}  # not broadcast
    backend.fund(channel.params, 0, channel.accounts[0], BTC, 1_000_000)  # mined: 1 conf
    assert backend.holdings(channel.params, 1) == {BTC: [1_000_000, 0]}
    assert backend.holdings(channel.params, 6) == {BTC: [0, 0]}
    backend.mine(5)
    assert backend.holdings(channel.params, 6) == {BTC: [1_000_000, 0]}


def test_a_closed_channel_holds_nothing(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    channel.update(0, Transfer(BTC, 10_000))
    final = channel.update(0, Close())
    backend.close_cooperative(channel.params, final, channel.accounts[0])
    assert backend.holdings(channel.params, 1) == {BTC: [0, 0]}
    # asked again (after a reorg, or the watcher's check at depth): nothing is sent
    assert backend.close_cooperative(channel.params, final, channel.accounts[0]).txid == ""


def test_next_block_time_is_the_next_heights(backend: BitcoinBackend) -> None:
    assert backend.next_block_time() == backend.now() + 600
    backend.mine(2)
    assert backend.next_block_time() == backend.now() + 600
