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
from typing import Annotated, Any, Protocol, runtime_checkable

import msgspec

from .errors import (
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


class Transfer(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="transfer"):
    """A direct payment from the proposer to the other participant."""

    asset: Asset
    amount: Annotated[int, msgspec.Meta(gt=0)]


class AddHtlc(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="add_htlc"):
    """Offer an HTLC. ``onion`` carries the routing instructions for the payee's node (sealed
    to it layer by layer); it travels with the update but is not part of the signed state."""

    htlc: Htlc
    onion: Annotated[bytes, msgspec.Meta(max_length=MAX_ONION)] = b""


class SettleHtlc(
    msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="settle_htlc"
):
    """The payee shows the preimage; the HTLC's amount becomes the payee's."""

    htlc_id: Annotated[int, msgspec.Meta(ge=0)]
    # Any length decodes, so a wrong length is answered with BadPreimage, not "malformed".
    preimage: Annotated[bytes, msgspec.Meta(max_length=256)]


#: The longest reason a ``FailHtlc`` carries: a peer refuses a proposal with a longer one
#: (it does not decode), so whoever builds one from a longer text cuts it.
MAX_FAIL_REASON = 200


class FailHtlc(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="fail_htlc"):
    """The HTLC returns to the payer: the payee gives up, or the expiry has passed."""

    htlc_id: Annotated[int, msgspec.Meta(ge=0)]
    reason: Annotated[str, msgspec.Meta(max_length=MAX_FAIL_REASON)] = ""


def fail_htlc(htlc_id: int, reason: str) -> FailHtlc:
    """A ``FailHtlc`` whose reason, from any text (an error, a downstream peer's Reject of
    up to 500 characters), is cut to what the peer decodes."""
    return FailHtlc(htlc_id, reason[:MAX_FAIL_REASON])


class Close(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="close"):
    """Marks the state final: the basis of a cooperative close on the ledger."""


class AppMove(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="app_move"):
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


@runtime_checkable
class AppRules(App, Protocol):
    """An app's whole off-chain rule, as an app plugin ships it (``chenilles.apps``).

    Pure and chain-agnostic: the same rule is enforced on every chain that supports apps by
    the app's own on-chain code (a Solidity ``IApp`` on EVM, a program the adjudicator calls
    through CPI on Solana), and a differential test holds the two to the same verdicts.

    - ``apply`` turns a move (``AppMove.data``, the app's own encoding) into the next
      state: new ``app_data`` and free balances, nothing else.
    - ``valid_transition`` is the state-to-state rule the chain enforces on a forced move:
      ``after`` follows ``before`` by one move of participant ``mover`` at chain time
      ``now``. The ledger checks the rest itself (channel id, version + 1, the mover's
      signature, unchanged HTLCs and assets, per-asset conservation).
    - ``turn``: who may move next (empty once the app is over). On-chain, a participant
      whose turn it is and who stays silent lets the channel conclude on ``outcome``.
    - ``outcome``: the free balances the app assigns to ``state`` if the channel ended
      there. Every state an app produces carries its outcome as its balances, so what a
      ledger pays on conclusion is the app's outcome.
    - ``check_initial`` raises :class:`InvalidTransition` for an opening state the app
      cannot start from; ``describe`` decodes a state for display (JSON-able values).
    """

    def valid_transition(
        self,
        params: ChannelParams,
        before: ChannelState,
        after: ChannelState,
        mover: int,
        now: int,
    ) -> bool: ...

    def turn(self, params: ChannelParams, state: ChannelState) -> tuple[int, ...]: ...

    def outcome(self, params: ChannelParams, state: ChannelState) -> tuple[AssetBalances, ...]: ...

    def check_initial(self, params: ChannelParams, state: ChannelState) -> None: ...

    def describe(self, params: ChannelParams, state: ChannelState) -> dict[str, Any]: ...


class HtlcPolicy(msgspec.Struct, frozen=True, gc=False):
    """How far ahead an HTLC expiry must and may be, from the receiver's point of view.

    ``min_lead`` is the time this side needs to enforce the HTLC on its ledger (finality,
    inclusion, dispute): the backend's time model provides it. ``max_lead`` bounds how long
    capital may be locked.
    """

    min_lead: int = 3600
    max_lead: int = 14 * 86400
    #: Participant p of n offers only HTLC ids equal to p modulo n (``ForeignHtlcId``). A
    #: node keeps each HTLC, its forward link and its watcher duty by channel and id: a
    #: peer offering the id the node gives its own next HTLC would take that HTLC's place
    #: (the node would pay downstream and have nothing to collect upstream). The node's
    #: machines set it; harnesses that number HTLCs freely leave it off.
    ids_by_payer: bool = False


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
    parties = len(ctx.params.participants)
    if ctx.policy.ids_by_payer and htlc.id % parties != htlc.payer:
        raise ForeignHtlcId(
            f"HTLC id {htlc.id} is not participant {htlc.payer}'s: its ids are "
            f"{htlc.payer} modulo {parties}"
        )
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
    after = app.apply(ctx.params, state, ctx.proposer, op.data)
    if isinstance(app, AppRules):
        check_app_move(app, ctx.params, state, after, ctx.proposer, ctx.now)
    return after


def check_app_move(
    app: AppRules,
    params: ChannelParams,
    before: ChannelState,
    after: ChannelState,
    mover: int,
    now: int,
) -> None:
    """Raises :class:`InvalidTransition` unless ``after`` is a move the chain would accept
    from ``before``: an app move changes only app data and free balances, passes the app's
    own state-to-state rule (the one its contract enforces), and pays the app's outcome.
    Checking the move's result against the on-chain rule here means we never sign a move
    that the ledger would refuse when forced."""
    if (after.channel_id, after.htlcs, after.final) != (
        before.channel_id,
        before.htlcs,
        before.final,
    ) or tuple(b.asset for b in after.balances) != tuple(b.asset for b in before.balances):
        raise InvalidTransition("an app move changes only the app data and free balances")
    if not app.valid_transition(params, before, after, mover, now):
        raise InvalidTransition(f"{app.app_id}: not a valid move for participant {mover}")
    if after.balances != app.outcome(params, after):
        raise InvalidTransition(f"{app.app_id}: balances differ from the app's outcome")


def _app_channel_update(state: ChannelState, op: Update, ctx: UpdateContext) -> None:
    """In an app channel the app owns the balances: payments would break its outcome, so
    only app moves and, once the app is over, a close may be proposed."""
    if isinstance(op, AppMove):
        return
    if not isinstance(op, Close):
        raise NotPermitted(
            f"channel of app {ctx.params.app!r}: its balances move only by app moves"
        )
    app = ctx.apps.get(ctx.params.app)
    if isinstance(app, AppRules) and app.turn(ctx.params, state):
        raise NotPermitted(f"{app.app_id} is not over yet: it cannot be closed")


def apply_updates(
    state: ChannelState, updates: tuple[Update, ...], ctx: UpdateContext
) -> ChannelState:
    """The next version: ``updates`` applied in order. Invariants are checked by the caller."""
    if state.final:
        raise ChannelFinal("the channel is final; no update may follow")
    for op in updates:
        if state.final:
            raise ChannelFinal("nothing may follow a close in the same proposal")
        if ctx.params.app:
            _app_channel_update(state, op, ctx)
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
    "AppRules",
    "Close",
    "FailHtlc",
    "HtlcPolicy",
    "SettleHtlc",
    "Transfer",
    "Update",
    "UpdateContext",
    "apply_updates",
    "check_app_move",
]
