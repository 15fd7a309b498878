"""A* bounds for any payer: distance rows kept per hub, and a Dijkstra that stops at hubs.

:func:`.bounds.lower_bounds` runs a Dijkstra over the whole state graph per query, and
:mod:`.bound_cache` keeps it per payer: a node routing its own payments reuses it, but a
service routing for random payers builds a row per payer. Here rows are kept per *hub*
and shared by every payer (``find_route(..., strategy="hubs")``):

- *Exact decomposition.* A path from the payer either avoids the hubs (the
  best-connected nodes, as many as the memory budget holds rows for) or has a first hub
  ``H``. With ``c_H`` the payer's distance to ``H`` over hub-free paths and ``R_H`` the
  distances from ``H``, ``h(X) = min(d_local(X), min_H c_H + R_H(X))`` is the payer's
  distance, where ``d_local`` is one scipy Dijkstra over the graph without the hubs'
  out-edges (on the 20k-node benchmark graph, with 100 hubs, it settles a fifth of the
  states). Only *first* hubs matter: ``H`` is dropped when a hub already taken reaches it
  no dearer (``c_K + R_K(H) <= c_H``; then ``c_K + R_K(X) <= c_H + R_H(X)`` everywhere by
  the triangle inequality): about ten remain per query.
- *Amounts by interpolation.* A hop carrying value ``v >= v0`` pays at least
  ``base + max(one base unit, v * ppm / 1e6)`` (the ``ceil`` of a positive fee is at
  least one unit; the floor matters for small payments in coarse units) and a conversion
  loses ``v * loss``. On each octave ``[2 ** i, 2 ** (i + 1))`` a row uses an affine
  function under that floor, so a path's cost is affine in ``v`` there and a distance,
  the least of them, is concave: interpolating the distances computed at both ends of the
  octave is a lower bound at any ``v0`` inside. Rows cut no edge for capacity and no quote
  for expiry (the query's graph is a subgraph); the local Dijkstra uses the query's own
  floor and cuts. (One row of base fees and one of proportional fees per hub, valid for
  every amount, were too loose: the bound at the payee fell to 0.89 of the per-query one
  at the median and the A* took twice as long. Plain linear weights, without the unit
  floor, fell to 0.65-0.75 on small BTC payments.)
- *Cold rows.* A query computes at most ``MAX_NEW_ROWS`` missing rows (two Dijkstras
  over the whole graph each); if it misses more, it takes the per-query bound of
  :func:`.bounds.lower_bounds` this time, exact as well.

Each term is consistent for weights at most the query's, and so is their minimum: the A*
stays exact (same cost as ``"astar"``). A fee decrease drops every row (a rise leaves
them under the fees); capacities never touch them. What is left per query: the hub-free
Dijkstra, a vector minimum per first hub, and the A* itself.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import dijkstra

from .bounds import SLACK, Bounds, lower_bounds, matrix, payer_heads
from .graph import _Index

FloatArray = npt.NDArray[np.float64]

#: Share of the nodes, best-connected first, that are hubs (if the memory holds their rows).
HUB_SHARE = 0.005
#: Rows a hub is expected to need (one per octave of payment values met, two arrays each;
#: 9 octaves from $1 to $300): sizes the hub set to the memory budget.
ROWS_PER_HUB = 9
#: Rows a query may compute; past that, it takes the per-query bound (one Dijkstra) instead.
MAX_NEW_ROWS = 4
#: Memory the rows may take (float64 per state and row).
MAX_ROW_BYTES = 2**30
_INF = np.inf


def value_octave(v0: float) -> int:
    """The class of ``v0``: ``j`` with ``2 ** j <= v0 < 2 ** (j + 1)``."""
    j = math.floor(math.log2(v0))
    while math.ldexp(1.0, j) > v0:  # float rounding at a class edge: step down
        j -= 1
    while math.ldexp(1.0, j + 1) <= v0:
        j += 1
    return j


def _cut(v: float) -> float:
    """The value below which an edge cannot carry a payment worth ``v`` (as the rows cut)."""
    return v * (1 - SLACK)


class HubBounds:
    """Rows of distances from the hubs' states (see the module's docstring)."""

    def __init__(
        self,
        index: _Index,
        max_row_bytes: int = MAX_ROW_BYTES,
        n_hubs: int | None = None,
        max_new_rows: int = MAX_NEW_ROWS,
    ) -> None:
        self.index = index
        self.max_new_rows = max_new_rows
        n_nodes, n_states = len(index.nodes), len(index.state_node)
        self.max_rows = max(1, max_row_bytes // max(1, n_states * 16))  # two arrays per row
        degree = np.array([len(out) for out in index.out_edges], dtype=np.int64)
        state_node = np.array(index.state_node, dtype=np.int64)
        by_degree = np.argsort(-degree, kind="stable")
        if n_hubs is None:
            # The best-connected HUB_SHARE of the nodes, or as many as rows for ROWS_PER_HUB
            # amounts fit in the memory budget.
            states_of = np.bincount(state_node, minlength=n_nodes)[by_degree]
            fit = int(np.searchsorted(np.cumsum(states_of), self.max_rows // ROWS_PER_HUB, "right"))
            n_hubs = max(1, min(math.ceil(HUB_SHARE * n_nodes), fit))
        hub_node = np.zeros(n_nodes, dtype=bool)
        hub_node[by_degree[:n_hubs]] = True
        is_hub = hub_node[state_node] if n_states else np.zeros(0, dtype=bool)
        self.hub_states: npt.NDArray[np.int64] = np.flatnonzero(is_hub)
        entry_row = np.repeat(np.arange(n_states), np.diff(index.csr_indptr))
        #: CSR entries leaving a hub state: the local Dijkstra does not expand hubs.
        self.local_off = is_hub[entry_row] if n_states else np.zeros(0, dtype=bool)
        self.conv_pos = np.flatnonzero(index.w_edge == 0)
        n_entries = len(index.csr_indices)
        self.base = np.empty(n_entries)
        self.unit = np.empty(n_entries)
        #: The local weights' parts, pre-shrunk by SLACK (inf on the entries leaving a hub).
        self.local_base = np.empty(n_entries)
        self.local_unit = np.empty(n_entries)
        self.local_ppm = np.empty(n_entries)
        self._refresh(slice(None))
        #: (octave i, hub state) -> distances from the hub at 2**i, and their gain at 2**(i+1)
        self.rows: OrderedDict[tuple[int, int], tuple[FloatArray, FloatArray]] = OrderedDict()
        self._weights: dict[tuple[int, int], FloatArray] = {}
        #: Counters for operators and benchmarks: rows computed, rows reused, queries that
        #: took the per-query bound because they missed more rows than they may compute.
        self.built = self.hits = self.fallbacks = 0

    # --- weights -----------------------------------------------------------------------------

    def _parts(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Per CSR entry, in value: base fee, least proportional fee (one base unit if the
        rate is positive), proportional rate and conversion loss (per value carried)."""
        return self.base, self.unit, self.index.w_ppm, self.index.w_loss

    def _refresh(self, pos: slice | int) -> None:
        """Recompute the parts of these entries (and the local weights' pre-shrunk copies)."""
        ix = self.index
        self.base[pos] = ix.w_base[pos] * ix.w_price[pos]
        self.unit[pos] = np.where(ix.w_ppm[pos] > 0, ix.w_price[pos], 0.0)
        shrink = 1 - SLACK
        self.local_base[pos] = np.where(self.local_off[pos], _INF, self.base[pos] * shrink)
        self.local_unit[pos] = self.unit[pos] * shrink
        self.local_ppm[pos] = ix.w_ppm[pos] * shrink

    def _octave_weights(self, i: int, end: int) -> FloatArray:
        """Octave ``i``'s weights at one end, kept until a fee falls (a rise leaves them
        under the fees: still lower bounds, like the rows computed from them)."""
        w = self._weights.get((i, end))
        if w is None:
            w = self._weights[(i, end)] = self._compute_octave_weights(i, end)
            if len(self._weights) > 8:  # a few octaves' weights, the latest
                del self._weights[next(iter(self._weights))]
        return w

    def _compute_octave_weights(self, i: int, end: int) -> FloatArray:
        """Octave ``i``'s affine weights at its start (``end`` 0) or its end (1).

        A hop carrying value ``v >= v0`` pays ``g(v) = base + max(unit, v * ppm)`` or more
        (``ceil`` of a positive fee is at least one base unit). ``g`` is convex; on the
        octave ``[a, 2a]`` the row uses an affine ``l <= g``: ``g`` itself where it is one
        line, and a line through its kink (slope between the two lines') where the kink
        falls inside. Affine per octave, so the octave's rows interpolate exactly.
        """
        base, unit, ppm, loss = self._parts()
        a = math.ldexp(1.0, i)
        b = 2 * a
        with np.errstate(divide="ignore", invalid="ignore"):
            kink = np.where(ppm > 0, unit / ppm, _INF)
            inside = ppm * (b - kink) / (b - a)
        slope = np.where(kink <= a, ppm, np.where(kink >= b, 0.0, inside))
        const = np.where(kink <= a, 0.0, unit - slope * np.minimum(kink, b))
        v = b if end else a
        w: FloatArray = base + const + slope * v + loss * v
        w *= 1 - SLACK
        return w

    def _local_weights(self, v0: float, now: int) -> FloatArray:
        """The query's weights ``g(v0)`` and cuts, hubs not expanded."""
        ix = self.index
        w: FloatArray = self.local_ppm * v0
        np.maximum(w, self.local_unit, out=w)
        w += self.local_base  # inf on the entries leaving a hub
        np.putmask(w, ix.cap_value < _cut(v0), _INF)
        pos = self.conv_pos  # the only entries with a conversion loss (and an expiry)
        if len(pos):
            w[pos] += ix.w_loss[pos] * (v0 * (1 - SLACK))
            w[pos[ix.valid_until[pos] < now]] = _INF
        return w

    # --- rows --------------------------------------------------------------------------------

    def _rows(self, i: int, hub: int) -> tuple[FloatArray, FloatArray]:
        """Distances from this hub state over octave ``i``'s weights at its start, and what
        they gain at its end (0 where neither end reaches: interpolating costs one pass less)."""
        key = (i, hub)
        pair = self.rows.get(key)
        if pair is None:
            start, end = (
                dijkstra(matrix(self.index, self._octave_weights(i, e)), directed=True, indices=hub)
                for e in (0, 1)
            )
            # Both ends have the same edges (weights differ, none is cut): the same states
            # are unreachable in both.
            gain = np.subtract(end, start, out=end, where=np.isfinite(start))
            gain[~np.isfinite(start)] = 0.0
            pair = self.rows[key] = (start, gain)
            self.built += 2
            while len(self.rows) > self.max_rows:
                self.rows.popitem(last=False)
        else:
            self.rows.move_to_end(key)
            self.hits += 2
        return pair

    def bounds(self, s: int, sa: int, v0: float, now: int) -> Bounds | None:
        """``h`` for this payer, payment value and time, or None if the payer has no head."""
        index = self.index
        heads = payer_heads(index, s, sa, v0)
        if not heads:
            return None
        i = value_octave(v0)
        lam = 2 - v0 / math.ldexp(1.0, i)  # weight of 2**i's distances; 1 - lam of 2**(i+1)'s
        h: FloatArray = dijkstra(
            matrix(index, self._local_weights(v0, now)),
            directed=True,
            indices=heads,
            min_only=True,
        )
        hubs = self.hub_states
        c = h[hubs]
        reached = np.flatnonzero(np.isfinite(c))
        order = reached[np.argsort(c[reached], kind="stable")]
        via: FloatArray | None = None
        term = np.empty(len(h))
        new_rows = 0
        for k in order.tolist():
            hub, c_hub = int(hubs[k]), float(c[k])
            # Dropped when a first hub already taken reaches it no dearer: its row then adds
            # nothing (triangle inequality). The margin keeps float error on the safe side.
            if via is not None and via[hub] * (1 + 1e-9) <= c_hub:
                continue
            if (i, hub) not in self.rows:
                if new_rows == self.max_new_rows:
                    # A cold start (new hubs or a new octave): computing every missing row
                    # now would cost two Dijkstras each; compute a few per query and take
                    # the per-query bound, exact as well, for this one.
                    self.fallbacks += 1
                    return lower_bounds(index, s, sa, v0, now)
                new_rows += 1
            start, gain = self._rows(i, hub)
            # c_H + lam * start + (1 - lam) * end, as c_H + start + (1 - lam) * gain
            np.multiply(gain, 1 - lam, out=term)
            term += start
            term += c_hub
            if via is None:
                via = term.copy()
            else:
                np.minimum(via, term, out=via)
        if via is not None:
            np.minimum(h, via, out=h)
        bounds: list[float] = h.tolist()
        return bounds, h

    # --- patches -----------------------------------------------------------------------------

    def patched(self, pos: int, old_cap_value: float, cap_value: float, fee_lowered: bool) -> None:
        """An edge's fees fell: every row may over-estimate now. Rows cut nothing, so
        capacities do not touch them (the local part reads capacities and fees per query)."""
        self._refresh(pos)
        if fee_lowered:
            self.rows.clear()
            self._weights.clear()

    def nbytes(self) -> int:
        """Memory of the rows."""
        return sum(a.nbytes + b.nbytes for a, b in self.rows.values())
