"""Cheapest-route search: a scipy lower-bound pass, then an exact integer A* backwards.

1. *Bound* (numpy + scipy, compiled; :mod:`.bounds`): each forward state-graph edge gets a
   weight that can only under-estimate what it will really cost the payer at this
   payment's size, edges that cannot carry the payment are cut, and one Dijkstra from the
   payer's neighbours gives ``h(state)``: a lower bound on what must still be added to a
   partial route's value to reach the payer. It is consistent (the weights obey the
   triangle inequality). Per query, or cached per payer and amount class
   (:mod:`.bound_cache`).
2. *Exact* (pure Python, integer): a label-setting search from the payee backwards, where a
   label is (amount the node must receive, expiry offset of its outgoing HTLC, hops), built
   with the same integer formulas as :mod:`.rules` (and the returned route is re-checked
   by :func:`.rules.validate_route`). Labels are popped by ``value + h`` (A*), so only
   labels that could still beat the best route found are ever expanded.

A third ingredient keeps hubs cheap: a popped label ranks its predecessors by bound
(numpy for high in-degree) but turns them into labels lazily, cheapest first (partial
expansion). Simplicity (a circuit never revisits a node) is paid for only when the best
walk is not already a simple path (:func:`_solve`). See docs/routing.md for the argument.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..errors import InvalidParams, NoRoute
from ..model import Asset
from .bound_cache import BoundCache
from .bounds import SLACK as _SLACK
from .bounds import Bounds as _Bounds
from .bounds import lower_bounds
from .graph import RoutingGraph, _Index
from .hub_bounds import HubBounds
from .model import PPM, Route, RouteHop
from .rules import DEFAULT_MAX_HOPS, validate_route

Strategy = Literal["astar", "cached", "hubs", "dijkstra"]
_Mode = Literal["walk", "simple", "exact"]

_INF = math.inf
#: In-degree from which a state's predecessors are ranked with numpy rather than a loop.
_VECTOR_DEGREE = 48
#: Labels the fully exact tier may create before the caller settles for tier 2's route.
_EXACT_LABEL_BUDGET = 200_000


class _Label:
    """A partial route from some node to the payee (see :func:`_search`)."""

    __slots__ = (
        "cursor",
        "dead",
        "edge",
        "expiry",
        "hops",
        "mset",
        "need",
        "parent",
        "pending",
        "state",
    )

    def __init__(
        self,
        need: int,
        expiry: int,
        hops: int,
        state: int,
        edge: int,
        parent: _Label | None,
        mset: frozenset[int],
    ) -> None:
        self.need, self.expiry, self.hops, self.state = need, expiry, hops, state
        self.edge, self.parent, self.mset, self.dead = edge, parent, mset, False
        #: Predecessors costed on first expansion, (f, edge, need, expiry) ascending by f,
        #: and how many of them have been turned into labels so far.
        self.pending: list[tuple[float, int]] | None = None
        self.cursor = 0


def find_route(
    graph: RoutingGraph,
    source: bytes,
    target: bytes,
    amount: int,
    target_asset: Asset,
    now: int,
    final_lead: int,
    max_lock: int,
    source_asset: Asset | None = None,
    max_hops: int = DEFAULT_MAX_HOPS,
    *,
    strategy: Strategy = "astar",
) -> Route:
    """The route on which the payer locks the least value, respecting every hop's rules.

    ``amount`` of ``target_asset`` reaches ``target`` exactly; the last HTLC expires at
    ``now + final_lead``, each upstream one just late enough for its forwarding node; the
    payer's lock (first expiry minus ``now``) is at most ``max_lock``. Cost is the payer's
    first-hop amount in the graph's reference valuation (:meth:`RoutingGraph.prices`);
    cost is the only guaranteed criterion (among equal-cost routes the search meets, the
    shorter lock, then fewer hops, wins). ``strategy="cached"`` keeps the bound per payer
    and amount class on the graph (:mod:`.bound_cache`): the same routes; a key's first
    query takes the per-query bound, its second builds the row, later ones skip the bound
    pass. ``strategy="dijkstra"`` skips the bound: the same exact search without A*, for
    tests on small graphs.
    Raises :class:`NoRoute` when no route satisfies every rule.
    """
    if amount <= 0:
        raise InvalidParams("a payment carries a positive amount")
    if final_lead < 0 or max_lock < 0 or max_hops < 1:
        raise InvalidParams("final_lead and max_lock are non-negative, max_hops positive")
    if source == target:
        raise InvalidParams("payer and payee are the same node")
    index = graph.index()
    s = index.node_index.get(source)
    t = index.node_index.get(target)
    ta = index.asset_index.get(target_asset)
    sa = index.asset_index.get(source_asset) if source_asset is not None else -1
    if s is None or t is None or ta is None or sa is None:
        raise NoRoute("payer, payee or asset not in the graph")
    start = index.state_index.get((t, ta))
    if start is None or final_lead > max_lock:
        raise NoRoute("the payee has no channel in that asset, or final_lead > max_lock")
    try:
        v0 = float(amount * index.prices[ta])
    except OverflowError:  # beyond any float: no bound (and no channel) can carry it
        raise InvalidParams("the payment's value is too large to route") from None

    args = (index, s, t, sa, start, amount, now, final_lead, max_lock, max_hops)
    found: _Found | None = None
    if strategy == "dijkstra" or not index.arbitrage_free:
        found = _solve(args, None)
    else:
        h = _bounds(index, s, sa, v0, now, strategy, start)
        if h is not None and h[0][start] != _INF:
            found = _solve(args, h, lambda: lower_bounds(index, s, sa, v0, now))
    if found is None:
        raise NoRoute(f"no route for {amount} {target_asset} within the timelock and hop limits")
    route = _build(graph, found, now)
    validate_route(
        route,
        amount=amount,
        now=now,
        final_lead=final_lead,
        max_lock=max_lock,
        time_models=graph.time_models,
        rates=graph.rates,
        max_hops=max_hops,
        source=source,
        target=target,
        target_asset=target_asset,
    )
    return route


def _bounds(
    index: _Index, s: int, sa: int, v0: float, now: int, strategy: Strategy, start: int
) -> _Bounds | None:
    """The A* bound: one Dijkstra per query, or the graph's cache (:mod:`.bound_cache`)."""
    if strategy == "cached":
        cache = index.bound_cache
        if not isinstance(cache, BoundCache):
            cache = index.bound_cache = BoundCache(index)
        return cache.bounds(s, sa, v0, now, start)
    if strategy == "hubs":
        hubs = index.hub_bounds
        if not isinstance(hubs, HubBounds):
            hubs = index.hub_bounds = HubBounds(index)
        return hubs.bounds(s, sa, v0, now)
    return lower_bounds(index, s, sa, v0, now, start)


class _Found:
    __slots__ = ("amount", "edge", "expiry", "hops", "label", "value")

    def __init__(
        self, value: Fraction, expiry: int, hops: int, amount: int, edge: int, label: _Label
    ) -> None:
        self.value, self.expiry, self.hops = value, expiry, hops
        self.amount, self.edge, self.label = amount, edge, label

    def key(self) -> tuple[Fraction, int, int]:
        return (self.value, self.expiry, self.hops)


_Args = tuple[_Index, int, int, int, int, int, int, int, int, int]


def _solve(
    args: _Args, h: _Bounds | None, tightest: Callable[[], _Bounds | None] | None = None
) -> _Found | None:
    """Exact optimum over simple paths, paying for simplicity only when it matters.

    Tier 1 searches walks (a node may recur, in another asset): fast, and its optimum is a
    lower bound on every circuit's cost; if the walk it returns is a simple path, that is
    the answer. Otherwise tier 2 searches simple paths with plain dominance (an upper bound,
    exact unless a dominated label was needed), and only if it does not meet tier 1's bound
    tier 3 runs the fully exact search, pruned by tier 2's cost. Tier 3 can be exponential
    (it is the elementary shortest path problem); past a label budget it gives up and tier
    2's route stands: valid, and at most ``simple - walk`` dearer than the optimum. So tier
    3 takes the ``tightest`` bound there is, the payer's exact distances at this payment
    (a Dijkstra over every state, milliseconds against the seconds tier 3 may take), not
    a cached row's or the kernel's, which are looser away from the payee.
    """
    walk = _search(*args, h, "walk")
    if walk is None or _is_simple(walk, args[0]):
        return walk
    simple = _search(*args, h, "simple")
    if simple is None or simple.value == walk.value:
        return simple
    bound = float(simple.value) * (1 + _SLACK) if args[0].arbitrage_free else _INF
    exact = _search(*args, (tightest() if tightest is not None else None) or h, "exact", bound)
    return exact if exact is not None and exact.key() < simple.key() else simple


def _is_simple(found: _Found, index: _Index) -> bool:
    nodes = [index.e_src[found.edge]]
    lab: _Label | None = found.label
    while lab is not None:
        nodes.append(index.state_node[lab.state])
        lab = lab.parent
    return len(set(nodes)) == len(nodes)


def _search(
    index: _Index,
    s: int,
    t: int,
    sa: int,
    start: int,
    amount: int,
    now: int,
    final_lead: int,
    max_lock: int,
    max_hops: int,
    bounds: _Bounds | None,
    mode: _Mode = "walk",
    bound: float = _INF,
) -> _Found | None:
    """Exact label-setting search from the payee back to the payer (A* given ``bounds``).

    A label at state ``(n, a)``: ``n`` must receive ``need`` of ``a``; its outgoing HTLC
    (if ``n`` is not the payee) expires ``expiry`` seconds after now; the suffix has
    ``hops`` HTLCs. A label dominates another at the same state when it is no worse in all
    three and, in ``exact`` mode, went through no multi-asset node the other avoided (see
    docs/routing.md for why that keeps the search exact on simple paths). ``walk`` mode
    allows node revisits, ``simple`` forbids them with plain dominance; ``bound`` keeps only
    routes strictly cheaper than it.
    """
    e_src, e_cap, e_base, e_ppm = index.e_src, index.e_cap, index.e_base, index.e_ppm
    e_from = index.e_from
    e_delta, in_edges, conv_into = index.e_delta, index.in_edges, index.conv_into
    state_node, state_asset = index.state_node, index.state_asset
    e_asset, multi, price_f, prices = index.e_asset, index.multi, index.price_f, index.prices
    payer_into: dict[int, list[int]] = {}
    for e in index.out_edges[s]:
        if sa < 0 or e_asset[e] == sa:
            payer_into.setdefault(index.e_to[e], []).append(e)
    h, h_np = bounds if bounds is not None else (None, None)
    empty: frozenset[int] = frozenset()
    root = _Label(amount, final_lead, 0, start, -1, None, empty)
    buckets: dict[int, list[_Label]] = {start: [root]}
    best: _Found | None = None
    simple = mode != "walk"
    exact = mode == "exact"
    # Quotes that form an arbitrage break "value never shrinks towards the payer", which the
    # early stop and the multi-asset-only dominance rely on: search exhaustively instead
    # (still bounded by max_lock and max_hops), and remember every node in exact mode.
    bounded = index.arbitrage_free
    stop = bound
    # A route strictly cheaper than the best found pays at least one base unit less when the
    # payer can only pay in one asset: labels within that unit of the best are not expanded.
    paying = {e_asset[e] for e in index.out_edges[s] if sa < 0 or e_asset[e] == sa}
    unit = price_f[paying.pop()] if len(paying) == 1 else 0.0
    if stop < _INF:
        stop -= unit * (1 - 1e-6)  # only a strictly cheaper route than the bound is of use
    budget = _EXACT_LABEL_BUDGET if exact else -1
    # The same fact sharpens every bound: a completion costs a whole number of units, so a
    # label's bound rounds up to the unit grid (shrunk first, to absorb float error). Ties
    # on the grid go to the label nearest the payer (least h): the cell's first completion
    # then comes quickly, and the stop rule closes the whole cell.
    grid = 1 / unit if unit > 0 and bounded else 0.0

    def snap(x: float) -> float:
        return math.ceil(x * grid * (1 - _SLACK)) / grid if grid else x

    f0 = amount * price_f[state_asset[start]] + (h[start] if h is not None else 0.0)
    heap: list[tuple[float, float, int, _Label]] = [(snap(f0), 0.0, 0, root)]
    seq = 1
    pop, push = heapq.heappop, heapq.heappush

    while heap:
        f, _, _, lab = pop(heap)
        if f > stop:
            break
        if lab.dead:
            continue
        big_l, big_t, hops, mset = lab.need, lab.expiry, lab.hops, lab.mset
        pending = lab.pending
        if pending is None:
            # First expansion: rank every predecessor by its bound, but create labels lazily
            # (partial expansion): a hub has thousands of in-edges, and with a tight bound
            # only the few cheapest children are ever popped.
            at_payee = hops == 0
            st0 = lab.state
            for e in payer_into.get(st0, ()):
                if big_l > e_cap[e]:
                    continue
                expiry = big_t if at_payee else big_t + e_delta[e]
                if expiry > max_lock:
                    continue
                a = e_asset[e]
                cand = _Found(big_l * prices[a], expiry, hops + 1, big_l, e, lab)
                if best is None or cand.key() < best.key():
                    best = cand
                    if bounded:
                        stop = float(cand.value) * (1 + _SLACK) - unit * (1 - 1e-6)
            if hops + 2 > max_hops:
                pending = []
            elif len(in_edges[st0]) >= _VECTOR_DEGREE and h_np is not None:
                pending = _rank_vector(index, st0, big_l, big_t, at_payee, s, max_lock, h_np)
            else:
                pending = []
                for e in in_edges[st0]:
                    if big_l > e_cap[e] or e_src[e] == s:
                        continue
                    if (big_t if at_payee else big_t + e_delta[e]) > max_lock:
                        continue
                    hv = h[e_from[e]] if h is not None else 0.0
                    if hv == _INF:
                        continue  # conversions into that state cannot help either
                    need = big_l + e_base[e] + (big_l * e_ppm[e] + PPM - 1) // PPM
                    pending.append((need * price_f[e_asset[e]] + hv, e))
                pending.sort()
            lab.pending = pending
        i, n = lab.cursor, len(pending)
        top = heap[0][0] if heap else _INF
        first = True
        at_payee = hops == 0
        while i < n:
            fv0, e = pending[i]
            if snap(fv0 * (1 - _SLACK)) > stop:
                i = n
                break
            if fv0 > top and not first:
                break
            first = False
            i += 1
            if big_l > e_cap[e]:
                continue
            expiry = big_t if at_payee else big_t + e_delta[e]
            if expiry > max_lock:
                continue
            u = e_src[e]
            if simple:
                # A circuit is a simple path: u must not already be on the suffix.
                walk: _Label | None = lab
                while walk is not None and state_node[walk.state] != u:
                    walk = walk.parent
                if walk is not None:
                    continue
            s_out = e_from[e]
            need = big_l + e_base[e] + (big_l * e_ppm[e] + PPM - 1) // PPM
            fv0 = need * price_f[e_asset[e]] + (h[s_out] if h is not None else 0.0)
            new_mset = mset | {u} if exact and (multi[u] or not bounded) else mset
            options = [(s_out, need, fv0)]
            for s_in, n_eff, d_eff, until in conv_into[s_out]:
                if until is None or now <= until:
                    need_in = -(-need * d_eff // n_eff)
                    hv = h[s_in] if h is not None else 0.0
                    if hv != _INF:
                        options.append((s_in, need_in, need_in * price_f[state_asset[s_in]] + hv))
            new_hops = hops + 1
            for st, need_in, fv in options:
                fr = snap(fv)
                if fr > stop:
                    continue
                bucket = buckets.get(st)
                if bucket is None:
                    bucket = buckets[st] = []
                else:
                    dominated = False
                    for o in bucket:
                        if (
                            o.need <= need_in
                            and o.expiry <= expiry
                            and o.hops <= new_hops
                            and o.mset <= new_mset
                        ):
                            dominated = True
                            break
                    if dominated:
                        continue
                    keep = []
                    for o in bucket:
                        if (
                            need_in <= o.need
                            and expiry <= o.expiry
                            and new_hops <= o.hops
                            and new_mset <= o.mset
                        ):
                            o.dead = True
                        else:
                            keep.append(o)
                    bucket[:] = keep
                new = _Label(need_in, expiry, new_hops, st, e, lab, new_mset)
                bucket.append(new)
                push(heap, (fr, h[st] if h is not None else fv, seq, new))
                seq += 1
                if seq >= budget > 0:
                    return None  # give up on improving the caller's bound (see _solve)
        if i < n:
            lab.cursor = i
            again = pending[i][0] * (1 - _SLACK)
            push(heap, (snap(again), h[lab.state] if h is not None else again, seq, lab))
            seq += 1
    return best


def _rank_vector(
    index: _Index,
    st: int,
    big_l: int,
    big_t: int,
    at_payee: bool,
    s: int,
    max_lock: int,
    h: npt.NDArray[np.float64],
) -> list[tuple[float, int]]:
    """The scalar ranking loop in numpy, for states with many in-edges (hubs).

    Floats only order and pre-filter; every child is re-checked in integers when created.
    """
    edges, cap, base, ppm, price, frm, src, delta = index.in_arrays(st)
    lf = float(big_l)
    mask = (cap >= lf * (1 - _SLACK)) & (src != s)
    if not at_payee:
        mask &= big_t + delta <= max_lock
    elif big_t > max_lock:
        return []
    fv = (lf + lf * ppm + base) * price + h[frm]
    mask &= fv < _INF
    keep = np.flatnonzero(mask)
    order = keep[np.argsort(fv[keep], kind="stable")]
    return list(zip(fv[order].tolist(), edges[order].tolist(), strict=True))


def _build(graph: RoutingGraph, found: _Found, now: int) -> Route:
    hops = [RouteHop(graph.edge_at(found.edge), found.amount, now + found.expiry)]
    lab = found.label
    while lab.parent is not None:
        hops.append(RouteHop(graph.edge_at(lab.edge), lab.parent.need, now + lab.expiry))
        lab = lab.parent
    return tuple(hops)
