"""Landmark (ALT) lower bounds: a few Dijkstras per graph and amount class, not per query.

For a landmark ``L`` and any weights obeying the triangle inequality, the distance from
the payer ``S`` to a state ``X`` satisfies ``d(S, X) >= d(L, X) - d(L, S)`` and
``d(S, X) >= d(S, L) - d(X, L)``. With tables ``d(L, .)`` and ``d(., L)`` computed once,
``h(X)`` is the best of these differences: a handful of array reads instead of a Dijkstra
over the whole state graph per query.

Why the bound stays a lower bound (admissible) for every query it serves:

- *Amount classes.* A table serves payments worth ``[v_lo, 2 v_lo)`` and is built over
  :func:`.bounds.edge_weights` at ``v_lo``: weights only grow with the value, so the
  table's graph is pointwise no dearer than any query's graph in its class.
- *Fewer cuts.* The table cuts an edge only when its channel's total capacity (both
  directions, at build) is worth less than ``v_lo``, and never cuts a quote for expiry:
  it keeps every edge a query in the class may use.
- *Updates.* Both facts are checked on every patch (:meth:`Landmarks.patched`, O(classes)):
  a capacity rising above ``v_lo`` on an edge the table cut, or any fee decrease, makes
  the table *stale*. A stale table is never read: the query falls back to the per-query
  bound (:func:`.bounds.lower_bounds`), and after as many fallbacks as a rebuild costs
  Dijkstras (ski rental) the table is rebuilt. Capacity moving inside a channel (every
  payment) never makes a table stale.
- Then ``d_table(S, X) <= d_query(S, X)`` for all ``X``, and the landmark differences bound
  ``d_table``; every difference is shrunk by a relative 1e-12 against float rounding.
  A max of such potentials is consistent with the table's weights, hence with the query's.

The payer's first hop is free, so ``S`` is a set of heads: ``d(L, S)`` is the largest
``d(L, head)`` and ``d(S, L)`` the smallest ``d(head, L)``. Per query only the few
landmarks that bound the payee's state best are used (``active``).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import numpy.typing as npt
from scipy.sparse.csgraph import dijkstra

from .bounds import SLACK, Bounds, edge_weights, matrix, payer_heads
from .graph import _Index

FloatArray = npt.NDArray[np.float64]

#: Landmarks per table, used per query, and tables kept (least recently used dropped).
LANDMARKS = 16
ACTIVE = 4
MAX_CLASSES = 12
#: Relative margin against float rounding in the table's long sums and their differences.
_ROUND = 1e-12


class _Table:
    """Distances to and from the landmarks over one amount class's weights."""

    __slots__ = ("fallbacks", "fwd", "stale", "to", "v_lo", "weights")

    def __init__(self, v_lo: float, weights: FloatArray, fwd: FloatArray, to: FloatArray) -> None:
        self.v_lo, self.weights, self.fwd, self.to = v_lo, weights, fwd, to
        self.stale = False
        self.fallbacks = 0


def value_class(v0: float) -> float:
    """The smallest value of ``v0``'s class: the power of two at or below it."""
    mantissa, exponent = math.frexp(v0)
    return math.ldexp(0.5, exponent)  # 0.5 <= mantissa < 1


class Landmarks:
    """ALT tables for one index, built lazily per amount class and kept valid on patches."""

    def __init__(self, index: _Index, landmarks: int = LANDMARKS, active: int = ACTIVE) -> None:
        self.index = index
        self.k = landmarks
        self.active = active
        self.tables: OrderedDict[float, _Table] = OrderedDict()
        #: Per CSR entry, the most value the entry can ever carry as far as the tables know:
        #: the channel's total capacity (both directions), raised on patches; inf for quotes.
        n_edges = len(index.e_cap)
        cap = np.array(index.e_cap, dtype=np.float64)
        sib = np.array(index.e_sibling, dtype=np.int64)
        total = cap + np.where(sib >= 0, cap[np.maximum(sib, 0)], 0.0)
        price = np.array([index.price_f[a] for a in index.e_asset], dtype=np.float64)
        self.ceiling = np.full(len(index.csr_indices), np.inf)
        self.ceiling[np.array(index.edge_pos, dtype=np.int64)] = (total * price)[:n_edges]
        self.builds = 0

    # --- queries -----------------------------------------------------------------------------

    def bounds(self, s: int, sa: int, v0: float, start: int) -> Bounds | None | bool:
        """``h`` for a payer, or None (no usable first hop), or False (no fresh table)."""
        heads = payer_heads(self.index, s, sa, v0)
        if not heads:
            return None
        table = self._table(value_class(v0))
        if table is None:
            return False
        k = self.k
        from_l = table.fwd[:, heads]  # d(L, head)
        to_l = table.to[:, heads]  # d(head, L)
        with np.errstate(invalid="ignore"):
            far = from_l.max(axis=1) * (1 + _ROUND)  # d(L, S)
            near = to_l.min(axis=1) * (1 - _ROUND)  # d(S, L)
            # Rank the 2k potentials by what they say about the payee's state.
            at_start = np.concatenate(
                [
                    table.fwd[:, start] * (1 - _ROUND) - far,
                    near - table.to[:, start] * (1 + _ROUND),
                ]
            )
        at_start = np.nan_to_num(at_start, nan=-np.inf)
        best = np.argsort(-at_start, kind="stable")[: self.active]
        h = np.zeros(table.fwd.shape[1])
        with np.errstate(invalid="ignore"):
            for j in best.tolist():
                if at_start[j] == -np.inf:
                    continue
                if j < k:
                    term = table.fwd[j] * (1 - _ROUND) - far[j]
                else:
                    term = near[j - k] - table.to[j - k] * (1 + _ROUND)
                np.fmax(h, term, out=h)  # fmax: inf - inf (nan) says nothing
        bounds: list[float] = h.tolist()
        return bounds, h

    def _table(self, v_lo: float) -> _Table | None:
        table = self.tables.get(v_lo)
        if table is not None and table.stale:
            # Ski rental: fall back (one Dijkstra each) until the fallbacks have cost what a
            # rebuild costs (2k Dijkstras), then rebuild.
            table.fallbacks += 1
            if table.fallbacks < 2 * self.k:
                return None
            table = None
        if table is None:
            table = self._build(v_lo)
            self.tables[v_lo] = table
            while len(self.tables) > MAX_CLASSES:
                self.tables.popitem(last=False)
        self.tables.move_to_end(v_lo)
        return table

    def _build(self, v_lo: float) -> _Table:
        """Farthest-point landmarks over the class's weights, then both distance tables."""
        index = self.index
        weights = edge_weights(index, v_lo, self.ceiling, None)
        forward = matrix(index, weights)
        n = forward.shape[0]
        k = min(self.k, n)
        fwd = np.empty((k, n))
        # Start at the state with most out-edges (a hub), then repeatedly take the state
        # farthest from all landmarks so far (ties and unreachable states: skipped).
        out_degree = np.diff(index.csr_indptr)
        pick = int(np.argmax(out_degree))
        nearest = np.full(n, np.inf)
        chosen: list[int] = []
        for i in range(k):
            chosen.append(pick)
            fwd[i] = dijkstra(forward, directed=True, indices=pick)
            np.fmin(nearest, fwd[i], out=nearest)
            score = np.where(np.isfinite(nearest), nearest, -1.0)
            score[chosen] = -1.0
            pick = int(np.argmax(score))
        to = dijkstra(forward.T.tocsr(), directed=True, indices=chosen)
        self.builds += 1
        return _Table(v_lo, weights, fwd, np.asarray(to, dtype=np.float64))

    # --- updates -----------------------------------------------------------------------------

    def patched(self, pos: int, cap_value: float, fee_lowered: bool) -> None:
        """An edge's capacity or fee changed in place: mark the tables it breaks stale."""
        if cap_value > self.ceiling[pos]:
            self.ceiling[pos] = cap_value
        for table in self.tables.values():
            if fee_lowered or (
                table.weights[pos] == np.inf and cap_value >= table.v_lo * (1 - SLACK)
            ):
                table.stale = True

    # --- operating ---------------------------------------------------------------------------

    def prepare(self, v_lo: float) -> None:
        """Build (or rebuild) the table of an amount class ahead of queries."""
        self.tables[v_lo] = self._build(v_lo)
        while len(self.tables) > MAX_CLASSES:
            self.tables.popitem(last=False)

    def nbytes(self) -> int:
        return sum(t.fwd.nbytes + t.to.nbytes + t.weights.nbytes for t in self.tables.values())
