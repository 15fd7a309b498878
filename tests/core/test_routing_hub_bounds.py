"""The hub-row bound (strategy="hubs"): exact decomposition, the same optimum as "astar".

The bound is the payer's distance over linear fee weights, assembled from a Dijkstra that
stops at hubs and rows kept per hub: checked against direct Dijkstras (between the uncut
and the query-cut distance) for every hub count, and through the router against "astar"
(itself checked against a brute force in test_routing.py) on long-lived graphs under
payments, top-ups and fee changes. An over-estimating bound shows as a dearer route.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra

from chenilles_hub.core.errors import NoRoute
from chenilles_hub.core.routing import AssetRate, RoutingGraph, find_route
from chenilles_hub.core.routing.bounds import SLACK, lower_bounds, matrix, payer_heads
from chenilles_hub.core.routing.hub_bounds import HubBounds, value_octave
from tests.core.test_routing import (
    BTC,
    ETH,
    LEAD,
    MAX_LOCK,
    NOW,
    SMALL_ASSETS,
    SMALL_TIME,
    TIME,
    USDC,
    WEIGHTED_ASSETS,
    edge,
    node,
    random_graph,
    route_for,
)
from tests.core.test_routing_bound_cache import cid, cost, diamond, update

pytestmark = pytest.mark.circuit


def hubs_of(g: RoutingGraph, n_hubs: int | None = None, max_new_rows: int = 1) -> HubBounds:
    """Install (or fetch) the graph's hub rows, with ``n_hubs`` hubs if given."""
    index = g.index()
    if n_hubs is not None or not isinstance(index.hub_bounds, HubBounds):
        index.hub_bounds = HubBounds(index, n_hubs=n_hubs, max_new_rows=max_new_rows)
    assert isinstance(index.hub_bounds, HubBounds)
    return index.hub_bounds


def distances(hb: HubBounds, s: int, v0: float, w: np.ndarray) -> np.ndarray:
    """The payer's distances (heads at ``v0``) over weights ``w``, straight from scipy."""
    ix = hb.index
    heads = payer_heads(ix, s, -1, v0)
    dist: np.ndarray = dijkstra(matrix(ix, w), directed=True, indices=heads, min_only=True)
    return dist


def query_weights(hb: HubBounds, v0: float) -> np.ndarray:
    """The query's own lower-bound weights: base + max(one unit, v0 * ppm) + loss, cut."""
    ix = hb.index
    w = np.maximum(ix.w_ppm * v0, hb.unit) + hb.base + ix.w_loss * v0
    w[ix.cap_value < v0 * (1 - SLACK)] = np.inf
    w[ix.valid_until < NOW] = np.inf
    return w * (1 - SLACK)


def test_bound_lies_between_interpolated_and_cut_distances_for_any_hub_count() -> None:
    """min(local, first hubs' rows) is exact up to the rows' interpolation and missing cuts:
    at least the interpolation of the uncut distances at the octave's ends (nothing
    under-counted twice, no hub wrongly dropped) and at most the query's cut distance
    (admissible: no path missed)."""
    rng = random.Random(19)
    checked = 0
    for _ in range(150):
        g, payer, *_ = random_graph(rng)
        ix = g.index()
        s = ix.node_index.get(node(payer))
        if s is None:
            continue
        for n_hubs in (0, 1, 2, len(ix.nodes)):
            hb = hubs_of(g, n_hubs, max_new_rows=len(ix.state_node))
            v0 = 2.0 ** rng.uniform(-2, 12)
            h = hb.bounds(s, -1, v0, NOW)
            if h is None:
                assert not payer_heads(ix, s, -1, v0)
                continue
            arr = h[1]
            j = value_octave(v0)
            lam = 2 - v0 / 2.0**j
            lo = lam * distances(hb, s, v0, hb._octave_weights(j, 0))
            if lam < 1:
                lo += (1 - lam) * distances(hb, s, v0, hb._octave_weights(j, 1))
            hi = distances(hb, s, v0, query_weights(hb, v0))
            fin = np.isfinite(lo)
            assert np.all(arr[fin] >= lo[fin] * (1 - 1e-9) - 1e-9)
            assert np.all(np.isinf(arr[~fin]))
            fin = np.isfinite(hi)
            assert np.all(arr[fin] <= hi[fin] * (1 + 1e-9) + 1e-9)
            assert h[0] == arr.tolist()
            checked += 1
    assert checked > 400


def test_a_cold_query_computes_few_rows_and_takes_the_per_query_bound() -> None:
    # Payer 1's first hubs: 2, 3 and 4 (the best connected; each its own way to the payee
    # 5), all without rows.
    g = RoutingGraph(
        [edge(c, 1, h, base=c) for c, h in ((1, 2), (2, 3), (3, 4))]
        + [edge(10 * h + x, h, x, base=10 * h) for h in (2, 3, 4) for x in (5, 6, 7, 8)],
        time_models=TIME,
    )
    hb = hubs_of(g, 3, max_new_rows=1)
    assert {g.index().nodes[g.index().state_node[x]] for x in hb.hub_states} == {
        node(2),
        node(3),
        node(4),
    }
    ix = g.index()
    s, v0 = ix.node_index[node(1)], 1000.0
    for expect_rows in (1, 2, 3):
        h = hb.bounds(s, -1, v0, NOW)
        assert h is not None and len(hb.rows) == expect_rows
        if expect_rows < 3:
            assert hb.fallbacks == expect_rows
            want = lower_bounds(ix, s, -1, v0, NOW)
            assert want is not None and h[0] == want[0]
    assert hb.fallbacks == 2  # the third query had every row
    r = route_for(g, 1, 5, 1_000, ETH, strategy="hubs")
    assert [x.edge.target for x in r] == [node(2), node(5)] and r[0].amount == 1_020


@pytest.mark.parametrize("i", [-3, 0, 4, 9, 20])
def test_octave_weights_lie_under_every_fee_of_the_octave(i: int) -> None:
    """The affine weights interpolated at any value of the octave stay under the fee a hop
    carrying that value pays, integer rounding included."""
    rng = random.Random(i)
    g, *_ = random_graph(rng)
    hb = hubs_of(g, 1)
    ix = hb.index
    lo, hi = hb._octave_weights(i, 0), hb._octave_weights(i, 1)
    ch = np.flatnonzero(ix.w_edge == 1)
    for _ in range(50):
        v = 2.0**i * rng.uniform(1, 2)
        lam = 2 - v / 2.0**i
        w = lam * lo + (1 - lam) * hi
        for e in ch.tolist():
            price = ix.w_price[e]
            x = max(1, math.ceil(v / price))  # the least whole amount worth v
            fee = ix.w_base[e] + math.ceil(x * round(ix.w_ppm[e] * 1e6) / 1e6)
            assert w[e] <= fee * price * (1 + 1e-12)


def test_octaves_bracket_their_values() -> None:
    for v in (1.0, 1.5, 2.0, 3.999, 4.0, 1e-9, 123456.789, 2.0**60, 2.0**-60):
        j = value_octave(v)
        assert math.ldexp(1.0, j) <= v < math.ldexp(1.0, j + 1)


def test_rows_are_shared_by_payers_and_amounts_of_an_octave() -> None:
    g = RoutingGraph(
        [edge(1, 1, 9), edge(2, 2, 9), edge(3, 9, 3, base=10), edge(4, 9, 4, ppm=1000)],
        time_models=TIME,
    )
    hb = hubs_of(g, 1)  # node 9, the best connected
    assert [g.index().state_node[x] for x in hb.hub_states] == [g.index().node_index[node(9)]]
    r1 = route_for(g, 1, 3, 1_000, ETH, strategy="hubs")
    built = hb.built
    assert built == 2  # the distances at 512 and 1024 around the payment's value
    r2 = route_for(g, 2, 4, 1_020, ETH, strategy="hubs")  # another payer, same octave
    assert hb.built == built and hb.hits >= 2
    assert r1[0].amount == 1_010 and r2[0].amount == 1_022


def test_fee_decrease_drops_the_rows_and_routes_follow() -> None:
    g = diamond(fee_via_4=1000, fee_via_5=100)
    hb = hubs_of(g, 1)
    r = route_for(g, 1, 3, 10_000, ETH, strategy="hubs")
    assert [h.edge.target for h in r] == [node(2), node(5), node(3)]
    assert hb.rows
    g.set_fee(cid(2), node(2), 0, 0)  # now the route through 4 is free
    assert not hb.rows
    r = route_for(g, 1, 3, 10_000, ETH, strategy="hubs")
    assert [h.edge.target for h in r] == [node(2), node(4), node(3)]
    assert r[0].amount == 10_000


def test_capacity_changes_keep_the_rows_and_the_local_part_sees_them() -> None:
    g = diamond(fee_via_4=0, fee_via_5=100, cap_2_4=5_000)
    hb = hubs_of(g, 1)
    r = route_for(g, 1, 3, 10_000, ETH, strategy="hubs")
    assert [h.edge.target for h in r] == [node(2), node(5), node(3)]
    built = hb.built
    g.set_capacity(cid(2), node(2), 50_000)  # a top-up: rows cut nothing, still valid
    r = route_for(g, 1, 3, 10_000, ETH, strategy="hubs")
    assert [h.edge.target for h in r] == [node(2), node(4), node(3)]
    assert hb.built == built


def test_evicted_rows_are_rebuilt() -> None:
    g = diamond(fee_via_4=0, fee_via_5=100)
    index = g.index()
    hb = index.hub_bounds = HubBounds(index, max_row_bytes=1, n_hubs=2)
    assert hb.max_rows == 1
    for amount in (10_000, 40_000, 10_000, 160_000):
        r = route_for(g, 1, 3, amount, ETH, strategy="hubs")
        assert r[0].amount == amount and len(hb.rows) <= 1


@pytest.mark.parametrize("n_hubs", [None, 0, 1, 3])
def test_hubs_match_astar_on_seeded_graphs_under_updates(n_hubs: int | None) -> None:
    """Long-lived graphs queried again and again between capacity and fee changes (both
    directions, top-ups), payers and amounts changing: rows kept past a change that
    lowered a weight would give a dearer route than the per-query bound's."""
    rng = random.Random(20261202 + (n_hubs or 0))
    seen: Counter[str] = Counter()
    for _ in range(120):
        g, _, _, amount, asset, lead, max_lock = random_graph(rng)
        hb = hubs_of(g, n_hubs)
        for _ in range(10):
            for _ in range(rng.randint(0, 3)):
                update(g, rng, seen)
            payer, payee = rng.sample(range(len(g.index().nodes)), 2)
            want = amount if rng.random() < 0.5 else rng.randint(1, 1000)
            results = []
            for strategy in ("astar", "hubs"):
                try:
                    r = find_route(
                        g,
                        g.index().nodes[payer],
                        g.index().nodes[payee],
                        want,
                        asset,
                        NOW,
                        lead,
                        max_lock,
                        strategy=strategy,
                    )
                    results.append(cost(g, r))
                except NoRoute:
                    results.append(None)
            assert results[0] == results[1], (payer, payee, want)
            seen["routes" if results[0] is not None else "no route"] += 1
        seen["rows reused"] += hb.hits
    assert seen["routes"] > 250 and (seen["rows reused"] > 50 or n_hubs == 0), seen


@pytest.mark.parametrize("n_hubs", [None, 1, 4])
def test_cross_asset_graph_with_quotes_matches_astar(n_hubs: int | None) -> None:
    """Conversions at hubs and elsewhere, some quotes expired: their losses are in the
    rows (no expiry cut there) and the local part cuts the expired ones."""
    rng = random.Random(7)
    edges = []
    for c in range(60):
        u, v = rng.sample(range(12), 2)
        asset = rng.choice(WEIGHTED_ASSETS)
        for a, b in ((u, v), (v, u)):
            edges.append(
                edge(
                    c,
                    a,
                    b,
                    asset,
                    cap=rng.choice([2000, 10**6]),
                    base=rng.randint(0, 9),
                    ppm=rng.choice([0, 999, 50_000]),
                    cd=rng.choice([10, 60]),
                )
            )
    mids = {ETH: 2, USDC: 3, BTC: 7}
    rates = [
        AssetRate(
            node(h),
            a,
            b,
            mids[a],
            mids[b],
            spread_ppm=rng.choice([1000, 20_000]),
            valid_until=rng.choice([None, NOW - 1, NOW + 60]),
        )
        for h in (0, 1, 2, 5)
        for a in SMALL_ASSETS
        for b in SMALL_ASSETS
        if a != b
    ]
    g = RoutingGraph(edges, rates, SMALL_TIME)
    assert g.index().arbitrage_free
    hubs_of(g, n_hubs)
    cross = 0
    for _ in range(200):
        s, t = rng.sample(range(12), 2)
        asset = rng.choice(SMALL_ASSETS)
        amount = rng.randint(1, 5000)
        out = []
        for strategy in ("astar", "hubs"):
            try:
                r = find_route(
                    g,
                    node(s),
                    node(t),
                    amount,
                    asset,
                    NOW,
                    LEAD,
                    MAX_LOCK,
                    strategy=strategy,
                )
                out.append(cost(g, r))
                cross += strategy == "hubs" and r[0].edge.asset != asset
            except NoRoute:
                out.append(None)
        assert out[0] == out[1]
    assert cross > 10
