"""Error paths: signatures, preimages, dust second stages, commitment numbers."""

from __future__ import annotations

import hashlib

import pytest
from bitcoin.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint
from bitcoin.core.script import CScript
from chenilles_bitcoin.bolt3 import (
    Bolt3Error,
    CommitmentKeys,
    DustOutputError,
    Htlc,
    InvalidPreimageError,
    InvalidSignatureError,
    OutPoint,
    build_commitment_tx,
    build_htlc_tx,
    check_input_signature,
    compact_from_der,
    decode_commitment_number,
    der_from_compact,
    encode_commitment_number,
    pubkey_from_secret,
    sign_input,
    verify_input,
)
from chenilles_bitcoin.bolt3.keys import CURVE_ORDER
from chenilles_bitcoin.bolt3.scripts import check_preimage
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.bitcoin

PRIV = hashlib.sha256(b"k").digest()
PUB = pubkey_from_secret(PRIV)
SCRIPT = bytes(CScript([PUB, 0xAC]))


def _tx() -> CMutableTransaction:
    return CMutableTransaction(
        [CMutableTxIn(COutPoint(b"\x01" * 32, 0))],
        [CMutableTxOut(1000, CScript(b"\x00\x14" + b"\x02" * 20))],
        nVersion=2,
    )


def test_signatures_are_deterministic_low_s_and_checked() -> None:
    tx = _tx()
    sig = sign_input(PRIV, tx, 0, SCRIPT, 5000)
    assert sig == sign_input(PRIV, tx, 0, SCRIPT, 5000)  # RFC 6979
    assert verify_input(PUB, tx, 0, SCRIPT, 5000, sig)
    assert not verify_input(PUB, tx, 0, SCRIPT, 5001, sig)  # amount is committed (BIP 143)
    compact = compact_from_der(sig)
    assert der_from_compact(compact) == sig
    r, s = int.from_bytes(compact[:32], "big"), int.from_bytes(compact[32:], "big")
    high_s = der_from_compact(r.to_bytes(32, "big") + (CURVE_ORDER - s).to_bytes(32, "big"))
    assert not verify_input(PUB, tx, 0, SCRIPT, 5000, high_s)  # malleated form refused
    with pytest.raises(InvalidSignatureError):
        check_input_signature(PUB, tx, 0, SCRIPT, 5000, high_s)
    with pytest.raises(InvalidSignatureError):
        check_input_signature(PUB, tx, 0, SCRIPT, 5000, sig[:-1])
    with pytest.raises(InvalidSignatureError):
        der_from_compact(b"\x00" * 63)


def test_preimage_checks() -> None:
    good = b"\x07" * 32
    check_preimage(good, hashlib.sha256(good).digest())
    for bad in (good[:31], good + b"\x00"):
        with pytest.raises(InvalidPreimageError):
            check_preimage(bad)
    with pytest.raises(InvalidPreimageError):
        check_preimage(b"\x08" * 32, hashlib.sha256(good).digest())


def _keys() -> CommitmentKeys:
    k = [pubkey_from_secret(hashlib.sha256(bytes([i])).digest()) for i in range(5)]
    return CommitmentKeys(*k)


def test_htlc_tx_below_dust_is_refused() -> None:
    htlc = Htlc(True, 5_000_000, b"\x11" * 32, 500_000, 0)
    c = build_commitment_tx(
        funding_outpoint=OutPoint("22" * 32, 0),
        funding_amount_sat=1_000_000,
        local_funding_pubkey=_keys().revocation_pubkey,
        remote_funding_pubkey=_keys().remote_pubkey,
        commitment_number=1,
        obscuring_factor=0,
        to_local_msat=500_000_000,
        to_remote_msat=495_000_000,
        local_is_funder=True,
        feerate_per_kw=1000,
        dust_limit_sat=546,
        to_self_delay=144,
        keys=_keys(),
        htlcs=[htlc],
    )
    (idx,) = c.htlc_output_indexes()
    c.dust_limit_sat = 5_000  # as if the caller mixed up dust limits
    with pytest.raises(DustOutputError):
        build_htlc_tx(c, idx)
    with pytest.raises(Bolt3Error):
        build_htlc_tx(c, 1 - idx)  # not an HTLC output


@given(n=st.integers(0, 2**48 - 1), factor=st.integers(0, 2**48 - 1))
def test_commitment_number_roundtrip(n: int, factor: int) -> None:
    locktime, sequence = encode_commitment_number(n, factor)
    assert locktime >> 24 == 0x20 and sequence >> 24 == 0x80
    assert decode_commitment_number(locktime, sequence, factor) == n
