"""The rules every state keeps, checked in one place."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from chenilles_hub.core import (
    MAX_AMOUNT,
    Asset,
    AssetBalances,
    ChannelParams,
    Htlc,
    check_params,
    check_state,
    check_successor,
)
from chenilles_hub.core.errors import (
    AmountOutOfRange,
    DuplicateHtlc,
    InvalidParams,
    InvariantViolation,
    NegativeAmount,
    NonConserving,
    StaleVersion,
    UnknownAsset,
    WrongChannel,
)

from .harness import CHANNEL_ID, ETH, Pair

pytestmark = pytest.mark.core

H = hashlib.sha256(b"preimage").digest()


@pytest.fixture
def ctx():
    pair = Pair.create()
    return pair.alice.machine.params, pair.alice.machine.initial


def _with(state, **changes):
    return msgspec.structs.replace(state, **changes)


def test_initial_state_is_valid(ctx) -> None:
    params, state = ctx
    check_state(params, CHANNEL_ID, state)


def test_state_of_another_channel_is_refused(ctx) -> None:
    params, state = ctx
    with pytest.raises(WrongChannel):
        check_state(params, b"\x00" * 32, state)


def test_negative_balance_is_refused(ctx) -> None:
    params, state = ctx
    bad = _with(state, balances=(AssetBalances(ETH, (-1, 2001)), state.balances[1]))
    with pytest.raises(NegativeAmount):
        check_state(params, CHANNEL_ID, bad)


def test_amount_above_uint256_is_refused(ctx) -> None:
    params, state = ctx
    bad = _with(state, balances=(AssetBalances(ETH, (MAX_AMOUNT + 1, 0)), state.balances[1]))
    with pytest.raises(AmountOutOfRange):
        check_state(params, CHANNEL_ID, bad)


def test_total_above_uint256_is_refused(ctx) -> None:
    params, state = ctx
    bad = _with(state, balances=(AssetBalances(ETH, (MAX_AMOUNT, 1)), state.balances[1]))
    with pytest.raises(AmountOutOfRange):
        check_state(params, CHANNEL_ID, bad)


def test_assets_must_be_the_channels_in_order(ctx) -> None:
    params, state = ctx
    with pytest.raises(UnknownAsset):
        check_state(params, CHANNEL_ID, _with(state, balances=state.balances[::-1]))
    other = Asset("test:ledger", "other")
    with pytest.raises(UnknownAsset):
        check_state(
            params,
            CHANNEL_ID,
            _with(state, balances=(state.balances[0], AssetBalances(other, (0, 0)))),
        )


def test_htlc_in_unknown_asset_is_refused(ctx) -> None:
    params, state = ctx
    htlc = Htlc(1, 0, Asset("test:ledger", "other"), 5, H, 10, 10)
    with pytest.raises(UnknownAsset):
        check_state(params, CHANNEL_ID, _with(state, htlcs=(htlc,)))


def test_duplicate_htlc_ids_are_refused(ctx) -> None:
    params, state = ctx
    htlc = Htlc(1, 0, ETH, 5, H, 10, 10)
    with pytest.raises(DuplicateHtlc):
        check_state(params, CHANNEL_ID, _with(state, htlcs=(htlc, htlc)))


def test_zero_htlc_is_refused(ctx) -> None:
    params, state = ctx
    with pytest.raises(AmountOutOfRange):
        check_state(params, CHANNEL_ID, _with(state, htlcs=(Htlc(1, 0, ETH, 0, H, 10, 10),)))


def test_final_state_cannot_lock_htlcs(ctx) -> None:
    params, state = ctx
    bad = _with(state, final=True, htlcs=(Htlc(1, 0, ETH, 5, H, 10, 10),))
    with pytest.raises(InvariantViolation):
        check_state(params, CHANNEL_ID, bad)


def test_successor_must_conserve_every_asset(ctx) -> None:
    params, state = ctx
    minted = _with(state, version=1, balances=(AssetBalances(ETH, (1000, 1001)), state.balances[1]))
    with pytest.raises(NonConserving):
        check_successor(params, CHANNEL_ID, state, minted)
    # Locking into an HTLC conserves: free balance moves into the lock.
    locked = _with(
        state,
        version=1,
        balances=(AssetBalances(ETH, (995, 1000)), state.balances[1]),
        htlcs=(Htlc(1, 0, ETH, 5, H, 10, 10),),
    )
    check_successor(params, CHANNEL_ID, state, locked)


@pytest.mark.parametrize("version", [0, 2, 10])
def test_successor_version_steps_by_exactly_one(ctx, version: int) -> None:
    params, state = ctx
    with pytest.raises(StaleVersion):
        check_successor(params, CHANNEL_ID, state, _with(state, version=version))


def test_params_reject_foreign_assets_and_twin_participants(ctx) -> None:
    params, _ = ctx
    with pytest.raises(InvalidParams):
        check_params(_with(params, assets=(ETH, Asset("other:chain", "native"))))
    with pytest.raises(InvalidParams):
        check_params(_with(params, assets=(ETH, ETH)))
    twin = (params.participants[0], params.participants[0])
    with pytest.raises(InvalidParams):
        check_params(msgspec.structs.replace(params, participants=twin))
    assert isinstance(params, ChannelParams)
