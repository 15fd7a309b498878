"""The rules every hop of a circuit must keep, in one place.

The router builds routes with these rules, the payer may check a route with
:func:`validate_route`, and a hub checks an incoming HTLC with :func:`check_forward` before
it offers the outgoing one: the same integer arithmetic everywhere, so what the router
promises is exactly what each hop will accept.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import (
    InsufficientCapacity,
    InsufficientFee,
    InvalidParams,
    InvalidRoute,
    LockTooLong,
    NoTimeModel,
    RateExpired,
    RouteTooLong,
    TimelockDeltaViolation,
    WrongAsset,
)
from ..model import Asset
from ..timing import TimeModel
from .model import AssetRate, ChannelEdge, RateKey, Route

DEFAULT_MAX_HOPS = 20


def hop_delta(incoming: ChannelEdge, time_models: Mapping[str, TimeModel]) -> int:
    """Seconds the incoming HTLC must outlive the outgoing one at a forwarding node.

    The node learns the preimage downstream at the latest when the outgoing HTLC expires;
    from then on it may have to enforce the incoming HTLC on the *incoming* channel's chain
    against a silent peer, which costs that chain's enforcement time for that channel's
    challenge period. The outgoing chain plays no part: by then that side is settled.
    """
    model = time_models.get(incoming.chain)
    if model is None:
        raise NoTimeModel(f"no time model for chain {incoming.chain}")
    return model.enforcement_time(incoming.challenge_duration)


def required_incoming(
    outgoing_amount: int,
    outgoing_edge: ChannelEdge,
    incoming_asset: Asset,
    rates: Mapping[RateKey, AssetRate],
    now: int | None = None,
) -> int:
    """The least amount of ``incoming_asset`` that pays ``outgoing_amount`` plus the fee.

    Both the fee and the conversion round up, so the forwarding node is never short by a
    base unit; routes built from this function are exactly tight.
    """
    need = outgoing_amount + outgoing_edge.fee(outgoing_amount)
    if incoming_asset == outgoing_edge.asset:
        return need
    node = outgoing_edge.source
    rate = rates.get((node, incoming_asset, outgoing_edge.asset))
    if rate is None:
        raise WrongAsset(
            f"node {node.hex()[:16]} quotes no rate {incoming_asset} -> {outgoing_edge.asset}"
        )
    if not rate.usable(now):
        raise RateExpired(f"rate {incoming_asset} -> {outgoing_edge.asset} expired")
    return rate.min_input(need)


def check_forward(
    incoming_amount: int,
    incoming_asset: Asset,
    incoming_expiry: int,
    incoming_edge: ChannelEdge,
    outgoing_amount: int,
    outgoing_asset: Asset,
    outgoing_expiry: int,
    outgoing_edge: ChannelEdge,
    *,
    rates: Mapping[RateKey, AssetRate],
    time_models: Mapping[str, TimeModel],
    now: int | None = None,
    max_lock: int | None = None,
) -> int:
    """Refuse a forward that would cost the node money or time it cannot get back.

    Returns the node's margin (incoming minus the least acceptable incoming amount), so a
    hub may log what it earns beyond its quoted fee. ``now`` makes expired quotes unusable;
    ``max_lock`` (with ``now``) caps how long the node lets its own capital be locked.
    """
    if incoming_edge.target != outgoing_edge.source:
        raise InvalidRoute("the incoming edge does not end where the outgoing one starts")
    if incoming_asset != incoming_edge.asset:
        raise WrongAsset(
            f"incoming HTLC in {incoming_asset}, channel edge in {incoming_edge.asset}"
        )
    if outgoing_asset != outgoing_edge.asset:
        raise WrongAsset(
            f"outgoing HTLC in {outgoing_asset}, channel edge in {outgoing_edge.asset}"
        )
    if outgoing_amount <= 0:
        raise InvalidParams("an HTLC carries a positive amount")
    if outgoing_amount > outgoing_edge.capacity:
        raise InsufficientCapacity(
            f"{outgoing_amount} exceeds capacity {outgoing_edge.capacity} of the outgoing edge"
        )
    required = required_incoming(outgoing_amount, outgoing_edge, incoming_asset, rates, now)
    if incoming_amount < required:
        raise InsufficientFee(f"incoming {incoming_amount} < required {required}")
    delta = hop_delta(incoming_edge, time_models)
    if incoming_expiry < outgoing_expiry + delta:
        raise TimelockDeltaViolation(
            f"incoming expiry {incoming_expiry} < outgoing {outgoing_expiry} + delta {delta}"
        )
    if max_lock is not None and now is not None and incoming_expiry - now > max_lock:
        raise LockTooLong(f"incoming HTLC locks {incoming_expiry - now}s > {max_lock}s")
    return incoming_amount - required


def validate_route(
    route: Route,
    *,
    amount: int,
    now: int,
    final_lead: int,
    max_lock: int,
    time_models: Mapping[str, TimeModel],
    rates: Mapping[RateKey, AssetRate],
    max_hops: int = DEFAULT_MAX_HOPS,
    source: bytes | None = None,
    target: bytes | None = None,
    target_asset: Asset | None = None,
) -> None:
    """Check a whole circuit as its hops will: raise the first broken rule, else return.

    Structure first (a loop or a gap makes every later number meaningless), then the payee's
    terms, then each forward from the payee backwards, then the payer's lock.
    """
    if not route:
        raise InvalidRoute("empty route")
    if amount <= 0:
        raise InvalidParams("a payment carries a positive amount")
    if len(route) > max_hops:
        raise RouteTooLong(f"{len(route)} hops > {max_hops}")
    first, last = route[0].edge, route[-1].edge
    if source is not None and first.source != source:
        raise InvalidRoute("route does not start at the payer")
    if target is not None and last.target != target:
        raise InvalidRoute("route does not end at the payee")
    seen = {first.source}
    for i, hop in enumerate(route):
        if i and route[i - 1].edge.target != hop.edge.source:
            raise InvalidRoute(f"hop {i} does not start where hop {i - 1} ends")
        if hop.edge.target in seen:
            raise InvalidRoute(f"hop {i} revisits a node: a circuit is a simple path")
        seen.add(hop.edge.target)
        if hop.amount > hop.edge.capacity:
            raise InsufficientCapacity(
                f"hop {i}: {hop.amount} exceeds capacity {hop.edge.capacity}"
            )
    if target_asset is not None and last.asset != target_asset:
        raise WrongAsset(f"payee asked for {target_asset}, last hop pays {last.asset}")
    if route[-1].amount != amount:
        raise InvalidRoute(f"last hop pays {route[-1].amount}, payee asked for {amount}")
    if route[-1].expiry < now + final_lead:
        raise TimelockDeltaViolation(
            f"last hop expires at {route[-1].expiry} < now + final_lead {now + final_lead}"
        )
    for i in range(len(route) - 1):
        inc, out = route[i], route[i + 1]
        check_forward(
            inc.amount,
            inc.edge.asset,
            inc.expiry,
            inc.edge,
            out.amount,
            out.edge.asset,
            out.expiry,
            out.edge,
            rates=rates,
            time_models=time_models,
            now=now,
        )
    if route[0].expiry - now > max_lock:
        raise LockTooLong(f"payer's HTLC locks {route[0].expiry - now}s > {max_lock}s")
