"""Lower bounds cached per amount class and payer, kept valid under in-place patches.

The A* bound of :func:`.bounds.lower_bounds` costs a weight pass over every state edge
and a Dijkstra over the whole state graph, per query. Both depend on the query only
through the payment's value ``v0``, the payer, and ``now`` (expired quotes). Here:

- *Amount classes.* Weights are built once per class ``[v_lo, 2 v_lo)`` at ``v_lo``:
  :func:`.bounds.edge_weights` only grows with the value, so they under-estimate every
  query of the class.
- *Payer rows.* The Dijkstra from a payer's first-hop heads over a class's weights is
  kept (least recently used dropped): a node routes its own payments, so after its first
  query per class the bound costs nothing. A new payer pays one Dijkstra, no weight pass.
- *Fewer cuts.* A class cuts an edge only when its channel's total capacity (both
  directions, at build) is worth less than ``v_lo``, and never cuts a quote for expiry;
  a payer's heads are its edges whose channel could carry ``v_lo``. The class's graph
  keeps every edge and head any query in the class may use.
- *Updates* (:meth:`BoundCache.patched`, O(classes)): a capacity rising to ``v_lo`` on an
  edge the class cut, or any fee decrease, marks the class stale; its next query rebuilds
  its weights and drops its rows. Capacity moving inside a channel (every payment) and
  fee increases never do: weights that are too low stay lower bounds.

So for every query served, the class's weights are pointwise at most the query's, hence
``row[X] = d_class(heads, X) <= d_query(heads, X)``: the bound stays admissible (and
consistent for the class's weights), and the A* stays exact. The rows are slightly looser
than a per-query bound (at ``v_lo`` instead of ``v0``), which costs the A* a few labels.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from .bounds import SLACK, Bounds, edge_weights, matrix
from .graph import _Index

FloatArray = npt.NDArray[np.float64]

#: Payer rows kept across all classes (each is a float per state, twice: list and array).
MAX_ROWS = 16


def value_class(v0: float) -> float:
    """The smallest value of ``v0``'s class: the power of two at or below it."""
    _, exponent = math.frexp(v0)  # v0 = m * 2**exponent, 0.5 <= m < 1
    return math.ldexp(0.5, exponent)


class _Class:
    """One amount class: its weights (as a CSR matrix) and whether a patch broke them."""

    __slots__ = ("matrix", "stale", "weights")

    def __init__(self, weights: FloatArray, graph: csr_matrix) -> None:
        self.weights, self.matrix, self.stale = weights, graph, False


class BoundCache:
    """Class weights and payer rows for one index (see the module's docstring)."""

    def __init__(self, index: _Index, max_rows: int = MAX_ROWS) -> None:
        self.index = index
        self.max_rows = max_rows
        self.classes: dict[float, _Class] = {}
        self.rows: OrderedDict[tuple[float, int, int], Bounds] = OrderedDict()
        #: Per CSR entry, the most value it can carry as far as the classes know: the
        #: channel's total capacity (both directions), raised on patches; inf for quotes.
        cap = np.array(index.e_cap, dtype=np.float64)
        sib = np.array(index.e_sibling, dtype=np.int64)
        total = cap + np.where(sib >= 0, cap[np.maximum(sib, 0)], 0.0)
        price = np.array([index.price_f[a] for a in index.e_asset], dtype=np.float64)
        self.ceiling = np.full(len(index.csr_indices), np.inf)
        self.ceiling[np.array(index.edge_pos, dtype=np.int64)] = total * price
        #: Counters for operators and benchmarks: class builds, row Dijkstras, row hits.
        self.builds = self.dijkstras = self.hits = 0

    def bounds(self, s: int, sa: int, v0: float) -> Bounds | None:
        """``h`` for this payer and payment value, or None if the payer has no usable head."""
        v_lo = value_class(v0)
        cls = self.classes.get(v_lo)
        if cls is None or cls.stale:
            cls = self.classes[v_lo] = self._build(v_lo)
            for key in [k for k in self.rows if k[0] == v_lo]:
                del self.rows[key]
        key = (v_lo, s, sa)
        row = self.rows.get(key)
        if row is not None:
            self.rows.move_to_end(key)
            self.hits += 1
            return row
        heads = self._heads(s, sa, v_lo)
        if not heads:
            return None
        dist = dijkstra(cls.matrix, directed=True, indices=heads, min_only=True)
        self.dijkstras += 1
        row = (dist.tolist(), dist)
        self.rows[key] = row
        while len(self.rows) > self.max_rows:
            self.rows.popitem(last=False)
        return row

    def _heads(self, s: int, sa: int, v_lo: float) -> list[int]:
        """The payer's first hops whose channel could carry ``v_lo`` (a superset of every
        query's heads in the class, as long as the class is not stale)."""
        index, ceiling, edge_pos = self.index, self.ceiling, self.index.edge_pos
        floor = v_lo * (1 - SLACK)
        return [
            index.e_to[e]
            for e in index.out_edges[s]
            if (sa < 0 or index.e_asset[e] == sa) and ceiling[edge_pos[e]] >= floor
        ]

    def _build(self, v_lo: float) -> _Class:
        weights = edge_weights(self.index, v_lo, self.ceiling, None)
        self.builds += 1
        return _Class(weights, matrix(self.index, weights))

    def patched(self, pos: int, cap_value: float, fee_lowered: bool) -> None:
        """An edge's capacity or fees changed in place: mark the classes it breaks stale."""
        if cap_value > self.ceiling[pos]:
            self.ceiling[pos] = cap_value
        for v_lo, cls in self.classes.items():
            if fee_lowered or (cls.weights[pos] == np.inf and cap_value >= v_lo * (1 - SLACK)):
                cls.stale = True

    def nbytes(self) -> int:
        """Memory of the cached arrays (the rows' lists take about four times their array)."""
        arrays = sum(c.weights.nbytes * 2 for c in self.classes.values())
        return arrays + sum(row[1].nbytes * 5 for row in self.rows.values())
