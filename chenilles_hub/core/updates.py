"""Update operations and the pure function that applies them to a state.

A proposal carries both the operations and the state they produce. The acceptor re-applies
the operations to its own latest state and compares: so a peer cannot slip a change past us
that its declared operations do not explain, and every rejection can name the operation
at fault.

Who may propose what follows one rule: an update may only take money from the proposer,
never from the acceptor, unless the acceptor already agreed to it (a settled HTLC whose
preimage is shown, or a failed HTLC the payee gives up, or one past its expiry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Protocol

import msgspec

from .errors import (
    BadPreimage,
    ChannelFinal,
    DuplicateHtlc,
    HtlcNotExpired,
    InsufficientBalance,
    InvalidTransition,
    NotPermitted,
    UnknownApp,
    UnknownAsset,
    UnknownHtlc,
    UnsafeTimelock,
)
from .model import (
    MAX_APP_DATA,
    MAX_ONION,
    PREIMAGE_LENGTH,
    Asset,
    AssetBalances,
    ChannelParams,
    ChannelState,
    Htlc,
    payment_hash,
)


class Transfer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="transfer"):
    """A direct payment from the proposer to the other participant."""

    asset: Asset
    amount: Annotated[int, msgspec.Meta(gt=0)]


class AddHtlc(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="add_htlc"):
    """Offer an HTLC. ``onion`` carries the routing instructions for the payee's node (sealed
    to it layer by layer); it travels with the update but is not part of the signed state."""

    htlc: Htlc
    onion: Annotated[bytes, msgspec.Meta(max_length=MAX_ONION)] = b""


class SettleHtlc(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="settle_htlc"):
    """The payee shows the preimage; the HTLC's amount becomes the payee's."""

    htlc_id: Annotated[int, msgspec.Meta(ge=0)]
    # Any length decodes, so a wrong length is answered with BadPreimage, not "malformed".
    preimage: Annotated[bytes, msgspec.Meta(max_length=256)]


class FailHtlc(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="fail_htlc"):
    """The HTLC returns to the payer: the payee gives up, or the expiry has passed."""

    htlc_id: Annotated[int, msgspec.Meta(ge=0)]
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class Close(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="close"):
    """Marks the state final: the basis of a cooperative close on the ledger."""


class AppMove(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="app_move"):
    """A move in the channel's app (generalized state); the app decides what it means."""

    data: Annotated[bytes, msgspec.Meta(max_length=MAX_APP_DATA)]


Update = Transfer | AddHtlc | SettleHtlc | FailHtlc | Close | AppMove


class App(Protocol):
    """Generalized state: an app owns ``app_data`` and may move free balances.

    ``apply`` returns the state after the move (same version; the machine bumps it) or
    raises :class:`InvalidTransition`. The backend that supports on-chain apps mirrors the
    same rule in its contract, so off-chain and on-chain agree.
    """

    app_id: str

    def apply(
        self, params: ChannelParams, state: ChannelState, mover: int, data: bytes
    ) -> ChannelState: ...


class HtlcPolicy(msgspec.Struct, frozen=True):
    """How far ahead an HTLC expiry must and may be, from the receiver's point of view.

    ``min_lead`` is the time this side needs to enforce the HTLC on its ledger (finality,
    inclusion, dispute): the backend's time model provides it. ``max_lead`` bounds how long
    capital may be locked.
    """

    min_lead: int = 3600
    max_lead: int = 14 * 86400


class NativeExpiryCheck(Protocol):
    def __call__(self, expiry: int, native_expiry: int) -> bool: ...


def _always_safe(expiry: int, native_expiry: int) -> bool:
    return True


@dataclass(frozen=True)
class UpdateContext:
    """Everything besides the state that an update's validity depends on."""

    params: ChannelParams
    proposer: int
    now: int
    policy: HtlcPolicy = field(default_factory=HtlcPolicy)
    apps: dict[str, App] = field(default_factory=dict)
    native_expiry_ok: NativeExpiryCheck = _always_safe


def _with_free(state: ChannelState, asset: Asset, amounts: tuple[int, ...]) -> ChannelState:
    return msgspec.structs.replace(
        state,
        balances=tuple(
            AssetBalances(asset, amounts) if entry.asset == asset else entry
            for entry in state.balances
        ),
    )


def _free_of(state: ChannelState, asset: Asset) -> tuple[int, ...]:
    try:
        return state.free(asset)
    except KeyError:
        raise UnknownAsset(f"{asset} is not an asset of this channel") from None


def _credit(amounts: tuple[int, ...], index: int, delta: int) -> tuple[int, ...]:
    return tuple(a + delta if i == index else a for i, a in enumerate(amounts))


def _transfer(state: ChannelState, op: Transfer, ctx: UpdateContext) -> ChannelState:
    free = _free_of(state, op.asset)
    payer, payee = ctx.proposer, 1 - ctx.proposer
    if free[payer] < op.amount:
        raise InsufficientBalance(
            f"participant {payer} has {free[payer]} {op.asset}, cannot pay {op.amount}"
        )
    return _with_free(state, op.asset, _credit(_credit(free, payer, -op.amount), payee, op.amount))


def _add_htlc(state: ChannelState, op: AddHtlc, ctx: UpdateContext) -> ChannelState:
    htlc = op.htlc
    if htlc.payer != ctx.proposer:
        raise NotPermitted("only the payer may offer an HTLC")
    if state.htlc(htlc.id) is not None:
        raise DuplicateHtlc(f"HTLC id {htlc.id} is already locked")
    if htlc.amount <= 0:
        raise InsufficientBalance("an HTLC must lock a positive amount")
    if htlc.expiry < ctx.now + ctx.policy.min_lead:
        raise UnsafeTimelock(
            f"HTLC {htlc.id} expires at {htlc.expiry}, less than {ctx.policy.min_lead}s "
            f"after now ({ctx.now}): no time left to enforce it on-chain"
        )
    if htlc.expiry > ctx.now + ctx.policy.max_lead:
        raise UnsafeTimelock(
            f"HTLC {htlc.id} expires at {htlc.expiry}, more than {ctx.policy.max_lead}s ahead"
        )
    if not ctx.native_expiry_ok(htlc.expiry, htlc.native_expiry):
        raise UnsafeTimelock(
            f"HTLC {htlc.id}: native expiry {htlc.native_expiry} is not a safe image of "
            f"{htlc.expiry} on {ctx.params.chain}"
        )
    free = _free_of(state, htlc.asset)
    if free[htlc.payer] < htlc.amount:
        raise InsufficientBalance(
            f"participant {htlc.payer} has {free[htlc.payer]} {htlc.asset}, "
            f"cannot lock {htlc.amount}"
        )
    locked = _with_free(state, htlc.asset, _credit(free, htlc.payer, -htlc.amount))
    htlcs = tuple(sorted((*state.htlcs, htlc), key=lambda h: h.id))
    return msgspec.structs.replace(locked, htlcs=htlcs)


def _remove_htlc(state: ChannelState, htlc_id: int) -> tuple[ChannelState, Htlc]:
    htlc = state.htlc(htlc_id)
    if htlc is None:
        raise UnknownHtlc(f"no HTLC with id {htlc_id} is locked")
    remaining = tuple(h for h in state.htlcs if h.id != htlc_id)
    return msgspec.structs.replace(state, htlcs=remaining), htlc


def _settle_htlc(state: ChannelState, op: SettleHtlc, ctx: UpdateContext) -> ChannelState:
    state, htlc = _remove_htlc(state, op.htlc_id)
    if htlc.payee != ctx.proposer:
        raise NotPermitted("only the payee settles an HTLC (the payer would pay itself)")
    if len(op.preimage) != PREIMAGE_LENGTH:
        raise BadPreimage(f"a preimage is {PREIMAGE_LENGTH} bytes, got {len(op.preimage)}")
    if payment_hash(op.preimage) != htlc.payment_hash:
        raise BadPreimage(f"preimage does not hash to HTLC {htlc.id}'s payment hash")
    free = state.free(htlc.asset)
    return _with_free(state, htlc.asset, _credit(free, htlc.payee, htlc.amount))


def _fail_htlc(state: ChannelState, op: FailHtlc, ctx: UpdateContext) -> ChannelState:
    state, htlc = _remove_htlc(state, op.htlc_id)
    if htlc.payee != ctx.proposer and ctx.now < htlc.expiry:
        raise HtlcNotExpired(
            f"HTLC {htlc.id} expires at {htlc.expiry}; the payer may reclaim it only after"
        )
    free = state.free(htlc.asset)
    return _with_free(state, htlc.asset, _credit(free, htlc.payer, htlc.amount))


def _close(state: ChannelState, op: Close, ctx: UpdateContext) -> ChannelState:
    if state.htlcs:
        raise NotPermitted(
            f"{len(state.htlcs)} HTLC(s) still locked: settle or fail them before closing"
        )
    return msgspec.structs.replace(state, final=True)


def _app_move(state: ChannelState, op: AppMove, ctx: UpdateContext) -> ChannelState:
    if not ctx.params.app:
        raise InvalidTransition("this channel has no app")
    app = ctx.apps.get(ctx.params.app)
    if app is None:
        raise UnknownApp(f"app {ctx.params.app!r} is not installed here")
    return app.apply(ctx.params, state, ctx.proposer, op.data)


def apply_updates(
    state: ChannelState, updates: tuple[Update, ...], ctx: UpdateContext
) -> ChannelState:
    """The next version: ``updates`` applied in order. Invariants are checked by the caller."""
    if state.final:
        raise ChannelFinal("the channel is final; no update may follow")
    for op in updates:
        if state.final:
            raise ChannelFinal("nothing may follow a close in the same proposal")
        if isinstance(op, Transfer):
            state = _transfer(state, op, ctx)
        elif isinstance(op, AddHtlc):
            state = _add_htlc(state, op, ctx)
        elif isinstance(op, SettleHtlc):
            state = _settle_htlc(state, op, ctx)
        elif isinstance(op, FailHtlc):
            state = _fail_htlc(state, op, ctx)
        elif isinstance(op, Close):
            state = _close(state, op, ctx)
        else:
            state = _app_move(state, op, ctx)
    return msgspec.structs.replace(state, version=state.version + 1)


__all__ = [
    "AddHtlc",
    "App",
    "AppMove",
    "Close",
    "FailHtlc",
    "HtlcPolicy",
    "SettleHtlc",
    "Transfer",
    "Update",
    "UpdateContext",
    "apply_updates",
]
