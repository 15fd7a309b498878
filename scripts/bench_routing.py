#!/usr/bin/env python3
"""Benchmark the router on a synthetic cross-chain graph (default: 20k nodes, 100k channels).

The graph is seeded and shaped like a payment network: a power-law degree (Chung-Lu
weights), three chains and four assets, most nodes on one chain, and the best-connected
nodes are converting hubs present on every chain. Prints a table and writes JSON
(default ``docs/bench/routing.json``).

    .venv/bin/python scripts/bench_routing.py            # full run
    .venv/bin/python scripts/bench_routing.py --quick    # 2k nodes, 10k channels, 100 pairs
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import random
import resource
import statistics
import sys
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import bench_common
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chenilles_hub.core.errors import NoRoute  # noqa: E402
from chenilles_hub.core.model import Asset  # noqa: E402
from chenilles_hub.core.routing import (  # noqa: E402
    AssetRate,
    ChannelEdge,
    RoutingGraph,
    bounds,
    find_route,
)
from chenilles_hub.core.routing.bound_cache import BoundCache, value_class  # noqa: E402
from chenilles_hub.core.routing.hub_bounds import HubBounds  # noqa: E402
from chenilles_hub.core.routing.search import Strategy  # noqa: E402
from chenilles_hub.core.timing import TimeModel  # noqa: E402

ETH_CHAIN = "eip155:1"
BTC_CHAIN = "bip122:000000000019d6689c085ae165831e93"
SOL_CHAIN = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
ETH = Asset(ETH_CHAIN, "native")
USDC = Asset(ETH_CHAIN, "erc20:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
BTC = Asset(BTC_CHAIN, "native")
SOL = Asset(SOL_CHAIN, "native")
#: (USD per whole unit, decimals)
MARKET = {ETH: (3000, 18), USDC: (1, 6), BTC: (60000, 8), SOL: (150, 9)}
CHAINS = {ETH_CHAIN: (ETH, USDC), BTC_CHAIN: (BTC,), SOL_CHAIN: (SOL,)}
CHAIN_SHARE = [(ETH_CHAIN, 0.5), (BTC_CHAIN, 0.3), (SOL_CHAIN, 0.2)]
CHALLENGE = {ETH_CHAIN: 86400, BTC_CHAIN: 86400, SOL_CHAIN: 12 * 3600}
TIME_MODELS = {
    ETH_CHAIN: TimeModel(12_000, 64, 600, 30 * 86400),
    BTC_CHAIN: TimeModel(600_000, 6, 3600, 30 * 86400),
    SOL_CHAIN: TimeModel(400, 32, 60, 30 * 86400),
}
NOW = 1_700_000_000
FINAL_LEAD = 6 * 3600
MAX_LOCK = 14 * 86400


def units(asset: Asset, usd: float) -> int:
    price, decimals = MARKET[asset]
    return max(1, int(usd / price * 10**decimals))


def build_edges(
    n_nodes: int, n_channels: int, n_hubs: int, seed: int, bulk: bool = False
) -> tuple[list[ChannelEdge], list[AssetRate], list[bytes]]:
    """The seeded graph. ``bulk`` draws each chain's channel ends in one numpy call instead
    of one per channel (the same distribution, another graph for the same seed): one draw
    per channel is O(nodes) and takes hours at 100k nodes / 500k channels."""
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    ids = [int(i).to_bytes(4, "big") + bytes(28) for i in range(n_nodes)]
    weight = (np.arange(n_nodes) + 10.0) ** -0.85  # Chung-Lu: degree ~ weight
    home = rng.choice(len(CHAIN_SHARE), size=n_nodes, p=[p for _, p in CHAIN_SHARE])
    hubs = set(range(n_hubs))
    on_chain = {}
    for ci, (chain, _) in enumerate(CHAIN_SHARE):
        members = np.array([i for i in range(n_nodes) if home[i] == ci or i in hubs])
        p = weight[members] / weight[members].sum()
        on_chain[chain] = (members, p)
    p_all = weight / weight.sum()
    edges: list[ChannelEdge] = []
    us = rng.choice(n_nodes, size=n_channels * 2, p=p_all)
    drawn = {
        chain: (iter(rng.choice(members, size=n_channels * 2, p=p).tolist()) if bulk else None)
        for chain, (members, p) in on_chain.items()
    }
    k = 0
    made = 0
    while made < n_channels:
        u = int(us[k % len(us)])
        k += 1
        chain = CHAIN_SHARE[pyrng.randrange(3)][0] if u in hubs else CHAIN_SHARE[home[u]][0]
        members, p = on_chain[chain]
        ends = drawn[chain]
        v = int(next(ends)) if ends is not None else int(rng.choice(members, p=p))
        if u == v:
            continue
        asset = CHAINS[chain][0] if len(CHAINS[chain]) == 1 or pyrng.random() < 0.7 else USDC
        size = float(rng.lognormal(np.log(2000), 1.2))
        split = pyrng.random()
        cid = made.to_bytes(8, "big") + bytes(24)
        for a, b, share in ((u, v, split), (v, u, 1 - split)):
            edges.append(
                ChannelEdge(
                    channel_id=cid,
                    chain=chain,
                    asset=asset,
                    source=ids[a],
                    target=ids[b],
                    capacity=units(asset, size * share),
                    fee_base=pyrng.choice([0, units(asset, 0.0005), units(asset, 0.002)]),
                    fee_ppm=int(rng.lognormal(np.log(200), 1.0)) % 5000,
                    challenge_duration=CHALLENGE[chain],
                )
            )
        made += 1
    rates = []
    for h in sorted(hubs):
        for a_in in MARKET:
            for a_out in MARKET:
                if a_in == a_out:
                    continue
                # out per in, in base units, as an integer fraction of the market price.
                num = MARKET[a_in][0] * 10 ** MARKET[a_out][1]
                den = MARKET[a_out][0] * 10 ** MARKET[a_in][1]
                rates.append(
                    AssetRate(ids[h], a_in, a_out, num, den, spread_ppm=pyrng.randrange(500, 5000))
                )
    return edges, rates, ids


def plain_dijkstra(
    graph: RoutingGraph, source: bytes, target: bytes, amount: int, asset: Asset
) -> Fraction | None:
    """The baseline: textbook Dijkstra in pure Python, backwards from the payee over
    (node, asset) states, one label per state (least amount to receive), exact integer
    fees and conversions, capacity and lock checked greedily, no simplicity or Pareto
    labels. This is the shape of a classic Lightning router; it is not exact under lock or
    hop limits, so it only anchors the timing (its costs are reported for comparison)."""
    ix = graph.index()
    s, t = ix.node_index[source], ix.node_index[target]
    start = ix.state_index[(t, ix.asset_index[asset])]
    best: dict[int, int] = {start: amount}
    expiry: dict[int, int] = {start: FINAL_LEAD}
    heap = [(float(amount * ix.price_f[ix.state_asset[start]]), start)]
    done: set[int] = set()
    found: Fraction | None = None
    while heap:
        _, st = heapq.heappop(heap)
        if st in done:
            continue
        done.add(st)
        big_l, big_t = best[st], expiry[st]
        for e in ix.in_edges[st]:
            if big_l > ix.e_cap[e]:
                continue
            exp = big_t if st == start else big_t + ix.e_delta[e]
            if exp > MAX_LOCK:
                continue
            u = ix.e_src[e]
            if u == s:
                value = big_l * ix.prices[ix.e_asset[e]]
                found = value if found is None or value < found else found
                continue
            need = big_l + ix.e_base[e] + (big_l * ix.e_ppm[e] + 999_999) // 1_000_000
            s_out = ix.e_from[e]
            options = [(s_out, need)]
            for s_in, n_eff, d_eff, _until in ix.conv_into[s_out]:
                options.append((s_in, -(-need * d_eff // n_eff)))
            for nxt, need_in in options:
                if nxt not in done and need_in < best.get(nxt, 1 << 400):
                    best[nxt], expiry[nxt] = need_in, exp
                    heapq.heappush(heap, (need_in * ix.price_f[ix.state_asset[nxt]], nxt))
        if found is not None and heap and heap[0][0] > float(found):
            break
    return found


#: The compiled bound pass, if built (the "astar-scipy" comparison turns it off).
KERNEL = bounds._kernel


def machine() -> dict[str, object]:
    return {
        **bench_common.machine(),
        "numpy": np.__version__,
        "scipy": __import__("scipy").__version__,
        "bound_pass": "compiled (_bounds.c)" if KERNEL is not None else "scipy",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2k nodes, 10k channels, 100 pairs")
    ap.add_argument("--nodes", type=int, default=20_000)
    ap.add_argument("--channels", type=int, default=100_000)
    ap.add_argument("--hubs", type=int, default=40)
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--baseline-pairs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--warmup-pairs",
        type=int,
        default=0,
        help="untimed queries on other random pairs first (a long-running router's state)",
    )
    ap.add_argument(
        "--bulk",
        action="store_true",
        help="draw channel ends in bulk (needed for 100k+ nodes; another graph per seed)",
    )
    ap.add_argument(
        "--no-memory", action="store_true", help="skip the second build under tracemalloc"
    )
    ap.add_argument(
        "--strategy",
        default="cached",
        choices=["cached", "astar", "hubs"],
        help="the router measured (cached: bounds cached per class and payer; astar: one "
        "weight pass and Dijkstra per query; hubs: rows per hub shared by every payer)",
    )
    ap.add_argument(
        "--compare",
        default="astar-scipy",
        choices=["cached", "astar", "hubs", "astar-scipy", "none"],
        help="a second strategy timed on the same pairs, alternating with the first "
        "(astar-scipy, the default: the per-query bound without the compiled kernel)",
    )
    ap.add_argument(
        "--payers",
        type=int,
        default=0,
        help="draw payers from this many nodes (1: a node routing its own payments); "
        "0: a random payer per pair",
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench" / "routing.json"))
    args = ap.parse_args()
    if args.quick:
        args.nodes, args.channels, args.hubs, args.pairs = 2_000, 10_000, 10, 100
        args.baseline_pairs = min(args.baseline_pairs, 30)

    t0 = time.perf_counter()
    edges, rates, _ids = build_edges(args.nodes, args.channels, args.hubs, args.seed, args.bulk)
    t_gen = time.perf_counter() - t0
    gc.collect()
    t0 = time.perf_counter()
    graph = RoutingGraph(edges, rates, TIME_MODELS)
    index = graph.index()
    t_build = time.perf_counter() - t0
    # Memory of a second, identical build under tracemalloc (which slows building down).
    mem_index = 0
    if not args.no_memory:
        tracemalloc.start()
        twin = RoutingGraph(edges, rates, TIME_MODELS)
        twin.index()
        mem_index, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del twin
        gc.collect()
    degree = np.bincount(
        np.array([index.node_index[e.source] for e in edges]), minlength=len(index.nodes)
    )

    pyrng = random.Random(args.seed + 1)
    node_assets: dict[int, list[int]] = {}
    for u, a in index.state_index:
        node_assets.setdefault(u, []).append(a)
    pairs = []
    payer_pool = [pyrng.randrange(len(index.nodes)) for _ in range(args.payers)]
    # Warm-up pairs are drawn after the measured ones (which stay the same for a seed).
    while len(pairs) < args.pairs + args.warmup_pairs:
        s = pyrng.choice(payer_pool) if payer_pool else pyrng.randrange(len(index.nodes))
        t = pyrng.randrange(len(index.nodes))
        if s == t:
            continue
        asset = index.assets[pyrng.choice(sorted(node_assets[t]))]
        usd = 10 ** pyrng.uniform(0, 2.5)  # $1 .. ~$300
        pairs.append((index.nodes[s], index.nodes[t], asset, units(asset, usd)))

    def run(
        name: str, todo: list[tuple[bytes, bytes, Asset, int]]
    ) -> tuple[list[float], list[object]]:
        # "astar-scipy": the per-query bound without the compiled kernel (the baseline it
        # replaced: scipy's Dijkstra over every state), in the same run.
        strategy: Strategy = "astar" if name == "astar-scipy" else name  # type: ignore[assignment]
        bounds._kernel = None if name == "astar-scipy" else KERNEL
        times, results = [], []
        for src, dst, asset, amount in todo:
            built, first, hub_built = cache.built, cache.first, hub_rows.built
            t1 = time.perf_counter()
            try:
                r: object = find_route(
                    graph, src, dst, amount, asset, NOW, FINAL_LEAD, MAX_LOCK, strategy=strategy
                )
            except NoRoute:
                r = None
            times.append((time.perf_counter() - t1) * 1e3)
            results.append(r)
            if strategy == "cached":  # a key's first query, one that built its row, or reused it
                if cache.first > first:
                    row_first_ms.append(times[-1])
                else:
                    (row_built_ms if cache.built > built else row_reused_ms).append(times[-1])
            if strategy == "hubs":  # a query that computed a hub row, or one that had them all
                (hub_built_ms if hub_rows.built > hub_built else hub_warm_ms).append(times[-1])
        return times, results

    # The cache of A* bounds: rows per payer and amount class, built by the queries that
    # need them (inside their timing); the cache's counters and memory are reported.
    cache = BoundCache(index)
    index.bound_cache = cache
    row_first_ms: list[float] = []
    row_built_ms: list[float] = []
    row_reused_ms: list[float] = []
    # Rows per hub (strategy "hubs"), shared by every payer; built inside the queries' timing.
    t1 = time.perf_counter()
    hub_rows = HubBounds(index)
    hub_setup_s = time.perf_counter() - t1
    index.hub_bounds = hub_rows
    hub_built_ms: list[float] = []
    hub_warm_ms: list[float] = []

    strategies: list[str] = [args.strategy] + (
        [args.compare] if args.compare not in ("none", args.strategy) else []
    )
    pairs, warmup = pairs[: args.pairs], pairs[args.pairs :]
    t1 = time.perf_counter()
    for name in strategies:
        run(name, warmup)  # a long-running router: other payers' queries came first
    warmup_s = time.perf_counter() - t1
    for name in strategies:
        run(name, pairs[:5])  # warm caches (fee medians, imports)
    row_first_ms.clear()
    row_built_ms.clear()
    row_reused_ms.clear()
    hub_built_ms.clear()
    hub_warm_ms.clear()
    timed: dict[str, list[float]] = {name: [] for name in strategies}
    routes: dict[str, list[object]] = {name: [] for name in strategies}
    for i, pair in enumerate(pairs):
        # Alternate which strategy goes first, so load drifts hit both alike.
        for name in strategies if i % 2 == 0 else strategies[::-1]:
            ms, rs = run(name, [pair])
            timed[name] += ms
            routes[name] += rs
    fast_ms, fast_routes = timed[args.strategy], routes[args.strategy]
    equal_cost = None
    if len(strategies) == 2:
        other = routes[strategies[1]]
        equal_cost = sum(
            (a is None and b is None)
            or (
                a is not None
                and b is not None
                and graph.value(a[0].edge.asset, a[0].amount)  # type: ignore[index]
                == graph.value(b[0].edge.asset, b[0].amount)  # type: ignore[index]
            )
            for a, b in zip(fast_routes, other, strict=True)
        )
    base_todo = pairs[: args.baseline_pairs]
    base_ms, base_costs = [], []
    for src, dst, asset, amount in base_todo:
        t1 = time.perf_counter()
        base_costs.append(plain_dijkstra(graph, src, dst, amount, asset))
        base_ms.append((time.perf_counter() - t1) * 1e3)
    same = cheaper = 0
    for a, cb in zip(fast_routes[: len(base_todo)], base_costs, strict=True):
        ca = None if a is None else graph.value(a[0].edge.asset, a[0].amount)  # type: ignore[index]
        same += ca == cb
        cheaper += ca is not None and cb is not None and ca < cb
    found = [r for r in fast_routes if r is not None]
    hop_counts = [len(r) for r in found]  # type: ignore[arg-type]
    cross = sum(1 for r in found if r[0].edge.asset != r[-1].edge.asset)  # type: ignore[index]

    # Capacity updates after payments: in place, no rebuild.
    t1 = time.perf_counter()
    n_upd = 10_000
    for i in range(n_upd):
        e = edges[(i * 7919) % len(edges)]
        graph.set_capacity(e.channel_id, e.source, e.capacity)
    upd_us = (time.perf_counter() - t1) / n_upd * 1e6
    first_ms, built_ms, reused_ms = list(row_first_ms), list(row_built_ms), list(row_reused_ms)
    hub_cold, hub_warm = list(hub_built_ms), list(hub_warm_ms)
    _, _ = run(args.strategy, pairs[:5])

    report = {
        "params": {
            "nodes": args.nodes,
            "channels": args.channels,
            "directed_edges": len(edges),
            "states": len(index.state_node),
            "hubs": args.hubs,
            "rates": len(rates),
            "pairs": args.pairs,
            "baseline_pairs": len(base_todo),
            "warmup_pairs": args.warmup_pairs,
            "warmup_s": round(warmup_s, 1),
            "seed": args.seed,
            "bulk_sampling": args.bulk,
            "max_lock_s": MAX_LOCK,
            "final_lead_s": FINAL_LEAD,
        },
        "machine": machine(),
        "generate_s": round(t_gen, 3),
        "build_s": round(t_build, 3),
        "index_mem_mb": round(mem_index / 2**20, 1) if mem_index else None,
        "channels_per_node": {
            "mean": round(float(degree.mean()), 2),
            "median": int(np.median(degree)),
            "p99": int(np.percentile(degree, 99)),
            "max": int(degree.max()),
            "top_1pct_share_of_channel_ends": round(
                float(np.sort(degree)[-max(1, len(degree) // 100) :].sum() / degree.sum()), 3
            ),
            "nodes_with_1_channel_share": round(float((degree == 1).mean()), 3),
        },
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "strategy": args.strategy,
        "payers": args.payers or "random",
        "cache": {
            "amount_classes_met": len(
                {value_class(float(amount * graph.value(asset, 1))) for *_, asset, amount in pairs}
            ),
            "first_queries": cache.first,
            "rows_built": cache.built,
            "rows_reused": cache.hits,
            "rows_kept_max": cache.max_rows,
            "p50_ms_first_query": (round(bench_common.pct(first_ms, 50), 2) if first_ms else None),
            "p50_ms_building_the_row": (
                round(bench_common.pct(built_ms, 50), 2) if built_ms else None
            ),
            "p50_ms_reusing_a_row": (
                round(bench_common.pct(reused_ms, 50), 2) if reused_ms else None
            ),
            "cache_mb": round(cache.nbytes() / 2**20, 1),
        },
        "hub_rows": {
            "hub_states": len(hub_rows.hub_states),
            "setup_s": round(hub_setup_s, 3),
            "rows_built": hub_rows.built,
            "queries_on_the_per_query_bound": hub_rows.fallbacks,
            "rows_used": hub_rows.hits,
            "rows_kept_max": hub_rows.max_rows,
            "queries_building_a_row": len(hub_cold),
            "p50_ms_building_a_row": round(bench_common.pct(hub_cold, 50), 2) if hub_cold else None,
            "queries_with_every_row_kept": len(hub_warm),
            "p50_ms_every_row_kept": round(bench_common.pct(hub_warm, 50), 2) if hub_warm else None,
            "p90_ms_every_row_kept": round(bench_common.pct(hub_warm, 90), 2) if hub_warm else None,
            "p99_ms_every_row_kept": round(bench_common.pct(hub_warm, 99), 2) if hub_warm else None,
            "rows_mb": round(hub_rows.nbytes() / 2**20, 1),
        },
        "compare": (
            {
                "strategy": strategies[1],
                "p50_ms": round(bench_common.pct(timed[strategies[1]], 50), 2),
                "p90_ms": round(bench_common.pct(timed[strategies[1]], 90), 2),
                "p99_ms": round(bench_common.pct(timed[strategies[1]], 99), 2),
                "mean_ms": round(statistics.fmean(timed[strategies[1]]), 2),
                "equal_cost_pairs": equal_cost,
                "p50_ratio": round(
                    bench_common.pct(timed[strategies[1]], 50) / bench_common.pct(fast_ms, 50), 2
                ),
            }
            if len(strategies) == 2
            else None
        ),
        "fast": {
            "p50_ms": round(bench_common.pct(fast_ms, 50), 2),
            "p90_ms": round(bench_common.pct(fast_ms, 90), 2),
            "p99_ms": round(bench_common.pct(fast_ms, 99), 2),
            "mean_ms": round(statistics.fmean(fast_ms), 2),
            "success": round(len(found) / len(pairs), 3),
            "mean_hops": round(statistics.fmean(hop_counts), 2) if hop_counts else None,
            "cross_asset_routes": cross,
        },
        "baseline_dijkstra": {
            "p50_ms": round(bench_common.pct(base_ms, 50), 2),
            "p90_ms": round(bench_common.pct(base_ms, 90), 2),
            "p99_ms": round(bench_common.pct(base_ms, 99), 2),
            "mean_ms": round(statistics.fmean(base_ms), 2) if base_ms else None,
            "success": round(sum(c is not None for c in base_costs) / max(1, len(base_todo)), 3),
            "same_cost_as_fast": same,
            "fast_strictly_cheaper": cheaper,
        },
        "capacity_update_us": round(upd_us, 2),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    f: dict[str, object] = report["fast"]  # type: ignore[assignment]
    b: dict[str, object] = report["baseline_dijkstra"]  # type: ignore[assignment]
    print(
        f"graph: {args.nodes} nodes, {args.channels} channels ({len(edges)} directed edges), "
        f"{len(index.state_node)} states, {len(rates)} rates"
    )
    print(
        f"machine: {report['machine']['cpu']} x{report['machine']['cores']}, "  # type: ignore[index]
        f"Python {report['machine']['python']}"  # type: ignore[index]
    )
    print(
        f"build {t_build:.2f}s (generate {t_gen:.2f}s), index {report['index_mem_mb']} MB, "
        f"max RSS {report['max_rss_mb']} MB, capacity update {upd_us:.1f} us"
    )
    print(f"{'':24}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'success':>10}")
    rows = [(f"find_route {args.strategy}", f)]
    if report["compare"]:
        c: dict[str, object] = report["compare"]  # type: ignore[assignment]
        rows.append((f"find_route {c['strategy']}", c))
    for name, row in (*rows, ("plain Dijkstra (py)", b)):
        cells = "".join(
            f"{row.get(k, '-')!s:>10}" for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "success")
        )
        print(f"{name:24}{cells}")
    print(
        f"mean hops {f['mean_hops']}, cross-asset routes {f['cross_asset_routes']}; baseline "
        f"same cost {b['same_cost_as_fast']}/{len(base_todo)}, "
        f"fast strictly cheaper {b['fast_strictly_cheaper']}"
    )
    if report["compare"]:
        print(
            f"equal cost on {c['equal_cost_pairs']}/{len(pairs)} pairs, p50 ratio {c['p50_ratio']}"
        )
    print(f"bound cache: {report['cache']}, payers {report['payers']}")
    print(f"hub rows: {report['hub_rows']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
