"""BOLT 3 Appendix E key derivation vectors, plus the Appendix C derived keys."""

from __future__ import annotations

import pytest
from chenilles_bitcoin.bolt3 import (
    InvalidKeyError,
    derive_privkey,
    derive_pubkey,
    derive_revocation_privkey,
    derive_revocation_pubkey,
    per_commitment_point,
    pubkey_from_secret,
)

pytestmark = pytest.mark.bitcoin

H = bytes.fromhex
BASE_SECRET = H("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
PER_COMMITMENT_SECRET = H("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100")
BASE_POINT = H("036d6caac248af96f6afa7f904f550253a0f3ef3f5aa2fe6838a95b216691468e2")
PER_COMMITMENT_POINT = H("025f7117a78150fe2ef97db7cfc83bd57b2e2c0d0dd25eaf467a4a1c2a45ce1486")


def test_appendix_e_points() -> None:
    assert pubkey_from_secret(BASE_SECRET) == BASE_POINT
    assert per_commitment_point(PER_COMMITMENT_SECRET) == PER_COMMITMENT_POINT


def test_appendix_e_derive_pubkey_and_privkey() -> None:
    expected_pub = H("0235f2dbfaa89b57ec7b055afe29849ef7ddfeb1cefdb9ebdc43f5494984db29e5")
    expected_priv = H("cbced912d3b21bf196a766651e436aff192362621ce317704ea2f75d87e7be0f")
    assert derive_pubkey(BASE_POINT, PER_COMMITMENT_POINT) == expected_pub
    assert derive_privkey(BASE_SECRET, PER_COMMITMENT_POINT) == expected_priv
    assert pubkey_from_secret(expected_priv) == expected_pub


def test_appendix_e_revocation_keys() -> None:
    expected_pub = H("02916e326636d19c33f13e8c0c3a03dd157f332f3e99c317c141dd865eb01f8ff0")
    expected_priv = H("d09ffff62ddb2297ab000cc85bcb4283fdeb6aa052affbc9dddcf33b61078110")
    assert derive_revocation_pubkey(BASE_POINT, PER_COMMITMENT_POINT) == expected_pub
    assert derive_revocation_privkey(BASE_SECRET, PER_COMMITMENT_SECRET) == expected_priv
    assert pubkey_from_secret(expected_priv) == expected_pub


def test_appendix_c_keys_derive_from_basepoints() -> None:
    """The Appendix C keys follow from the (commented) basepoint secrets."""
    pcs = H("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100")
    pcp = per_commitment_point(pcs)
    assert pcp == H("025f7117a78150fe2ef97db7cfc83bd57b2e2c0d0dd25eaf467a4a1c2a45ce1486")
    local_payment_bp = pubkey_from_secret(H("11" * 32))
    remote_revocation_bp = pubkey_from_secret(H("22" * 32))
    local_delayed_bp = pubkey_from_secret(H("33" * 32))
    remote_payment_bp = pubkey_from_secret(H("44" * 32))
    assert local_payment_bp == H(
        "034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa"
    )
    assert remote_payment_bp == H(
        "032c0b7cf95324a07d05398b240174dc0c2be444d96b159aa6c7f7b1e668680991"
    )
    assert remote_revocation_bp == H(
        "02466d7fcae563e5cb09a0d1870bb580344804617879a14949cf22285f1bae3f27"
    )
    assert local_delayed_bp == H(
        "023c72addb4fdf09af94f0c94d7fe92a386a7e70cf8a1d85916386bb2535c7b1b1"
    )
    assert derive_pubkey(local_payment_bp, pcp) == H(
        "030d417a46946384f88d5f3337267c5e579765875dc4daca813e21734b140639e7"
    )
    assert derive_privkey(H("11" * 32), pcp) == H(
        "bb13b121cdc357cd2e608b0aea294afca36e2b34cf958e2e6451a2f274694491"
    )
    assert derive_pubkey(remote_payment_bp, pcp) == H(
        "0394854aa6eab5b2a8122cc726e9dded053a2184d88256816826d6231c068d4a5b"
    )
    assert derive_privkey(H("44" * 32), pcp) == H(
        "8deba327a7cc6d638ab0eb025770400a6184afcba6713c210d8d10e199ff2fda"
    )
    assert derive_pubkey(local_delayed_bp, pcp) == H(
        "03fd5960528dc152014952efdb702a88f71e3c1653b2314431701ec77e57fde83c"
    )
    assert derive_privkey(H("33" * 32), pcp) == H(
        "adf3464ce9c2f230fd2582fda4c6965e4993ca5524e8c9580e3df0cf226981ad"
    )
    assert derive_revocation_pubkey(remote_revocation_bp, pcp) == H(
        "0212a140cd0c6539d07cd08dfe09984dec3251ea808b892efeac3ede9402bf2b19"
    )


def test_invalid_keys_are_rejected() -> None:
    with pytest.raises(InvalidKeyError):
        derive_pubkey(b"\x02" + b"\x00" * 32, PER_COMMITMENT_POINT)
    with pytest.raises(InvalidKeyError):
        derive_pubkey(BASE_POINT, PER_COMMITMENT_POINT[:32])
    with pytest.raises(InvalidKeyError):
        pubkey_from_secret(b"\x00" * 32)
    with pytest.raises(InvalidKeyError):
        pubkey_from_secret(b"\xff" * 32)
