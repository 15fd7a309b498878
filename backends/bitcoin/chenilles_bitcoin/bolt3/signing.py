"""Signing and verification of BOLT 3 transactions (segwit v0, SIGHASH_ALL).

Signatures come from coincurve (libsecp256k1): RFC 6979 deterministic nonces and
low-s, so the same inputs give the same bytes as the BOLT 3 vectors and as other
Lightning implementations.  python-bitcoinlib's own signer is not used: it goes
through OpenSSL with random nonces.  On the wire (BOLT 2) a signature travels
without its sighash byte; in a witness it carries ``0x01`` (SIGHASH_ALL).
"""

from __future__ import annotations

from bitcoin.core import CTransaction
from bitcoin.core.script import SIGHASH_ALL
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from coincurve.ecdsa import cdata_to_der

from .errors import InvalidKeyError, InvalidSignatureError
from .keys import CURVE_ORDER, _pub
from .txutil import SegwitV0Sighash

_HALF_ORDER = CURVE_ORDER // 2


def sighash_all(tx: CTransaction, input_index: int, witness_script: bytes, amount: int) -> bytes:
    """BIP 143 digest of ``tx`` input ``input_index`` spending ``amount`` sat.

    For several digests of one transaction, keep a :class:`SegwitV0Sighash` instead.
    """
    return SegwitV0Sighash(tx).digest(input_index, bytes(witness_script), amount)


def sign_digest(privkey: bytes, digest: bytes) -> bytes:
    """DER signature (low-s, RFC 6979) of a 32-byte digest, without sighash byte.

    libsecp256k1's ``secp256k1_ecdsa_sign`` with its default nonce function (RFC 6979), as
    ``coincurve.PrivateKey.sign`` calls it, minus the two public-key multiplications that
    building a ``PrivateKey`` costs (a key is used once per commitment here).
    """
    if len(privkey) != 32:
        raise InvalidKeyError("private key must be 32 bytes")
    if len(digest) != 32:
        raise ValueError("the digest must be 32 bytes")
    sig = ffi.new("secp256k1_ecdsa_signature *")
    if not lib.secp256k1_ecdsa_sign(GLOBAL_CONTEXT.ctx, sig, digest, privkey, ffi.NULL, ffi.NULL):
        raise InvalidKeyError("private key is out of range for secp256k1")
    return bytes(cdata_to_der(sig))


def sign_input(
    privkey: bytes, tx: CTransaction, input_index: int, witness_script: bytes, amount: int
) -> bytes:
    """DER signature of one input under SIGHASH_ALL (no sighash byte)."""
    return sign_digest(privkey, sighash_all(tx, input_index, witness_script, amount))


def with_sighash(der_sig: bytes) -> bytes:
    """Append the SIGHASH_ALL byte, as a signature appears in a witness."""
    return der_sig + bytes([SIGHASH_ALL])


def _parse_der(sig: bytes) -> tuple[int, int]:
    """Strict DER parse (BIP 66 shape) returning (r, s); raises on anything else."""
    if len(sig) < 8 or len(sig) > 72 or sig[0] != 0x30 or sig[1] != len(sig) - 2:
        raise InvalidSignatureError("signature is not strict DER")
    rlen = sig[3]
    if sig[2] != 0x02 or 5 + rlen >= len(sig) or sig[4 + rlen] != 0x02:
        raise InvalidSignatureError("signature is not strict DER")
    slen = sig[5 + rlen]
    if 6 + rlen + slen != len(sig):
        raise InvalidSignatureError("signature is not strict DER")
    r_bytes, s_bytes = sig[4 : 4 + rlen], sig[6 + rlen :]
    for part in (r_bytes, s_bytes):
        if not part or part[0] & 0x80 or (len(part) > 1 and part[0] == 0 and not part[1] & 0x80):
            raise InvalidSignatureError("signature integer is not minimally encoded")
    return int.from_bytes(r_bytes, "big"), int.from_bytes(s_bytes, "big")


def verify_digest(pubkey: bytes, digest: bytes, der_sig: bytes) -> bool:
    """True if ``der_sig`` is strict-DER, low-s and valid for ``pubkey`` over ``digest``."""
    try:
        r, s = _parse_der(der_sig)
    except InvalidSignatureError:
        return False
    if not (0 < r < CURVE_ORDER and 0 < s <= _HALF_ORDER):
        return False
    try:
        return bool(_pub(pubkey).verify(der_sig, digest, hasher=None))
    except Exception:
        return False


def verify_input(
    pubkey: bytes,
    tx: CTransaction,
    input_index: int,
    witness_script: bytes,
    amount: int,
    der_sig: bytes,
) -> bool:
    """True if ``der_sig`` (no sighash byte) signs input ``input_index`` for ``pubkey``."""
    return verify_digest(pubkey, sighash_all(tx, input_index, witness_script, amount), der_sig)


def check_digest_signature(pubkey: bytes, digest: bytes, der_sig: bytes, what: str) -> None:
    """Raise :class:`InvalidSignatureError` unless ``der_sig`` signs ``digest`` for ``pubkey``."""
    if not verify_digest(pubkey, digest, der_sig):
        raise InvalidSignatureError(f"invalid signature for {what} by {pubkey.hex()}")


def check_input_signature(
    pubkey: bytes,
    tx: CTransaction,
    input_index: int,
    witness_script: bytes,
    amount: int,
    der_sig: bytes,
) -> None:
    """Like :func:`verify_input` but raises :class:`InvalidSignatureError`.

    Use it on every signature a peer sends before persisting a state that relies on it.
    """
    if not verify_input(pubkey, tx, input_index, witness_script, amount, der_sig):
        raise InvalidSignatureError(f"invalid signature for input {input_index} by {pubkey.hex()}")


def compact_from_der(der_sig: bytes) -> bytes:
    """64-byte compact (r || s) form used by BOLT 2 messages."""
    r, s = _parse_der(der_sig)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def der_from_compact(compact: bytes) -> bytes:
    """DER form of a 64-byte compact signature (for witnesses and verification)."""
    if len(compact) != 64:
        raise InvalidSignatureError("compact signature must be 64 bytes")

    def _int(b: bytes) -> bytes:
        b = b.lstrip(b"\x00") or b"\x00"
        return b"\x00" + b if b[0] & 0x80 else b

    r, s = _int(compact[:32]), _int(compact[32:])
    body = b"\x02" + bytes([len(r)]) + r + b"\x02" + bytes([len(s)]) + s
    return b"\x30" + bytes([len(body)]) + body
