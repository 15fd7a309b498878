"""The money rules of a group channel, checked in the core, and what signs its states.

Same rules as the two-party channel (``core/invariants.py``): balances list exactly the
channel's assets in order, one amount per member, nothing negative or above 2**256-1, and
every successor conserves each asset's total. One difference, on purpose: a successor's
version must be *greater* than its base's, not exactly one more. A version at which two
members proposed at once is abandoned by everyone (see ``machine.py``) and the next
proposal takes the version after it; the contracts only ever compare versions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..errors import (
    AmountOutOfRange,
    ChannelFinal,
    InvalidParams,
    InvariantViolation,
    NonConserving,
    StaleVersion,
    UnknownAsset,
    WrongChannel,
)
from ..model import MAX_AMOUNT
from .model import MAX_MEMBERS, MIN_MEMBERS, GroupParams, GroupState


class GroupAuthority(Protocol):
    """Signs and verifies group states in the encoding one chain's contract verifies.

    Provided by a backend (``chenilles_evm.group``, ``chenilles_solana.group``); the core
    never sees a key or a hash function.
    """

    def sign(self, state: GroupState) -> bytes:
        """This member's signature on ``state``."""
        ...

    def verify(self, state: GroupState, member: int, signature: bytes) -> bool:
        """Whether ``signature`` is member ``member``'s valid signature on ``state``."""
        ...


#: A member's decision on a proposal: ``None`` to sign, else the reason it refuses.
#: Arguments: (my index, the proposer's index, the base state, the proposed state).
GroupPolicy = Callable[[int, int, GroupState, GroupState], str | None]


def no_loss_policy(me: int, proposer: int, old: GroupState, new: GroupState) -> str | None:
    """The default: a member signs any conserving successor in which it loses nothing,
    unless it proposed it (a member may only give away its own money)."""
    if me == proposer:
        return None
    for before, after in zip(old.balances, new.balances, strict=True):
        if after.amounts[me] < before.amounts[me]:
            return (
                f"{after.asset}: member {me} would go from {before.amounts[me]} to "
                f"{after.amounts[me]} in a proposal of member {proposer}"
            )
    return None


def check_group_params(params: GroupParams, max_members: int = MAX_MEMBERS) -> None:
    """``max_members`` is the backend's own bound (``max_group_members``)."""
    n = len(params.members)
    if not MIN_MEMBERS <= n <= max_members:
        raise InvalidParams(
            f"a group channel on {params.chain} has {MIN_MEMBERS} to {max_members} members, not {n}"
        )
    if len(set(params.assets)) != len(params.assets):
        raise InvalidParams("an asset is listed twice")
    for asset in params.assets:
        if asset.chain != params.chain:
            raise InvalidParams(f"asset {asset} is not on the channel's chain {params.chain}")
    keys = [m.chain_key for m in params.members]
    nodes = [m.node_id for m in params.members]
    if len(set(keys)) != n or len(set(nodes)) != n:
        raise InvalidParams("members must have distinct keys and node ids")


def check_group_state(params: GroupParams, channel_id: bytes, state: GroupState) -> None:
    """Rules that hold for any single state."""
    if state.channel_id != channel_id:
        raise WrongChannel(
            f"state is for channel {state.channel_id.hex()}, expected {channel_id.hex()}"
        )
    listed = tuple(entry.asset for entry in state.balances)
    if listed != params.assets:
        raise UnknownAsset(
            f"balances must list exactly the channel's assets, in order: got "
            f"{[str(a) for a in listed]}, expected {[str(a) for a in params.assets]}"
        )
    for entry in state.balances:
        if len(entry.amounts) != params.size:
            raise InvariantViolation(f"{entry.asset}: one amount per member expected")
        if any(a < 0 for a in entry.amounts):
            raise InvariantViolation(f"{entry.asset}: a negative amount")
        if max(entry.amounts) > MAX_AMOUNT or sum(entry.amounts) > MAX_AMOUNT:
            raise AmountOutOfRange(f"{entry.asset}: an amount or the total exceeds 2**256-1")


def check_group_successor(
    params: GroupParams, channel_id: bytes, old: GroupState, new: GroupState
) -> None:
    """Rules between a fully signed state and a proposed successor."""
    check_group_state(params, channel_id, new)
    if old.final:
        raise ChannelFinal(f"version {old.version} is final: nothing follows it")
    if new.version <= old.version:
        raise StaleVersion(f"version {new.version} does not follow {old.version}")
    for before, after in zip(old.balances, new.balances, strict=True):
        if sum(before.amounts) != sum(after.amounts):
            raise NonConserving(
                f"{after.asset}: total would change from {sum(before.amounts)} to "
                f"{sum(after.amounts)}"
            )
