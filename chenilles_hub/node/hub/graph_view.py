"""What a node knows of the network beyond its own channels, and the routing graph it keeps
for its own payments.

Peers' announcements (``gossip``) arrive on the event loop's thread; the node's payments
take the graph on the node's thread. A lock guards what both touch (never held while a
graph is built), and a counter of invalidations makes sure a graph built from what was
known when the build began is not kept if something changed the shape meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable

import msgspec

from chenilles_hub.core import TimeModel
from chenilles_hub.core.errors import InvalidParams
from chenilles_hub.core.routing import AssetRate, ChannelEdge, RoutingGraph
from chenilles_hub.core.routing.quotes import choose_quotes

from .gossip import MAX_PARTS, Announcement
from .node import Node
from .own_edges import fixed_part

log = logging.getLogger(__name__)

#: Seconds a graph is kept before strangers' changes of shape (an edge or a quote added
#: or gone, a link ended) are built in: a build takes in every stranger's announcement
#: (some 0.15 s for 64 strangers' frames of 90 quotes each), and a stranger announcing
#: again and again must not make each of our payments pay for one.
STRANGERS_EVERY = 10.0

#: Where an edge of the graph came from: the peer that announced it, or ``None`` (ours,
#: or the operator's graph).
Source = tuple[bytes | None, Announcement]


class GraphView:
    """What this node was told of the network, and its routing graph.

    The routing graph is kept between payments, so the router's per-payer bound
    (``find_route(strategy="cached")``: the payer is always this node) is computed once and
    reused: each payment only moves our own channels' capacities and fees, and a peer's
    announcement again mostly its channels' capacities and fees, which the graph takes in
    O(1) per edge and the cache checks (a fee cut or a capacity rising past a bound's class
    drops what it would overestimate). Anything else (an edge announced or gone, the
    operator's graph, a channel of ours opened or closed, a rate or a time model changed)
    rebuilds it.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.announced: dict[bytes, Announcement] = {}
        self._clock = clock
        #: when ``_graph`` was built, whether strangers changed its shape since (built in
        #: once it is :data:`STRANGERS_EVERY` old), and which linked ones (their moves
        #: wait too)
        self._built_at = 0.0
        self._stale = False
        self._waiting: set[bytes] = set()
        #: the parts of a large announcement received so far, per peer (serial, parts, held)
        self._parts: dict[bytes, tuple[int, int, dict[int, Announcement]]] = {}
        self._operator: Announcement = Announcement()
        self._lock = threading.Lock()
        self._graph: RoutingGraph | None = None
        self._shape: object = None
        #: ``OwnEdges.revision`` our edges in ``_graph`` are at
        self._revision = 0
        #: Which peer's edge each peer edge of ``_graph`` is (an edge the operator's graph
        #: or our own replaced, or on a chain without a clock, is none of theirs).
        self._owners: dict[tuple[bytes, bytes], bytes] = {}
        #: Peers' edges that moved in capacity or fees only since ``_graph`` was built or
        #: last patched, the last of each: put in at the next :meth:`graph` (as many as
        #: the peers' edges at most, however long no payment of ours takes the graph).
        self._patches: dict[tuple[bytes, bytes], ChannelEdge] = {}
        #: Peers that announced without being configured (``accept(configured=False)``).
        self._strangers: set[bytes] = set()
        #: Peers whose quotes the last graph built left out, and why (``/v1/peers``).
        self.quotes_left_out: dict[bytes, str] = {}
        #: Counts the changes of shape (each drops ``_graph``).
        self._reshaped = 0

    @property
    def operator(self) -> Announcement:
        """The graph the operator gave (``POST /v1/graph``)."""
        return self._operator

    @operator.setter
    def operator(self, announcement: Announcement) -> None:
        with self._lock:
            self._operator = announcement
            self._reshape()

    def accept(
        self,
        peer: bytes,
        announcement: Announcement,
        max_parts: int = MAX_PARTS,
        *,
        configured: bool = True,
        waits: bool | None = None,
    ) -> int:
        """Keep what ``peer`` may speak for; returns how many edges were kept (0 while the
        parts of a large announcement are still coming). An announcement in more than
        ``max_parts`` frames is ignored (a peer nobody configured gets one frame: what a
        stranger makes us keep stays what it was before announcements had parts). A peer
        the operator did not configure (``configured`` False) neither sets the market for
        quotes nor a chain's clock where configured peers say otherwise: strangers cost
        nothing to multiply. A peer whose changes of shape ``waits`` (a stranger: by
        default, one not configured) has them built in once the graph is
        :data:`STRANGERS_EVERY` old."""
        if waits is None:
            waits = not configured
        if announcement.parts > max_parts:
            return 0
        with self._lock:
            if configured:
                self._strangers.discard(peer)
            else:
                self._strangers.add(peer)
        if announcement.parts > 1:
            whole = self._assemble(peer, announcement)
            if whole is None:
                return 0
            announcement = whole
        else:  # newer than any announcement in parts still coming: those are dropped
            self._parts.pop(peer, None)
        # In a canonical order (announcements come sorted by capacity, which moves): the
        # kept graph, patched in place, then orders its edges as a graph built afresh
        # would, and the router breaks ties between equal routes the same way.
        edges = tuple(sorted((e for e in announcement.edges if e.source == peer), key=_edge_key))
        rates = tuple(r for r in announcement.rates if r.node == peer)
        kept = Announcement(edges, rates, announcement.time_models)
        before = self.announced.get(peer)  # (only this thread changes what peers announced)
        moved = None if before is None else _moved_edges(before, kept)
        with self._lock:
            self.announced[peer] = kept
            if moved is None:
                self._reshape(peer if waits else None)
            elif peer not in self._waiting:  # (else the graph never had what moved)
                self._patches.update((_edge_key(edge), edge) for edge in moved)
        return len(edges)

    def forget(self, peer: bytes, *, waits: bool | None = None) -> None:
        """``peer``'s link is gone: what it announced goes too (we cannot route through a
        peer we are not connected to, and it announces again on its next connection), so
        what strangers announce is bounded by who is connected now. For a peer whose
        changes ``waits`` (by default one not configured), once the graph is
        :data:`STRANGERS_EVERY` old."""
        self._parts.pop(peer, None)
        with self._lock:
            if waits is None:
                waits = peer in self._strangers
            self._strangers.discard(peer)
            if self.announced.pop(peer, None) is not None:
                self._reshape(peer if waits else None)
            # Gone, it has nothing to patch from (its next announcement reshapes): only the
            # build is due, and identities that come and go leave nothing behind.
            self._waiting.discard(peer)

    def _reshape(self, waiting: bytes | None = None) -> None:
        """(Under the lock.) The kept graph no longer has the shape of what we know; what a
        stranger (``waiting``) changed waits until the graph is :data:`STRANGERS_EVERY`
        old, and that stranger's moves are not patched in meanwhile (the graph has not
        seen the announcement they move from)."""
        if waiting is not None and self._graph is not None:
            self._waiting.add(waiting)
            self._stale = True
            return
        self._graph = None
        self._patches = {}
        self._reshaped += 1

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
        again (``Node.own_edges``), and the peers' edges whose capacity or fees their
        announcements moved since (:func:`_moved_edges`): a payment's work independent of
        how many channels we and our peers have. A change of shape (a channel opened or
        closed, ours or a peer's), of rates or of a chain's time model builds it again."""
        own = node.own_edges()
        rates = node.policy.asset_rates(node.node_id)
        models = own.time_models()
        shape = (
            node.node_id,
            own.structure,
            tuple(sorted(repr(rate) for rate in rates)),
            tuple(sorted(models.items())),
        )
        with self._lock:
            if self._stale and self._clock() - self._built_at >= STRANGERS_EVERY:
                self._reshape()
            graph, patches, self._patches = self._graph, self._patches, {}
            reshaped = self._reshaped
            sources: list[Source] = [*self.announced.items(), (None, self._operator)]
            preferred = set(self.announced) - self._strangers
            rebuild = graph is None or shape != self._shape
            if rebuild:
                self._stale = False  # (the build takes in what they said)
                self._waiting.clear()
        if graph is None or rebuild:
            built_at = self._clock()
            graph, owners, left_out = _build(
                node.node_id, sources, own.edges(), rates, models, node.clock(), preferred
            )
            with self._lock:
                if self._reshaped == reshaped:  # else built again at the next call
                    self._graph, self._owners, self._shape = graph, owners, shape
                    self.quotes_left_out = left_out
                    self._built_at = built_at
        else:
            for edge in own.changes_since(self._revision):
                graph.add_edge(edge)  # capacities and fees only: the rest is the shape
            for key, edge in patches.items():
                if self._owners.get(key) == edge.source:  # (a peer announces its own only)
                    graph.add_edge(edge)
        self._revision = own.revision
        return graph


def _build(
    us: bytes,
    sources: Iterable[Source],
    own_edges: list[ChannelEdge],
    own_rates: list[AssetRate],
    own_models: dict[str, TimeModel],
    now: int | None = None,
    preferred: Collection[bytes] | None = None,
) -> tuple[RoutingGraph, dict[tuple[bytes, bytes], bytes], dict[bytes, str]]:
    """The graph of what ``sources`` say and our own edges, rates and clocks (ours win),
    which peer each of its peers' edges is from, and whose quotes were left out (why).
    ``preferred``: the configured peers, whose word on the market and on clocks goes
    before strangers' (``None``: every peer alike)."""
    #: each edge with the peer it is from (``None``: ours or the operator's)
    edges: dict[tuple[bytes, bytes], tuple[ChannelEdge, bytes | None]] = {}
    rates: list[AssetRate] = []
    trusted: list[AssetRate] = list(own_rates)
    sources = list(sources)
    for peer, announcement in sources:
        for edge in announcement.edges:
            if edge.source != us:  # our own edges: we know better
                edges[_edge_key(edge)] = (edge, peer)
        theirs = [r for r in announcement.rates if r.node != us]
        if peer is None:
            trusted += theirs  # the operator's graph: as good as our own book
        else:
            rates += theirs
    models = _time_models(sources, preferred)
    for edge in own_edges:
        edges[_edge_key(edge)] = (edge, None)
    models.update(own_models)  # our own backends' clocks win
    # An edge on a chain nobody gave a clock for cannot be routed over (its timelocks
    # mean nothing): left out, or one peer's announcement would fail every route.
    usable = {key: found for key, found in edges.items() if found[0].chain in models}
    kept = [edge for edge, _ in usable.values()]
    # A peer's quotes that, with ours or another peer's, form an arbitrage would make every
    # query an exhaustive search; one pricing an asset beyond the router's range would fail
    # every route. Such a peer's quotes are left out, the furthest from the market first.
    quotes, left_out, prices = choose_quotes(trusted, rates, kept, now, preferred)
    for peer, why in sorted(left_out.items()):
        log.warning("quotes of %s left out of the routing graph: %s", peer.hex()[:16], why)
    graph = RoutingGraph(kept, quotes, models, prices)
    try:
        graph.index()  # built now, not at the first payment: it checks what peers quoted
    except InvalidParams as exc:
        # (Left for quotes of ours that do not fit together: then no peer's at all.)
        log.warning("peers' quotes left out of the routing graph: %s", exc)
        graph = RoutingGraph(kept, trusted, models)
        left_out = {r.node: str(exc) for r in rates}
    owners = {key: peer for key, (_, peer) in usable.items() if peer is not None}
    return graph, owners, left_out


def _time_models(
    sources: list[Source], preferred: Collection[bytes] | None = None
) -> dict[str, TimeModel]:
    """Each chain's clock as the operator's graph gives it, else as most of the peers with
    channels on that chain announce it (ties: the first model in encoded order), counting
    only ``preferred`` peers' votes for a chain where any of them voted.

    A chain we run is not decided here (our own backend's clock wins). For the others, a
    peer's word is all there is; the last announcement used to win, so one peer could
    replace every other's clock for a chain, and a wrong clock fails every route over it
    (hubs check expiries against their own). A peer with no channel on a chain has no say
    on its clock."""
    votes: dict[str, Counter[TimeModel]] = {}
    strangers: dict[str, Counter[TimeModel]] = {}
    trusted: dict[str, TimeModel] = {}
    for peer, announcement in sources:
        said = dict(announcement.time_models)  # one voice per peer and chain
        if peer is None:
            trusted.update(said)
            continue
        runs = {edge.chain for edge in announcement.edges}
        box = votes if preferred is None or peer in preferred else strangers
        for chain, model in said.items():
            if chain in runs:
                box.setdefault(chain, Counter())[model] += 1
    for chain, count in strangers.items():
        votes.setdefault(chain, count)  # strangers decide only where no configured peer did
    models = {
        chain: min(count, key=lambda m: (-count[m], msgspec.json.encode(m)))
        for chain, count in votes.items()
    }
    models.update(trusted)
    return models


def _edge_key(edge: ChannelEdge) -> tuple[bytes, bytes]:
    return (edge.channel_id, edge.source)


def _moved_edges(before: Announcement, after: Announcement) -> list[ChannelEdge] | None:
    """The edges of ``after`` whose capacity or fees differ from ``before`` (a peer's
    announcement again), or ``None`` if anything else changed: an edge that appeared or
    went or changed otherwise, a rate, a time model. Those change the graph's shape, and it
    is built again; capacities and fees are put in place (``RoutingGraph.add_edge``, O(1)
    each), so a peer announcing every few seconds does not rebuild a graph of 100,000
    edges, nor drop the router's bound for our payments, at each of our payments."""
    if before.rates != after.rates or before.time_models != after.time_models:
        return None
    old = {_edge_key(edge): edge for edge in before.edges}
    new = {_edge_key(edge): edge for edge in after.edges}
    if len(new) != len(after.edges) or old.keys() != new.keys():
        return None  # (an edge twice: the graph keeps the last, built again to be sure)
    moved = []
    for key, edge in new.items():
        was = old[key]
        if was != edge:
            if fixed_part(was) != fixed_part(edge):
                return None
            moved.append(edge)
    return moved
