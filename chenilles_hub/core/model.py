"""The chain-agnostic channel model.

Everything here is an immutable msgspec Struct: values can be shared between the machine,
the store and the wire without defensive copies, and the JSON encoding of a Struct is
canonical (fields in declaration order, no whitespace), so two parties that hold equal
states hold byte-equal encodings.

Money is always a Python ``int`` in the asset's base unit (wei, satoshi, lamport, token
unit). The decoder refuses floats; the upper bound (``MAX_AMOUNT``) is checked by the
invariants module, because msgspec cannot express bounds past 64 bits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated

import msgspec

Bytes32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Amount = Annotated[int, msgspec.Meta(ge=0)]
Version = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
UnixTime = Annotated[int, msgspec.Meta(ge=0, le=2**40)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=96)]

#: The largest amount any chain we speak can hold in one balance (EVM's uint256).
MAX_AMOUNT = 2**256 - 1
#: Two-party channels here; channels of N members are ``core/group`` (beside this model).
PARTICIPANTS = 2
MAX_ASSETS = 8
MAX_HTLCS = 32
MAX_APP_DATA = 4096
PREIMAGE_LENGTH = 32
#: Bound on the sealed routing instructions an HTLC carries (20 hops of ~300 bytes).
MAX_ONION = 8192


class Asset(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, order=True):
    """An asset is a token on one chain; the same token on two chains is two assets.

    ``chain`` follows CAIP-2 (``eip155:1``, ``bip122:regtest``, ``solana:localnet``);
    ``token`` is ``native`` for the chain's own coin, else the chain's token identifier.
    """

    chain: ShortText
    token: ShortText

    def __str__(self) -> str:
        return f"{self.token}@{self.chain}"


def parse_asset(text: str) -> Asset:
    """The inverse of ``str(asset)``: ``token@chain``, e.g. ``native@eip155:31337``."""
    token, sep, chain = text.rpartition("@")
    if not sep or not token or not chain:
        raise ValueError(f"an asset is written token@chain (e.g. native@eip155:1), not {text!r}")
    return Asset(chain, token)


class Participant(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """A channel member: its key on the channel's chain and the node that speaks for it."""

    chain_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    node_id: Bytes32


class ChannelParams(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """What never changes during a channel's life; the backend derives the channel id."""

    chain: ShortText
    participants: Annotated[tuple[Participant, ...], msgspec.Meta(min_length=2, max_length=2)]
    assets: Annotated[tuple[Asset, ...], msgspec.Meta(min_length=1, max_length=MAX_ASSETS)]
    challenge_duration: Annotated[int, msgspec.Meta(ge=1, le=365 * 86400)]
    nonce: Bytes32
    app: Annotated[str, msgspec.Meta(max_length=96)] = ""


class AssetBalances(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """Free (unlocked) balance of one asset, one amount per participant, in params order."""

    asset: Asset
    amounts: Annotated[tuple[Amount, ...], msgspec.Meta(min_length=2, max_length=2)]


class Htlc(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """A hash-time-locked conditional payment from ``payer`` to the other participant.

    ``expiry`` is absolute unix seconds, the unit every chain can be mapped onto;
    ``native_expiry`` is the backend's own unit (block height, timestamp, slot) computed
    from it by the channel's backend with a safety margin, so both parties sign the exact
    value their ledger will enforce.
    """

    id: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    payer: Annotated[int, msgspec.Meta(ge=0, le=PARTICIPANTS - 1)]
    asset: Asset
    amount: Amount
    payment_hash: Bytes32
    expiry: UnixTime
    native_expiry: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

    @property
    def payee(self) -> int:
        return 1 - self.payer


class ChannelState(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """One version of a channel. Only a state every participant signed counts."""

    channel_id: Bytes32
    version: Version
    balances: Annotated[tuple[AssetBalances, ...], msgspec.Meta(max_length=MAX_ASSETS)]
    htlcs: Annotated[tuple[Htlc, ...], msgspec.Meta(max_length=MAX_HTLCS)] = ()
    app_data: Annotated[bytes, msgspec.Meta(max_length=MAX_APP_DATA)] = b""
    final: bool = False

    def free(self, asset: Asset) -> tuple[int, ...]:
        for entry in self.balances:
            if entry.asset == asset:
                return entry.amounts
        raise KeyError(asset)

    def locked(self, asset: Asset) -> int:
        if not self.htlcs:  # most states: no generator to set up (checked per state)
            return 0
        return sum(h.amount for h in self.htlcs if h.asset == asset)

    def total(self, asset: Asset) -> int:
        """What the ledger holds for this asset: free balances plus locked HTLCs."""
        return sum(self.free(asset)) + self.locked(asset)

    def htlc(self, htlc_id: int) -> Htlc | None:
        for h in self.htlcs:
            if h.id == htlc_id:
                return h
        return None


class SignedState(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """A state with one signature bundle per participant (``b""`` where still missing)."""

    state: ChannelState
    signatures: tuple[bytes, ...]

    @property
    def version(self) -> int:
        return self.state.version

    @property
    def complete(self) -> bool:
        return all(self.signatures)


def payment_hash(preimage: bytes) -> bytes:
    """SHA-256: the one hash every target chain (EVM, Bitcoin, Solana) computes on-chain."""
    return hashlib.sha256(preimage).digest()


def initial_state(
    channel_id: bytes, assets: tuple[Asset, ...], deposits: Mapping[Asset, tuple[int, ...]]
) -> ChannelState:
    """Version 0: what each participant will fund. Signed before any funds move."""
    return ChannelState(
        channel_id=channel_id,
        version=0,
        balances=tuple(AssetBalances(a, tuple(deposits.get(a, (0, 0)))) for a in assets),
    )
