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
    """What this node knows of the network beyond its own channels."""

    def __init__(self) -> None:
        self.announced: dict[bytes, Announcement] = {}
        self.operator: Announcement = Announcement()

    def accept(self, peer: bytes, announcement: Announcement) -> int:
        """Keep what ``peer`` may speak for; returns how many edges were kept."""
        edges = tuple(e for e in announcement.edges if e.source == peer)
        rates = tuple(r for r in announcement.rates if r.node == peer)
        self.announced[peer] = Announcement(edges, rates, announcement.time_models)
        return len(edges)

    def graph(self, node: Node) -> RoutingGraph:
        """Our own channels (always fresh) plus every other edge we were told about."""
        own = routing_graph([node])
        sources: Iterable[Announcement] = [*self.announced.values(), self.operator]
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
