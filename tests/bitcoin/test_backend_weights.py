"""Weights of every transaction the backend makes, measured on mined transactions.

The table in docs/bitcoin.md comes from this test (run with ``-s`` to print it). BOLT 3's
expected weights assume 73-byte signatures; real low-s signatures are 71-72 bytes, so the
measured weights sit at or just below them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_bitcoin.backend import BitcoinBackend

from chenilles_hub.backend import TxReceipt
from chenilles_hub.core import Close, Transfer

from .test_backend_harness import BTC, fresh_backend, opened

pytestmark = pytest.mark.bitcoin


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def test_weights_of_every_transaction(backend: BitcoinBackend) -> None:
    measured: dict[str, TxReceipt] = {}

    def keep(name: str, receipt: TxReceipt) -> None:
        assert receipt.cost_unit == "WU" and receipt.block is not None
        measured[name] = receipt

    # cooperative: funding, closing, payout sweep
    channel = opened(backend)
    alice, bob = channel.accounts
    channel.update(0, Transfer(BTC, 200_000))
    final = channel.update(0, Close())
    keep("closing", backend.close_cooperative(channel.params, final, alice))
    keep("withdraw (payout sweep)", backend.withdraw(channel.params, 1, bob, BTC))

    # unilateral with two HTLCs: commitment, HTLC-success, HTLC-timeout, delayed sweeps
    channel = opened(backend)
    alice, bob = channel.accounts
    assert channel.funding is not None
    keep("funding (1 input, change)", channel.funding)
    channel.update(0, Transfer(BTC, 300_000))
    offered, _ = channel.add_htlc(1, payer=0, amount=60_000)
    received, p2 = channel.add_htlc(2, payer=1, amount=50_000)
    keep("commitment, 2 HTLCs", backend.register(channel.params, channel.latest(0), alice))
    keep("HTLC-success", backend.claim_htlc(channel.params, received, p2, alice))
    backend.mine(offered.native_expiry - backend.ledger.tip_height())
    keep("HTLC-timeout", backend.refund_htlc(channel.params, offered, alice))
    keep("to_remote sweep", backend.withdraw(channel.params, 1, bob, BTC))
    backend.mine(36)
    keep("to_local + 2 second-stage sweep", backend.conclude(channel.params, alice))

    # direct HTLC spends on the peer's commitment, and a penalty
    channel = opened(backend)
    alice, bob = channel.accounts
    channel.update(0, Transfer(BTC, 300_000))
    offered, _ = channel.add_htlc(1, payer=0, amount=60_000)
    received, p2 = channel.add_htlc(2, payer=1, amount=50_000)
    revoked = channel.latest()
    channel.update(0, Transfer(BTC, 1_000))
    keep("commitment, 2 HTLCs (revoked)", backend.register(channel.params, revoked, bob))
    keep("penalty, 4 inputs", backend.challenge(channel.params, channel.latest(), alice))

    channel = opened(backend)
    alice, bob = channel.accounts
    channel.update(0, Transfer(BTC, 300_000))
    offered, _ = channel.add_htlc(1, payer=0, amount=60_000)
    received, p2 = channel.add_htlc(2, payer=1, amount=50_000)
    keep("commitment, 2 HTLCs (bob)", backend.register(channel.params, channel.latest(1), bob))
    keep("direct preimage claim", backend.claim_htlc(channel.params, received, p2, alice))
    backend.mine(offered.native_expiry - backend.ledger.tip_height())
    keep("direct timeout refund", backend.refund_htlc(channel.params, offered, alice))

    channel = opened(backend)
    channel.update(0, Transfer(BTC, 300_000))
    latest = channel.latest()
    keep("commitment, 0 HTLCs", backend.register(channel.params, latest, channel.accounts[0]))

    print("\n| transaction | weight (WU) | fee at 1000 sat/kw |")
    for name, receipt in measured.items():
        print(f"| {name} | {receipt.cost} | {receipt.fee} |")
    assert measured["commitment, 0 HTLCs"].cost <= 724
    assert measured["commitment, 2 HTLCs"].cost <= 724 + 2 * 172
    assert measured["HTLC-timeout"].cost <= 663
    assert measured["HTLC-success"].cost <= 703
