"""BOLT 3 key derivation ("Keys" section, Appendix E).

Every commitment uses fresh keys derived from long-lived basepoints and the
commitment's ``per_commitment_point``, so that a watchtower can be given what it
needs to punish a revoked commitment without learning which transactions belong
to the channel.  All keys are 33-byte compressed SEC1 encodings and secrets are
32-byte big-endian scalars.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from coincurve import PublicKey

from .errors import InvalidKeyError

#: Order of the secp256k1 group.
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _scalar(data: bytes) -> int:
    """Interpret 32 bytes as a scalar; refuse zero and values >= n (not valid secrets)."""
    if len(data) != 32:
        raise InvalidKeyError(f"secret must be 32 bytes, got {len(data)}")
    value = int.from_bytes(data, "big")
    if not 0 < value < CURVE_ORDER:
        raise InvalidKeyError("secret is out of range for secp256k1")
    return value


def _to_bytes(scalar: int) -> bytes:
    scalar %= CURVE_ORDER
    if scalar == 0:
        raise InvalidKeyError("derived secret is zero")
    return scalar.to_bytes(32, "big")


@lru_cache(maxsize=512)
def _pub(pubkey: bytes) -> PublicKey:
    """Parse a compressed point (a square root: worth remembering for basepoints, which every
    commitment uses). The ``PublicKey`` is shared: callers must not mutate it (``update=True``).
    """
    if len(pubkey) != 33:
        raise InvalidKeyError(f"public key must be 33-byte compressed, got {len(pubkey)}")
    try:
        return PublicKey(pubkey)
    except Exception as exc:  # coincurve raises ValueError/TypeError variants
        raise InvalidKeyError(f"invalid public key {pubkey.hex()}") from exc


def check_point(point: bytes) -> None:
    """Raise :class:`InvalidKeyError` unless ``point`` is a compressed secp256k1 point.

    The parse is remembered, so a peer's next per-commitment point checked on arrival is
    not parsed again when its commitment keys are derived.
    """
    _pub(point)


def pubkey_from_secret(secret: bytes) -> bytes:
    """Compressed public key (``secret * G``) of a 32-byte secret.

    ``PublicKey.from_valid_secret`` after our own range check: ``PrivateKey(secret)`` would
    also compute the x-only key, a second multiplication nothing here uses.
    """
    _scalar(secret)
    return PublicKey.from_valid_secret(secret).format(compressed=True)


def per_commitment_point(per_commitment_secret: bytes) -> bytes:
    """``per_commitment_point = per_commitment_secret * G``."""
    return pubkey_from_secret(per_commitment_secret)


def _point_of_scalar(scalar: int, what: str) -> PublicKey:
    """``scalar * G`` (a fixed-base multiplication: cheaper than a tweak or a variable one)."""
    scalar %= CURVE_ORDER
    if scalar == 0:
        raise InvalidKeyError(f"{what} is the point at infinity")
    return PublicKey.from_valid_secret(scalar.to_bytes(32, "big"))


def derive_pubkey(
    basepoint: bytes, per_commitment_point: bytes, basepoint_secret: bytes | None = None
) -> bytes:
    """``basepoint + SHA256(per_commitment_point || basepoint) * G``.

    Used for ``localpubkey``/``remotepubkey``, the htlc pubkeys and the delayed pubkeys.
    A caller that holds ``basepoint_secret`` (``basepoint = basepoint_secret * G``) gets the
    same key as ``(basepoint_secret + tweak) * G``, one fixed-base multiplication.
    """
    base = _pub(basepoint)
    _pub(per_commitment_point)
    tweak = _sha256(per_commitment_point + basepoint)
    if basepoint_secret is not None:
        t = int.from_bytes(tweak, "big")
        if t >= CURVE_ORDER:  # refused like the tweak addition below refuses it
            raise InvalidKeyError("tweaked public key is invalid")
        return _point_of_scalar(_scalar(basepoint_secret) + t, "tweaked public key").format()
    try:
        return base.add(tweak).format(compressed=True)
    except Exception as exc:
        raise InvalidKeyError("tweaked public key is invalid") from exc


def derive_privkey(
    basepoint_secret: bytes, per_commitment_point: bytes, basepoint: bytes | None = None
) -> bytes:
    """``basepoint_secret + SHA256(per_commitment_point || basepoint)`` mod n.

    The private key matching :func:`derive_pubkey` for our own basepoints. ``basepoint`` is
    ``basepoint_secret * G`` when the caller already has it (it saves a multiplication).
    """
    if basepoint is None:
        basepoint = pubkey_from_secret(basepoint_secret)
    _pub(per_commitment_point)
    tweak = int.from_bytes(_sha256(per_commitment_point + basepoint), "big")
    return _to_bytes(_scalar(basepoint_secret) + tweak)


def derive_revocation_pubkey(
    revocation_basepoint: bytes,
    per_commitment_point: bytes,
    *,
    revocation_basepoint_secret: bytes | None = None,
    per_commitment_secret: bytes | None = None,
) -> bytes:
    """Blinded revocation key.

    ``revocation_basepoint * SHA256(revocation_basepoint || per_commitment_point)
    + per_commitment_point * SHA256(per_commitment_point || revocation_basepoint)``:
    neither side alone knows its private key until the per-commitment secret is revealed.
    Each side knows one of the two secrets, though: given, that term becomes a fixed-base
    multiplication (the same key, cheaper).
    """
    rb = _pub(revocation_basepoint)
    pcp = _pub(per_commitment_point)
    t1 = _sha256(revocation_basepoint + per_commitment_point)
    t2 = _sha256(per_commitment_point + revocation_basepoint)
    try:
        if revocation_basepoint_secret is not None:
            first = _point_of_scalar(_scalar(revocation_basepoint_secret) * _scalar(t1), "rb")
        else:
            first = rb.multiply(t1)
        if per_commitment_secret is not None:
            second = _point_of_scalar(_scalar(per_commitment_secret) * _scalar(t2), "pcp")
        else:
            second = pcp.multiply(t2)
        return PublicKey.combine_keys([first, second]).format(compressed=True)
    except Exception as exc:
        raise InvalidKeyError("revocation public key is invalid") from exc


def derive_revocation_privkey(
    revocation_basepoint_secret: bytes, per_commitment_secret: bytes
) -> bytes:
    """Private key of :func:`derive_revocation_pubkey`, once the remote revealed its secret."""
    rb = pubkey_from_secret(revocation_basepoint_secret)
    pcp = per_commitment_point(per_commitment_secret)
    t1 = int.from_bytes(_sha256(rb + pcp), "big")
    t2 = int.from_bytes(_sha256(pcp + rb), "big")
    return _to_bytes(
        _scalar(revocation_basepoint_secret) * t1 + _scalar(per_commitment_secret) * t2
    )
