"""Why no route was found, in the operator's words, and what each forwarder charges.

The router only says ``no_route``; an operator needs to know whether to add funds, open a
channel, or wait for a hub's rate. ``explain_no_route`` looks at the same graph the router
used and names the first cause it can prove: no channel of ours, too little capacity on our
side or on the payee's, or no hub converting the payer's asset into the invoice's.
"""

from __future__ import annotations

from typing import Any

from chenilles_hub.core import Asset
from chenilles_hub.core.routing import Route, RoutingGraph


def explain_no_route(
    graph: RoutingGraph,
    payer: bytes,
    payee: bytes,
    amount: int,
    asset: Asset,
    source_asset: Asset | None,
) -> tuple[str, str] | None:
    """``(code, message)`` for the cause of a failed route search, or ``None`` if nothing
    simple explains it (then ``no_route`` stands)."""
    ours = [e for e in graph.edges if e.source == payer]
    if not ours:
        return "no_channel", "this node has no active channel to pay from"
    theirs = [e for e in graph.edges if e.target == payee and e.asset == asset]
    if not theirs:
        return (
            "payee_unreachable",
            f"no channel in {asset} reaches the payee {payee.hex()[:16]} in the graph this "
            "node knows (its hub may not have announced it yet)",
        )
    best_in = max(e.capacity for e in theirs)
    if best_in < amount:
        return (
            "insufficient_capacity",
            f"the channels into the payee can carry at most {best_in} {asset} (base units); "
            f"the invoice asks {amount}",
        )
    sources = {source_asset} if source_asset else {e.asset for e in ours}
    if asset not in sources:
        converting = [key for key in graph.rates if key[1] in sources and key[2] == asset]
        if not converting:
            names = ", ".join(sorted(str(a) for a in sources))
            return (
                "no_rate",
                f"no hub converts {names} into {asset} yet: the hub has no rate for this pair "
                "(its operator sets one with `chenilles policy rate`) or has not announced it",
            )
    usable = [e for e in ours if e.asset in sources]
    best_out = max((e.capacity for e in usable), default=0)
    if asset in sources and best_out < amount:
        return (
            "insufficient_capacity",
            f"our channels can send at most {best_out} {asset} (base units); the payment "
            f"needs at least {amount} plus fees",
        )
    if asset not in sources and best_out == 0:
        return "insufficient_capacity", "our channels hold nothing to send in that asset"
    return None


def hop_fees(route: Route) -> list[dict[str, Any]]:
    """The route's hops as the payment keeps them: each with what its sender charges for
    it (a forwarder's fee, in the hop's asset; 0 for the payer's own first hop)."""
    hops = []
    for index, hop in enumerate(route):
        fee = hop.edge.fee(hop.amount) if index > 0 else 0
        hops.append(
            {
                "channel_id": hop.edge.channel_id.hex(),
                "from": hop.edge.source.hex(),
                "to": hop.edge.target.hex(),
                "asset": str(hop.edge.asset),
                "amount": hop.amount,
                "expiry": hop.expiry,
                "fee": fee,
            }
        )
    return hops


def fees_by_asset(hops: Any) -> dict[str, int]:
    """Total forwarders' fees per asset of a payment's kept route."""
    totals: dict[str, int] = {}
    for hop in hops or ():
        if hop.get("fee"):
            totals[hop["asset"]] = totals.get(hop["asset"], 0) + int(hop["fee"])
    return totals
