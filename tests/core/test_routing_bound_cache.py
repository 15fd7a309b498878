"""The cached A* bound (strategy="cached"): the same optimum as the per-query bound, also
after the updates that could make a cached bound over-estimate (fee decreases, top-ups).

An inadmissible bound shows as a route dearer than the reference's: every test compares
costs with the per-query strategy ("astar", itself checked against a brute force in
test_routing.py) or with the brute force directly.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chenilles_hub.core.errors import InvalidParams, NoRoute
from chenilles_hub.core.routing import AssetRate, Route, RoutingGraph, find_route
from chenilles_hub.core.routing.bound_cache import STEPS, BoundCache, value_class
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

pytestmark = pytest.mark.circuit


def cid(c: int) -> bytes:
    return c.to_bytes(32, "big")


def cost(g: RoutingGraph, r: Route) -> object:
    return g.value(r[0].edge.asset, r[0].amount)


def cache_of(g: RoutingGraph) -> BoundCache:
    cache = g.index().bound_cache
    assert isinstance(cache, BoundCache)
    return cache


def diamond(fee_via_4: int, fee_via_5: int, cap_2_4: int = 10**9) -> RoutingGraph:
    """Payer 1 -> 2, then 2 -> 4 -> 3 or 2 -> 5 -> 3: node 2's fee on 2 -> 4 or 2 -> 5
    decides, and it sits between the payer's head and the payee (inside the bound)."""
    return RoutingGraph(
        [
            edge(1, 1, 2),
            edge(2, 2, 4, base=fee_via_4, cap=cap_2_4),
            edge(2, 4, 2, cap=0),
            edge(3, 2, 5, base=fee_via_5),
            edge(4, 4, 3),
            edge(5, 5, 3),
        ],
        time_models=TIME,
    )


# --- the updates that could break a cached bound ----------------------------------------------


def test_fee_decrease_drops_the_cached_rows() -> None:
    g = diamond(fee_via_4=1000, fee_via_5=100)
    for _ in range(2):  # the key's second query builds its row
        r = route_for(g, 1, 3, 10_000, ETH, strategy="cached")
        assert [h.edge.target for h in r] == [node(2), node(5), node(3)]
    assert cache_of(g).rows
    g.set_fee(cid(2), node(2), 0, 0)  # now the route through 4 is free
    r = route_for(g, 1, 3, 10_000, ETH, strategy="cached")
    assert [h.edge.target for h in r] == [node(2), node(4), node(3)]
    assert r[0].amount == 10_000


def test_capacity_rising_past_a_class_drops_the_rows_that_cut_it() -> None:
    # 2 -> 4 cannot carry the payment (channel total 5,000): the row cuts it.
    g = diamond(fee_via_4=0, fee_via_5=100, cap_2_4=5_000)
    for _ in range(2):
        r = route_for(g, 1, 3, 10_000, ETH, strategy="cached")
        assert [h.edge.target for h in r] == [node(2), node(5), node(3)]
    assert cache_of(g).rows
    g.set_capacity(cid(2), node(2), 50_000)  # a top-up (or a payment the other way)
    r = route_for(g, 1, 3, 10_000, ETH, strategy="cached")
    assert [h.edge.target for h in r] == [node(2), node(4), node(3)]


def test_payers_own_channel_topped_up_becomes_a_head() -> None:
    g = RoutingGraph(
        [
            edge(1, 1, 2),
            edge(2, 2, 3, base=500),
            edge(3, 1, 6, cap=10),
            edge(4, 6, 3),
        ],
        time_models=TIME,
    )
    for _ in range(2):
        assert route_for(g, 1, 3, 1_000, ETH, strategy="cached")[0].amount == 1_500
    assert cache_of(g).rows
    g.set_capacity(cid(3), node(1), 10_000)
    r = route_for(g, 1, 3, 1_000, ETH, strategy="cached")
    assert r[0].edge.target == node(6) and r[0].amount == 1_000


def test_payments_inside_a_channel_and_fee_increases_keep_the_rows() -> None:
    g = RoutingGraph(
        [
            edge(1, 1, 2, cap=60_000),
            edge(1, 2, 1, cap=40_000),
            edge(2, 2, 3, cap=50_000, ppm=100),
            edge(2, 3, 2, cap=50_000),
        ],
        time_models=TIME,
    )
    for _ in range(2):
        route_for(g, 1, 3, 10_000, ETH, strategy="cached")
    cache = cache_of(g)
    built = cache.built
    assert built == 1
    # A payment of 10,001 moves capacity inside both channels; then node 2 raises its fee.
    g.set_capacity(cid(1), node(1), 49_999)
    g.set_capacity(cid(1), node(2), 50_001)
    g.set_capacity(cid(2), node(2), 39_999)
    g.set_capacity(cid(2), node(3), 60_001)
    g.set_fee(cid(2), node(2), 1, 200)
    assert route_for(g, 1, 3, 10_000, ETH, strategy="cached")[0].amount == 10_000 + 1 + 2
    assert cache.built == built and cache.hits >= 1


def test_rows_are_per_payer_asset_and_class() -> None:
    g = diamond(fee_via_4=0, fee_via_5=0)
    for amount in (1_000, 1_000_000, 1_001, 1_000_000, 1_000):
        route_for(g, 1, 3, amount, ETH, strategy="cached")
    cache = cache_of(g)
    # 1,000 and 1,001 share a class: its first query took the per-query bound, its second
    # built the row, its third reused it; 1,000,000 is another class.
    assert (cache.first, cache.built, cache.hits) == (2, 2, 1)
    route_for(g, 2, 3, 1_000, ETH, strategy="cached")
    route_for(g, 2, 3, 1_000, ETH, strategy="cached")
    assert (cache.first, cache.built) == (3, 3)


def test_a_key_seen_once_takes_the_per_query_bound_and_builds_no_row() -> None:
    """A service routing for random payers: every query is a key's first, and none pays
    for a Dijkstra over the whole graph that nothing would reuse."""
    g = diamond(fee_via_4=5, fee_via_5=100)
    for payer in (1, 2, 4, 5):
        assert route_for(g, payer, 3, 10_000, ETH, strategy="cached")
    cache = cache_of(g)
    assert (cache.first, cache.built, cache.hits) == (4, 0, 0) and not cache.rows


def test_absurd_amounts_are_a_clear_error_with_either_bound() -> None:
    g = diamond(fee_via_4=0, fee_via_5=0)
    for strategy in ("astar", "cached"):
        with pytest.raises(NoRoute):
            route_for(g, 1, 3, 10**30, ETH, strategy=strategy)
        with pytest.raises(InvalidParams):
            route_for(g, 1, 3, 10**400, ETH, strategy=strategy)


def test_evicted_and_dropped_rows_leave_no_trace() -> None:
    g = diamond(fee_via_4=0, fee_via_5=100, cap_2_4=5_000)
    cache = BoundCache(g.index(), max_row_bytes=1)  # one row at a time
    g.index().bound_cache = cache
    for amount in (10_000, 20_000, 10_000, 40_000):
        for _ in range(2):
            route_for(g, 1, 3, amount, ETH, strategy="cached")
        assert len(cache.rows) == 1 and list(cache.by_class) == cache.classes
    assert cache.built == 4
    g.set_capacity(cid(2), node(2), 10**6)  # crosses the kept row's class: dropped
    assert not cache.rows and not cache.classes and not cache.by_class
    assert [h.edge.target for h in route_for(g, 1, 3, 40_000, ETH, strategy="cached")] == [
        node(2),
        node(4),
        node(3),
    ]


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-12, max_value=1e30, allow_nan=False, allow_infinity=False))
@example(1.25)  # its class starts at 2**(5/16), whose log2 rounds below 5/16
def test_a_class_starts_at_or_below_its_values(v: float) -> None:
    v_lo = value_class(v)
    assert v_lo <= v < v_lo * 2 ** (1 / STEPS) * (1 + 1e-9)
    assert value_class(v_lo) == v_lo or math.isclose(value_class(v_lo), v_lo, rel_tol=1e-12)


# --- equal cost on random graphs --------------------------------------------------------------


def test_cached_matches_astar_on_seeded_graphs_under_updates() -> None:
    """Long-lived graphs, each queried again and again between random capacity and fee
    changes (both directions, top-ups included): a bound kept past a change that lowered
    a weight would return a dearer route than the per-query bound's."""
    rng = random.Random(20261202)
    seen: Counter[str] = Counter()
    for _ in range(300):
        g, s, t, amount, asset, lead, max_lock = random_graph(rng)
        for _ in range(12):
            for _ in range(rng.randint(0, 3)):
                update(g, rng, seen)
            payer = rng.choice([s, s, t])
            payee = t if payer != t else s
            want = amount if rng.random() < 0.7 else rng.randint(1, 1000)
            results = []
            for strategy in ("astar", "cached"):
                try:
                    r = find_route(
                        g,
                        node(payer),
                        node(payee),
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
        cache = g.index().bound_cache
        seen["rows reused"] += cache.hits if isinstance(cache, BoundCache) else 0
    assert seen["routes"] > 300 and seen["rows reused"] > 100, seen
    assert min(seen[k] for k in ("payment", "capacity", "fee up", "fee any")) > 100, seen


def update(g: RoutingGraph, rng: random.Random, seen: Counter[str]) -> None:
    """One change as the network makes them: a payment moving capacity inside a channel,
    a capacity set outright (top-ups included), a fee raised, a fee set (often lowered)."""
    e = rng.choice(g.edges)
    kind = rng.choice(["payment", "payment", "capacity", "fee up", "fee any"])
    seen[kind] += 1
    if kind == "payment":
        back = [b for b in g.edges if b.channel_id == e.channel_id and b.source == e.target]
        x = rng.randint(0, e.capacity)
        g.set_capacity(e.channel_id, e.source, e.capacity - x)
        if back:
            g.set_capacity(e.channel_id, e.target, back[0].capacity + x)
    elif kind == "capacity":
        g.set_capacity(e.channel_id, e.source, rng.choice([0, 500, 3000, 10**6]))
    elif kind == "fee up":
        g.set_fee(e.channel_id, e.source, e.fee_base + rng.randint(0, 5), e.fee_ppm + 100)
    else:
        g.set_fee(e.channel_id, e.source, rng.randint(0, 40), rng.choice([0, 999]))


def test_cross_asset_graph_with_quotes_matches_astar() -> None:
    rng = random.Random(7)
    edges = []
    for c in range(60):
        u, v = rng.sample(range(12), 2)
        asset = rng.choice(WEIGHTED_ASSETS)
        edges += [
            edge(
                c,
                u,
                v,
                asset,
                cap=rng.choice([2000, 10**6]),
                base=rng.randint(0, 9),
                ppm=rng.choice([0, 999, 50_000]),
                cd=rng.choice([10, 60]),
            ),
            edge(
                c,
                v,
                u,
                asset,
                cap=rng.choice([2000, 10**6]),
                base=rng.randint(0, 9),
                ppm=rng.choice([0, 999]),
                cd=rng.choice([10, 60]),
            ),
        ]
    mids = {ETH: 2, USDC: 3, BTC: 7}
    rates = [
        AssetRate(node(h), a, b, mids[a], mids[b], spread_ppm=rng.choice([1000, 20_000]))
        for h in (0, 1, 2)
        for a in SMALL_ASSETS
        for b in SMALL_ASSETS
        if a != b
    ]
    g = RoutingGraph(edges, rates, SMALL_TIME)
    assert g.index().arbitrage_free
    cross = 0
    for _ in range(200):
        s, t = rng.sample(range(12), 2)
        asset = rng.choice(SMALL_ASSETS)
        amount = rng.randint(1, 5000)
        out = []
        for strategy in ("astar", "cached"):
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
                    strategy=strategy,  # type: ignore[arg-type]
                )
                out.append(cost(g, r))
                cross += strategy == "cached" and r[0].edge.asset != asset
            except NoRoute:
                out.append(None)
        assert out[0] == out[1]
    assert cross > 20
