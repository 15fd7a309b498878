"""A chain-neutral ed25519 state authority.

It signs SHA-256 over a domain tag, the channel's chain and the canonical encoding of the
state, so a signature cannot be replayed on another channel (the channel id is inside the
state), another chain (the chain id is in the digest) or as another message type (the tag).
Backends whose ledgers check signatures on-chain bring their own authority in the form
their contract verifies; this one serves the core's tests and off-chain-only uses.
"""

from __future__ import annotations

import hashlib

import nacl.exceptions
import nacl.signing

from .core import ChannelParams, ChannelState, SignedState, canonical_state_bytes

_DOMAIN = b"chenilles/state/v1\x00"


def state_digest(params: ChannelParams, state: ChannelState) -> bytes:
    return hashlib.sha256(
        _DOMAIN + params.chain.encode() + b"\x00" + canonical_state_bytes(state)
    ).digest()


class Ed25519Authority:
    """Signs with one participant's ed25519 key; verifies against ``params`` chain keys
    (hex-encoded ed25519 public keys)."""

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._key = signing_key

    @property
    def public_key_hex(self) -> str:
        return self._key.verify_key.encode().hex()

    def sign(
        self, params: ChannelParams, state: ChannelState, previous: SignedState | None = None
    ) -> bytes:
        return self._key.sign(state_digest(params, state)).signature

    def verify(
        self,
        params: ChannelParams,
        state: ChannelState,
        signer: int,
        bundle: bytes,
        previous: SignedState | None = None,
    ) -> bool:
        try:
            key = nacl.signing.VerifyKey(bytes.fromhex(params.participants[signer].chain_key))
            key.verify(state_digest(params, state), bundle)
        except (ValueError, nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return False
        return True

    def revoke(self, params: ChannelParams, signed: SignedState) -> bytes | None:
        return None

    def verify_revocation(
        self, params: ChannelParams, signed: SignedState, signer: int, revocation: bytes | None
    ) -> bool:
        return revocation is None

    def native_expiry_ok(self, expiry: int, native_expiry: int) -> bool:
        return native_expiry <= expiry
