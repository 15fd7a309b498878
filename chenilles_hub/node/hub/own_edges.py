"""Our active channels as outgoing router edges, kept between uses and built again only for
the channels that changed.

What reads them: the announcement of our capacities (every ``announce_interval`` and for
every new link) and the router of our own payments (``graph_view.GraphView``). Both used to
build an edge per channel at each use: for a hub of 100,000 channels most of a second of
the node's thread per own payment, and per announcement. Here a channel's edge is built
again only when a checkpoint wrote its state or its record (``changed``, fed by
``Persistence.take_checkpoint``), when the current event changed it (the pending writes),
when the channel is new, or when our fees change; and a consumer that holds a graph asks
only for the edges that changed since it last looked (``changes_since``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from chenilles_hub.backend import ChainBackend
from chenilles_hub.core import TimeModel
from chenilles_hub.core.routing import ChannelEdge

from .forwarding import ForwardingPolicy, channel_edge
from .records import Channel


def fixed_part(edge: ChannelEdge) -> tuple[object, ...]:
    """What of our edge a payment does not change (capacity and fees it does): an edge
    whose fixed part changed, appeared or went changes the graph's shape."""
    return (
        edge.channel_id,
        edge.source,
        edge.target,
        edge.chain,
        str(edge.asset),
        edge.challenge_duration,
    )


def best_edge(channel: Channel, policy: ForwardingPolicy, node_id: bytes) -> ChannelEdge | None:
    """The channel as one outgoing edge, or ``None`` if it is not active. The router keys
    an edge by (channel, source): a multi-asset channel offers the asset with the most
    capacity (the first such asset on a tie), enough for the circuits routed here."""
    if channel.status != "active":
        return None
    best: ChannelEdge | None = None
    for asset in channel.params.assets:
        edge = channel_edge(channel, asset, policy, node_id, outgoing=True)
        if best is None or edge.capacity > best.capacity:
            best = edge
    return best


class OwnEdges:
    """One edge per active channel, kept per channel.

    ``revision`` counts edge changes and ``structure`` the changes of shape (an edge that
    appeared, went, or changed other than in capacity and fees): a consumer holding a graph
    built at some ``structure`` updates it with :meth:`changes_since` while ``structure``
    stays the same, and rebuilds it otherwise."""

    def __init__(self) -> None:
        #: channel id -> its edge (``None``: not active), for every channel seen
        self._rows: dict[bytes, ChannelEdge | None] = {}
        #: channel id -> ``revision`` at its edge's last change, oldest change first
        self._log: dict[bytes, int] = {}
        self._changed: set[bytes] = set()
        self._fees: tuple[object, ...] | None = None
        self._chains: Counter[str] = Counter()
        self._backends: dict[str, ChainBackend] = {}
        self._list: list[ChannelEdge] | None = None
        self.revision = 0
        self.structure = 0

    def changed(self, channel_ids: Iterable[bytes]) -> None:
        """Channels a checkpoint wrote: their edges are looked at again at the next use."""
        self._changed.update(channel_ids)

    def refresh(
        self,
        channels: Mapping[bytes, Channel],
        unwritten: Iterable[bytes],
        policy: ForwardingPolicy,
        node_id: bytes,
    ) -> None:
        """Bring the edges up to date: those of the channels changed since the last call
        (checkpointed, or ``unwritten`` yet), of channels not seen yet or gone, and of
        every channel if our fees changed (the operator sets them in place)."""
        fees = tuple(policy.fees.items())
        # In a deterministic order: a new edge's place in ``edges()`` is where the router
        # meets it, and ties between equal routes must not depend on set hashing.
        dirty: list[bytes]
        if fees != self._fees:
            self._fees = fees
            dirty = [*channels, *(cid for cid in self._rows if cid not in channels)]
            self._changed = set()
        else:
            changed, self._changed = self._changed, set()
            changed.update(unwritten)
            dirty = sorted(changed)
        for channel_id in dirty:
            self._update(channel_id, channels.get(channel_id), policy, node_id)
        if len(self._rows) != len(channels):
            # A channel adopted without a write of its own yet, or gone (a rolled-back
            # open): the two sets agree again.
            missing = [cid for cid in channels if cid not in self._rows]
            gone = [cid for cid in self._rows if cid not in channels]
            for channel_id in [*missing, *gone]:
                self._update(channel_id, channels.get(channel_id), policy, node_id)

    def _update(
        self,
        channel_id: bytes,
        channel: Channel | None,
        policy: ForwardingPolicy,
        node_id: bytes,
    ) -> None:
        new = best_edge(channel, policy, node_id) if channel is not None else None
        old = self._rows.get(channel_id)
        if channel is None:
            self._rows.pop(channel_id, None)
        else:  # unchanged: the same object stays
            self._rows[channel_id] = old if new == old else new
        if new != old:
            self._record(channel_id, old, new, channel)

    def _record(
        self,
        channel_id: bytes,
        old: ChannelEdge | None,
        new: ChannelEdge | None,
        channel: Channel | None,
    ) -> None:
        self.revision += 1
        self._log.pop(channel_id, None)
        self._log[channel_id] = self.revision
        self._list = None
        if old is None or new is None or fixed_part(old) != fixed_part(new):
            self.structure += 1
        if old is not None:
            self._chains[old.chain] -= 1
        if new is not None:
            self._chains[new.chain] += 1
            if channel is not None:
                self._backends.setdefault(new.chain, channel.backend)

    def edges(self) -> list[ChannelEdge]:
        """Every active channel's edge (the list is shared: do not change it)."""
        if self._list is None:
            self._list = [edge for edge in self._rows.values() if edge is not None]
        return self._list

    def changes_since(self, revision: int) -> list[ChannelEdge]:
        """The edges changed after ``revision``, newest first (within one ``structure``
        every one of them is still there: a removal changes the structure)."""
        out: list[ChannelEdge] = []
        for channel_id, at in reversed(self._log.items()):
            if at <= revision:
                break
            edge = self._rows.get(channel_id)
            if edge is not None:
                out.append(edge)
        return out

    def time_models(self) -> dict[str, TimeModel]:
        """The time model of each chain we have an active channel on."""
        return {
            chain: self._backends[chain].time_model()
            for chain, count in sorted(self._chains.items())
            if count > 0
        }
