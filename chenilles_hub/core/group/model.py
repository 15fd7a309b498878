"""The N-party channel model: parameters, states and signed states of a group channel.

Immutable msgspec Structs with a canonical JSON encoding, as in ``core/model.py``. Only
balances move in an N-party channel (no HTLCs, no app data): every member's amount of every
asset, in member order, plus a version and a ``final`` flag. The on-chain encodings that the
group contracts verify are built by the backends from these values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec

from ..model import Amount, Asset, Bytes32, Participant, ShortText, Version

#: The most members a group channel may have. The contracts accept the same bound (EVM) or a
#: tighter one forced by the transaction size (Solana, see docs/solana.md).
MAX_MEMBERS = 16
MIN_MEMBERS = 2
MAX_GROUP_ASSETS = 4

Members = Annotated[
    tuple[Participant, ...], msgspec.Meta(min_length=MIN_MEMBERS, max_length=MAX_MEMBERS)
]
Amounts = Annotated[
    tuple[Amount, ...], msgspec.Meta(min_length=MIN_MEMBERS, max_length=MAX_MEMBERS)
]


class GroupParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What never changes during a group channel's life; the backend derives its id."""

    chain: ShortText
    members: Members
    assets: Annotated[tuple[Asset, ...], msgspec.Meta(min_length=1, max_length=MAX_GROUP_ASSETS)]
    challenge_duration: Annotated[int, msgspec.Meta(ge=1, le=365 * 86400)]
    nonce: Bytes32

    @property
    def size(self) -> int:
        return len(self.members)


class GroupBalances(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One asset's amounts, one per member, in member order."""

    asset: Asset
    amounts: Amounts


class GroupState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One version of a group channel. Only a state every member signed counts."""

    channel_id: Bytes32
    version: Version
    balances: Annotated[tuple[GroupBalances, ...], msgspec.Meta(max_length=MAX_GROUP_ASSETS)]
    final: bool = False

    def amounts(self, asset: Asset) -> tuple[int, ...]:
        for entry in self.balances:
            if entry.asset == asset:
                return entry.amounts
        raise KeyError(asset)

    def total(self, asset: Asset) -> int:
        return sum(self.amounts(asset))


class SignedGroupState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A state with one signature per member (``b""`` where still missing)."""

    state: GroupState
    signatures: Annotated[
        tuple[Annotated[bytes, msgspec.Meta(max_length=128)], ...],
        msgspec.Meta(min_length=MIN_MEMBERS, max_length=MAX_MEMBERS),
    ]

    @property
    def version(self) -> int:
        return self.state.version

    @property
    def complete(self) -> bool:
        return all(self.signatures)


def group_initial_state(
    channel_id: bytes, assets: tuple[Asset, ...], deposits: Mapping[Asset, tuple[int, ...]]
) -> GroupState:
    """Version 0: what each member will deposit. Signed by all before any funds move."""
    return GroupState(
        channel_id=channel_id,
        version=0,
        balances=tuple(GroupBalances(a, tuple(deposits[a])) for a in assets),
    )
