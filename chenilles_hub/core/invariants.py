"""The one place where the rules every channel state must keep are checked.

The update machine, the router and every backend call these functions instead of checking
money rules themselves, so a rule fixed here is fixed everywhere.
"""

from __future__ import annotations

from .errors import (
    AmountOutOfRange,
    BelowReserve,
    DuplicateHtlc,
    DustExposure,
    FeeUnaffordable,
    InvalidParams,
    InvariantViolation,
    NegativeAmount,
    NonConserving,
    StaleVersion,
    TooManyHtlcs,
    UnknownAsset,
    UnmineableState,
    WrongChannel,
)
from .model import MAX_AMOUNT, MAX_HTLCS, PARTICIPANTS, ChannelParams, ChannelState
from .rules import AssetRules, ChannelRules


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
            if not 0 <= amount <= MAX_AMOUNT:  # the message is built only on failure
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
        if not 0 <= htlc.amount <= MAX_AMOUNT:
            _check_amount(f"HTLC {htlc.id}", htlc.amount)
    for asset in params.assets:
        total = state.total(asset)
        if not 0 <= total <= MAX_AMOUNT:
            _check_amount(f"total of {asset}", total)
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


def check_rules(
    params: ChannelParams,
    rules: ChannelRules,
    new: ChannelState,
    old: ChannelState | None = None,
) -> None:
    """The backend's on-chain rules (see ``rules.py``) for ``new``, the successor of ``old``
    (``None`` for version 0). Checked before any signature on ``new`` is made or accepted:

    * fee: the fee payer can pay the fee of either participant's enforcement transaction;
    * reserve: a participant below the channel reserve (after the fee it pays) may only
      have gained since ``old``; a first state needs one participant at the reserve or
      above (BOLT 2: a side may start below it and fill up, never drain into it);
    * outputs: each participant's enforcement transaction keeps at least one output (a
      balance at the dust limit or above, or an HTLC above its trim threshold);
    * HTLCs: no more are locked than the ledger holds per state (``max_htlcs``), unless
      ``new`` locks no more than ``old``;
    * dust exposure: the HTLCs without an output add up to at most ``max_trimmed``, unless
      ``new`` holds no more of them than ``old`` (a cap lowered by a restart must not
      keep the HTLCs above it from being settled or failed).
    """
    locked = len(new.htlcs)
    if locked > rules.max_htlcs and (old is None or locked > len(old.htlcs)):
        # Only a state that adds an HTLC past the ledger's limit is refused: one that
        # settles or fails some of them, on a channel opened when the limit was higher,
        # moves towards it and must stay signable.
        raise TooManyHtlcs(
            f"this channel's ledger holds at most {rules.max_htlcs} HTLCs per state "
            f"({locked} would be locked)"
        )
    for asset_rules in rules.assets:
        if asset_rules.asset not in params.assets:
            raise InvalidParams(f"rules for {asset_rules.asset}, not an asset of this channel")
        _check_asset_rules(asset_rules, new, old)


def _after_fee(rules: AssetRules, state: ChannelState) -> tuple[int, ...]:
    """Each participant's balance less the fee it pays in the costlier transaction."""
    fee = max(rules.fee(state, owner) for owner in range(PARTICIPANTS))
    return tuple(
        amount - (fee if index == rules.fee_payer else 0)
        for index, amount in enumerate(state.free(rules.asset))
    )


def _check_asset_rules(rules: AssetRules, new: ChannelState, old: ChannelState | None) -> None:
    asset, payer = rules.asset, rules.fee_payer
    free = new.free(asset)
    fees = [rules.fee(new, owner) for owner in range(PARTICIPANTS)]
    for owner, fee in enumerate(fees):
        if payer is not None and free[payer] < fee:
            raise FeeUnaffordable(
                f"{asset}: participant {payer} holds {free[payer]}, the fee of "
                f"participant {owner}'s enforcement transaction is {fee}"
            )
    reserve = rules.reserve(new.total(asset))
    after = _after_fee(rules, new)
    if old is None:
        if all(amount < reserve for amount in after):
            raise BelowReserve(
                f"{asset}: no participant would hold the channel reserve of {reserve} "
                f"(balances after fees: {list(after)})"
            )
    else:
        before = _after_fee(rules, old)
        for index, amount in enumerate(after):
            if amount < reserve and amount < before[index]:
                raise BelowReserve(
                    f"{asset}: participant {index} would keep {amount}, below the channel "
                    f"reserve of {reserve} (it must keep what it holds of it)"
                )
    if rules.max_trimmed is not None:
        trimmed = rules.trimmed(new)
        if trimmed > rules.max_trimmed and (old is None or trimmed > rules.trimmed(old)):
            raise DustExposure(
                f"{asset}: HTLCs too small for an output would add up to {trimmed}, above "
                f"this node's cap of {rules.max_trimmed} (their value goes to fees if the "
                "channel closes on-chain)"
            )
    floor = max(rules.dust_limit, 1)
    for owner, fee in enumerate(fees):
        left = [amount - (fee if index == payer else 0) for index, amount in enumerate(free)]
        outputs = rules.outputs_htlcs(new, owner) + sum(1 for a in left if a >= floor)
        if outputs == 0:
            raise UnmineableState(
                f"{asset}: participant {owner}'s enforcement transaction of version "
                f"{new.version} would have no output (everything is fees, dust or trimmed "
                "HTLCs)"
            )
