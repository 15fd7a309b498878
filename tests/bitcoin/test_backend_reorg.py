"""Reorgs: a funding or closing transaction that leaves the chain is reported and re-sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_bitcoin.backend import BitcoinBackend
from chenilles_bitcoin.ledger import KernelChain

from chenilles_hub.backend import Concluded, Funded, NewBlock, Reorged
from chenilles_hub.core import Close, Transfer

from .test_backend_harness import BTC, fresh_backend, opened

pytestmark = pytest.mark.bitcoin


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def _chain(backend: BitcoinBackend) -> KernelChain:
    assert isinstance(backend.ledger, KernelChain)
    return backend.ledger


def test_funding_dropped_by_a_reorg_is_reported_and_rebroadcast(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    funding = channel.params.nonce.hex()
    assert Funded(channel.channel_id, BTC, 0, 1_000_000) in backend.poll_events()

    _chain(backend).reorg(depth=1, replacement_blocks=2, exclude=[funding])
    events = backend.poll_events()
    reorgs = [e for e in events if isinstance(e, Reorged)]
    assert reorgs == [Reorged(1, (funding,))]
    assert sum(isinstance(e, NewBlock) for e in events) == 2
    assert backend.ledger.get_tx_confirmations(funding) is None
    assert backend.rebroadcast[funding] == "ok"  # queued again for the next block

    backend.mine(1)
    assert Funded(channel.channel_id, BTC, 0, 1_000_000) in backend.poll_events()
    assert backend.ledger.get_tx_confirmations(funding) == 1


def test_closing_dropped_by_a_reorg_is_reported_and_rebroadcast(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    channel.update(0, Transfer(BTC, 10_000))
    final = channel.update(0, Close())
    close = backend.close_cooperative(channel.params, final, channel.accounts[0])
    backend.mine(2)
    assert Concluded(channel.channel_id, final.version) in backend.poll_events()

    _chain(backend).reorg(depth=3, exclude=[close.txid])
    events = backend.poll_events()
    assert Reorged(3, (close.txid,)) in events
    assert not any(isinstance(e, Concluded) for e in events)
    assert backend.rebroadcast[close.txid] == "ok"
    backend.mine(1)
    assert Concluded(channel.channel_id, final.version) in backend.poll_events()
    # once confirmed again the payouts can be withdrawn as usual
    assert backend.withdraw(channel.params, 1, channel.accounts[1], BTC).fee > 0
