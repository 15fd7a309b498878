"""The router's view of a set of nodes: their channels as directed edges with capacities
and fees, their conversion rates, and the chains' time models.

Nodes in one process (the demo, tests) build the graph from each other directly; across a
network this is what channel announcements would carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from chenilles_hub.circuit.invoice import ROUTE_SLACK, Invoice
from chenilles_hub.circuit.onion import OnionHop
from chenilles_hub.circuit.quote import Quote
from chenilles_hub.core import Asset, TimeModel
from chenilles_hub.core.routing import AssetRate, ChannelEdge, Route, RoutingGraph, find_route
from chenilles_hub.core.routing.search import Strategy

from .node import Node


def routing_graph(nodes: Iterable[Node]) -> RoutingGraph:
    edges: list[ChannelEdge] = []
    rates: list[AssetRate] = []
    models: dict[str, TimeModel] = {}
    for node in nodes:
        own = node.own_edges()
        edges += own.edges()
        for chain, model in own.time_models().items():
            models.setdefault(chain, model)
        rates += node.policy.asset_rates(node.node_id)
    return RoutingGraph(edges, rates, models)


def invoice_route(
    graph: RoutingGraph,
    payer: bytes,
    invoice: Invoice,
    *,
    now: int,
    max_lock: int,
    source_asset: Asset | None = None,
    slack: int = ROUTE_SLACK,
    strategy: Strategy = "astar",
) -> Route:
    """The route on which ``payer`` pays ``invoice``: its amount and asset to its payee, the
    last HTLC leaving the payee its final lead plus ``slack`` (the time the payment takes
    to arrive)."""
    return find_route(
        graph,
        payer,
        invoice.payee,
        invoice.amount,
        invoice.asset,
        now=now,
        final_lead=invoice.final_lead + slack,
        max_lock=max_lock,
        source_asset=source_asset,
        strategy=strategy,
    )


def onion_hops(route: Route, quotes: Iterable[Quote] = ()) -> list[OnionHop]:
    """The payer's hops for ``route``; each hop that changes asset carries the quote its
    sending hub issued for that pair (hubs refuse a conversion without one)."""
    by_pair = {(q.hub, q.asset_in, q.asset_out): q for q in quotes}
    hops: list[OnionHop] = []
    for index, hop in enumerate(route):
        quote = None
        if index > 0 and route[index - 1].edge.asset != hop.edge.asset:
            quote = by_pair.get((hop.edge.source, route[index - 1].edge.asset, hop.edge.asset))
        hops.append(
            OnionHop(
                hop.edge.target, hop.edge.channel_id, hop.amount, hop.edge.asset, hop.expiry, quote
            )
        )
    return hops


def conversions(route: Route) -> list[tuple[bytes, Asset, Asset, int]]:
    """Where ``route`` changes asset: (hub, asset in, asset out, amount out), the quotes a
    payer must get before paying along it."""
    return [
        (hop.edge.source, route[index - 1].edge.asset, hop.edge.asset, hop.amount)
        for index, hop in enumerate(route)
        if index > 0 and route[index - 1].edge.asset != hop.edge.asset
    ]


def quotes_from(nodes: Mapping[bytes, Node], route: Route) -> list[Quote]:
    """Nodes in one process (the demo, tests): ask each converting hub of ``route`` for its
    quote directly (across processes a payer asks the hub's ``POST /v1/quote``)."""
    return [
        nodes[hub].quote(asset_in, asset_out, amount_out)
        for hub, asset_in, asset_out, amount_out in conversions(route)
    ]
