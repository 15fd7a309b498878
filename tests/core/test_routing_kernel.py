"""The compiled bound pass (``chenilles_hub/core/routing/_bounds.c``).

Its two promises, checked against scipy's Dijkstra over ``edge_weights`` (the reference it
replaced) on seeded power-law graphs with several assets and expiring quotes:

- without a payee, the payer's distances, equal to scipy's bit for bit;
- with one, a bound that the A* can use exactly as it used those distances: never above
  them (admissible), consistent along every edge, exact at the payee, inf everywhere when
  the payee cannot be reached.

And what the router does with it: the same optimum with or without the kernel, at any
stretch; bad arrays a clear error, never a crash.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.sparse.csgraph import dijkstra

from chenilles_hub.core.errors import InvalidParams, NoRoute
from chenilles_hub.core.model import Asset
from chenilles_hub.core.routing import AssetRate, ChannelEdge, RoutingGraph, bounds, find_route
from chenilles_hub.core.routing.bound_cache import BoundCache
from chenilles_hub.core.routing.bounds import edge_weights, matrix, payer_heads
from chenilles_hub.core.routing.graph import _Index
from tests.core.test_routing import BTC, CHAIN_OF, ETH, SOL, TIME, USDC, node
from tests.core.test_routing import edge as route_edge

try:
    from chenilles_hub.core.routing import _bounds as kernel
except ImportError:  # the first test fails; the others have nothing to test
    kernel = None

pytestmark = pytest.mark.circuit
#: Every test but the first needs the kernel; the first fails without it.
needs_kernel = pytest.mark.skipif(kernel is None, reason="the compiled bound pass is not built")

NOW = 1_700_000_000
#: Reference value of one base unit per asset (10**18 is a dollar), as a price feed gives it.
PRICE = {ETH: 3_000, USDC: 10**12, BTC: 60_000 * 10**10, SOL: 150 * 10**9}
ASSETS = list(PRICE)


def power_law_graph(rng: random.Random, n: int) -> RoutingGraph:
    """Channels drawn by Chung-Lu weights (a few hubs, many small nodes), one asset each;
    the ten best-connected nodes quote every pair at market rates with a spread, some
    quotes already expired at ``NOW``."""
    weights = [(i + 5) ** -0.9 for i in range(n)]
    edges: list[ChannelEdge] = []
    for c in range(3 * n):
        u, v = rng.choices(range(n), weights, k=2)
        if u == v:
            continue
        asset = rng.choice(ASSETS)
        for a, b in ((u, v), (v, u)):
            edges.append(
                ChannelEdge(
                    channel_id=c.to_bytes(32, "big"),
                    chain=CHAIN_OF[asset],
                    asset=asset,
                    source=node_id(a),
                    target=node_id(b),
                    capacity=rng.choice([0, 10**3, 10**6, 10**6]) * 10**18 // PRICE[asset],
                    fee_base=rng.choice([1, 1000]),
                    fee_ppm=rng.choice([1, 100, 5000]),
                    challenge_duration=rng.choice([60, 600]),
                )
            )
    rates = [
        AssetRate(
            node_id(h),
            a_in,
            a_out,
            num=PRICE[a_in],
            den=PRICE[a_out],
            spread_ppm=rng.choice([0, 1000]),
            valid_until=rng.choice([None, NOW - 1, NOW + 60]),
        )
        for h in range(10)
        for a_in in ASSETS
        for a_out in ASSETS
        if a_in != a_out
    ]
    return RoutingGraph(edges, rates, TIME)


def node_id(i: int) -> bytes:
    return i.to_bytes(4, "big") + bytes(28)


def kernel_args(ix: _Index) -> tuple[npt.NDArray[np.generic], ...]:
    return (
        ix.csr_indptr,
        ix.csr_indices,
        ix.rev_indptr,
        ix.rev_indices,
        ix.rev_entry,
        ix.w_code,
        ix.w_base,
        ix.w_ppm,
        ix.w_loss,
        ix.cap_value,
        ix.valid_until,
        ix.asset_price,
    )


def queries(
    rng: random.Random, ix: _Index, count: int
) -> list[tuple[list[int], float, int, npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Random (heads, v0, payee state), with scipy's distances and weights for each."""
    out = []
    states = list(ix.state_index.items())
    while len(out) < count:
        s = rng.randrange(len(ix.nodes))
        (t, a), start = rng.choice(states)
        if t == s:
            continue
        v0 = float(rng.choice([1, 10**3, 10**6, 10**9]) * ix.prices[a])
        heads = payer_heads(ix, s, -1, v0)
        if not heads:
            continue
        w = edge_weights(ix, v0, ix.cap_value, NOW)
        dist = dijkstra(matrix(ix, w), directed=True, indices=heads, min_only=True)
        out.append((heads, v0, start, dist, w))
    return out


@pytest.fixture(scope="module")
def graph() -> RoutingGraph:
    return power_law_graph(random.Random(20261204), 600)


def test_the_kernel_is_built_and_used() -> None:
    """`make bootstrap` builds it (pyproject's ext-modules): a broken build fails here, not
    silently in a router that falls back to scipy."""
    assert kernel is not None, "run make bootstrap: chenilles_hub/core/routing/_bounds.c"
    assert bounds._kernel is kernel
    assert bounds.KERNEL_STATUS == "compiled"


def test_a_kernel_older_than_its_source_is_not_used(tmp_path: Path) -> None:
    """After a pull that changed ``_bounds.c`` and no rebuild, the old binary would compute
    the old bound: scipy serves instead, and ``KERNEL_STATUS`` says to run make bootstrap."""
    built, source = tmp_path / "_bounds.so", tmp_path / "_bounds.c"
    built.write_bytes(b"")
    source.write_text("")
    os.utime(built, (1_000, 1_000))
    os.utime(source, (2_000, 2_000))
    assert bounds.kernel_is_stale(built, source)
    os.utime(built, (3_000, 3_000))
    assert not bounds.kernel_is_stale(built, source)
    source.unlink()  # a wheel ships no source: nothing to compare
    assert not bounds.kernel_is_stale(built, source)


def test_a_stale_kernel_falls_back_to_scipy_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounds, "kernel_is_stale", lambda built, source: True)
    loaded, status = bounds._load_kernel()
    assert loaded is None
    assert "older than _bounds.c" in status and "make bootstrap" in status


@needs_kernel
def test_without_a_payee_the_kernel_gives_scipys_distances_bit_for_bit(
    graph: RoutingGraph,
) -> None:
    ix = graph.index()
    for heads, v0, _, dist, _ in queries(random.Random(1), ix, 60):
        out = np.empty(len(ix.state_node))
        kernel.bounds(*kernel_args(ix), heads, v0, float(NOW), -1, 1.0, out)
        assert np.array_equal(out, dist)


@needs_kernel
@pytest.mark.parametrize("stretch", [1.0, 1.1, 3.0])
def test_the_bound_from_both_ends_is_admissible_consistent_and_exact_at_the_payee(
    graph: RoutingGraph, stretch: float
) -> None:
    ix = graph.index()
    sources = np.repeat(np.arange(len(ix.state_node)), np.diff(ix.csr_indptr))
    reached = settled_less = 0
    for heads, v0, start, dist, w in queries(random.Random(2), ix, 80):
        h = np.empty(len(ix.state_node))
        fwd, bwd = kernel.bounds(*kernel_args(ix), heads, v0, float(NOW), start, stretch, h)
        if dist[start] == np.inf:
            assert np.all(h == np.inf)
            continue
        reached += 1
        settled_less += fwd + bwd < len(ix.state_node)
        # Exact at the payee and never above the distances, up to the last bit of the sums
        # (the weights are already shrunk by 1e-9 for such float error).
        assert dist[start] * (1 - 1e-12) <= h[start] <= dist[start]
        assert np.all(h <= dist * (1 + 1e-12))
        finite = np.isfinite(w)
        lhs = h[ix.csr_indices][finite]
        rhs = (h[sources] + w)[finite]
        assert np.all(lhs <= rhs + 1e-12 * np.abs(h[start])), "inconsistent along an edge"
    assert reached > 40 and settled_less > reached // 2


def routes_cost(
    g: RoutingGraph, pairs: list[tuple[bytes, bytes, Asset, int]], strategy: str
) -> list[object]:
    costs: list[object] = []
    for s, t, asset, amount in pairs:
        try:
            r = find_route(
                g,
                s,
                t,
                amount,
                asset,
                NOW,
                3600,
                30 * 86400,
                strategy=strategy,  # type: ignore[arg-type]
            )
            costs.append(g.value(r[0].edge.asset, r[0].amount))
        except NoRoute:
            costs.append(None)
    return costs


def payment_pairs(
    rng: random.Random, g: RoutingGraph, count: int
) -> list[tuple[bytes, bytes, Asset, int]]:
    """Random payer, payee and one of the payee's assets, $1 to $10,000."""
    ix = g.index()
    states = sorted(ix.state_index)
    pairs = []
    while len(pairs) < count:
        t, a = rng.choice(states)
        s = rng.randrange(len(ix.nodes))
        if s != t:
            asset = ix.assets[a]
            amount = rng.choice([1, 100, 10**4]) * 10**18 // PRICE[asset]
            pairs.append((ix.nodes[s], ix.nodes[t], asset, amount))
    return pairs


@needs_kernel
@pytest.mark.parametrize("stretch", [1.0, 1.1, 10.0])
def test_routes_cost_the_same_with_or_without_the_kernel(
    graph: RoutingGraph, stretch: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = payment_pairs(random.Random(3), graph, 120)
    monkeypatch.setattr(bounds, "STRETCH", stretch)
    with_kernel = routes_cost(graph, pairs, "astar")
    monkeypatch.setattr(bounds, "_kernel", None)
    graph.index().bound_cache = None
    without = routes_cost(graph, pairs, "astar")
    assert with_kernel == without
    assert sum(c is not None for c in without) > 40


@needs_kernel
def test_cached_serves_a_keys_first_query_from_the_kernel_and_then_a_row(
    graph: RoutingGraph,
) -> None:
    pairs = payment_pairs(random.Random(5), graph, 30)
    want = routes_cost(graph, pairs, "astar")
    ix = graph.index()
    ix.bound_cache = None
    # Every payer pays three times in the same amount: kernel, then a row built, then kept.
    thrice = [p for p in pairs for _ in range(3)]
    got = routes_cost(graph, thrice, "cached")
    assert got == [c for c in want for _ in range(3)]
    cache = ix.bound_cache
    assert isinstance(cache, BoundCache)
    assert cache.first > 10 and cache.built > 10 and cache.hits > 10


@needs_kernel
def test_searches_on_two_threads_at_once_agree(graph: RoutingGraph) -> None:
    """The kernel releases the GIL and keeps no state between calls."""
    ix = graph.index()
    todo = queries(random.Random(5), ix, 20)
    results: dict[int, list[npt.NDArray[np.float64]]] = {}

    def work(k: int) -> None:
        outs = []
        for heads, v0, start, _, _ in todo:
            out = np.empty(len(ix.state_node))
            kernel.bounds(*kernel_args(ix), heads, v0, float(NOW), start, 1.1, out)
            outs.append(out)
        results[k] = outs

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(np.array_equal(a, b) for a, b in zip(results[0], results[1], strict=True))


@needs_kernel
def test_bad_arrays_are_a_clear_error(graph: RoutingGraph) -> None:
    ix = graph.index()
    args = list(kernel_args(ix))
    n = len(ix.state_node)

    def call(
        args: list,
        heads: object = None,
        v0: float = 1.0,
        target: int = 1,
        stretch: float = 1.1,
        out: object = None,
    ) -> None:
        kernel.bounds(
            *args,
            [0] if heads is None else heads,
            v0,
            float(NOW),
            target,
            stretch,
            np.empty(n) if out is None else out,
        )

    call(args)  # the good call works
    for i, bad in [
        (0, ix.csr_indptr.astype(np.int64)),  # wrong dtype
        (1, ix.csr_indices[:-1]),  # wrong length
        (6, ix.w_base.astype(np.float32)),
        (4, np.full_like(ix.rev_entry, len(ix.csr_indices))),  # an entry past the end
        (5, np.full_like(ix.w_code, len(ix.assets))),  # an asset past the end
        (0, ix.csr_indptr[::-1].copy()),  # not a CSR
        (1, np.full_like(ix.csr_indices, n)),  # a column past the states
    ]:
        broken = list(args)
        broken[i] = bad
        with pytest.raises((TypeError, ValueError)):
            call(broken)
    for kwargs in (
        {"heads": [n]},
        {"heads": [-1]},
        {"heads": ["x"]},
        {"heads": 5},
        {"target": n},
        {"target": -2},
        {"stretch": 0.5},
        {"stretch": float("inf")},
        {"stretch": float("nan")},
        {"v0": 0.0},
        {"v0": float("nan")},
        {"out": np.empty(n + 1)},
        {"out": np.empty(n, dtype=np.float32)},
        {"out": np.empty(n)[::2]},
        {"out": bytes(8 * n)},  # read-only
    ):
        with pytest.raises((TypeError, ValueError, BufferError)):
            call(args, **kwargs)  # type: ignore[arg-type]


@needs_kernel
def test_a_payee_out_of_reach_is_no_route(graph: RoutingGraph) -> None:
    """An isolated node's only channel cannot carry the payment: the bound says inf at once."""
    g = RoutingGraph(
        [
            *graph.edges,
            ChannelEdge(
                channel_id=b"\xff" * 32,
                chain=CHAIN_OF[ETH],
                asset=ETH,
                source=node_id(0),
                target=node(250),
                capacity=5,
            ),
        ],
        [],
        TIME,
    )
    with pytest.raises(NoRoute):
        find_route(g, node_id(1), node(250), 10**6, ETH, NOW, 3600, 30 * 86400)


@needs_kernel
def test_a_payee_next_to_the_payer_gets_the_full_distances(graph: RoutingGraph) -> None:
    """At distance 0 the radius would be 0 and tell the A* nothing: the kernel then gives
    the payer's distances to every state, as without a payee."""
    ix = graph.index()
    seen = 0
    for heads, v0, _, dist, _ in queries(random.Random(6), ix, 40):
        out = np.empty(len(ix.state_node))
        kernel.bounds(*kernel_args(ix), heads, v0, float(NOW), heads[0], 1.1, out)
        assert np.array_equal(out, dist)
        seen += 1
    assert seen == 40


@needs_kernel
def test_a_radius_past_the_largest_float_is_no_crash(graph: RoutingGraph) -> None:
    """stretch * mu may overflow (it once ran the heap below empty): the radius is capped at
    the largest double, the bound stays admissible, the search ends."""
    ix = graph.index()
    for heads, v0, start, dist, _ in queries(random.Random(7), ix, 10):
        out = np.empty(len(ix.state_node))
        kernel.bounds(*kernel_args(ix), heads, v0, float(NOW), start, 1e308, out)
        if dist[start] == np.inf:  # the payee out of reach: inf everywhere, no route
            assert np.all(out == np.inf)
        else:
            assert out[start] == dist[start] and np.all(out <= dist * (1 + 1e-12))


def test_fees_up_to_256_bits_route_and_larger_ones_are_refused() -> None:
    """Fees and capacities are checked at the edge (a peer's announcement decodes into
    edges): a 256-bit fee still routes, one bit more is refused before any float sees it."""

    def edge(c: int, u: int, v: int, fee: int) -> ChannelEdge:
        return ChannelEdge(
            channel_id=bytes([c]) * 32,
            chain=CHAIN_OF[ETH],
            asset=ETH,
            source=node_id(u),
            target=node_id(v),
            capacity=2**256 - 1,
            fee_base=fee,
        )

    for fee in (10**70, 2**256 - 1 - 1000):
        g = RoutingGraph([edge(0, 1, 2, 0), edge(1, 2, 3, fee), edge(2, 3, 2, 0)], [], TIME)
        r = find_route(g, node_id(1), node_id(3), 1000, ETH, NOW, 3600, 30 * 86400)
        assert r[0].amount == 1000 + fee
    with pytest.raises(InvalidParams):
        edge(1, 2, 3, 2**256)


@needs_kernel
def test_heads_that_change_while_read_are_no_crash(graph: RoutingGraph) -> None:
    ix = graph.index()
    heads: list[object] = []

    class Shrinking:
        def __index__(self) -> int:
            heads.clear()
            return 0

    heads.extend([Shrinking(), 1, 2, 3])
    out = np.empty(len(ix.state_node))
    kernel.bounds(*kernel_args(ix), heads, 1.0, float(NOW), 5, 1.1, out)
    assert out[0] == 0.0


@needs_kernel
def test_the_exact_tier_searches_with_the_payers_exact_distances(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tier 3 can run out of its label budget, and then a looser bound could cost the
    payer: it gets the Dijkstra over every state, not the bound from both ends."""
    from chenilles_hub.core.routing import search
    from tests.core.test_routing import random_graph

    original = search._search
    exact_bounds: list[object] = []

    def spy(*args: object) -> object:
        if args[11] == "exact":
            exact_bounds.append(args[10])
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(search, "_search", spy)
    rng = random.Random(20261204)
    for _ in range(3000):
        g, s, t, amount, asset, lead, max_lock = random_graph(rng)
        exact_bounds.clear()
        try:
            find_route(g, node(s), node(t), amount, asset, NOW, lead, max_lock)
        except NoRoute:
            continue
        ix = g.index()
        if not ix.arbitrage_free:  # no bound at all: the exhaustive search
            continue
        for h in exact_bounds:
            assert h is not None
            v0 = float(amount * ix.prices[ix.asset_index[asset]])
            full = bounds.lower_bounds(ix, ix.node_index[node(s)], -1, v0, NOW)
            assert full is not None and np.array_equal(h[1], full[1])  # type: ignore[index]
        if exact_bounds:
            return
    pytest.fail("no seeded graph reached tier 3")


def test_quotes_that_price_an_asset_beyond_the_float_range_are_a_clear_error() -> None:
    """Each quote within 256 bits, chained: a price of 2**-1024 would overflow every float
    of the router (it once raised OverflowError or ValueError from inside the search)."""
    fake = [Asset(CHAIN_OF[ETH], f"erc20:z{i}") for i in range(4)]
    rates = [AssetRate(node_id(5), fake[i], fake[i + 1], 2**256 - 1, 1) for i in range(3)]
    rates.append(AssetRate(node_id(5), fake[3], ETH, 2**256 - 1, 1))
    edges = [
        ChannelEdge(
            channel_id=bytes([c]) * 32,
            chain=CHAIN_OF[ETH],
            asset=ETH,
            source=node_id(u),
            target=node_id(v),
            capacity=10**9,
        )
        for c, (u, v) in enumerate([(1, 2), (2, 3)])
    ]
    g = RoutingGraph(edges, rates, TIME)
    with pytest.raises(InvalidParams, match="beyond the router's range"):
        find_route(g, node_id(1), node_id(3), 1000, ETH, NOW, 3600, 30 * 86400)
    assert (
        find_route(
            RoutingGraph(edges, rates[:2], TIME),
            node_id(1),
            node_id(3),
            1000,
            ETH,
            NOW,
            3600,
            30 * 86400,
        )[0].amount
        == 1000
    )


def test_a_hubs_in_edges_ranked_in_numpy_follow_capacity_and_fee_updates() -> None:
    """The A* ranks a state's in-edges with numpy from 48 of them (``_Index.in_arrays``,
    gathered from per-edge arrays that patches update in place): after a top-up, a drained
    channel or a fee cut at a hub with 60 senders, the route is the scalar search's."""
    n = 60
    hub, payee = 200, 201
    edges = [route_edge(i, 0, i) for i in range(1, n + 1)]
    edges += [route_edge(100 + i, i, hub, base=10 + i) for i in range(1, n + 1)]
    edges.append(route_edge(199, hub, payee))
    g = RoutingGraph(edges, [], TIME)

    def cheapest_sender(strategy: str) -> tuple[int, int]:
        r = find_route(g, node(0), node(payee), 1000, ETH, NOW, 3600, 30 * 86400, strategy=strategy)  # type: ignore[arg-type]
        return r[1].edge.source[0], r[0].amount

    g.set_capacity((101).to_bytes(32, "big"), node(1), 500)  # sender 1 drained
    assert cheapest_sender("astar") == cheapest_sender("dijkstra") == (2, 1012)
    g.set_capacity((101).to_bytes(32, "big"), node(1), 10**9)  # topped up again
    assert cheapest_sender("astar") == cheapest_sender("dijkstra") == (1, 1011)
    g.set_fee((140).to_bytes(32, "big"), node(40), 0, 0)  # sender 40 cuts its fee
    assert cheapest_sender("astar") == cheapest_sender("dijkstra") == (40, 1000)
