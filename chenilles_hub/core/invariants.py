"""The one place where the rules every channel state must keep are checked.

The update machine, the router and every backend call these functions instead of checking
money rules themselves, so a rule fixed here is fixed everywhere.
"""

from __future__ import annotations

from .errors import (
    AmountOutOfRange,
    DuplicateHtlc,
    InvalidParams,
    InvariantViolation,
    NegativeAmount,
    NonConserving,
    StaleVersion,
    TooManyHtlcs,
    UnknownAsset,
    WrongChannel,
)
from .model import MAX_AMOUNT, MAX_HTLCS, PARTICIPANTS, ChannelParams, ChannelState


def check_params(params: ChannelParams) -> None:
    if len(params.participants) != PARTICIPANTS:
        raise InvalidParams(f"a channel has exactly {PARTICIPANTS} participants")
    if len(set(params.assets)) != len(params.assets):
        raise InvalidParams("an asset is listed twice")
    for asset in params.assets:
        if asset.chain != params.chain:
            raise InvalidParams(f"asset {asset} is not on the channel's chain {params.chain}")
    keys = [p.chain_key for p in params.participants]
    nodes = [p.node_id for p in params.participants]
    if len(set(keys)) != len(keys) or len(set(nodes)) != len(nodes):
        raise InvalidParams("participants must have distinct keys and node ids")


def _check_amount(what: str, amount: int) -> None:
    if amount < 0:
        raise NegativeAmount(f"{what} is negative ({amount})")
    if amount > MAX_AMOUNT:
        raise AmountOutOfRange(f"{what} exceeds 2**256-1")


def check_state(params: ChannelParams, channel_id: bytes, state: ChannelState) -> None:
    """Rules that hold for any single state, regardless of its history."""
    if state.channel_id != channel_id:
        raise WrongChannel(
            f"state is for channel {state.channel_id.hex()}, expected {channel_id.hex()}"
        )
    listed = tuple(entry.asset for entry in state.balances)
    if listed != params.assets:
        raise UnknownAsset(
            "balances must list exactly the channel's assets, in order: "
            f"got {[str(a) for a in listed]}, expected {[str(a) for a in params.assets]}"
        )
    for entry in state.balances:
        if len(entry.amounts) != PARTICIPANTS:
            raise InvariantViolation(f"{entry.asset}: one amount per participant expected")
        for index, amount in enumerate(entry.amounts):
            _check_amount(f"balance of participant {index} in {entry.asset}", amount)
    if len(state.htlcs) > MAX_HTLCS:
        raise TooManyHtlcs(f"at most {MAX_HTLCS} HTLCs may be locked at once")
    seen: set[int] = set()
    for htlc in state.htlcs:
        if htlc.id in seen:
            raise DuplicateHtlc(f"HTLC id {htlc.id} appears twice")
        seen.add(htlc.id)
        if htlc.asset not in params.assets:
            raise UnknownAsset(f"HTLC {htlc.id} locks {htlc.asset}, not an asset of this channel")
        if not 0 <= htlc.payer < PARTICIPANTS:
            raise InvariantViolation(f"HTLC {htlc.id}: payer index {htlc.payer} out of range")
        if htlc.amount == 0:
            raise AmountOutOfRange(f"HTLC {htlc.id} locks nothing")
        _check_amount(f"HTLC {htlc.id}", htlc.amount)
    for asset in params.assets:
        _check_amount(f"total of {asset}", state.total(asset))
    if state.final and state.htlcs:
        raise InvariantViolation("a final state cannot carry locked HTLCs")


def check_successor(
    params: ChannelParams, channel_id: bytes, old: ChannelState, new: ChannelState
) -> None:
    """Rules between consecutive states: versions step by one and no money appears or vanishes."""
    check_state(params, channel_id, new)
    if new.version != old.version + 1:
        raise StaleVersion(f"version {new.version} does not follow {old.version}")
    for asset in params.assets:
        before, after = old.total(asset), new.total(asset)
        if before != after:
            raise NonConserving(
                f"{asset}: total would change from {before} to {after} (balances + locked HTLCs "
                "must equal what the ledger holds)"
            )
