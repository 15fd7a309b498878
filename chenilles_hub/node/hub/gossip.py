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
start with the byte ``0x01`` (node messages are JSON objects, so they start with ``{``). A
frame holds some 185 edges: a larger announcement goes in up to ``MAX_PARTS`` frames
(:func:`split`), which the receiver puts together before it replaces what it knew.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec

from chenilles_hub.core import TimeModel
from chenilles_hub.core.errors import MessageTooLarge
from chenilles_hub.core.messages import MAX_MESSAGE_BYTES, BoundedCodec
from chenilles_hub.core.routing import AssetRate, ChannelEdge, RoutingGraph

from .node import Node

GOSSIP_PREFIX = b"\x01"
MAX_EDGES = 512
#: Frames of one announcement: a node announces at most this many parts (some 11,000
#: edges at ~350 bytes each; past that the largest capacities go, see :func:`split`).
MAX_PARTS = 64
#: Room left in a frame for everything but the edges, rates and time models.
_FRAME_MARGIN = 256


class Announcement(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag="announce"
):
    edges: Annotated[tuple[ChannelEdge, ...], msgspec.Meta(max_length=MAX_EDGES)] = ()
    rates: Annotated[tuple[AssetRate, ...], msgspec.Meta(max_length=MAX_EDGES)] = ()
    time_models: Annotated[
        tuple[tuple[Annotated[str, msgspec.Meta(max_length=96)], TimeModel], ...],
        msgspec.Meta(max_length=64),
    ] = ()
    #: An announcement larger than a frame goes in ``parts`` frames (``part`` 0, 1, ...),
    #: all with the same ``serial``: a receiver replaces what it knew of the sender once it
    #: holds every part. A single frame leaves the three out (what nodes before parts sent
    #: and read).
    part: Annotated[int, msgspec.Meta(ge=0, lt=MAX_PARTS)] = 0
    parts: Annotated[int, msgspec.Meta(ge=1, le=MAX_PARTS)] = 1
    serial: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0


_codec: BoundedCodec[Announcement] = BoundedCodec(Announcement, "announcement")


def encode_announcement(announcement: Announcement) -> bytes:
    return GOSSIP_PREFIX + _codec.encode(announcement)


def decode_announcement(frame: bytes) -> Announcement:
    """Raises ``DecodeError`` (the peer is then disconnected, like for a bad node message)."""
    return _codec.decode(frame[len(GOSSIP_PREFIX) :])


def own_announcement(node: Node) -> Announcement:
    """Our active channels as edges, our rates and our chains' time models, whole: what
    :func:`split` cuts into frames."""
    own = node.own_edges()
    return Announcement(
        edges=tuple(own.edges()),
        rates=tuple(node.policy.asset_rates(node.node_id)),
        time_models=tuple(sorted(own.time_models().items())),
    )


def split(announcement: Announcement, serial: int) -> tuple[tuple[Announcement, ...], int]:
    """``announcement`` in frames that each fit the wire's limits (a frame, ``MAX_EDGES``
    edges), and how many edges did not fit in ``MAX_PARTS`` frames: those of the smallest
    capacities, left out (a hub with 200 channels could announce none of them: one frame
    held some 185 edges). Rates and time models go in the first frame."""
    room = MAX_MESSAGE_BYTES - len(GOSSIP_PREFIX) - _FRAME_MARGIN
    head = Announcement(rates=announcement.rates, time_models=announcement.time_models)
    first_room = room - len(_codec.encode(head))
    if first_room < 0:
        raise MessageTooLarge("our rates and time models alone exceed a frame")
    edges = sorted(announcement.edges, key=lambda e: e.capacity, reverse=True)
    chunks: list[list[ChannelEdge]] = [[]]
    used = 0
    for edge in edges:
        size = len(msgspec.json.encode(edge)) + 1
        limit = first_room if len(chunks) == 1 else room
        if used + size > limit or len(chunks[-1]) == MAX_EDGES:
            if len(chunks) == MAX_PARTS:
                break
            chunks.append([])
            used = 0
        chunks[-1].append(edge)
        used += size
    sent = sum(len(chunk) for chunk in chunks)
    if len(chunks) == 1:
        return (Announcement(tuple(chunks[0]), head.rates, head.time_models),), 0
    parts = tuple(
        Announcement(
            tuple(chunk),
            head.rates if i == 0 else (),
            head.time_models if i == 0 else (),
            part=i,
            parts=len(chunks),
            serial=serial,
        )
        for i, chunk in enumerate(chunks)
    )
    return parts, len(edges) - sent


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
        #: the parts of a large announcement received so far, per peer (serial, parts, held)
        self._parts: dict[bytes, tuple[int, int, dict[int, Announcement]]] = {}
        self._operator: Announcement = Announcement()
        self._graph: RoutingGraph | None = None
        self._shape: object = None
        #: ``OwnEdges.revision`` our edges in ``_graph`` are at
        self._revision = 0

    @property
    def operator(self) -> Announcement:
        """The graph the operator gave (``POST /v1/graph``)."""
        return self._operator

    @operator.setter
    def operator(self, announcement: Announcement) -> None:
        self._operator = announcement
        self._graph = None

    def accept(self, peer: bytes, announcement: Announcement, max_parts: int = MAX_PARTS) -> int:
        """Keep what ``peer`` may speak for; returns how many edges were kept (0 while the
        parts of a large announcement are still coming). An announcement in more than
        ``max_parts`` frames is ignored (a peer nobody configured gets one frame: what a
        stranger makes us keep stays what it was before announcements had parts)."""
        if announcement.parts > max_parts:
            return 0
        if announcement.parts > 1:
            whole = self._assemble(peer, announcement)
            if whole is None:
                return 0
            announcement = whole
        edges = tuple(e for e in announcement.edges if e.source == peer)
        rates = tuple(r for r in announcement.rates if r.node == peer)
        self.announced[peer] = Announcement(edges, rates, announcement.time_models)
        self._graph = None
        return len(edges)

    def forget(self, peer: bytes) -> None:
        """``peer``'s link is gone: what it announced goes too (we cannot route through a
        peer we are not connected to, and it announces again on its next connection), so
        what strangers announce is bounded by who is connected now."""
        self._parts.pop(peer, None)
        if self.announced.pop(peer, None) is not None:
            self._graph = None

    def _assemble(self, peer: bytes, part: Announcement) -> Announcement | None:
        """Keep ``part`` with the others of its serial (one announcement in the making per
        peer: a part of another serial starts over); the whole once every part is here."""
        if part.part >= part.parts:
            return None  # not a part of anything
        serial, parts, held = self._parts.get(peer, (-1, 0, {}))
        if (serial, parts) != (part.serial, part.parts):
            serial, parts, held = part.serial, part.parts, {}
            self._parts[peer] = (serial, parts, held)
        held[part.part] = part
        if len(held) < parts:
            return None
        del self._parts[peer]
        ordered = [held[i] for i in range(parts)]
        return Announcement(
            tuple(e for p in ordered for e in p.edges),
            tuple(r for p in ordered for r in p.rates),
            tuple(m for p in ordered for m in p.time_models),
        )

    def graph(self, node: Node) -> RoutingGraph:
        """Our own channels (always fresh) plus every other edge we were told about.

        Kept between payments: only our edges that changed since the last call are put in
        again (``Node.own_edges``), a payment's work independent of how many channels we
        have. A change of shape (a channel opened or closed), of our rates or of a chain's
        time model builds it again."""
        own = node.own_edges()
        rates = node.policy.asset_rates(node.node_id)
        models = own.time_models()
        shape = (
            node.node_id,
            own.structure,
            tuple(sorted(repr(rate) for rate in rates)),
            tuple(sorted(models.items())),
        )
        if self._graph is None or shape != self._shape:
            self._graph, self._shape = self._build(node, own.edges(), rates, models), shape
        else:
            for edge in own.changes_since(self._revision):
                self._graph.add_edge(edge)  # capacities and fees only: the rest is the shape
        self._revision = own.revision
        return self._graph

    def _build(
        self,
        node: Node,
        own_edges: list[ChannelEdge],
        own_rates: list[AssetRate],
        own_models: dict[str, TimeModel],
    ) -> RoutingGraph:
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
        for edge in own_edges:
            edges[(edge.channel_id, edge.source)] = edge
        models.update(own_models)  # our own backends' clocks win
        # An edge on a chain nobody gave a clock for cannot be routed over (its timelocks
        # mean nothing): left out, or one peer's announcement would fail every route.
        usable = [e for e in edges.values() if e.chain in models]
        return RoutingGraph(usable, [*rates, *own_rates], models)
