"""The channel graph, indexed once for fast queries and patched in place on updates.

Search runs over *states* ``(node, asset)``: "this node receives this asset". A channel edge
in asset ``a`` joins ``(u, a)`` to ``(v, a)``; a rate at ``u`` joins ``(u, c)`` to ``(u, a)``.
The index keeps two views of the same graph:

- Python lists (edge endpoints, capacities, fees, deltas; in-edges per state) for the exact
  integer search, because indexing a list is far cheaper than indexing a numpy array from
  Python;
- a CSR matrix structure (numpy) of the forward state graph, whose weights are recomputed
  per query in a few vector operations, for the lower-bound pass in scipy.

Capacity and fee changes (every payment changes capacities) patch both views in O(1);
adding or removing channels or rates marks the index stale and it is rebuilt lazily.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Protocol, cast

import msgspec
import numpy as np
import numpy.typing as npt

from ..errors import InvalidParams, NoTimeModel
from ..model import Asset
from ..timing import TimeModel
from .model import AssetRate, ChannelEdge, RateKey, rate_book
from .prices import in_range, prices_hold, reference_prices
from .rules import hop_delta

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]

InArrays = tuple[
    npt.NDArray[np.int64],
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]

#: (from-state of the conversion's input asset, N, D, valid_until or None)
Conversion = tuple[int, int, int, int | None]


class PatchListener(Protocol):
    """Something derived from the index that an in-place patch may invalidate."""

    def patched(self, pos: int, old_cap_value: float, cap_value: float, fee_lowered: bool) -> None:
        """CSR entry ``pos`` (a channel edge) now carries ``cap_value``; its fees fell."""


#: The largest relative loss a conversion's bound weight counts: any value of the largest
#: amount times this stays a finite float, and a route through a quote losing more could
#: never be paid anyway (capacities stop at 2**256).
LOSS_CAP = Fraction(2**200)


class _Index:
    """Everything a query needs, derived from the graph's edges, rates and time models."""

    def __init__(
        self,
        edges: list[ChannelEdge],
        rates: Mapping[RateKey, AssetRate],
        time_models: Mapping[str, TimeModel],
        known_prices: Mapping[Asset, Fraction] | None = None,
    ) -> None:
        node_index: dict[bytes, int] = {}
        for e in edges:
            node_index.setdefault(e.source, len(node_index))
            node_index.setdefault(e.target, len(node_index))
        self.nodes = list(node_index)
        self.node_index = node_index
        if known_prices is not None and prices_hold(known_prices, rates.values()):
            # Prices the caller checked the quotes under (``quotes.choose_quotes``): what
            # was checked is what the router uses, however pricing afresh would start.
            prices = {e.asset: Fraction(1) for e in edges}
            for r in rates.values():
                prices[r.asset_in] = known_prices[r.asset_in]
                prices[r.asset_out] = known_prices[r.asset_out]
            self.arbitrage_free = True
        else:
            prices, self.arbitrage_free = reference_prices((e.asset for e in edges), rates.values())
        self.assets = sorted(prices)
        self.asset_index = {a: i for i, a in enumerate(self.assets)}
        self.prices = [prices[a] for a in self.assets]
        # Values are compared in floats (the bound, the unit grid, amount classes): a price
        # far outside the float range, which only a chain of extreme quotes makes (a peer's,
        # most likely), would overflow them. Refused here, where the caller can drop quotes.
        for asset, price in zip(self.assets, self.prices, strict=True):
            if not in_range(price):
                raise InvalidParams(
                    f"the quotes price one base unit of {asset} at about 2**"
                    f"{price.numerator.bit_length() - price.denominator.bit_length()} of "
                    "another asset's, beyond the router's range (2**-512 to 2**512)"
                )
        self.price_f = [float(p) for p in self.prices]

        n_edges = len(edges)
        self.e_src = [0] * n_edges
        self.e_dst = [0] * n_edges
        self.e_asset = [0] * n_edges
        self.e_cap = [0] * n_edges
        self.e_base = [0] * n_edges
        self.e_ppm = [0] * n_edges
        self.e_delta = [0] * n_edges
        state_index: dict[tuple[int, int], int] = {}
        e_from = [0] * n_edges
        e_to = [0] * n_edges
        delta_cache: dict[tuple[str, int], int] = {}
        for i, e in enumerate(edges):
            u, v, a = node_index[e.source], node_index[e.target], self.asset_index[e.asset]
            self.e_src[i], self.e_dst[i], self.e_asset[i] = u, v, a
            self.e_cap[i], self.e_base[i], self.e_ppm[i] = e.capacity, e.fee_base, e.fee_ppm
            key = (e.chain, e.challenge_duration)
            delta = delta_cache.get(key)
            if delta is None:
                delta = delta_cache[key] = hop_delta(e, time_models)
            self.e_delta[i] = delta
            e_from[i] = state_index.setdefault((u, a), len(state_index))
            e_to[i] = state_index.setdefault((v, a), len(state_index))
        self.state_index = state_index
        n_states = len(state_index)
        self.state_node = [0] * n_states
        self.state_asset = [0] * n_states
        for (u, a), s in state_index.items():
            self.state_node[s], self.state_asset[s] = u, a
        self.e_to = e_to
        self.e_from = e_from
        self.in_edges: list[list[int]] = [[] for _ in range(n_states)]
        self.out_edges: list[list[int]] = [[] for _ in range(len(self.nodes))]
        for i in range(n_edges):
            self.in_edges[e_to[i]].append(i)
            self.out_edges[self.e_src[i]].append(i)
        node_assets: list[set[int]] = [set() for _ in self.nodes]
        for u, a in state_index:
            node_assets[u].add(a)
        #: Nodes that touch several assets: the only ones whose revisit can make a dominated
        #: label necessary (see docs/routing.md), so labels remember which they went through.
        self.multi = [len(s) > 1 for s in node_assets]

        # Conversions usable by the search: at u, input c -> output a, both states present.
        self.conv_into: list[list[Conversion]] = [[] for _ in range(n_states)]
        conv_from: list[int] = []
        conv_to: list[int] = []
        conv_loss: list[float] = []
        conv_until: list[float] = []
        for (node, a_in, a_out), r in sorted(rates.items(), key=lambda kv: _rate_order(kv[1])):
            u_opt = node_index.get(node)
            if u_opt is None:
                continue
            s_in = state_index.get((u_opt, self.asset_index[a_in]))
            s_out = state_index.get((u_opt, self.asset_index[a_out]))
            if s_in is None or s_out is None:
                continue
            n_eff, d_eff = r.effective
            self.conv_into[s_out].append((s_in, n_eff, d_eff, r.valid_until))
            conv_from.append(s_in)
            conv_to.append(s_out)
            # Least relative value lost per unit of value converted; >= 0 without arbitrage.
            ratio = (
                self.prices[self.asset_index[a_in]]
                * d_eff
                / (n_eff * self.prices[self.asset_index[a_out]])
            )
            # Capped, as a lower bound may be: a quote of a peer's, free of arbitrage and
            # in the price range, can still lose 2**1276 of the value (float overflow).
            loss = float(ratio - 1) if ratio < LOSS_CAP else float(LOSS_CAP)
            conv_loss.append(max(loss, 0.0))
            conv_until.append(np.inf if r.valid_until is None else float(r.valid_until))

        # Forward CSR over states; entries [0, n_edges) are channel edges, the rest rates.
        rows = np.array(e_from + conv_from, dtype=np.int64)
        cols = np.array(e_to + conv_to, dtype=np.int32)
        order = np.argsort(rows, kind="stable")
        self.csr_indices: IntArray = cols[order]
        self.csr_indptr: IntArray = np.searchsorted(rows[order], np.arange(n_states + 1)).astype(
            np.int32
        )
        # The same entries by target state, for searches run backwards from the payee: an
        # in-arc's source state and its entry in the forward CSR (whose weight it shares).
        by_target = np.argsort(self.csr_indices, kind="stable")
        self.rev_entry: IntArray = by_target.astype(np.int32)
        self.rev_indices: IntArray = rows[order][by_target].astype(np.int32)
        self.rev_indptr: IntArray = np.searchsorted(
            self.csr_indices[by_target], np.arange(n_states + 1)
        ).astype(np.int32)
        n_conv = len(conv_from)
        price_of_edge = np.array([self.price_f[a] for a in self.e_asset], dtype=np.float64)
        # Per CSR entry: fee base (base units), fee ppm (fraction), price of the entry's
        # asset (1 for rates), conversion loss (0 for channel edges), channel-edge mask.
        w_base = np.concatenate([np.array(self.e_base, dtype=np.float64), np.zeros(n_conv)])
        w_ppm = np.concatenate([np.array(self.e_ppm, dtype=np.float64) / 1e6, np.zeros(n_conv)])
        w_price = np.concatenate([price_of_edge, np.ones(n_conv)])
        w_loss = np.concatenate([np.zeros(n_edges), np.array(conv_loss, dtype=np.float64)])
        w_edge = np.concatenate([np.ones(n_edges), np.zeros(n_conv)])
        cap_value = np.concatenate(
            [np.array(self.e_cap, dtype=np.float64) * price_of_edge, np.full(n_conv, np.inf)]
        )
        until = np.concatenate([np.full(n_edges, np.inf), np.array(conv_until, dtype=np.float64)])
        self.w_base: FloatArray = w_base[order]
        self.w_ppm: FloatArray = w_ppm[order]
        self.w_price: FloatArray = w_price[order]
        self.w_loss: FloatArray = w_loss[order]
        self.w_edge: FloatArray = w_edge[order]
        self.cap_value: FloatArray = cap_value[order]
        self.valid_until: FloatArray = until[order]
        #: Per CSR entry, the asset of a channel edge (-1: a rate), and each asset's price:
        #: the compiled bound pass (``_bounds.c``) reads these instead of ``w_price`` and
        #: ``w_edge``, one asset's rounding of the payment done once per query.
        codes = np.concatenate([np.array(self.e_asset, dtype=np.int32), np.full(n_conv, -1)])
        self.w_code: IntArray = codes[order].astype(np.int32)
        self.asset_price: FloatArray = np.array(self.price_f, dtype=np.float64)
        #: Where each channel edge sits in the CSR arrays, for O(1) patches.
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        self.edge_pos = position[:n_edges].tolist()
        self.has_rates = n_conv > 0
        self._in_arrays: dict[int, InArrays] = {}
        self._edge_arrays: InArrays | None = None
        self._by_target: tuple[npt.NDArray[np.int64], ...] = ()
        #: Cached bounds (:mod:`.bound_cache`), built on the first query that asks for them.
        self.bound_cache: PatchListener | None = None
        #: Rows per hub for any payer (:mod:`.hub_bounds`), built on the first query that asks.
        self.hub_bounds: PatchListener | None = None

    def in_arrays(self, st: int) -> InArrays:
        """Numpy views of a state's in-edges (gathered on first use, dropped on patches).

        Gathered from per-edge arrays built once (``_edge_arrays``), not from the lists edge
        by edge: a hub's state has thousands of in-edges, and the A* ranks them at its first
        expansion."""
        arrays = self._in_arrays.get(st)
        if arrays is None:
            if self._edge_arrays is None:
                self._by_target, self._edge_arrays = self._build_edge_arrays()
            order, indptr = self._by_target
            edges = order[indptr[st] : indptr[st + 1]]
            gathered = cast(InArrays, tuple(a[edges] for a in self._edge_arrays))
            self._in_arrays[st] = gathered
            return gathered
        return arrays

    def _build_edge_arrays(self) -> tuple[tuple[npt.NDArray[np.int64], ...], InArrays]:
        """The channel edges by target state (stable: ``in_edges``' order) and where each
        state's start; per edge, what :meth:`in_arrays` gives per state."""
        n = len(self.e_to)
        to = np.array(self.e_to, dtype=np.int64)
        order = np.argsort(to, kind="stable")
        indptr = np.searchsorted(to[order], np.arange(len(self.in_edges) + 1))
        asset_price = np.array(self.price_f, dtype=np.float64)
        per_edge = (
            np.arange(n, dtype=np.int64),
            np.fromiter((float(c) for c in self.e_cap), np.float64, count=n),
            np.fromiter((float(b) for b in self.e_base), np.float64, count=n),
            np.array(self.e_ppm, dtype=np.float64) / 1e6,
            asset_price[np.array(self.e_asset, dtype=np.int64)] if n else np.zeros(0),
            np.array(self.e_from, dtype=np.int64),
            np.array(self.e_src, dtype=np.int64),
            np.array(self.e_delta, dtype=np.int64),
        )
        return (order, indptr), per_edge

    def patch_edge(self, i: int, edge: ChannelEdge) -> None:
        self._in_arrays.pop(self.e_to[i], None)
        if self._edge_arrays is not None:  # copies per state are dropped above
            _, cap, base, ppm = self._edge_arrays[:4]
            cap[i], base[i], ppm[i] = float(edge.capacity), float(edge.fee_base), edge.fee_ppm / 1e6
        fee_lowered = edge.fee_base < self.e_base[i] or edge.fee_ppm < self.e_ppm[i]
        self.e_cap[i], self.e_base[i], self.e_ppm[i] = edge.capacity, edge.fee_base, edge.fee_ppm
        pos, price = self.edge_pos[i], self.price_f[self.e_asset[i]]
        old_cap_value = float(self.cap_value[pos])
        self.cap_value[pos] = edge.capacity * price
        self.w_base[pos] = float(edge.fee_base)
        self.w_ppm[pos] = edge.fee_ppm / 1e6
        for listener in (self.bound_cache, self.hub_bounds):
            if listener is not None:
                listener.patched(pos, old_cap_value, edge.capacity * price, fee_lowered)


def _rate_order(r: AssetRate) -> tuple[bytes, Asset, Asset]:
    return (r.node, r.asset_in, r.asset_out)


class RoutingGraph:
    """The router's view of the network: channel edges, hubs' rates, chains' clocks.

    One directed edge per channel direction, identified by ``(channel_id, source)``.
    """

    def __init__(
        self,
        edges: Iterable[ChannelEdge] = (),
        rates: Iterable[AssetRate] = (),
        time_models: Mapping[str, TimeModel] | None = None,
        prices: Mapping[Asset, Fraction] | None = None,
    ) -> None:
        self.time_models: dict[str, TimeModel] = dict(time_models or {})
        #: Reference prices the rates were checked under (``quotes.choose_quotes``): used
        #: while they hold for the graph's rates (checked at each index build), else the
        #: index prices afresh.
        self.known_prices = prices
        self._edges: list[ChannelEdge] = []
        self._position: dict[tuple[bytes, bytes], int] = {}
        self._rates: dict[RateKey, AssetRate] = rate_book(rates)
        self._index: _Index | None = None
        for edge in edges:
            self.add_edge(edge)

    # --- reading ---------------------------------------------------------------------------

    @property
    def edges(self) -> tuple[ChannelEdge, ...]:
        return tuple(self._edges)

    @property
    def rates(self) -> Mapping[RateKey, AssetRate]:
        return self._rates

    def edge_at(self, position: int) -> ChannelEdge:
        return self._edges[position]

    def edge(self, channel_id: bytes, source: bytes) -> ChannelEdge:
        return self._edges[self._position[(channel_id, source)]]

    def prices(self) -> dict[Asset, Fraction]:
        """The reference valuation routes are compared in (see :func:`reference_prices`)."""
        index = self.index()
        return dict(zip(index.assets, index.prices, strict=True))

    def value(self, asset: Asset, amount: int) -> Fraction:
        index = self.index()
        return amount * index.prices[index.asset_index[asset]]

    def index(self) -> _Index:
        if self._index is None:
            self._index = _Index(self._edges, self._rates, self.time_models, self.known_prices)
        return self._index

    # --- updating --------------------------------------------------------------------------

    def add_edge(self, edge: ChannelEdge) -> None:
        """Add a channel direction, or replace it (same channel id and source)."""
        if edge.chain not in self.time_models:
            raise NoTimeModel(f"no time model for chain {edge.chain}")
        key = (edge.channel_id, edge.source)
        i = self._position.get(key)
        if i is None:
            self._position[key] = len(self._edges)
            self._edges.append(edge)
            self._index = None
            return
        old = self._edges[i]
        self._edges[i] = edge
        if self._index is not None:
            if (old.target, old.asset, old.challenge_duration) == (
                edge.target,
                edge.asset,
                edge.challenge_duration,
            ):
                self._index.patch_edge(i, edge)
            else:
                self._index = None

    def set_capacity(self, channel_id: bytes, source: bytes, capacity: int) -> None:
        """What every settled or failed HTLC does to a channel direction: O(1)."""
        if capacity < 0:
            raise InvalidParams("capacity is non-negative")
        self.add_edge(msgspec.structs.replace(self.edge(channel_id, source), capacity=capacity))

    def set_fee(self, channel_id: bytes, source: bytes, fee_base: int, fee_ppm: int) -> None:
        edge = self.edge(channel_id, source)
        self.add_edge(msgspec.structs.replace(edge, fee_base=fee_base, fee_ppm=fee_ppm))

    def add_rate(self, rate: AssetRate) -> None:
        """A new or refreshed quote. Quotes change the reference prices: rebuilds lazily."""
        self._rates[(rate.node, rate.asset_in, rate.asset_out)] = rate
        self._index = None

    def remove_rate(self, node: bytes, asset_in: Asset, asset_out: Asset) -> None:
        if self._rates.pop((node, asset_in, asset_out), None) is not None:
            self._index = None
