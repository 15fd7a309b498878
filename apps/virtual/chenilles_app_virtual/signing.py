"""How V's states are signed: secp256k1 over a keccak digest, so that ``ecrecover`` (EVM)
and the ``sol_secp256k1_recover`` syscall (Solana) check the same signature."""

from __future__ import annotations

import coincurve
from eth_hash.auto import keccak as _keccak
from eth_utils.address import to_checksum_address

#: Domain tag of a V state's digest (the contract's ``bytes32("chenilles.virtual.state.v1")``).
STATE_TAG = b"chenilles.virtual.state.v1".ljust(32, b"\0")


def keccak(data: bytes) -> bytes:
    return bytes(_keccak(data))


def state_digest(vid: bytes, version: int, amounts: tuple[int, int], final: bool) -> bytes:
    """What both V keys sign: keccak256(abi.encode(TAG, vid, version, a0, a1, final))."""
    return keccak(
        STATE_TAG
        + vid
        + version.to_bytes(32, "big")
        + amounts[0].to_bytes(32, "big")
        + amounts[1].to_bytes(32, "big")
        + int(final).to_bytes(32, "big")
    )


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """r | s | v (v = 27 or 28), as ``ecrecover`` takes it."""
    sig = coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def recover(digest: bytes, signature: bytes) -> bytes | None:
    """The 20-byte address that signed ``digest``, or ``None`` (as ``ecrecover``'s 0)."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        return None
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), digest, hasher=None
        )
    except (ValueError, TypeError):
        return None
    return keccak(public.format(compressed=False)[1:])[12:]


def address_bytes(address: str) -> bytes:
    return bytes.fromhex(address.removeprefix("0x"))


def address_of(private_key: bytes) -> str:
    public = coincurve.PrivateKey(private_key).public_key.format(compressed=False)[1:]
    return str(to_checksum_address(keccak(public)[12:]))
