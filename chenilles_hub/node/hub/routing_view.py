"""The router's view of a set of nodes: their channels as directed edges with capacities
and fees, their conversion rates, and the chains' time models.

Nodes in one process (the demo, tests) build the graph from each other directly; across a
network this is what channel announcements would carry.
"""

from __future__ import annotations

from collections.abc import Iterable

from chenilles_hub.circuit.onion import OnionHop
from chenilles_hub.core import TimeModel
from chenilles_hub.core.routing import AssetRate, ChannelEdge, Route, RoutingGraph

from .forwarding import channel_edge
from .node import Node


def routing_graph(nodes: Iterable[Node]) -> RoutingGraph:
    edges: list[ChannelEdge] = []
    rates: list[AssetRate] = []
    models: dict[str, TimeModel] = {}
    for node in nodes:
        for channel in node.channels.values():
            if not channel.active:
                continue
            models[channel.params.chain] = channel.backend.time_model()
            edges += [
                channel_edge(channel, asset, node.policy, node.node_id, outgoing=True)
                for asset in channel.params.assets
            ]
        rates += node.policy.asset_rates(node.node_id)
    return RoutingGraph(_one_edge_per_direction(edges), rates, models)


def _one_edge_per_direction(edges: list[ChannelEdge]) -> list[ChannelEdge]:
    """The router keys an edge by (channel, source): a multi-asset channel offers the asset
    with the most capacity in each direction (enough for the circuits routed here)."""
    best: dict[tuple[bytes, bytes], ChannelEdge] = {}
    for edge in edges:
        key = (edge.channel_id, edge.source)
        if key not in best or edge.capacity > best[key].capacity:
            best[key] = edge
    return list(best.values())


def onion_hops(route: Route) -> list[OnionHop]:
    return [
        OnionHop(hop.edge.target, hop.edge.channel_id, hop.amount, hop.edge.asset, hop.expiry)
        for hop in route
    ]
