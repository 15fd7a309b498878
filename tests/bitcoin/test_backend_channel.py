"""A channel's whole cooperative life on the kernel-validated regtest chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_bitcoin.backend import BitcoinBackend

from chenilles_hub.backend import ChainBackend, Concluded, Funded, NewBlock
from chenilles_hub.core import Close, FailHtlc, SettleHtlc, Transfer

from .test_backend_harness import BTC, Channel, fresh_backend

pytestmark = pytest.mark.bitcoin


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def test_backend_satisfies_the_protocol(backend: BitcoinBackend) -> None:
    assert isinstance(backend, ChainBackend)
    assert backend.chain == "bip122:regtest"
    model = backend.time_model()
    assert model.block_interval_ms == 600_000 and model.finality_depth == 6


def test_open_update_with_htlcs_and_close_cooperatively(backend: BitcoinBackend) -> None:
    channel = Channel.create(backend, (1_000_000, 0))
    alice, bob = channel.accounts
    a0, b0 = channel.start_balances
    assert a0 == b0 == 50 * 100_000_000
    channel.open()
    backend.poll_events()
    fund = backend.fund(channel.params, 0, alice, BTC, 1_000_000)
    events = backend.poll_events()
    assert Funded(channel.channel_id, BTC, 0, 1_000_000) in events
    assert any(isinstance(e, NewBlock) for e in events)
    assert fund.fee == 690 and fund.cost_unit == "WU"

    channel.update(0, Transfer(BTC, 200_000))
    _, p1 = channel.add_htlc(1, payer=0, amount=50_000)
    channel.add_htlc(2, payer=1, amount=30_000)
    _, p3 = channel.add_htlc(3, payer=0, amount=1_000)  # below dust + fee: trimmed on-chain
    assert len(channel.latest().state.htlcs) == 3
    channel.update(1, SettleHtlc(1, p1))
    channel.update(0, FailHtlc(2, "unknown payment"))  # alice, the payee, gives up
    channel.update(1, SettleHtlc(3, p3))
    for _ in range(5):
        channel.update(1, Transfer(BTC, 1_000))
        channel.update(0, Transfer(BTC, 2_000))
    final = channel.update(0, Close())
    assert final.state.final and final.version == 18
    balances = final.state.free(BTC)
    assert balances == (1_000_000 - 200_000 - 50_000 - 1_000 - 5_000, 256_000)

    # the proposer's machine asked for the cooperative close
    close = backend.close_cooperative(channel.params, final, alice)
    assert Concluded(channel.channel_id, final.version) in backend.poll_events()
    wa = backend.withdraw(channel.params, 0, alice, BTC)
    wb = backend.withdraw(channel.params, 1, bob, BTC)
    again = backend.withdraw(channel.params, 1, bob, BTC)
    assert again.txid == "" and again.fee == 0  # nothing left: a no-op receipt

    assert backend.balance(alice, BTC) == (
        a0 - 1_000_000 - fund.fee + balances[0] - close.fee - wa.fee
    )
    assert backend.balance(bob, BTC) == b0 + balances[1] - wb.fee
    assert close.fee == backend.estimate_fee("close_cooperative") == 676
