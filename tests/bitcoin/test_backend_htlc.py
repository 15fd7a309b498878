"""HTLCs resolved on-chain: with the preimage, after expiry, and the ways that fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bitcoin.core import CMutableTransaction, CTransaction
from chenilles_bitcoin.backend import BitcoinBackend
from chenilles_bitcoin.bolt3.txutil import set_witness
from chenilles_bitcoin.commitments import ChannelPolicy
from chenilles_bitcoin.duties import direct_htlc_spend
from chenilles_bitcoin.ledger import TransactionRejected

from chenilles_hub.backend import LedgerError, PreimageRevealed
from chenilles_hub.core import Htlc, Transfer

from .test_backend_harness import BTC, Channel, fresh_backend, opened

pytestmark = pytest.mark.bitcoin


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def _with_htlc(backend: BitcoinBackend) -> tuple[Channel, Htlc, bytes]:
    """Alice pays bob 300k, then offers him a 70k HTLC."""
    channel = opened(backend)
    channel.update(0, Transfer(BTC, 300_000))
    htlc, preimage = channel.add_htlc(7, payer=0, amount=70_000)
    backend.poll_events()
    return channel, htlc, preimage


def _mine_to(backend: BitcoinBackend, height: int) -> None:
    backend.mine(height - backend.ledger.tip_height())


def _kernel_verdict(backend: BitcoinBackend, tx: CTransaction) -> str:
    backend.ledger.broadcast(bytes(tx.serialize()))
    with pytest.raises(TransactionRejected) as rejected:
        backend.ledger.mine(1)
    return rejected.value.reason


def test_payee_claims_with_htlc_success_on_its_own_commitment(backend: BitcoinBackend) -> None:
    channel, htlc, preimage = _with_htlc(backend)
    bob = channel.accounts[1]
    backend.register(channel.params, channel.latest(1), bob)
    with pytest.raises(LedgerError, match="preimage does not hash"):
        backend.claim_htlc(channel.params, htlc, bytes(32), bob)
    with pytest.raises(LedgerError, match="preimage does not hash"):
        backend.claim_htlc(channel.params, htlc, preimage[:31], bob)
    success = backend.claim_htlc(channel.params, htlc, preimage, bob)
    assert success.fee == 703  # HTLC-success: 1000 sat/kw * 703 WU
    revealed = [e for e in backend.poll_events() if isinstance(e, PreimageRevealed)]
    assert revealed and revealed[0].preimage == preimage

    # the second-stage output is delayed like to_local: conclude sweeps both at once
    _mine_to(backend, backend.ledger.tip_height() + 36)
    before = backend.balance(bob, BTC)
    sweep = backend.conclude(channel.params, bob)
    assert backend.balance(bob, BTC) == before + 300_000 + 70_000 - 703 - sweep.fee


def test_payee_claims_directly_on_the_payers_commitment(backend: BitcoinBackend) -> None:
    channel, htlc, preimage = _with_htlc(backend)
    alice, bob = channel.accounts
    backend.register(channel.params, channel.latest(0), alice)
    seen = backend.commitment_on_chain(channel.params, bob)
    assert seen.owner == 0 and seen.output("htlc", 7) is not None
    ctx = backend.context(channel.params, 1, bob)

    # a wrong preimage of the right length, signed correctly: Bitcoin Core refuses it
    wrong = direct_htlc_spend(ctx, seen, htlc, bytes(32), bob.script_pubkey).tx
    assert "script" in _kernel_verdict(backend, wrong).lower()
    # the right preimage padded to 33 bytes (signature still valid): refused too
    good = direct_htlc_spend(ctx, seen, htlc, preimage, bob.script_pubkey).tx
    stack = list(good.wit.vtxinwit[0].scriptWitness.stack)
    padded = CMutableTransaction.from_tx(good)
    set_witness(padded, 0, [stack[0], preimage + b"\x00", stack[2]])
    assert "script" in _kernel_verdict(backend, CTransaction.from_tx(padded)).lower()

    before = backend.balance(bob, BTC)
    claim = backend.claim_htlc(channel.params, htlc, preimage, bob)
    assert backend.balance(bob, BTC) == before + 70_000 - claim.fee
    events = backend.poll_events()
    assert PreimageRevealed(htlc.payment_hash, preimage, backend.now()) in events


def test_payer_refunds_with_htlc_timeout_only_after_expiry(backend: BitcoinBackend) -> None:
    channel, htlc, _ = _with_htlc(backend)
    alice, _ = channel.accounts
    backend.register(channel.params, channel.latest(0), alice)
    _mine_to(backend, htlc.native_expiry - 1)  # the next block is the expiry height itself
    with pytest.raises(LedgerError) as early:
        backend.refund_htlc(channel.params, htlc, alice)
    assert "non-final" in early.value.reason  # nLockTime = cltv_expiry, Core's IsFinalTx
    _mine_to(backend, htlc.native_expiry)
    timeout = backend.refund_htlc(channel.params, htlc, alice)
    assert timeout.fee == 663  # HTLC-timeout: 1000 sat/kw * 663 WU
    _mine_to(backend, backend.ledger.tip_height() + 35)
    before = backend.balance(alice, BTC)
    sweep = backend.conclude(channel.params, alice)
    to_local = 1_000_000 - 300_000 - 70_000 - 896  # commitment fee with one HTLC output
    assert backend.balance(alice, BTC) == before + to_local + 70_000 - 663 - sweep.fee


def test_payer_times_out_directly_on_the_payees_commitment(backend: BitcoinBackend) -> None:
    channel, htlc, preimage = _with_htlc(backend)
    alice, bob = channel.accounts
    backend.register(channel.params, channel.latest(1), bob)
    _mine_to(backend, htlc.native_expiry - 1)
    with pytest.raises(LedgerError, match="non-final"):
        backend.refund_htlc(channel.params, htlc, alice)
    _mine_to(backend, htlc.native_expiry)
    before = backend.balance(alice, BTC)
    refund = backend.refund_htlc(channel.params, htlc, alice)
    assert backend.balance(alice, BTC) == before + 70_000 - refund.fee
    # too late for bob now: the output is gone
    with pytest.raises(LedgerError):
        backend.claim_htlc(channel.params, htlc, preimage, bob)


def test_our_htlc_spends_pay_a_raised_feerate_and_are_known_as_ours_whatever_they_paid(
    backend: BitcoinBackend,
) -> None:
    """A spend only we sign (a penalty, a claim, a refund) races the peer, so it pays the
    feerate the operator configures now when that is higher than the channel's (the
    channel keeps its own for what both sign). Asked again after a restart under other
    options, a spend of ours already on-chain is recognised by its path, not by its txid
    (rebuilt, it would pay another fee): before, a confirmed refund read as 'taken by the
    peer' on every block, and a claim as 'taken back by the peer'."""
    channel, htlc, _ = _with_htlc(backend)
    alice, _bob = channel.accounts
    parts = backend.export_record(channel.params, 0, alice)
    assert parts is not None
    backend.register(channel.params, channel.latest(1), _bob)
    _mine_to(backend, htlc.native_expiry)

    def restarted(feerate: int) -> BitcoinBackend:
        fresh = BitcoinBackend(
            backend.ledger,
            chain=backend.chain,
            policy=ChannelPolicy(feerate_per_kw=feerate),
            auto_mine=True,
        )
        fresh.restore_record(channel.params, 0, alice, parts)
        return fresh

    refund = restarted(3_000).refund_htlc(channel.params, htlc, alice)
    assert refund.txid and refund.fee >= 3_000 * refund.cost // 1000  # the raised rate
    again = restarted(1_000).refund_htlc(channel.params, htlc, alice)
    assert again.txid == "" and again.block == backend.ledger.tip_height()  # ours, mined


def test_a_spend_the_raised_feerate_cannot_pay_is_made_at_the_channels(
    backend: BitcoinBackend,
) -> None:
    """Found by review of the raised feerate: a 2,000 sat HTLC, worth taking at the
    channel's 1,000 sat/kw, cannot pay its refund at 5,000 (2,725 sat). The refund was
    refused on every block, and the dispute waited for it for ever; it is now made at the
    channel's rate (so is a penalty whose raised fee passes the cap)."""
    channel = opened(backend)
    channel.update(0, Transfer(BTC, 300_000))
    htlc, _ = channel.add_htlc(7, payer=0, amount=2_000)
    alice, bob = channel.accounts
    parts = backend.export_record(channel.params, 0, alice)
    assert parts is not None
    backend.register(channel.params, channel.latest(1), bob)
    _mine_to(backend, htlc.native_expiry)
    raised = BitcoinBackend(
        backend.ledger,
        chain=backend.chain,
        policy=ChannelPolicy(feerate_per_kw=5_000),
        auto_mine=True,
    )
    raised.restore_record(channel.params, 0, alice, parts)
    before = backend.balance(alice, BTC)
    refund = raised.refund_htlc(channel.params, htlc, alice)
    assert refund.fee < 1_000 * refund.cost // 1000 + 10  # the channel's rate
    assert backend.balance(alice, BTC) == before + 2_000 - refund.fee
