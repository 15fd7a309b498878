"""Lower bounds on what a partial route must still cost the payer (numpy + scipy).

The exact search (:mod:`.search`) pops labels by ``value + h(state)``, where ``h(state)``
never over-estimates the value the payer must add between its first hop and ``state``.
Two sources of ``h`` share the weights built here:

- :func:`lower_bounds`: one Dijkstra per query over weights at the payment's own value
  (tight, but the Dijkstra visits most of a small-world graph: milliseconds);
- :mod:`.landmarks`: distances to and from a few landmarks, computed once per graph and
  amount class over weights at the class's smallest value (looser, microseconds).

Both rest on one fact: every weight is a lower bound on the exact value increment of its
step on any route carrying at least ``v0`` of value, and weights only grow with ``v0``.

The per-query bound runs in a compiled kernel (``_bounds.c``) that knows the payee: it
settles the states between payer and payee, not the whole graph (a fifth of the states at
the median on the 20k-node benchmark graph), and stays exact for the A*. Where the
extension was not built, scipy's Dijkstra over the whole graph gives the same distances.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from .graph import _Index


def kernel_is_stale(built: Path, source: Path) -> bool:
    """Whether the extension at ``built`` predates its C ``source`` (when both are there).

    An editable install builds the extension next to its source once; a ``git pull`` that
    changes ``_bounds.c`` then leaves the old binary in place until ``make bootstrap``. A
    wheel ships no source: nothing to compare, never stale."""
    try:
        return built.stat().st_mtime < source.stat().st_mtime
    except OSError:
        return False


def _load_kernel() -> tuple[ModuleType | None, str]:
    """The compiled kernel and ``"compiled"``, or ``None`` and why scipy serves instead."""
    try:
        from . import _bounds as kernel
    except ImportError as exc:  # built by `pip install` (setuptools' ext-modules)
        return None, f"scipy: the compiled kernel is not built ({exc}); run `make bootstrap`"
    if kernel.__file__ and kernel_is_stale(
        Path(kernel.__file__), Path(__file__).with_name("_bounds.c")
    ):
        return None, "scipy: the compiled kernel is older than _bounds.c; run `make bootstrap`"
    return kernel, "compiled"


#: What computes the per-query bound: ``"compiled"``, or ``"scipy: <why>"`` (the same
#: distances, about twice as slow per query). Shown by the node's ``info``.
_kernel, KERNEL_STATUS = _load_kernel()

_INF = np.inf
#: Float slack: the bound pass works in floats, so it under-estimates by this much to stay
#: a true lower bound, and the search keeps popping this far past the best route found.
SLACK = 1e-9
#: How far past the payee's distance the kernel's bound stays fully informed (``_bounds.c``:
#: exact at any value >= 1, no extra A* work while the optimum's value-to-add is within it;
#: on the benchmark graph it was 1.00-1.09 times that distance).
STRETCH = 1.1

#: A bound twice: for the scalar loop (a list or a memoryview index fastest; a cached row
#: stays an array to take a fifth of the memory), and an array for numpy ranking.
Bounds = tuple[list[float] | memoryview | npt.NDArray[np.float64], npt.NDArray[np.float64]]


def edge_weights(
    index: _Index,
    v0: float,
    cap_value: npt.NDArray[np.float64],
    now: int | None,
) -> npt.NDArray[np.float64]:
    """Per CSR entry, a lower bound on the value a step adds to any route worth >= ``v0``.

    The amount an edge carries is worth at least the payment itself (value never shrinks
    towards the payer), so it is at least ``x = floor(v0 / price)`` base units and the fee
    at least ``fee_base + ceil(x * ppm / 1e6)`` (keeping the rounding matters for small
    amounts in coarse units: a satoshi is a large share of a small fee); a conversion loses
    at least its rate's shortfall from the reference prices on that same value. An entry
    whose ``cap_value`` is worth less than ``v0`` is cut (inf); with ``now``, so are
    expired quotes. Every weight is non-decreasing in ``v0`` and in the fees.
    """
    x_min = np.floor(v0 / index.w_price * (1 - SLACK))
    fee = index.w_base + np.ceil(x_min * index.w_ppm * (1 - 1e-12))
    weights: npt.NDArray[np.float64] = fee * index.w_price * index.w_edge + v0 * index.w_loss
    weights[cap_value < v0 * (1 - SLACK)] = _INF
    if now is not None and index.has_rates:
        weights[index.valid_until < now] = _INF
    weights *= 1 - SLACK
    return weights


def payer_heads(index: _Index, s: int, sa: int, v0: float) -> list[int]:
    """The states the payer's own usable first hops lead to (its own edge is free)."""
    heads = []
    e_cap, e_asset, price_f, e_to = index.e_cap, index.e_asset, index.price_f, index.e_to
    for e in index.out_edges[s]:
        a = e_asset[e]
        if (sa < 0 or a == sa) and e_cap[e] * price_f[a] >= v0 * (1 - SLACK):
            heads.append(e_to[e])
    return heads


def matrix(index: _Index, weights: npt.NDArray[np.float64]) -> csr_matrix:
    n = len(index.state_node)
    return csr_matrix((weights, index.csr_indices, index.csr_indptr), shape=(n, n))


def lower_bounds(
    index: _Index, s: int, sa: int, v0: float, now: int | None, target: int = -1
) -> Bounds | None:
    """``h[state]``: a consistent lower bound on the value still to add between the payer
    and that state, or None if the payer has no usable first hop.

    With the payee's state as ``target``, the kernel's bound from both ends (exact where the
    A* will look, looser beyond; inf everywhere if the payee cannot be reached); otherwise
    the payer's distances (:func:`distances`).
    """
    heads = payer_heads(index, s, sa, v0)
    if not heads:
        return None
    dist = distances(index, heads, v0, now, target)
    # The A* reads a few hundred of the states: a memoryview reads them as floats at about
    # list speed, without building a list of every state (0.4 ms on the benchmark graph).
    return dist.data, dist


def distances(
    index: _Index, heads: list[int], v0: float, now: int | None, target: int = -1
) -> npt.NDArray[np.float64]:
    """The payer's distance to every state over :func:`edge_weights` (the kernel's full
    Dijkstra, or scipy's without it), or with ``target`` the kernel's bound from both ends.

    Both are consistent lower bounds for the A*; scipy's distances serve for either."""
    if _kernel is None:
        weights = edge_weights(index, v0, index.cap_value, now)
        dist: npt.NDArray[np.float64] = dijkstra(
            matrix(index, weights), directed=True, indices=heads, min_only=True
        )
        return dist
    out = np.empty(len(index.state_node))
    _kernel.bounds(
        index.csr_indptr,
        index.csr_indices,
        index.rev_indptr,
        index.rev_indices,
        index.rev_entry,
        index.w_code,
        index.w_base,
        index.w_ppm,
        index.w_loss,
        index.cap_value,
        index.valid_until,
        index.asset_price,
        heads,
        v0,
        float(now) if now is not None and index.has_rates else math.nan,
        target,
        STRETCH,
        out,
    )
    return out
