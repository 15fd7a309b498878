"""Channel announcements between direct peers: how a node learns the edges it routes over.

Deliberately simple (see docs/operating-a-hub.md, "Routing"): right after a connection is
set up, and every ``announce_interval`` seconds when something changed, each node sends its
direct peers one ``Announcement`` of *its own* active channels (as outgoing router edges:
capacity = its free balance, its fees), its conversion rates and its chains' time models.
A receiver keeps, per peer, only the edges whose source is that peer and the rates of that
peer: the transport already authenticated the sender, so nobody can announce for another
node, and nothing is relayed further. That is enough for a payer to route through any hub
it is connected to (payer -> hub -> payee); wider graphs can be given by the operator
(``POST /v1/graph``).

Announcements travel on the same encrypted connection as channel messages, in frames that
start with the byte ``0x01`` (node messages are JSON objects, so they start with ``{``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec

from chenilles_hub.core import TimeModel
from chenilles_hub.core.messages import BoundedCodec
from chenilles_hub.core.routing import AssetRate, ChannelEdge, RoutingGraph

from .node import Node
from .routing_view import routing_graph

GOSSIP_PREFIX = b"\x01"
MAX_EDGES = 512


class Announcement(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="announce"):
    edges: Annotated[tuple[ChannelEdge, ...], msgspec.Meta(max_length=MAX_EDGES)] = ()
    rates: Annotated[tuple[AssetRate, ...], msgspec.Meta(max_length=MAX_EDGES)] = ()
    time_models: Annotated[
        tuple[tuple[Annotated[str, msgspec.Meta(max_length=96)], TimeModel], ...],
        msgspec.Meta(max_length=64),
    ] = ()


_codec: BoundedCodec[Announcement] = BoundedCodec(Announcement, "announcement")


def encode_announcement(announcement: Announcement) -> bytes:
    return GOSSIP_PREFIX + _codec.encode(announcement)


def decode_announcement(frame: bytes) -> Announcement:
    """Raises ``DecodeError`` (the peer is then disconnected, like for a bad node message)."""
    return _codec.decode(frame[len(GOSSIP_PREFIX) :])


def own_announcement(node: Node) -> Announcement:
    graph = routing_graph([node])
    return Announcement(
        edges=graph.edges,
        rates=tuple(graph.rates.values()),
        time_models=tuple(sorted(graph.time_models.items())),
    )


class GraphView:
    """What this node knows of the network beyond its own channels.

    The routing graph is kept between payments, so the router's per-payer bound
    (``find_route(strategy="cached")``: the payer is always this node) is computed once and
    reused: each payment only moves our own channels' capacities and fees, which the graph
    takes in O(1) and the cache checks (a fee cut or a capacity rising past a bound's class
    drops what it would overestimate). Anything else (an announcement, the operator's
    graph, a channel opened or closed, a rate or a time model changed) rebuilds it.
    """

    def __init__(self) -> None:
        self.announced: dict[bytes, Announcement] = {}
        self._operator: Announcement = Announcement()
        self._graph: RoutingGraph | None = None
        self._shape: object = None

    @property
    def operator(self) -> Announcement:
        """The graph the operator gave (``POST /v1/graph``)."""
        return self._operator

    @operator.setter
    def operator(self, announcement: Announcement) -> None:
        self._operator = announcement
        self._graph = None

    def accept(self, peer: bytes, announcement: Announcement) -> int:
        """Keep what ``peer`` may speak for; returns how many edges were kept."""
        edges = tuple(e for e in announcement.edges if e.source == peer)
        rates = tuple(r for r in announcement.rates if r.node == peer)
        self.announced[peer] = Announcement(edges, rates, announcement.time_models)
        self._graph = None
        return len(edges)

    def graph(self, node: Node) -> RoutingGraph:
        """Our own channels (always fresh) plus every other edge we were told about."""
        own = routing_graph([node])
        shape = (
            node.node_id,
            tuple(sorted(_fixed(e) for e in own.edges)),
            tuple(sorted(repr(rate) for rate in own.rates.values())),
            tuple(sorted(own.time_models.items())),
        )
        if self._graph is None or shape != self._shape:
            self._graph, self._shape = self._build(node, own), shape
        else:
            for edge in own.edges:  # capacities and fees only: the rest is in the shape
                self._graph.add_edge(edge)
        return self._graph

    def _build(self, node: Node, own: RoutingGraph) -> RoutingGraph:
        sources: Iterable[Announcement] = [*self.announced.values(), self._operator]
        edges: dict[tuple[bytes, bytes], ChannelEdge] = {}
        rates: list[AssetRate] = []
        models: dict[str, TimeModel] = {}
        for announcement in sources:
            for edge in announcement.edges:
                if edge.source != node.node_id:  # our own edges: we know better
                    edges[(edge.channel_id, edge.source)] = edge
            rates += [r for r in announcement.rates if r.node != node.node_id]
            models.update(dict(announcement.time_models))
        for edge in own.edges:
            edges[(edge.channel_id, edge.source)] = edge
        models.update(own.time_models)  # our own backends' clocks win
        return RoutingGraph(edges.values(), [*rates, *own.rates.values()], models)


def _fixed(edge: ChannelEdge) -> tuple[object, ...]:
    """What of our own edge a payment does not change (capacity and fees it does)."""
    return (
        edge.channel_id,
        edge.source,
        edge.target,
        edge.chain,
        str(edge.asset),
        edge.challenge_duration,
    )
