"""The moves a virtual channel's life makes in its two ledger channels.

The core (``chenilles_hub.core.virtual``) says *what* to do and when; this module says
*how* in the ``virtual`` app's terms: the ``AppMove`` that funds a guarantee, the two
that settle it on V's final state, the forced moves of a breakdown (show a V state, a
heartbeat), and how a guarantee reads as the core's ``LedgerView``. Pure functions.
"""

from __future__ import annotations

import msgspec

from chenilles_hub.core import AppMove, ChannelParams, ChannelState, SignedState, check_app_move
from chenilles_hub.core.errors import InvalidTransition
from chenilles_hub.core.virtual import HeldVState, LedgerView, Phase, VirtualTerms
from chenilles_hub.core.virtual import virtual_channel_id as vid_of

from . import rules
from .authority import signed_vstate


def guarantee_for(terms: VirtualTerms, side: int, ledger: ChannelState) -> rules.Guarantee:
    """The guarantee ledger channel ``side`` (0: Alice's, 1: Bob's) takes on to fund V."""
    lt = terms.ledgers[side]
    hub = lt.hub_index
    total = terms.capacity * lt.num // lt.den
    end_lock = terms.split[side] * lt.num // lt.den
    lock = [0, 0]
    lock[1 - hub], lock[hub] = end_lock, total - end_lock
    free = ledger.balances[0].amounts
    if free[0] < lock[0] or free[1] < lock[1]:
        raise InvalidTransition(
            f"ledger channel {lt.channel_id.hex()[:16]} cannot lock {lock[0]}/{lock[1]} "
            f"(free {free[0]}/{free[1]})"
        )
    if ledger.app_data:
        raise InvalidTransition("this ledger channel already funds a virtual channel")
    return rules.Guarantee(
        vid=vid_of(terms),
        hub=hub,
        end=side,
        keys=terms.keys,
        deadline=terms.deadline,
        grace=terms.grace,
        capacity=terms.capacity,
        num=lt.num,
        den=lt.den,
        base=(free[0] - lock[0], free[1] - lock[1]),
        vstate=rules.VState(0, terms.split),
        compact=rules.is_compact_chain(ledger.balances[0].asset.chain),
    )


def fund(terms: VirtualTerms, side: int, ledger: ChannelState) -> AppMove:
    """The hub's proposal in ledger channel ``side`` that locks V's capacity there (pending
    until :func:`activate`)."""
    return AppMove(rules.move(rules.FUND, guarantee_for(terms, side, ledger).encode()))


def activate(ledger: ChannelState) -> AppMove:
    """The hub's move once both ledger channels hold the (pending) guarantee."""
    return AppMove(rules.move(rules.ACTIVATE, rules.activate(guarantee_of(ledger)).encode()))


def cancel(ledger: ChannelState) -> AppMove:
    """The hub takes a pending guarantee back (the other ledger's end would not fund)."""
    if guarantee_of(ledger).active:
        raise InvalidTransition("an active guarantee settles on V's final state, not by cancel")
    return AppMove(rules.move(rules.SETTLE, b""))


def guarantee_of(ledger: ChannelState) -> rules.Guarantee:
    g = rules.state_guarantee(ledger)
    if g is None:
        raise InvalidTransition("this ledger channel funds no virtual channel")
    return g


def show(ledger: ChannelState, vstate: SignedState | rules.VState) -> AppMove:
    """Put a fully signed V state into the ledger's guarantee."""
    v = signed_vstate(vstate) if isinstance(vstate, SignedState) else vstate
    g = guarantee_of(ledger)
    return AppMove(rules.move(rules.UPDATE, rules.with_vstate(g, v).encode()))


def settle(ledger: ChannelState, final: SignedState) -> tuple[AppMove, AppMove]:
    """Close V in this ledger: show V's final state, then dissolve the guarantee (one
    proposal, two moves). The ledger's balances are then ``base + payout(final)``."""
    if not final.state.final or not final.complete:
        raise InvalidTransition("a virtual channel settles on a final state both signed")
    return show(ledger, final), AppMove(rules.move(rules.SETTLE, b""))


def heartbeat(ledger: ChannelState) -> AppMove:
    return AppMove(rules.move(rules.HEARTBEAT, rules.heartbeat(guarantee_of(ledger)).encode()))


def held(g: rules.Guarantee | None) -> HeldVState | None:
    if g is None:
        return None
    v = g.vstate
    return HeldVState(v.version, v.amounts, v.final, v.encode())


def held_of(signed: SignedState) -> HeldVState:
    v = signed_vstate(signed)
    return HeldVState(v.version, v.amounts, v.final, v.encode())


def vstate_from_held(h: HeldVState) -> rules.VState:
    return rules.VState.decode(h.digest)


def view(phase: Phase, timeout: int, ledger: ChannelState) -> LedgerView:
    """The core's view of a ledger channel whose registered (or latest) state is ``ledger``."""
    return LedgerView(phase=phase, timeout=timeout, held=held(rules.state_guarantee(ledger)))


def next_state(
    params: ChannelParams, ledger: ChannelState, move: AppMove, mover: int, now: int
) -> ChannelState:
    """The ledger state a forced ``move`` by ``mover`` produces (version + 1), checked as
    the machine and the contract check it (a FUND is never forced)."""
    after = signed_next(params, ledger, move, mover, now)
    if not rules.VirtualLedgerApp().valid_forced(params, ledger, after, mover, now):
        raise InvalidTransition("virtual: a FUND is a cooperative update, never forced")
    return after


def signed_next(
    params: ChannelParams, ledger: ChannelState, move: AppMove, mover: int, now: int
) -> ChannelState:
    """The ledger state a cooperative ``move`` by ``mover`` produces (version + 1), checked
    as a member's machine checks it before signing."""
    app = rules.VirtualLedgerApp()
    after = app.apply(params, ledger, mover, move.data)
    check_app_move(app, params, ledger, after, mover, now)
    return msgspec.structs.replace(after, version=ledger.version + 1)
