"""Breakdowns: unilateral close, and a peer that broadcasts a revoked commitment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_bitcoin.backend import BitcoinBackend
from chenilles_bitcoin.ledger import OutPoint
from chenilles_bitcoin.watch import parse_tx

from chenilles_hub.backend import LedgerError, NotYet, Registered
from chenilles_hub.core import Transfer

from .test_backend_harness import BTC, fresh_backend, opened

pytestmark = pytest.mark.bitcoin


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def test_penalty_takes_every_output_of_a_revoked_commitment(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    alice, bob = channel.accounts
    channel.update(0, Transfer(BTC, 400_000))
    channel.add_htlc(1, payer=0, amount=60_000)
    channel.add_htlc(2, payer=1, amount=50_000)
    revoked = channel.latest()
    channel.update(1, Transfer(BTC, 100_000))  # bob pays; version 3 is revoked by both
    channel.update(0, Transfer(BTC, 1_000))
    backend.poll_events()

    # bob cheats with version 3, whose commitment holds 4 outputs
    cheat = backend.register(channel.params, revoked, bob)
    assert Registered(channel.channel_id, 3, backend.now() + 36 * 600) in backend.poll_events()
    commitment = parse_tx(backend.ledger.get_raw_tx(cheat.txid) or b"")
    assert len(commitment.vout) == 4

    # the watcher's memory survives a restart: persist it and load it back (the first
    # export holds every part; nothing changed since, so the next holds none)
    saved = backend.export_record(channel.params, 0, alice)
    assert saved is not None and "head" in saved and "htlcs/3" in saved
    assert backend.export_record(channel.params, 0, alice) is None
    backend.restore_record(channel.params, 0, alice, saved)
    assert backend.context(channel.params, 0, alice).record.revocation_secret(4) is not None

    before = backend.balance(alice, BTC)
    justice = backend.challenge(channel.params, channel.latest(), alice)
    assert justice.block == backend.ledger.tip_height()  # mined, long before the 36-block CSV
    for index in range(len(commitment.vout)):
        spender = backend.ledger.find_spending_tx(OutPoint(cheat.txid, index))
        assert (
            spender is not None and parse_tx(spender).GetTxid() == bytes.fromhex(justice.txid)[::-1]
        )
    taken = sum(int(o.nValue) for o in commitment.vout)
    assert backend.balance(alice, BTC) == before + taken - justice.fee
    # bob's own sweep finds nothing left; a second penalty has nothing to take (the
    # watcher asks again on each block until the punishment shows): nothing is sent
    assert backend.conclude(channel.params, bob).txid == ""
    again = backend.challenge(channel.params, channel.latest(), alice)
    assert again.txid == "" and again.fee == 0
    assert backend.balance(alice, BTC) == before + taken - justice.fee


def test_unilateral_close_to_local_waits_for_the_csv_delay(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    alice, bob = channel.accounts
    latest = channel.update(0, Transfer(BTC, 300_000))
    backend.poll_events()
    reg = backend.register(channel.params, latest, alice)
    assert reg.fee == 724  # 1000 sat/kw * 724 WU, paid by the funder
    assert any(isinstance(e, Registered) and e.version == 1 for e in backend.poll_events())

    # the peer's latest commitment is not revoked: there is nothing to punish
    with pytest.raises(LedgerError, match="unknown revocation secret"):
        backend.challenge(channel.params, latest, bob)
    # bob's to_remote is a plain P2WPKH: withdrawn at once
    b_before = backend.balance(bob, BTC)
    wb = backend.withdraw(channel.params, 1, bob, BTC)
    assert backend.balance(bob, BTC) == b_before + 300_000 - wb.fee

    # to_self_delay is 36 blocks: with the commitment 35 deep, the sweep's block would be
    # only the 35th after it. The backend says so rather than send what the chain refuses
    # (the chain's refusal itself: test_ledger_kernel.py, test_devnet_mempool.py)
    depth = backend.ledger.get_tx_confirmations(reg.txid) or 0
    with pytest.raises(NotYet, match=f"the next in {36 - depth} blocks"):
        backend.conclude(channel.params, alice)
    backend.mine(35 - depth)
    with pytest.raises(NotYet, match="the next in 1 block \\(to_self_delay of 36\\)"):
        backend.conclude(channel.params, alice)
    backend.mine(1)
    a_before = backend.balance(alice, BTC)
    sweep = backend.conclude(channel.params, alice)
    to_local = 1_000_000 - 300_000 - reg.fee
    assert backend.balance(alice, BTC) == a_before + to_local - sweep.fee
    assert backend.conclude(channel.params, alice).txid == ""  # idempotent afterwards
