"""State signatures made with libsecp256k1 directly are the ones eth-account makes, and
recovery refuses exactly what the adjudicator's ``_recover`` refuses."""

from __future__ import annotations

import pytest
from chenilles_evm.eip712 import (
    HALF_N,
    SECP256K1_N,
    DigestSigner,
    recover_address,
    recover_signer,
)
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.evm

_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
_digests = st.binary(min_size=32, max_size=32)


@settings(max_examples=50, deadline=None)
@given(key=_keys, digest=_digests)
def test_signature_equals_eth_accounts_and_recovers_to_the_signer(
    key: bytes, digest: bytes
) -> None:
    signature = DigestSigner(key).sign(digest)
    theirs = Account.unsafe_sign_hash(digest, key)
    assert signature == bytes(theirs.signature)
    assert int.from_bytes(signature[32:64], "big") <= HALF_N and signature[64] in (27, 28)
    assert recover_signer(digest, signature) == Account.from_key(key).address


@settings(max_examples=25, deadline=None)
@given(key=_keys, digest=_digests)
def test_recovery_refuses_what_the_contract_refuses(key: bytes, digest: bytes) -> None:
    good = DigestSigner(key).sign(digest)
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    high_s_twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([v ^ 1])
    refused = [
        high_s_twin,  # same signer, malleated: the contract only takes low s
        good[:64] + bytes([v - 27]),  # v in {0, 1}
        good[:64] + bytes([29]),
        bytes(32) + good[32:],  # r = 0
        SECP256K1_N.to_bytes(32, "big") + good[32:],  # r >= n
        r + bytes(32) + good[64:],  # s = 0
        good[:64],  # short
        good + b"\x00",  # long
    ]
    for signature in refused:
        assert recover_address(digest, signature) is None, signature.hex()


def test_an_r_with_no_curve_point_is_refused_not_raised() -> None:
    # x = 5 is not the x-coordinate of any secp256k1 point (5**3 + 7 = 132 is a non-residue).
    signature = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + bytes([27])
    assert recover_address(bytes(32), signature) is None


def test_a_digest_of_the_wrong_length_is_not_signed() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        DigestSigner(bytes(31) + b"\x01").sign(b"short")
