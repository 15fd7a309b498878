"""Bad inputs: each is refused with a clear error and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from chenilles_bitcoin.backend import BitcoinBackend
from chenilles_bitcoin.bundle import decode_bundle, encode_bundle
from chenilles_bitcoin.commitments import CommitmentFeeError

from chenilles_hub.backend import LedgerError
from chenilles_hub.core import (
    Accept,
    AddHtlc,
    AssetBalances,
    Propose,
    Transfer,
    decode_message,
    encode_message,
)
from chenilles_hub.core.errors import (
    AmountOutOfRange,
    FeeUnaffordable,
    InvalidRevocation,
    InvalidSignature,
)

from .test_backend_harness import BTC, Channel, fresh_backend, opened

pytestmark = pytest.mark.bitcoin


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def _tamper(channel: Channel, kind: type, change) -> None:  # type: ignore[no-untyped-def]
    for position, (recipient, data) in enumerate(channel.wire):
        message = decode_message(data)
        if isinstance(message, kind):
            channel.wire[position] = (recipient, encode_message(change(message)))
            return
    raise AssertionError(f"no {kind.__name__} in flight")


def _snapshot(channel: Channel) -> tuple[object, object]:
    return channel.machines[0].snapshot(), channel.machines[1].snapshot()


def test_bad_commitment_signature_is_refused(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    before = channel.machines[0].snapshot()
    channel.run(0, channel.machines[0].propose((Transfer(BTC, 5_000),), backend.now()))

    def forge(message: Propose) -> Propose:
        bundle = decode_bundle(message.signature)
        sig = bytearray(bundle.commitment_sig)
        sig[10] ^= 1
        forged = msgspec.structs.replace(bundle, commitment_sig=bytes(sig))
        return msgspec.structs.replace(message, signature=encode_bundle(forged))

    bob_before = channel.machines[1].snapshot()
    _tamper(channel, Propose, forge)
    channel.pump()
    assert isinstance(channel.errors[0], InvalidSignature)
    assert channel.machines[1].snapshot() == bob_before
    assert channel.machines[0].latest == before.latest


def test_signature_on_another_state_does_not_verify(backend: BitcoinBackend) -> None:
    """A bundle is only valid for the commitment of the exact agreed state."""
    channel = opened(backend)
    previous = channel.latest()
    authority = [backend.authority(channel.params, a, i) for i, a in enumerate(channel.accounts)]
    agreed = channel.machines[0].check((Transfer(BTC, 5_000),), backend.now())
    other = msgspec.structs.replace(
        agreed, balances=(AssetBalances(BTC, (994_000, 6_000)),)
    )  # what a cheating signer might commit to instead
    bundle = authority[0].sign(channel.params, other, previous)
    assert not authority[1].verify(channel.params, agreed, 0, bundle, previous)
    assert authority[1].verify(channel.params, other, 0, bundle, previous)
    assert not authority[1].verify(channel.params, agreed, 0, b"\x93garbage", previous)
    good = authority[0].sign(channel.params, agreed, previous)
    assert not authority[1].verify(channel.params, agreed, 0, good, None)  # wrong point chain


def test_unknown_revocation_secret_is_refused(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    channel.run(0, channel.machines[0].propose((Transfer(BTC, 5_000),), backend.now()))
    recipient, data = channel.wire.pop(0)
    channel.run(recipient, channel.machines[recipient].receive(decode_message(data), backend.now()))
    alice_before = channel.machines[0].snapshot()
    _tamper(channel, Accept, lambda m: msgspec.structs.replace(m, revocation=bytes(32)))
    channel.pump()
    assert isinstance(channel.errors[0], InvalidRevocation)
    assert channel.machines[0].snapshot() == alice_before
    ctx = backend.context(channel.params, 0, channel.accounts[0])
    assert ctx.record.revocation_secret(0) is None  # nothing was stored


def test_fee_above_the_limit_or_unaffordable_is_refused(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    before = _snapshot(channel)
    with pytest.raises(FeeUnaffordable, match=r"fee of participant 0's .* is 724"):
        channel.machines[0].propose((Transfer(BTC, 999_500),), backend.now())  # funder keeps 500
    assert _snapshot(channel) == before

    gen = fresh_backend(max_fee_sat=800)  # one HTLC output makes the commitment fee 896 sat
    strict = next(gen)
    tight = opened(strict)
    htlc, _ = tight.htlc(1, payer=0, amount=60_000)
    snap = _snapshot(tight)
    with pytest.raises(CommitmentFeeError, match="exceeds the limit 800"):
        tight.machines[0].propose((AddHtlc(htlc),), strict.now())
    assert _snapshot(tight) == snap
    gen.close()


def test_amounts_beyond_21e14_sat_are_out_of_range(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    authority = backend.authority(channel.params, channel.accounts[0], 0)
    huge = msgspec.structs.replace(
        channel.latest().state, balances=(AssetBalances(BTC, (21 * 10**14 + 1, 0)),)
    )
    with pytest.raises(AmountOutOfRange):
        authority.sign(channel.params, huge, None)
    with pytest.raises(AmountOutOfRange):
        backend.new_nonce(
            channel.params.participants, {BTC: (21 * 10**14 + 1, 0)}, channel.accounts[0]
        )


def test_dust_htlc_is_trimmed_and_cannot_be_claimed_on_chain(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    channel.update(0, Transfer(BTC, 100_000))
    htlc, preimage = channel.add_htlc(1, payer=0, amount=1_200)  # < 546 + 703: trimmed
    bob = channel.accounts[1]
    reg = backend.register(channel.params, channel.latest(1), bob)
    assert reg.fee == 724 + 1_200  # no HTLC output: the trimmed amount goes to the miner
    with pytest.raises(LedgerError, match="trimmed as dust"):
        backend.claim_htlc(channel.params, htlc, preimage, bob)
    with pytest.raises(LedgerError, match="single-funded"):
        backend.fund(channel.params, 1, bob, BTC, 1)
