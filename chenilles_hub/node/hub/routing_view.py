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

from .forwarding import channel_edge
from .node import Node


def routing_graph(nodes: Iterable[Node]) -> RoutingGraph:
    edges: list[ChannelEdge] = []
    rates: list[AssetRate] = []
    models: dict[str, TimeModel] = {}
    for node in nodes:
        edges += own_edges(node, models)
        rates += node.policy.asset_rates(node.node_id)
    return RoutingGraph(_one_edge_per_direction(edges), rates, models)


def own_parts(node: Node) -> tuple[list[ChannelEdge], list[AssetRate], dict[str, TimeModel]]:
    """What :func:`routing_graph` of ``node`` alone holds (one edge per channel direction,
    our rates, our chains' time models), without building the graph's index: what our
    announcement carries."""
    models: dict[str, TimeModel] = {}
    edges = _one_edge_per_direction(own_edges(node, models))
    return edges, node.policy.asset_rates(node.node_id), models


def own_edges(node: Node, models: dict[str, TimeModel]) -> list[ChannelEdge]:
    """``node``'s active channels as outgoing edges; each chain's time model into
    ``models``. An edge is built again only if its channel's state (``revision``) or our
    fees changed since it was last built (``edge_cache``): the announcement of our
    capacities every ``announce_interval`` built 100,000 edges each time, most of a second
    of the node's thread for a hub of 100,000 channels."""
    cache = node.ctx.edge_cache
    fees = tuple(node.policy.fees.items())  # set in place by the operator (fee changes)
    out: list[ChannelEdge] = []
    for channel in node.channels.values():
        if channel.status != "active":
            cache.pop(channel.channel_id, None)  # closed: its edges are not kept
            continue
        chain = channel.params.chain
        if chain not in models:
            models[chain] = channel.backend.time_model()
        revision = channel.machine.revision
        hit = cache.get(channel.channel_id)
        if hit is not None and hit[0] is revision and hit[1] == fees:
            out += hit[2]
            continue
        built = [
            channel_edge(channel, asset, node.policy, node.node_id, outgoing=True)
            for asset in channel.params.assets
        ]
        cache[channel.channel_id] = (revision, fees, built)
        out += built
    return out


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


def _one_edge_per_direction(edges: list[ChannelEdge]) -> list[ChannelEdge]:
    """The router keys an edge by (channel, source): a multi-asset channel offers the asset
    with the most capacity in each direction (enough for the circuits routed here)."""
    best: dict[tuple[bytes, bytes], ChannelEdge] = {}
    for edge in edges:
        key = (edge.channel_id, edge.source)
        if key not in best or edge.capacity > best[key].capacity:
            best[key] = edge
    return list(best.values())


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
