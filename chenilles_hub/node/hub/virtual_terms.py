"""V's terms through the node: the hub fixes them from its two ledger channels, each end
checks the offer against its own (docs/virtual-channels.md, "Through the node").

V's unit is Alice's ledger's first asset (rate 1/1 there). Bob's ledger is converted at
the hub's rate from that asset into Bob's (its forwarding policy's rate, as for a
circuit's conversion: 1/1 when both ledgers hold the same asset), fixed at open in the
terms. Alice may name the rate she accepts in her request; the hub then offers exactly
that or refuses. The keys are the ends' V keys (:mod:`.virtual_keys`): their ledger keys
on EVM, their declared keys on Solana.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from chenilles_app_virtual import compact, protocol
from chenilles_app_virtual.authority import VirtualAuthority

from ...circuit.quote import Rate
from ...core import Asset, SignedState
from ...core.errors import InvalidParams, NotPermitted
from ...core.virtual import (
    LedgerTerms,
    VirtualTerms,
    check_terms,
    virtual_channel_id,
    virtual_params,
)
from ..net import wire
from .records import Channel
from .virtual_keys import VirtualKeys

RateOf = Callable[[Asset, Asset], Rate | None]


def unit_of(ledger: Channel) -> Asset:
    """V's unit when ``ledger`` is Alice's: its first asset."""
    return ledger.params.assets[0]


def hub_terms(
    keys: VirtualKeys,
    rate_of: RateOf,
    la: Channel,
    lb: Channel,
    m: wire.VirtualOpenRequest,
    alice: bytes,
    hub: bytes,
) -> VirtualTerms:
    """The hub: V's terms over its ledger ``la`` with Alice and ``lb`` with Bob."""
    unit, bob_asset = unit_of(la), lb.params.assets[0]
    rate = Rate(1, 1) if bob_asset == unit else rate_of(unit, bob_asset)
    if rate is None:
        raise InvalidParams(f"this hub converts no {unit} into {bob_asset}")
    if m.rate is not None and m.rate != rate:
        raise InvalidParams(
            f"this hub's rate is {rate.numerator}/{rate.denominator}, "
            f"not {m.rate.numerator}/{m.rate.denominator}"
        )
    terms = VirtualTerms(
        keys=(keys.end_address(la, 1 - la.me), keys.end_address(lb, 1 - lb.me)),
        node_ids=(alice, m.peer),
        hub_node_id=hub,
        ledgers=(
            LedgerTerms(la.channel_id, hub_index=la.me),
            LedgerTerms(lb.channel_id, hub_index=lb.me, num=rate.numerator, den=rate.denominator),
        ),
        split=m.split,
        deadline=m.deadline,
        grace=m.grace,
        nonce=secrets.token_bytes(32),
    )
    check_terms(terms)
    lockable(terms, 0, la)
    lockable(terms, 1, lb)
    return terms


def check_offer(
    keys: VirtualKeys,
    m: wire.VirtualOffer,
    side: int,
    ledger: Channel,
    asked: Rate | None,
) -> None:
    """An end: the offer's key, rate and amounts for our ledger ``ledger`` (V index
    ``side``); ``asked`` is the rate Alice's request named, if any."""
    terms = m.terms
    lt = terms.ledgers[side]
    if lt.hub_index != 1 - ledger.me:
        raise InvalidParams("the offer gives the hub the wrong index in our ledger")
    if terms.keys[side].lower() != keys.own_address(ledger).lower():
        raise InvalidParams("the offer names another V key than ours for this node")
    own_asset = ledger.params.assets[0]
    if m.unit is not None and m.unit != own_asset and side == 0:
        raise InvalidParams("the offer's unit is not our ledger's asset")
    same = (side == 0) or m.unit is None or m.unit == own_asset
    if same and (lt.num, lt.den) != (1, 1):
        raise InvalidParams(f"the offer converts our own asset at {lt.num}/{lt.den}, not 1/1")
    if side == 0 and asked is not None:
        b = terms.ledgers[1]
        if (b.num, b.den) != (asked.numerator, asked.denominator):
            raise NotPermitted(f"the offer's rate {b.num}/{b.den} is not the one asked for")
    lockable(terms, side, ledger)


def lockable(terms: VirtualTerms, side: int, ledger: Channel) -> None:
    """Both ledger members can lock their share, in the ledger's layout (a Solana ledger's
    u64 amounts and u32 times: ``compact``)."""
    g = protocol.guarantee_for(terms, side, ledger.machine.state)
    try:
        g.encode()
    except (ValueError, OverflowError) as error:
        raise InvalidParams(
            f"these terms do not fit a {ledger.params.chain} ledger: {error}"
        ) from None
    if g.compact and g.total() > compact.MAX_U64:
        raise InvalidParams("the guarantee's total exceeds a Solana ledger's u64")


def check_final(terms: VirtualTerms, final: SignedState) -> None:
    """The hub: an end's report of V's final state is that, signed by both V keys."""
    if (
        final.state.channel_id != virtual_channel_id(terms)
        or not final.state.final
        or len(final.signatures) != 2
    ):
        raise InvalidParams("not a final state of this virtual channel")
    params, verifier = virtual_params(terms), _Verifier()
    for i in (0, 1):
        if not verifier.verify(params, final.state, i, final.signatures[i], None):
            raise InvalidParams("the final state is not signed by both ends")


class _Verifier(VirtualAuthority):
    """Checks V signatures only (never signs)."""

    def __init__(self) -> None:
        pass
