"""Virtual channels: a channel whose ledger is a pair of ledger channels with a hub (sans-IO).

A virtual channel V between Alice and Bob is funded by their ledger channels with a hub,
L_A = (Alice, hub) and L_B = (hub, Bob), off-chain: each ledger channel locks V's capacity
in a *guarantee* (the ``virtual`` app, apps/virtual) whose payout is decided by the latest
V state shown to it. V itself runs the ordinary update machine (``ChannelMachine``) with
its own keys; nothing of V reaches a chain while everyone cooperates.

This module holds what every node must decide the same way, without I/O:

- the terms both ends and the hub agree on at open, and the virtual channel's id;
- V's own ``ChannelParams`` and opening state (so V is a channel like any other: the
  reflective design, design.md section 8);
- the duties when cooperation breaks down: given what each ledger channel holds on its
  chain and the latest V state a node knows, which moves to force where and when
  (:func:`hub_duties`, :func:`end_duties`). The hub is whole iff both ledger channels end on
  the same V state; an end is whole iff its ledger channel ends on its latest V state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from .errors import AmountOutOfRange, InvalidParams
from .model import (
    MAX_AMOUNT,
    Amount,
    Asset,
    AssetBalances,
    Bytes32,
    ChannelParams,
    ChannelState,
    Participant,
)

#: Where V's "chain" is named: V's assets live on no chain, they are claims on guarantees.
VIRTUAL_CHAIN_PREFIX = "virtual:"
Address = Annotated[str, msgspec.Meta(pattern="^0x[0-9a-fA-F]{40}$")]


class LedgerTerms(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One ledger channel's side of a virtual channel: which channel, the hub's index in it,
    and the rate ``num/den`` from V's unit to the ledger's first asset (the hub's quote,
    fixed at open; 1/1 when both ledgers hold the same asset)."""

    channel_id: Bytes32
    hub_index: Annotated[int, msgspec.Meta(ge=0, le=1)]
    # at most 2**128 - 1 each (checked by ``check_terms``: msgspec bounds stop at 64 bits)
    num: Annotated[int, msgspec.Meta(ge=1)] = 1
    den: Annotated[int, msgspec.Meta(ge=1)] = 1


class VirtualTerms(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What Alice (V index 0), Bob (V index 1) and the hub agree on to open V.

    ``ledgers[i]`` is the ledger channel of V's participant ``i`` with the hub. ``deadline``
    (unix seconds, the ledgers' chain time) is when V's ends lose the right to show V
    states to the ledgers; the hub alone may show states for ``grace`` seconds more, to
    make both ledgers agree. ``split`` is V's opening balance, in V's unit."""

    keys: tuple[Address, Address]
    node_ids: tuple[Bytes32, Bytes32]
    hub_node_id: Bytes32
    ledgers: tuple[LedgerTerms, LedgerTerms]
    split: tuple[Amount, Amount]
    deadline: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    grace: Annotated[int, msgspec.Meta(ge=1, le=365 * 86400)]
    nonce: Bytes32
    unit: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] = "unit"

    @property
    def capacity(self) -> int:
        return self.split[0] + self.split[1]


MAX_RATE_TERM = 2**128 - 1


def check_terms(terms: VirtualTerms) -> None:
    """Refuses terms no ledger could hold (a guarantee stores rates in 16 bytes and amounts
    in 32) or that confuse who is who. Called before anything is built from them."""
    if len(set(k.lower() for k in terms.keys)) != 2 or len(set(terms.node_ids)) != 2:
        raise InvalidParams("a virtual channel has two distinct members")
    if terms.hub_node_id in terms.node_ids:
        raise InvalidParams("the hub is not a member of the virtual channel it funds")
    if terms.ledgers[0].channel_id == terms.ledgers[1].channel_id:
        raise InvalidParams("the two ends are funded by two different ledger channels")
    for ledger in terms.ledgers:
        if ledger.num > MAX_RATE_TERM or ledger.den > MAX_RATE_TERM:
            raise InvalidParams("a rate term exceeds 2**128 - 1")
        if terms.capacity * ledger.num > MAX_AMOUNT:
            raise AmountOutOfRange("the capacity at this rate exceeds 2**256 - 1")
    if terms.capacity == 0:
        raise InvalidParams("a virtual channel holds something")


def virtual_channel_id(terms: VirtualTerms) -> bytes:
    """sha256 of the canonical encoding: every field, so no two virtual channels share one
    (the nonce separates equal terms) and no V state can be replayed in another."""
    return hashlib.sha256(b"chenilles.virtual.id.v1" + msgspec.json.encode(terms)).digest()


def virtual_asset(terms: VirtualTerms) -> Asset:
    return Asset(VIRTUAL_CHAIN_PREFIX + virtual_channel_id(terms).hex()[:32], terms.unit)


def virtual_params(terms: VirtualTerms) -> ChannelParams:
    """V as a channel: its "chain" is the pair of ledger channels, its challenge period
    the hub's grace."""
    check_terms(terms)
    return ChannelParams(
        chain=virtual_asset(terms).chain,
        participants=tuple(
            Participant(chain_key=k, node_id=n)
            for k, n in zip(terms.keys, terms.node_ids, strict=True)
        ),
        assets=(virtual_asset(terms),),
        challenge_duration=terms.grace,
        nonce=terms.nonce,
    )


def virtual_initial(terms: VirtualTerms) -> ChannelState:
    return ChannelState(
        channel_id=virtual_channel_id(terms),
        version=0,
        balances=(AssetBalances(virtual_asset(terms), terms.split),),
    )


def ledger_payout(terms: VirtualTerms, side: int, amounts: tuple[int, int]) -> tuple[int, int]:
    """What ledger channel ``side`` (0: Alice's, 1: Bob's) pays (end party, hub) from the
    guarantee when V ends on ``amounts``. The end party's V balance converts at the
    ledger's rate, rounded down; the hub takes the rest of the locked total."""
    ledger = terms.ledgers[side]
    total = terms.capacity * ledger.num // ledger.den
    end = amounts[side] * ledger.num // ledger.den
    return end, total - end


def hub_net(terms: VirtualTerms, in_a: tuple[int, int], in_b: tuple[int, int]) -> tuple[int, int]:
    """The hub's gain in each ledger's asset (relative to what it locked) when Alice's
    ledger ends on V amounts ``in_a`` and Bob's on ``in_b``: zero in V's unit iff equal."""
    locked = (
        ledger_payout(terms, 0, terms.split)[1],
        ledger_payout(terms, 1, terms.split)[1],
    )
    return (
        ledger_payout(terms, 0, in_a)[1] - locked[0],
        ledger_payout(terms, 1, in_b)[1] - locked[1],
    )


# --- breakdown: what to do when cooperation stops ---------------------------------------------

Phase = Literal["open", "dispute", "forced", "concluded"]


@dataclass(frozen=True)
class HeldVState:
    """A V state as a ledger channel holds it (on-chain during a dispute)."""

    version: int
    amounts: tuple[int, int]
    final: bool
    digest: bytes  # identifies the content: two states of one version differ here


@dataclass(frozen=True)
class LedgerView:
    """What a node sees of one ledger channel on its chain.

    ``phase``: ``open`` (no dispute), ``dispute`` (a state registered, refutable until
    ``timeout``), ``forced`` (forced moves under way, next one before ``timeout``),
    ``concluded``. ``held`` is the V state in the registered ledger state (``None``:
    no guarantee there any more, V was settled in this ledger)."""

    phase: Phase
    timeout: int
    held: HeldVState | None


@dataclass(frozen=True)
class Register:
    """Start a dispute of ledger channel ``side`` with the latest ledger state both signed."""

    side: int


@dataclass(frozen=True)
class ShowVState:
    """Force the move that puts ``state`` into ledger channel ``side``'s guarantee."""

    side: int
    state: HeldVState


@dataclass(frozen=True)
class Heartbeat:
    """Keep ledger channel ``side``'s dispute open (the hub only)."""

    side: int


Duty = Register | ShowVState | Heartbeat


def _movable(view: LedgerView, now: int, challenge: int) -> bool:
    """Whether a forced move fits now: after the refutation period of a registration
    (and within the period after it), or within the period a forced move opened."""
    if view.phase == "dispute":
        return view.timeout <= now < view.timeout + challenge
    return view.phase == "forced" and now < view.timeout


def hub_duties(
    terms: VirtualTerms,
    views: tuple[LedgerView, LedgerView],
    best: HeldVState | None,
    now: int,
    challenge: tuple[int, int],
    margin: int,
) -> list[Duty]:
    """The hub's duties towards one virtual channel once a ledger channel is disputed.

    ``best`` is the newest V state the hub holds (from a cooperative close, or read from
    either ledger's chain). The hub joins any dispute in the other ledger (so neither can
    end before it had its say), shows ``best`` wherever a ledger holds something else, and
    keeps each disputed ledger open with heartbeats until ``deadline + grace`` - after that,
    nobody can show a V state any more, and both ledgers hold the same one.
    """
    limit = terms.deadline + terms.grace
    duties: list[Duty] = []
    disputed = any(v.phase != "open" for v in views)
    for side, view in enumerate(views):
        if view.held is None or view.phase == "concluded":
            continue
        if view.phase == "open":
            if disputed:
                duties.append(Register(side))
            continue
        if not _movable(view, now, challenge[side]) or now >= limit:
            continue
        if best is not None and best != view.held and best.version >= view.held.version:
            duties.append(ShowVState(side, best))
        elif view.phase == "dispute" or view.timeout - now <= margin:
            # a first move opens the forced phase; later ones only when the period runs out
            duties.append(Heartbeat(side))
    return duties


def end_duties(
    terms: VirtualTerms,
    side: int,
    view: LedgerView,
    mine: HeldVState,
    closed: bool,
    now: int,
    challenge: int,
    margin: int,
) -> list[Duty]:
    """An end's duties (Alice: ``side`` 0, Bob: 1) towards its own ledger channel.

    If V is not settled in time (``closed`` false) the end registers its ledger channel
    early enough to show its latest V state before the deadline: one refutation period
    plus ``margin`` before it. During a dispute it shows its latest state if the ledger
    holds an older one.
    """
    if view.held is None or view.phase == "concluded" or (closed and view.phase == "open"):
        return []
    if view.phase == "open":
        if now + challenge + margin >= terms.deadline:
            return [Register(side)]
        return []
    if (
        _movable(view, now, challenge)
        and now < terms.deadline
        and mine.version > view.held.version
        and not view.held.final
    ):
        return [ShowVState(side, mine)]
    return []


__all__ = [
    "Duty",
    "Heartbeat",
    "HeldVState",
    "LedgerTerms",
    "LedgerView",
    "Register",
    "ShowVState",
    "VirtualTerms",
    "check_terms",
    "end_duties",
    "hub_duties",
    "hub_net",
    "ledger_payout",
    "virtual_channel_id",
    "virtual_initial",
    "virtual_params",
]
