"""Update operations: what each one does, and every way each one is refused."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from chenilles_hub.core import (
    AddHtlc,
    AppMove,
    Asset,
    ChannelParams,
    ChannelState,
    Close,
    FailHtlc,
    Htlc,
    HtlcPolicy,
    SettleHtlc,
    Transfer,
    UpdateContext,
    apply_updates,
)
from chenilles_hub.core.errors import (
    BadPreimage,
    ChannelFinal,
    DuplicateHtlc,
    ForeignHtlcId,
    HtlcNotExpired,
    InsufficientBalance,
    InvalidTransition,
    NotPermitted,
    UnknownApp,
    UnknownAsset,
    UnknownHtlc,
    UnsafeTimelock,
)

from .harness import ETH, NOW, Pair

pytestmark = pytest.mark.core

PREIMAGE = b"\x42" * 32
HASH = hashlib.sha256(PREIMAGE).digest()
#: The default HTLC's id (participant 0's ids are even).
ID = 2


def htlc(
    id: int | None = None, payer: int = 0, amount: int = 100, expiry: int = NOW + 7200
) -> Htlc:
    """An HTLC of ``payer``'s (id ``ID`` by default for payer 0: ids are the payer's
    modulo 2)."""
    return Htlc(ID + payer if id is None else id, payer, ETH, amount, HASH, expiry, expiry - 600)


@pytest.fixture
def base():
    pair = Pair.create()
    return pair.alice.machine.params, pair.alice.machine.initial


def ctx(params: ChannelParams, proposer: int = 0, now: int = NOW, **kw) -> UpdateContext:
    return UpdateContext(params=params, proposer=proposer, now=now, **kw)


def test_transfer_moves_money_from_proposer_to_peer(base) -> None:
    params, state = base
    new = apply_updates(state, (Transfer(ETH, 300),), ctx(params, proposer=1))
    assert new.free(ETH) == (1300, 700)
    assert new.version == state.version + 1


def test_transfer_beyond_balance_is_refused(base) -> None:
    params, state = base
    with pytest.raises(InsufficientBalance):
        apply_updates(state, (Transfer(ETH, 1001),), ctx(params))


def test_transfer_of_unknown_asset_is_refused(base) -> None:
    params, state = base
    with pytest.raises(UnknownAsset):
        apply_updates(state, (Transfer(Asset("test:ledger", "nope"), 1),), ctx(params))


def test_htlc_locks_then_settles_to_payee(base) -> None:
    params, state = base
    locked = apply_updates(state, (AddHtlc(htlc()),), ctx(params, proposer=0))
    assert locked.free(ETH) == (900, 1000) and locked.locked(ETH) == 100
    settled = apply_updates(locked, (SettleHtlc(ID, PREIMAGE),), ctx(params, proposer=1))
    assert settled.free(ETH) == (900, 1100) and not settled.htlcs


@pytest.mark.parametrize(
    "preimage",
    [b"\x41" * 32, PREIMAGE[:31], PREIMAGE + b"\x00", b""],
    ids=["wrong", "31", "33", "0"],
)
def test_settle_with_bad_preimage_is_refused(base, preimage: bytes) -> None:
    params, state = base
    locked = apply_updates(state, (AddHtlc(htlc()),), ctx(params))
    with pytest.raises(BadPreimage):
        apply_updates(locked, (SettleHtlc(ID, preimage),), ctx(params, proposer=1))


def test_payer_cannot_settle_to_itself(base) -> None:
    params, state = base
    locked = apply_updates(state, (AddHtlc(htlc()),), ctx(params))
    with pytest.raises(NotPermitted):
        apply_updates(locked, (SettleHtlc(ID, PREIMAGE),), ctx(params, proposer=0))


def test_fail_returns_funds_to_payer(base) -> None:
    params, state = base
    locked = apply_updates(state, (AddHtlc(htlc()),), ctx(params))
    failed = apply_updates(locked, (FailHtlc(ID, "no route"),), ctx(params, proposer=1))
    assert failed.free(ETH) == (1000, 1000)


def test_payer_may_fail_only_after_expiry(base) -> None:
    params, state = base
    locked = apply_updates(state, (AddHtlc(htlc(expiry=NOW + 7200)),), ctx(params))
    with pytest.raises(HtlcNotExpired):
        apply_updates(locked, (FailHtlc(ID),), ctx(params, proposer=0, now=NOW + 7199))
    failed = apply_updates(locked, (FailHtlc(ID),), ctx(params, proposer=0, now=NOW + 7200))
    assert failed.free(ETH) == (1000, 1000)


def test_unknown_htlc_is_refused(base) -> None:
    params, state = base
    with pytest.raises(UnknownHtlc):
        apply_updates(state, (FailHtlc(9),), ctx(params, proposer=1))


def test_only_the_payer_offers_an_htlc(base) -> None:
    params, state = base
    with pytest.raises(NotPermitted):
        apply_updates(state, (AddHtlc(htlc(payer=1)),), ctx(params, proposer=0))


def test_duplicate_htlc_id_is_refused(base) -> None:
    params, state = base
    with pytest.raises(DuplicateHtlc):
        apply_updates(state, (AddHtlc(htlc()), AddHtlc(htlc())), ctx(params))


def test_an_htlc_id_of_the_other_sides_is_refused_where_ids_go_by_payer(base) -> None:
    """A node keeps each HTLC (its forward link, its watcher duty) by channel and id: a
    peer offering an id of ours would take the place of the HTLC we offer next under it."""
    params, state = base
    strict = HtlcPolicy(ids_by_payer=True)
    with pytest.raises(ForeignHtlcId):
        apply_updates(state, (AddHtlc(htlc(id=0, payer=1)),), ctx(params, 1, policy=strict))
    with pytest.raises(ForeignHtlcId):
        apply_updates(state, (AddHtlc(htlc(id=7, payer=0)),), ctx(params, 0, policy=strict))
    new = apply_updates(state, (AddHtlc(htlc(id=7, payer=1)),), ctx(params, 1, policy=strict))
    assert new.htlc(7) is not None


@pytest.mark.parametrize("lead", [0, 3599, 15 * 86400], ids=["now", "too-soon", "too-far"])
def test_unsafe_expiries_are_refused(base, lead: int) -> None:
    params, state = base
    with pytest.raises(UnsafeTimelock):
        apply_updates(state, (AddHtlc(htlc(expiry=NOW + lead)),), ctx(params))


def test_native_expiry_must_be_a_safe_image(base) -> None:
    params, state = base
    bad = msgspec.structs.replace(htlc(), native_expiry=NOW + 10**6)
    with pytest.raises(UnsafeTimelock):
        apply_updates(state, (AddHtlc(bad),), ctx(params, native_expiry_ok=lambda e, n: n <= e))


def test_policy_sets_the_minimum_lead(base) -> None:
    params, state = base
    relaxed = HtlcPolicy(min_lead=60, max_lead=3600)
    new = apply_updates(state, (AddHtlc(htlc(expiry=NOW + 60)),), ctx(params, policy=relaxed))
    assert new.htlcs[0].expiry == NOW + 60


def test_htlc_beyond_balance_is_refused(base) -> None:
    params, state = base
    with pytest.raises(InsufficientBalance):
        apply_updates(state, (AddHtlc(htlc(amount=1001)),), ctx(params))


def test_close_requires_no_locked_htlcs_and_is_final(base) -> None:
    params, state = base
    locked = apply_updates(state, (AddHtlc(htlc()),), ctx(params))
    with pytest.raises(NotPermitted):
        apply_updates(locked, (Close(),), ctx(params))
    closed = apply_updates(state, (Close(),), ctx(params))
    assert closed.final
    with pytest.raises(ChannelFinal):
        apply_updates(closed, (Transfer(ETH, 1),), ctx(params))
    with pytest.raises(ChannelFinal):
        apply_updates(state, (Close(), Transfer(ETH, 1)), ctx(params))


class CounterApp:
    """A toy app: app data is a counter each move must increase by one; the mover pays 1."""

    app_id = "counter"

    def apply(self, params, state: ChannelState, mover: int, data: bytes) -> ChannelState:
        old = int.from_bytes(state.app_data or b"\x00", "big")
        new = int.from_bytes(data, "big")
        if new != old + 1:
            raise InvalidTransition(f"counter must go from {old} to {old + 1}, not {new}")
        free = list(state.free(ETH))
        free[mover] -= 1
        free[1 - mover] += 1
        balances = tuple(
            msgspec.structs.replace(b, amounts=tuple(free)) if b.asset == ETH else b
            for b in state.balances
        )
        return msgspec.structs.replace(state, app_data=data, balances=balances)


def test_app_moves_go_through_the_app() -> None:
    pair = Pair.create(app="counter")
    params, state = pair.alice.machine.params, pair.alice.machine.initial
    apps = {"counter": CounterApp()}
    moved = apply_updates(state, (AppMove(b"\x01"),), ctx(params, apps=apps))
    assert moved.app_data == b"\x01" and moved.free(ETH) == (999, 1001)
    with pytest.raises(InvalidTransition):
        apply_updates(moved, (AppMove(b"\x05"),), ctx(params, apps=apps))
    with pytest.raises(UnknownApp):
        apply_updates(state, (AppMove(b"\x01"),), ctx(params))


def test_app_move_on_a_plain_channel_is_refused(base) -> None:
    params, state = base
    with pytest.raises(InvalidTransition):
        apply_updates(state, (AppMove(b"\x01"),), ctx(params))
