"""A* bounds cached per payer and amount class, kept valid under in-place patches.

The bound of :func:`.bounds.lower_bounds` costs a weight pass over every state edge and a
Dijkstra over the whole state graph, per query: milliseconds that a node pays again for
every payment, although it is always the payer. The bound depends on the query only
through the payer, the payment's value ``v0`` and ``now`` (expired quotes). Here a
*row* (that Dijkstra) is kept per (payer, payer asset, amount class):

- *Amount classes* ``[v_lo, v_lo * 2 ** (1 / STEPS))``: a row is built over
  :func:`.bounds.edge_weights` at ``v_lo``, and weights only grow with the value, so it
  under-estimates every query of its class. Classes are narrow because the A* is
  sensitive to the slack: proportional fees and conversion losses are under-estimated by
  up to ``2 ** (1 / STEPS) - 1`` of the query's (on the 2k-node benchmark graph, a class
  per doubling made the A* push 26x more labels on average; 16 per doubling, 1.4x).
- *Fewer cuts.* A row cuts an edge whose capacity is worth less than ``v_lo`` (a query
  cuts below ``v0 >= v_lo``) and never cuts a quote for expiry; the payer's heads are its
  edges that can carry ``v_lo``. A row's graph keeps every edge and head a query may use.
  (Cutting by channel totals instead, which payments do not change, was tried: then the
  row could not prove a payee unreachable where the per-query bound does, and the exact
  search spent a minute on one such pair of the benchmark.)
- *Updates* (:meth:`BoundCache.patched`): a fee decrease drops every row; a capacity that
  rises drops the rows whose ``v_lo`` it crosses (those rows cut that edge). Capacity
  that falls and fees that rise drop nothing: weights that became too low are still lower
  bounds. A payment raises one direction of each channel it crosses, by its amount: only
  rows of classes between the old and the new capacity go.

So for every query served, a row's weights are pointwise at most the query's:
``row[X] = d_row(heads, X) <= d_query(heads, X)``, the bound is admissible (and consistent
for the row's weights), and the A* stays exact; the row is only slightly looser than a
per-query bound.

*A row for a key seen twice.* A row is a Dijkstra over every state; the per-query bound
(:func:`.lower_bounds` with the payee) settles only the states between payer and payee, a
fifth of them at the median on the 20k-node benchmark graph. So a key's first query takes
the per-query bound and only its second builds the row: a node paying again in a class
gets the row from its second payment on, and a service routing for random payers, whose
keys rarely come back, never pays for rows it would not reuse.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict

from .bounds import SLACK, Bounds, distances, lower_bounds, payer_heads
from .graph import _Index

#: Amount classes per doubling of the payment's value (see the module's docstring).
STEPS = 16
#: Memory the rows may take; a row is an array of a float per state.
MAX_ROW_BYTES = 128 * 2**20
#: Keys remembered as seen once (without a row): a key seen again builds its row.
SEEN_KEYS = 65_536


def value_class(v0: float, steps: int = STEPS) -> float:
    """The smallest value of ``v0``'s class: ``2 ** (j / steps)`` at or below ``v0``."""
    j = math.floor(math.log2(v0) * steps)
    v_lo = math.pow(2.0, j / steps)
    while v_lo > v0:  # float rounding at a class edge: step down...
        j -= 1
        v_lo = math.pow(2.0, j / steps)
    while math.pow(2.0, (j + 1) / steps) <= v0:  # ...or up (log2 of a class's own start
        j += 1  # can round below its j: 2 ** (5/16) fell in the class below it)
        v_lo = math.pow(2.0, j / steps)
    return v_lo


def _threshold(v_lo: float) -> float:
    """The value below which a row of class ``v_lo`` cuts an edge (as :func:`edge_weights`)."""
    return v_lo * (1 - SLACK)


class BoundCache:
    """Rows of A* bounds for one index (see the module's docstring)."""

    def __init__(
        self, index: _Index, steps: int = STEPS, max_row_bytes: int = MAX_ROW_BYTES
    ) -> None:
        self.index = index
        self.steps = steps
        n_states = len(index.state_node)
        self.max_rows = max(1, max_row_bytes // max(1, n_states * 8))
        self.rows: OrderedDict[tuple[float, int, int], Bounds] = OrderedDict()
        #: The rows' keys by class, and the classes sorted: a rising capacity finds the rows
        #: it breaks by bisection, not a scan (it happens on every hop of every payment).
        self.by_class: dict[float, set[tuple[float, int, int]]] = {}
        self.classes: list[float] = []
        #: Keys whose first query took the per-query bound (see the module's docstring).
        self.seen: OrderedDict[tuple[float, int, int], None] = OrderedDict()
        #: Counters for operators and benchmarks: rows built (Dijkstras), rows reused,
        #: first queries of a key served by the per-query bound.
        self.built = self.hits = self.first = 0

    def bounds(self, s: int, sa: int, v0: float, now: int, target: int) -> Bounds | None:
        """``h`` for this payer, payment value and payee state, or None if the payer has no
        usable head."""
        v_lo = value_class(v0, self.steps)
        key = (v_lo, s, sa)
        row = self.rows.get(key)
        if row is not None:
            self.rows.move_to_end(key)
            self.hits += 1
            return row
        index = self.index
        if key not in self.seen:
            self.seen[key] = None
            if len(self.seen) > SEEN_KEYS:
                self.seen.popitem(last=False)
            self.first += 1
            return lower_bounds(index, s, sa, v0, now, target)
        heads = payer_heads(index, s, sa, v_lo)
        if not heads:
            return None
        del self.seen[key]
        dist = distances(index, heads, v_lo, None)
        self.built += 1
        row = (dist, dist)
        self.rows[key] = row
        keys = self.by_class.get(v_lo)
        if keys is None:
            keys = self.by_class[v_lo] = set()
            bisect.insort(self.classes, v_lo)
        keys.add(key)
        while len(self.rows) > self.max_rows:
            self._drop(next(iter(self.rows)))
        return row

    def _drop(self, key: tuple[float, int, int]) -> None:
        del self.rows[key]
        keys = self.by_class[key[0]]
        keys.discard(key)
        if not keys:
            del self.by_class[key[0]]
            del self.classes[bisect.bisect_left(self.classes, key[0])]

    def patched(self, pos: int, old_cap_value: float, cap_value: float, fee_lowered: bool) -> None:
        """An edge's capacity or fees changed in place: drop the rows it may break."""
        if fee_lowered:
            self.rows.clear()
            self.by_class.clear()
            self.classes.clear()
        elif cap_value > old_cap_value and self.rows:
            # The rows that cut this edge (and may have left out a head) and now must not:
            # those of the classes whose cut threshold t = v_lo * (1 - SLACK), the same
            # float as the rows' cut, has old < t <= new (t grows with v_lo).
            classes = self.classes
            lo = bisect.bisect_right(classes, old_cap_value, key=_threshold)
            hi = bisect.bisect_right(classes, cap_value, key=_threshold)
            for key in [k for v_lo in classes[lo:hi] for k in self.by_class[v_lo]]:
                self._drop(key)

    def nbytes(self) -> int:
        """Memory of the rows."""
        return sum(row[1].nbytes for row in self.rows.values())
