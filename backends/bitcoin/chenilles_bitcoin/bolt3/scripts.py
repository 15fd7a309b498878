"""BOLT 3 output scripts and the witness stacks that spend them.

Scripts are written as python-bitcoinlib ``CScript`` lists (minimal pushes, integers
encoded as script numbers), so ``to_self_delay`` 144 becomes ``02 9000`` and
``cltv_expiry`` 500 becomes ``02 f401`` exactly as in the spec's vectors.  These are
the legacy (``option_anchors`` off) templates: ``to_remote`` is a plain P2WPKH and
HTLC scripts carry no ``1 OP_CSV``.

Every commitment of every state builds these scripts, and ``CScript``'s generic coercion
of a list was the largest Python cost of building one. So each template is assembled once,
at import, from its ``CScript`` list with *holes* for the keys, hashes and numbers; a script
is then its constant chunks joined with the encoded hole values (:func:`_fill`), byte for
byte what ``CScript`` of the full list gives (tests compare both).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from bitcoin.core.script import (
    OP_0,
    OP_1NEGATE,
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
    CScript,
    CScriptOp,
)

from .errors import InvalidKeyError, InvalidPreimageError

#: A witness stack: the list of items, the witness script last for P2WSH.
Witness = list[bytes]


def _check_pubkey(pubkey: bytes) -> None:
    if len(pubkey) != 33 or pubkey[0] not in (2, 3):
        raise InvalidKeyError(f"expected a 33-byte compressed public key, got {pubkey.hex()}")


def _ripemd160(data: bytes) -> bytes:
    """OpenSSL's RIPEMD-160 where hashlib offers it (OpenSSL 3 may not: then the pure-Python
    one python-bitcoinlib ships, which is ~50x slower and showed up in payment profiles)."""
    try:
        return hashlib.new("ripemd160", data).digest()
    except ValueError:
        from bitcoin.core.contrib.ripemd160 import ripemd160

        return bytes(ripemd160(data))


def _hash160(data: bytes) -> bytes:
    """RIPEMD160(SHA256(data)), as OP_HASH160 computes it."""
    return _ripemd160(hashlib.sha256(data).digest())


# --- templates ------------------------------------------------------------------------

_HOLE = object()  # where a template takes a value


def _template(items: list[object]) -> tuple[bytes, ...]:
    """The constant chunks of a ``CScript`` list around its holes (n holes: n + 1 chunks)."""
    chunks: list[bytes] = []
    run: list[object] = []
    for item in items:
        if item is _HOLE:
            chunks.append(bytes(CScript(run)))
            run = []
        else:
            run.append(item)
    chunks.append(bytes(CScript(run)))
    return tuple(chunks)


def _push(data: bytes) -> bytes:
    """A data push, as ``CScript`` encodes a bytes item (minimal PUSHDATA)."""
    if len(data) < 0x4C:
        return bytes((len(data),)) + data
    return bytes(CScriptOp.encode_op_pushdata(data))


def _number(n: int) -> bytes:
    """An integer, as ``CScript`` encodes an int item: OP_0..OP_16, else a minimal script
    number push (little-endian, a spare byte when the top bit would read as a sign)."""
    if 0 <= n <= 16:
        return bytes((OP_0 if n == 0 else 0x50 + n,))
    if n == -1:
        return bytes((OP_1NEGATE,))
    if n < 0:
        return bytes(CScript([n]))
    body = n.to_bytes((n.bit_length() + 8) // 8, "little")
    return _push(body)


def _fill(template: tuple[bytes, ...], *values: bytes) -> CScript:
    """``template`` with its holes filled by the already encoded ``values``."""
    parts = [template[0]]
    for value, chunk in zip(values, template[1:], strict=True):
        parts.append(value)
        parts.append(chunk)
    return CScript(b"".join(parts))


_WITNESS_V0 = _template([OP_0, _HOLE])
_FUNDING = _template([OP_2, _HOLE, _HOLE, OP_2, OP_CHECKMULTISIG])
_TO_LOCAL = _template(
    [
        OP_IF,
        _HOLE,  # revocationpubkey
        OP_ELSE,
        _HOLE,  # to_self_delay
        OP_CHECKSEQUENCEVERIFY,
        OP_DROP,
        _HOLE,  # local_delayedpubkey
        OP_ENDIF,
        OP_CHECKSIG,
    ]
)
_OFFERED_HTLC = _template(
    [
        OP_DUP, OP_HASH160, _HOLE, OP_EQUAL,  # HASH160(revocationpubkey)
        OP_IF,
            OP_CHECKSIG,
        OP_ELSE,
            _HOLE, OP_SWAP, OP_SIZE, 32, OP_EQUAL,  # remote_htlcpubkey
            OP_NOTIF,
                OP_DROP, 2, OP_SWAP, _HOLE, 2, OP_CHECKMULTISIG,  # local_htlcpubkey
            OP_ELSE,
                OP_HASH160, _HOLE, OP_EQUALVERIFY,  # RIPEMD160(payment_hash)
                OP_CHECKSIG,
            OP_ENDIF,
        OP_ENDIF,
    ]
)  # fmt: skip
_RECEIVED_HTLC = _template(
    [
        OP_DUP, OP_HASH160, _HOLE, OP_EQUAL,  # HASH160(revocationpubkey)
        OP_IF,
            OP_CHECKSIG,
        OP_ELSE,
            _HOLE, OP_SWAP, OP_SIZE, 32, OP_EQUAL,  # remote_htlcpubkey
            OP_IF,
                OP_HASH160, _HOLE, OP_EQUALVERIFY,  # RIPEMD160(payment_hash)
                2, OP_SWAP, _HOLE, 2, OP_CHECKMULTISIG,  # local_htlcpubkey
            OP_ELSE,
                OP_DROP, _HOLE, OP_CHECKLOCKTIMEVERIFY, OP_DROP,  # cltv_expiry
                OP_CHECKSIG,
            OP_ENDIF,
        OP_ENDIF,
    ]
)  # fmt: skip


def p2wsh(witness_script: bytes) -> CScript:
    """``OP_0 <SHA256(witness_script)>``: the scriptPubKey committing to a witness script."""
    return _fill(_WITNESS_V0, _push(hashlib.sha256(witness_script).digest()))


@lru_cache(maxsize=1024)
def p2wpkh(pubkey: bytes) -> CScript:
    """``OP_0 <HASH160(pubkey)>`` (remembered: to_remote pays one static key per channel)."""
    _check_pubkey(pubkey)
    return _fill(_WITNESS_V0, _push(_hash160(pubkey)))


def sort_funding_pubkeys(pubkey_a: bytes, pubkey_b: bytes) -> tuple[bytes, bytes]:
    """Lexicographic order of the two funding keys (``pubkey1`` is the lesser)."""
    return (pubkey_a, pubkey_b) if pubkey_a < pubkey_b else (pubkey_b, pubkey_a)


@lru_cache(maxsize=256)
def funding_script(pubkey_a: bytes, pubkey_b: bytes) -> CScript:
    """``2 <pubkey1> <pubkey2> 2 OP_CHECKMULTISIG`` with keys in lexicographic order."""
    _check_pubkey(pubkey_a)
    _check_pubkey(pubkey_b)
    k1, k2 = sort_funding_pubkeys(pubkey_a, pubkey_b)
    return _fill(_FUNDING, _push(k1), _push(k2))


def to_local_script(
    revocation_pubkey: bytes, to_self_delay: int, local_delayed_pubkey: bytes
) -> CScript:
    """``to_local`` (also the HTLC-success/timeout output): revocable, else CSV-delayed."""
    _check_pubkey(revocation_pubkey)
    _check_pubkey(local_delayed_pubkey)
    if not 0 <= to_self_delay <= 0xFFFF:
        raise ValueError("to_self_delay must fit in 16 bits (BIP 68 block-based)")
    return _fill(
        _TO_LOCAL, _push(revocation_pubkey), _number(to_self_delay), _push(local_delayed_pubkey)
    )


def to_remote_script(remote_pubkey: bytes) -> CScript:
    """``to_remote`` (option_anchors off): P2WPKH to ``remotepubkey``."""
    return p2wpkh(remote_pubkey)


def offered_htlc_script(
    revocation_pubkey: bytes,
    local_htlcpubkey: bytes,
    remote_htlcpubkey: bytes,
    payment_hash: bytes,
) -> CScript:
    """Offered HTLC: remote claims with preimage, we time out via 2-of-2 HTLC-timeout."""
    for key in (revocation_pubkey, local_htlcpubkey, remote_htlcpubkey):
        _check_pubkey(key)
    if len(payment_hash) != 32:
        raise ValueError("payment hash must be 32 bytes")
    return _fill(
        _OFFERED_HTLC,
        _push(_hash160(revocation_pubkey)),
        _push(remote_htlcpubkey),
        _push(local_htlcpubkey),
        _push(_ripemd160(payment_hash)),
    )


def received_htlc_script(
    revocation_pubkey: bytes,
    local_htlcpubkey: bytes,
    remote_htlcpubkey: bytes,
    payment_hash: bytes,
    cltv_expiry: int,
) -> CScript:
    """Received HTLC: we claim with preimage via 2-of-2 HTLC-success, remote after CLTV."""
    for key in (revocation_pubkey, local_htlcpubkey, remote_htlcpubkey):
        _check_pubkey(key)
    if len(payment_hash) != 32:
        raise ValueError("payment hash must be 32 bytes")
    if not 0 <= cltv_expiry < 500_000_000:
        raise ValueError("cltv_expiry must be a block height")
    return _fill(
        _RECEIVED_HTLC,
        _push(_hash160(revocation_pubkey)),
        _push(remote_htlcpubkey),
        _push(_ripemd160(payment_hash)),
        _push(local_htlcpubkey),
        _number(cltv_expiry),
    )


# --- witness stacks (signatures are DER + sighash byte, see signing.with_sighash) ---


def check_preimage(preimage: bytes, payment_hash: bytes | None = None) -> None:
    """Refuse a preimage the script would reject, before building a doomed transaction."""
    if len(preimage) != 32:
        raise InvalidPreimageError(f"preimage must be 32 bytes, got {len(preimage)}")
    if payment_hash is not None and hashlib.sha256(preimage).digest() != payment_hash:
        raise InvalidPreimageError("preimage does not hash to the payment hash")


def funding_witness(sig_a: bytes, pubkey_a: bytes, sig_b: bytes, pubkey_b: bytes) -> Witness:
    """``0 <sig1> <sig2> <script>``, signatures in the order of their sorted keys."""
    script = funding_script(pubkey_a, pubkey_b)
    sigs = [sig_a, sig_b] if pubkey_a < pubkey_b else [sig_b, sig_a]
    return [b"", *sigs, bytes(script)]


def to_local_delayed_witness(sig: bytes, witness_script: bytes) -> Witness:
    """Owner spends ``to_local`` after ``to_self_delay``: ``<local_delayedsig> 0``."""
    return [sig, b"", witness_script]


def revocation_witness(sig: bytes, witness_script: bytes) -> Witness:
    """Penalty spend of ``to_local`` / second-stage outputs: ``<revocation_sig> 1``."""
    return [sig, b"\x01", witness_script]


def htlc_revocation_witness(sig: bytes, revocation_pubkey: bytes, witness_script: bytes) -> Witness:
    """Penalty spend of an HTLC output: ``<revocation_sig> <revocationpubkey>``."""
    return [sig, revocation_pubkey, witness_script]


def offered_htlc_preimage_witness(
    remote_sig: bytes, preimage: bytes, witness_script: bytes
) -> Witness:
    """Remote claims an offered HTLC: ``<remotehtlcsig> <payment_preimage>``."""
    return [remote_sig, preimage, witness_script]


def received_htlc_timeout_witness(remote_sig: bytes, witness_script: bytes) -> Witness:
    """Remote reclaims a received HTLC after ``cltv_expiry``: ``<remotehtlcsig> 0``."""
    return [remote_sig, b"", witness_script]


def htlc_timeout_witness(remote_sig: bytes, local_sig: bytes, witness_script: bytes) -> Witness:
    """HTLC-timeout input: ``0 <remotehtlcsig> <localhtlcsig> 0``."""
    return [b"", remote_sig, local_sig, b"", witness_script]


def htlc_success_witness(
    remote_sig: bytes, local_sig: bytes, preimage: bytes, witness_script: bytes
) -> Witness:
    """HTLC-success input: ``0 <remotehtlcsig> <localhtlcsig> <payment_preimage>``."""
    return [b"", remote_sig, local_sig, preimage, witness_script]
