"""The fast paths of the BOLT 3 library give the slow paths' bytes exactly.

Scripts are assembled from templates, txids and BIP 143 digests are hashed from the
transaction's fields: each is compared here with python-bitcoinlib's own ``CScript`` list
coercion, ``GetTxid`` and ``SignatureHash`` on random inputs. Keys derived with the secrets
a side holds are compared with the public derivation. (The BOLT 3 vectors and the kernel
tests check the same paths on the spec's values and on-chain.)
"""

from __future__ import annotations

import copy
import hashlib
import pickle

import pytest
from bitcoin.core import (
    CMutableTransaction,
    CMutableTxIn,
    CMutableTxOut,
    COutPoint,
    CScriptWitness,
    CTxInWitness,
    CTxWitness,
    b2lx,
)
from bitcoin.core.script import (
    OP_0,
    OP_2,
    OP_CHECKLOCKTIMEVERIFY,
    OP_CHECKMULTISIG,
    OP_CHECKSEQUENCEVERIFY,
    OP_CHECKSIG,
    OP_DROP,
    OP_DUP,
    OP_ELSE,
    OP_ENDIF,
    OP_EQUAL,
    OP_EQUALVERIFY,
    OP_HASH160,
    OP_IF,
    OP_NOTIF,
    OP_SIZE,
    OP_SWAP,
    SIGHASH_ALL,
    SIGVERSION_WITNESS_V0,
    CScript,
    SignatureHash,
)
from chenilles_bitcoin.bolt3 import (
    CommitmentKeys,
    Htlc,
    InvalidKeyError,
    KeySecrets,
    OutPoint,
    build_commitment_tx,
    derive_privkey,
    derive_pubkey,
    derive_revocation_pubkey,
    funding_script,
    offered_htlc_script,
    p2wpkh,
    p2wsh,
    pubkey_from_secret,
    received_htlc_script,
    sighash_all,
    to_local_script,
    txid_of,
)
from chenilles_bitcoin.bolt3.scripts import _hash160, _number, _push, _ripemd160
from chenilles_bitcoin.bolt3.txutil import TX_VERSION, SegwitV0Sighash, SingleInput, compact_size
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.bitcoin

_secrets = st.integers(min_value=1, max_value=2**255).map(lambda n: n.to_bytes(32, "big"))
_pubkeys = _secrets.map(pubkey_from_secret)
_hashes = st.binary(min_size=32, max_size=32)


@given(n=st.integers(min_value=-(2**40), max_value=2**40))
def test_numbers_encode_as_cscript_does(n: int) -> None:
    assert _number(n) == bytes(CScript([n]))


@given(data=st.binary(max_size=300))
def test_pushes_encode_as_cscript_does(data: bytes) -> None:
    assert _push(data) == bytes(CScript([data]))


@settings(max_examples=30, deadline=None)
@given(
    keys=st.lists(_pubkeys, min_size=3, max_size=3),
    payment_hash=_hashes,
    delay=st.integers(min_value=0, max_value=0xFFFF),
    cltv=st.integers(min_value=0, max_value=499_999_999),
)
def test_scripts_match_cscript_lists(
    keys: list[bytes], payment_hash: bytes, delay: int, cltv: int
) -> None:
    rev, local, remote = keys
    assert to_local_script(rev, delay, local) == CScript(
        [OP_IF, rev, OP_ELSE, delay, OP_CHECKSEQUENCEVERIFY, OP_DROP, local, OP_ENDIF, OP_CHECKSIG]
    )
    assert offered_htlc_script(rev, local, remote, payment_hash) == CScript(
        [
            OP_DUP, OP_HASH160, _hash160(rev), OP_EQUAL,
            OP_IF,
                OP_CHECKSIG,
            OP_ELSE,
                remote, OP_SWAP, OP_SIZE, 32, OP_EQUAL,
                OP_NOTIF,
                    OP_DROP, 2, OP_SWAP, local, 2, OP_CHECKMULTISIG,
                OP_ELSE,
                    OP_HASH160, _ripemd160(payment_hash), OP_EQUALVERIFY,
                    OP_CHECKSIG,
                OP_ENDIF,
            OP_ENDIF,
        ]
    )  # fmt: skip
    assert received_htlc_script(rev, local, remote, payment_hash, cltv) == CScript(
        [
            OP_DUP, OP_HASH160, _hash160(rev), OP_EQUAL,
            OP_IF,
                OP_CHECKSIG,
            OP_ELSE,
                remote, OP_SWAP, OP_SIZE, 32, OP_EQUAL,
                OP_IF,
                    OP_HASH160, _ripemd160(payment_hash), OP_EQUALVERIFY,
                    2, OP_SWAP, local, 2, OP_CHECKMULTISIG,
                OP_ELSE,
                    OP_DROP, cltv, OP_CHECKLOCKTIMEVERIFY, OP_DROP,
                    OP_CHECKSIG,
                OP_ENDIF,
            OP_ENDIF,
        ]
    )  # fmt: skip
    k1, k2 = sorted((local, remote))
    assert funding_script(local, remote) == CScript([OP_2, k1, k2, OP_2, OP_CHECKMULTISIG])
    ws = bytes(to_local_script(rev, delay, local))
    assert p2wsh(ws) == CScript([OP_0, hashlib.sha256(ws).digest()])
    assert p2wpkh(local) == CScript([OP_0, _hash160(local)])
    assert isinstance(p2wsh(ws), CScript)


_amounts = st.integers(min_value=0, max_value=21_000_000 * 100_000_000)
_u32 = st.integers(min_value=0, max_value=0xFFFFFFFF)


@st.composite
def _transactions(draw: st.DrawFn) -> CMutableTransaction:
    n_in = draw(st.integers(min_value=1, max_value=3))
    n_out = draw(st.integers(min_value=0, max_value=4))
    vin = [
        CMutableTxIn(
            COutPoint(draw(_hashes), draw(_u32)),
            CScript(draw(st.binary(max_size=5))),
            nSequence=draw(_u32),
        )
        for _ in range(n_in)
    ]
    vout = [
        CMutableTxOut(draw(_amounts), CScript(draw(st.binary(max_size=300)))) for _ in range(n_out)
    ]
    tx = CMutableTransaction(
        vin,
        vout,
        nLockTime=draw(st.integers(min_value=0, max_value=0x7FFFFFFF)),
        nVersion=draw(st.integers(min_value=1, max_value=2)),
    )
    if draw(st.booleans()):  # a witness must not change the txid
        tx.wit = CTxWitness([CTxInWitness(CScriptWitness([b"\x01" * 72])) for _ in vin])
    return tx


@settings(max_examples=60, deadline=None)
@given(
    tx=_transactions(),
    script=st.binary(max_size=300),
    amount=_amounts,
    data=st.data(),
)
def test_txid_and_bip143_digest_match_python_bitcoinlib(
    tx: CMutableTransaction, script: bytes, amount: int, data: st.DataObject
) -> None:
    assert txid_of(tx) == b2lx(tx.GetTxid())
    index = data.draw(st.integers(min_value=0, max_value=len(tx.vin) - 1))
    expected = bytes(
        SignatureHash(CScript(script), tx, index, SIGHASH_ALL, amount, SIGVERSION_WITNESS_V0)
    )
    assert SegwitV0Sighash(tx).digest(index, script, amount) == expected
    assert sighash_all(tx, index, script, amount) == expected
    with pytest.raises(IndexError):
        SegwitV0Sighash(tx).digest(len(tx.vin), script, amount)


@settings(max_examples=60, deadline=None)
@given(
    prevout=_hashes,
    index=_u32,
    sequence=_u32,
    outputs=st.lists(st.tuples(_amounts, st.binary(max_size=300)), max_size=5),
    locktime=st.integers(min_value=0, max_value=0x7FFFFFFF),  # python-bitcoinlib packs "<i"
    script=st.binary(max_size=300),
    amount=_amounts,
)
def test_single_input_txid_and_digest_match_python_bitcoinlib(
    prevout: bytes,
    index: int,
    sequence: int,
    outputs: list[tuple[int, bytes]],
    locktime: int,
    script: bytes,
    amount: int,
) -> None:
    """Commitments and HTLC txs hash their fields (``SingleInput``): the same txid and
    BIP 143 digest as python-bitcoinlib's on the transaction built from those fields."""
    tx = CMutableTransaction(
        [CMutableTxIn(COutPoint(prevout, index), nSequence=sequence)],
        [CMutableTxOut(value, CScript(spk)) for value, spk in outputs],
        nLockTime=locktime,
        nVersion=TX_VERSION,
    )
    single = SingleInput(b2lx(prevout), index, sequence, outputs, locktime)
    assert single.txid() == b2lx(tx.GetTxid())
    expected = SignatureHash(CScript(script), tx, 0, SIGHASH_ALL, amount, SIGVERSION_WITNESS_V0)
    assert single.digest(script, amount) == bytes(expected)


@pytest.mark.parametrize("n", [0, 1, 0xFC, 0xFD, 0xFFFF, 0x10000, 0xFFFFFFFF, 0x100000000])
def test_compact_size(n: int) -> None:
    from bitcoin.core.serialize import VarIntSerializer

    assert compact_size(n) == VarIntSerializer.serialize(n)


@settings(max_examples=30, deadline=None)
@given(secrets=st.lists(_secrets, min_size=6, max_size=6))
def test_keys_derived_with_secrets_equal_the_public_derivation(secrets: list[bytes]) -> None:
    """Each side derives with the secrets it holds; both must get the peer's exact keys."""
    pcs, delayed, local_htlc, remote_htlc, revocation, payment = secrets
    pcp = pubkey_from_secret(pcs)
    bases = {
        "local_delayed_payment_basepoint": pubkey_from_secret(delayed),
        "local_htlc_basepoint": pubkey_from_secret(local_htlc),
        "remote_htlc_basepoint": pubkey_from_secret(remote_htlc),
        "remote_revocation_basepoint": pubkey_from_secret(revocation),
        "remote_payment_basepoint": pubkey_from_secret(payment),
    }
    public = CommitmentKeys.derive(pcp, static_remotekey=True, **bases)
    owner = KeySecrets(
        per_commitment_secret=pcs,
        local_delayed_payment_basepoint_secret=delayed,
        local_htlc_basepoint_secret=local_htlc,
    )
    other = KeySecrets(
        remote_htlc_basepoint_secret=remote_htlc,
        remote_revocation_basepoint_secret=revocation,
    )
    assert CommitmentKeys.derive(pcp, static_remotekey=True, secrets=owner, **bases) == public
    assert CommitmentKeys.derive(pcp, static_remotekey=True, secrets=other, **bases) == public
    base = bases["local_htlc_basepoint"]
    assert derive_pubkey(base, pcp, local_htlc) == derive_pubkey(base, pcp)
    assert pubkey_from_secret(derive_privkey(local_htlc, pcp, base)) == derive_pubkey(base, pcp)
    rb = bases["remote_revocation_basepoint"]
    assert derive_revocation_pubkey(rb, pcp, per_commitment_secret=pcs) == (
        derive_revocation_pubkey(rb, pcp, revocation_basepoint_secret=revocation)
    )


def _commitment_with(keys: CommitmentKeys, htlcs: list[Htlc]) -> str:
    tx = build_commitment_tx(
        funding_outpoint=OutPoint("22" * 32, 0),
        funding_amount_sat=1_000_000,
        local_funding_pubkey=keys.revocation_pubkey,
        remote_funding_pubkey=keys.remote_pubkey,
        commitment_number=7,
        obscuring_factor=0x2BB038521914,
        to_local_msat=500_000_000 - sum(h.amount_msat for h in htlcs),
        to_remote_msat=495_000_000,
        local_is_funder=True,
        feerate_per_kw=1000,
        dust_limit_sat=546,
        to_self_delay=144,
        keys=keys,
        htlcs=htlcs,
    )
    return b2lx(tx.tx.GetTxid()) + "".join(h.tx.serialize().hex() for h in tx.htlc_txs())


def test_htlc_keys_are_derived_only_for_a_commitment_with_an_htlc_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Most commitments carry no HTLC output (the one after a payment settles): their two
    HTLC keys, two of the five curve operations of a commitment, are not derived. When an
    HTLC output needs them, they are the eager derivation's keys, and so is the transaction."""
    from chenilles_bitcoin.bolt3 import keys as bolt3_keys

    secret = [hashlib.sha256(b"lazy %d" % i).digest() for i in range(6)]
    pcp = pubkey_from_secret(secret[0])
    bases: dict[str, bytes] = {
        "local_delayed_payment_basepoint": pubkey_from_secret(secret[1]),
        "local_htlc_basepoint": pubkey_from_secret(secret[2]),
        "remote_htlc_basepoint": pubkey_from_secret(secret[3]),
        "remote_revocation_basepoint": pubkey_from_secret(secret[4]),
        "remote_payment_basepoint": pubkey_from_secret(secret[5]),
    }
    eager = CommitmentKeys(
        derive_revocation_pubkey(bases["remote_revocation_basepoint"], pcp),
        derive_pubkey(bases["local_delayed_payment_basepoint"], pcp),
        derive_pubkey(bases["local_htlc_basepoint"], pcp),
        derive_pubkey(bases["remote_htlc_basepoint"], pcp),
        bases["remote_payment_basepoint"],
    )
    derived: list[bytes] = []
    real = bolt3_keys.derive_pubkey

    def counting(basepoint: bytes, point: bytes, secret: bytes | None = None) -> bytes:
        derived.append(basepoint)
        return real(basepoint, point, secret)

    monkeypatch.setattr(bolt3_keys, "derive_pubkey", counting)
    htlc_bases = {bases["local_htlc_basepoint"], bases["remote_htlc_basepoint"]}

    lazy = CommitmentKeys.derive(pcp, static_remotekey=True, **bases)
    assert _commitment_with(lazy, []) == _commitment_with(eager, [])
    assert not htlc_bases & set(derived)  # no HTLC output: no HTLC key

    htlc = Htlc(True, 5_000_000, b"\x11" * 32, 500_000, 0)
    lazy = CommitmentKeys.derive(pcp, static_remotekey=True, **bases)
    assert _commitment_with(lazy, [htlc]) == _commitment_with(eager, [htlc])
    assert htlc_bases <= set(derived)
    assert lazy == eager and hash(lazy) == hash(eager) and repr(lazy) == repr(eager)
    assert copy.deepcopy(lazy) == eager == pickle.loads(pickle.dumps(lazy))
    with pytest.raises(AttributeError):
        lazy.remote_pubkey = b"\x02" * 33


def test_a_bad_htlc_basepoint_fails_the_derivation_not_a_later_use() -> None:
    good = pubkey_from_secret(hashlib.sha256(b"good").digest())
    with pytest.raises(InvalidKeyError):
        CommitmentKeys.derive(
            good,
            local_delayed_payment_basepoint=good,
            local_htlc_basepoint=b"\x02" + b"\xff" * 32,  # not on the curve
            remote_htlc_basepoint=good,
            remote_revocation_basepoint=good,
            remote_payment_basepoint=good,
            static_remotekey=True,
        )
