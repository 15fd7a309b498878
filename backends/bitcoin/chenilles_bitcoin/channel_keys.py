"""Per-channel keys derived from one account secret, and the participant key that carries them.

Why this shape: a Lightning peer must learn five public keys (funding key, four basepoints)
and a first per-commitment point before it can sign anything. ``Participant.chain_key`` holds
at most 200 characters, so only the funding key and the first point travel; every basepoint
is derived *publicly* from the funding key (``basepoint = funding_pub + H(tag || funding_pub)·G``,
secret ``funding_secret + H(...)``), which either side can compute.

The key material of a channel cannot depend on the channel nonce: on Bitcoin the nonce is
the funding txid, which itself commits to both funding keys. So the node's opening salt
picks the keys instead: a 16-byte *derivation tag* ``H(salt)[:16]`` is the third part of the
participant key, ``"<funding pubkey>:<per-commitment point 0>:<tag>"`` (all hex, 166 chars).
The account can re-derive every secret of the channel from its own secret and that tag, so
nothing per channel needs to be stored to sign (restart-safe), and two channels of one
account never share a key or a per-commitment seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from coincurve import PublicKey

from .bolt3 import (
    InvalidKeyError,
    ShachainCursor,
    per_commitment_point,
    per_commitment_secret,
    pubkey_from_secret,
)
from .bolt3.keys import CURVE_ORDER

TAG_BYTES = 16
MAX_VERSION = (1 << 48) - 2  # shachain: 2**48 indexes, and each bundle carries point v + 1
BASEPOINTS = ("revocation", "payment", "delayed_payment", "htlc")
#: Per-commitment (secret, point) pairs a ChannelSecrets remembers: a state's point is
#: announced as ``next_point`` one version earlier, signed and verified with, then revoked.
_KEEP_COMMITMENTS = 8
_DOMAIN = b"chenilles/bitcoin/"


def _sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def derivation_tag(salt: bytes) -> bytes:
    """The public tag that selects one channel's keys among an account's."""
    return _sha256(_DOMAIN, b"tag", salt)[:TAG_BYTES]


def _tweak(name: str, funding_pubkey: bytes) -> bytes:
    return _sha256(_DOMAIN, b"basepoint/", name.encode(), funding_pubkey)


def public_basepoint(name: str, funding_pubkey: bytes) -> bytes:
    """``funding_pub + H(name || funding_pub)·G``: what the peer computes for our basepoint."""
    try:
        return PublicKey(funding_pubkey).add(_tweak(name, funding_pubkey)).format(compressed=True)
    except Exception as exc:  # coincurve raises ValueError/TypeError variants
        raise InvalidKeyError(f"invalid funding key {funding_pubkey.hex()}") from exc


@dataclass(frozen=True)
class ChannelPublicKeys:
    """One participant's public keys in one channel, as parsed from its participant key."""

    funding_pubkey: bytes
    first_point: bytes
    tag: bytes

    @cached_property
    def revocation_basepoint(self) -> bytes:
        return public_basepoint("revocation", self.funding_pubkey)

    @cached_property
    def payment_basepoint(self) -> bytes:
        return public_basepoint("payment", self.funding_pubkey)

    @cached_property
    def delayed_payment_basepoint(self) -> bytes:
        return public_basepoint("delayed_payment", self.funding_pubkey)

    @cached_property
    def htlc_basepoint(self) -> bytes:
        return public_basepoint("htlc", self.funding_pubkey)

    @property
    def chain_key(self) -> str:
        return f"{self.funding_pubkey.hex()}:{self.first_point.hex()}:{self.tag.hex()}"


def parse_chain_key(chain_key: str) -> ChannelPublicKeys:
    """Parse ``"<funding>:<point0>:<tag>"``, followed in a key that carries the opener's
    fee policy by its four fields (read by ``policy.policy_in_key``); raises
    :class:`InvalidKeyError` on anything else."""
    parts = chain_key.split(":")
    if len(parts) not in (3, 7):
        raise InvalidKeyError(f"a Bitcoin participant key has 3 or 7 parts, got {len(parts)}")
    try:
        funding, point, tag = (bytes.fromhex(p) for p in parts[:3])
    except ValueError as exc:
        raise InvalidKeyError("participant key is not hex") from exc
    if len(tag) != TAG_BYTES:
        raise InvalidKeyError(f"derivation tag must be {TAG_BYTES} bytes")
    for key in (funding, point):
        if len(key) != 33:
            raise InvalidKeyError("participant key points must be 33-byte compressed")
        try:
            PublicKey(key)
        except Exception as exc:
            raise InvalidKeyError(f"{key.hex()} is not on secp256k1") from exc
    return ChannelPublicKeys(funding, point, tag)


def _secret(*parts: bytes) -> bytes:
    """A valid secp256k1 scalar from a hash (re-hash in the ~2**-128 case it is not)."""
    digest = _sha256(*parts)
    while not 0 < int.from_bytes(digest, "big") < CURVE_ORDER:
        digest = _sha256(digest)
    return digest


def _add_scalars(a: bytes, b: bytes) -> bytes:
    value = (int.from_bytes(a, "big") + int.from_bytes(b, "big")) % CURVE_ORDER
    if value == 0:
        raise InvalidKeyError("derived secret is zero")
    return value.to_bytes(32, "big")


@dataclass(frozen=True)
class ChannelSecrets:
    """Every secret of one participant in one channel (never leaves the process)."""

    funding_secret: bytes
    seed: bytes
    public: ChannelPublicKeys
    _commitments: dict[int, tuple[bytes, bytes]] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False
    )
    _cursor: ShachainCursor = field(init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cursor", ShachainCursor(self.seed))

    def basepoint_secret(self, name: str) -> bytes:
        return _add_scalars(self.funding_secret, _tweak(name, self.public.funding_pubkey))

    @cached_property
    def revocation_secret(self) -> bytes:
        return self.basepoint_secret("revocation")

    @cached_property
    def payment_secret(self) -> bytes:
        return self.basepoint_secret("payment")

    @cached_property
    def delayed_payment_secret(self) -> bytes:
        return self.basepoint_secret("delayed_payment")

    @cached_property
    def htlc_secret(self) -> bytes:
        return self.basepoint_secret("htlc")

    def _commitment(self, version: int) -> tuple[bytes, bytes]:
        """(secret, point) of commitment ``version``, remembered for the last few versions:
        every state needs its version's point several times (in the previous bundle, to
        sign, to verify) and its secret once more (to revoke), and each point costs a
        multiplication. Secrets come from a shachain cursor: consecutive versions cost about
        two SHA-256 instead of up to 48."""
        cached = self._commitments.get(version)
        if cached is None:
            if not 0 <= version <= MAX_VERSION + 1:
                raise InvalidKeyError(
                    f"version {version} is beyond the 2**48 commitments of BOLT 3"
                )
            secret = self._cursor.commitment_secret(version)
            cached = (secret, per_commitment_point(secret))
            if len(self._commitments) >= _KEEP_COMMITMENTS:
                del self._commitments[min(self._commitments)]
            self._commitments[version] = cached
        return cached

    def commitment_secret(self, version: int) -> bytes:
        """Per-commitment secret of commitment number ``version`` (shachain index 2**48-1-v)."""
        return self._commitment(version)[0]

    def commitment_point(self, version: int) -> bytes:
        return self._commitment(version)[1]


def derive_secrets(account_secret: bytes, tag: bytes) -> ChannelSecrets:
    """The channel keys an account uses under derivation tag ``tag``."""
    funding = _secret(_DOMAIN, b"funding", account_secret, tag)
    seed = _sha256(_DOMAIN, b"shachain", account_secret, tag)
    public = ChannelPublicKeys(
        pubkey_from_secret(funding), per_commitment_point(per_commitment_secret(seed, 0)), tag
    )
    return ChannelSecrets(funding, seed, public)


def secrets_for(account_secret: bytes, chain_key: str) -> ChannelSecrets | None:
    """The account's secrets behind ``chain_key``, or ``None`` if that key is not this account's."""
    try:
        public = parse_chain_key(chain_key)
    except InvalidKeyError:
        return None
    secrets = derive_secrets(account_secret, public.tag)
    return secrets if secrets.public == public else None


__all__ = [
    "BASEPOINTS",
    "MAX_VERSION",
    "ChannelPublicKeys",
    "ChannelSecrets",
    "derivation_tag",
    "derive_secrets",
    "parse_chain_key",
    "public_basepoint",
    "secrets_for",
]
