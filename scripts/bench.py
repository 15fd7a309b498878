#!/usr/bin/env python3
"""Measure what a hub does, against its anchors, in one run.

Sections (each in its own process, so memory and start-up figures stay clean):

1. updates   signed channel updates/s with persistence on, beside the signature bound
   nodes     the same between two node processes over TCP (anvil), and payments through
             their API (scripts/bench_nodes.py)
   devnet    payments between two node processes over the devnet ledgers (anvil, the
             Bitcoin and Solana devnet RPC servers): p50/p90/p99 and payments/s per
             chain, and how often the nodes poll each ledger (scripts/bench_devnet.py)
2. payments  multi-hop payment latency and payments/s through hubs (EVM, EVM -> Bitcoin)
   electrum  Electrum 4.3.4's peers beside ours in the same run, alternating rounds
             (scripts/bench_electrum.py; needs Debian's python3-electrum)
3. routing   path finding on a 20k-node / 100k-channel graph (scripts/bench_routing.py)
4. costs     gas, weight, compute units per on-chain operation (the backends' own scripts)
5. scale     memory per open channel; restart with 100k channels (quick: 10k)
6. virtual   payments/s inside a virtual channel against the same payments routed
             through the hub with HTLCs (scripts/bench_virtual.py)

    .venv/bin/python scripts/bench.py            # full run, writes docs/bench/results.json
    .venv/bin/python scripts/bench.py --quick    # ~3 min, writes docs/bench/results-quick.json
    .venv/bin/python scripts/bench.py --only updates,payments   # merged into the file

The run ends with issue 19's targets judged from its own figures (scripts/bench_targets.py),
also written as ``targets`` in the JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common
import bench_targets

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
SECTIONS = (
    "updates",
    "nodes",
    "devnet",
    "payments",
    "electrum",
    "routing",
    "costs",
    "scale",
    "virtual",
)


def run_section(name: str, quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chenilles-bench-") as tmp:
        out = Path(tmp) / f"{name}.json"
        if name == "routing":
            cmd = [sys.executable, str(SCRIPTS / "bench_routing.py"), "--out", str(out)]
            # Full: the 20k-node / 100k-channel graph. The pure-Python Dijkstra baseline is
            # slow (seconds, on some pairs minutes, per route), so it runs on few pairs.
            cmd += ["--quick", "--baseline-pairs", "3"] if quick else ["--baseline-pairs", "5"]
        else:
            cmd = [sys.executable, str(SCRIPTS / f"bench_{name}.py"), "--json", str(out)]
            cmd += ["--quick"] if quick else []
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        seconds = round(time.perf_counter() - t0, 1)
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        if not out.exists():
            return {"error": f"exit {proc.returncode}: {tail}", "seconds": seconds}
        result: dict[str, Any] = json.loads(out.read_text())
        if proc.returncode != 0:  # the JSON was written, the script failed afterwards
            result["warning"] = f"exit {proc.returncode} after writing its JSON: {tail}"
        result["seconds"] = seconds
        return result


def _g(d: Any, *path: Any, default: Any = "-") -> Any:
    for key in path:
        try:
            d = d[key]
        except (KeyError, IndexError, TypeError):
            return default
    return d


def _devnet_rows(d: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for chain, r in _g(d, "chains", default={}).items():
        lat = r["payment_latency_ms"]
        ratio = _g(d, "vs_evm", chain, "sequential_payments_per_s_x", default=None)
        rows.append(
            (
                f"2 node processes over the devnet, {chain}",
                f"p50 {lat['p50']} ms, p99 {lat['p99']} ms; {r['sequential_payments_per_s']}/s "
                f"seq, {r['payments_per_s_8_in_flight']}/s 8 in flight"
                + (f" ({ratio}x EVM)" if ratio is not None else " (baseline)"),
                "same run, EVM baseline",
            )
        )
    return rows


def table(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measurement, value, anchor or target) rows for the console."""
    rows: list[tuple[str, str, str]] = []
    u = results.get("updates", {})
    for kind, bound in _g(u, "signature_bound", default={}).items():
        rows.append(
            (
                f"sign+verify per side, {kind}",
                f"{bound['sign_us']['p50']:.0f}+{bound['verify_us']['p50']:.0f} us "
                f"-> {bound['bound_updates_per_s_per_side']:,}/s per side",
                "signature bound",
            )
        )
    for r in _g(u, "machines", default=[]):
        rows.append(
            (
                f"machines+SQLite, {r['authority']}, {r['transfers_per_proposal']}/proposal",
                f"{r['updates_per_s']:,} updates/s ({r['signed_states_per_s']:,} states/s)",
                ">= 2,000 updates/s",
            )
        )
    for r in _g(u, "group_commit", default=[]):
        rows.append(
            (
                f"group commit, {r['channels']} channels, {r['authority']}",
                f"{r['updates_per_s']:,} updates/s (1 transfer per state)",
                ">= 2,000 updates/s",
            )
        )
    for r in _g(u, "nodes", default=[]):
        rows.append(
            (
                f"2 Nodes+SQLite, EVM, {r['transfers_queued_per_round']} queued",
                f"{r['updates_per_s']:,} updates/s ({r['signed_states_per_s']:,} states/s)",
                ">= 2,000 updates/s",
            )
        )
    n = results.get("nodes", {})
    if "transfer_throughput" in n:
        bound = n["signature_bound_evm"]
        rows.append(
            (
                "2 node processes, EVM: sign+verify per side (same run)",
                f"{bound['sign_us']['p50']:.0f}+{bound['verify_us']['p50']:.0f} us "
                f"-> {bound['bound_updates_per_s_per_side']:,}/s per side",
                "signature bound",
            )
        )
        for r in n["transfer_throughput"]:
            rows.append(
                (
                    f"2 node processes, {r['channels']} channels, "
                    f"{r['requests_in_flight']}x{r['transfers_per_request']} in flight",
                    f"{r['signed_states_per_s']:,} signed states/s, "
                    f"{r['transfers_per_s']:,} transfers/s"
                    + (
                        f", {100 * r['ratio_to_bound']:.0f} % of the bound around it"
                        if "ratio_to_bound" in r
                        else ""
                    ),
                    ">= 2,000 updates/s; 2x128: >= 50 % of the bound",
                )
            )
        rows.append(
            (
                "2 node processes: transfer / payment latency p50",
                f"{n['transfer_latency_ms']['p50']} ms / {n['payment_latency_ms']['p50']} ms; "
                f"{n['payments_8_in_flight']['payments_per_s']} payments/s 8 in flight",
                "go-nitro 247 ms first payment",
            )
        )
        parts = n.get("payment_parts_ms")
        if parts:
            rows.append(
                (
                    "2 node processes: API round trip / invoice / payment p50",
                    f"{parts['api_round_trip']['p50']} / {parts['invoice']['p50']} / "
                    f"{parts['payment']['p50']} ms",
                    "in one process: electrum section, evm sqlite 1 hop",
                )
            )
    rows += _devnet_rows(results.get("devnet", {}))
    for name, r in _g(results, "payments", "configs", default={}).items():
        lat = r["latency_ms"]
        rows.append(
            (
                f"payment {name}",
                f"p50 {lat['p50']} ms, p99 {lat['p99']} ms; "
                f"{r['sequential_payments_per_s']}/s seq, "
                f"{r['concurrent_8_payments_per_s']['p50']}/s 8 in flight",
                "evm->btc 3 hops p50 < 8 ms; lnd 33-48/s; Eclair 75 ms",
            )
        )
    idle = _g(results, "payments", "hub_with_idle_channels", default={})
    if idle:
        rows.append(
            (
                f"payment evm->btc, 3 hops, hub with {idle['idle_channels_on_first_hub']:,} "
                "idle channels",
                f"p50 {idle['latency_ms_with_idle_channels']['p50']} ms against "
                f"{idle['latency_ms_plain']['p50']} ms "
                f"(x{idle['ratio_idle_over_plain_per_round']['p50']} per round)",
                "same run, alternating rounds",
            )
        )
    for key, held_by in (
        ("hub_with_htlcs_in_flight", "in flight"),
        ("hub_with_htlcs_held_by_peer", "signed and held by its peer"),
    ):
        held = _g(results, "payments", key, default={})
        if not held:
            continue
        rows.append(
            (
                f"payment evm->btc, 3 hops, hub holding {held['forwards_held_by_first_hub']:,} "
                f"forwards {held_by}",
                f"p50 {held['latency_ms_with_htlcs_held']['p50']} ms against "
                f"{held['latency_ms_plain']['p50']} ms "
                f"(x{held['ratio_held_over_plain_per_round']['p50']} per round)",
                "same run, alternating rounds",
            )
        )
    el = results.get("electrum", {})
    if "skipped" in el:
        rows.append(("electrum side by side", "skipped", el["skipped"][:60]))
    for key, r in _g(el, "payments", default={}).items():
        rows.append(
            (
                f"two peers, {key}",
                f"p50 {r['latency_ms']['p50']} ms, {r['payments_per_s']['p50']} payments/s",
                "same run, alternating rounds",
            )
        )
    for key, r in _g(el, "ratios", default={}).items():
        rows.append((key, f"{r['of_medians']}x (per round p50 {r['per_round']['p50']}x)", ""))
    for key, r in _g(el, "in_flight", "ratios", default={}).items():
        rows.append((key, f"{r['of_medians']}x (per round p50 {r['per_round']['p50']}x)", ""))
    st = _g(el, "state_with_2_htlcs_both_sides", default={})
    if st:
        rows.append(
            (
                "state with 2 HTLCs, both sides: electrum / ours",
                f"{st['electrum_ms']['p50']} / {st['chenilles_bitcoin_ms']['p50']} ms "
                f"({st['ratio_electrum_over_ours']['of_medians']}x)",
                "BOLT 3 both",
            )
        )
    rt = results.get("routing", {})
    if "fast" in rt:
        rows.append(
            (
                f"route, {rt['params']['nodes']:,} nodes / {rt['params']['channels']:,} channels",
                f"p50 {rt['fast']['p50_ms']} ms, p99 {rt['fast']['p99_ms']} ms "
                f"({_g(rt, 'compare', 'strategy')} p50 {_g(rt, 'compare', 'p50_ms')} ms; "
                f"Dijkstra baseline p50 {_g(rt, 'baseline_dijkstra', 'p50_ms')} ms)",
                "p50 < 5 ms (random payers); LDK 35-49 ms",
            )
        )
    c = results.get("costs", {})
    evm = _g(c, "evm_gas", "ethtester", default={})
    for op, anchor in (
        ("deposit ETH (first)", "Nitro 46.5k, Raiden 57k"),
        ("register", "Nitro challenge 113k, Raiden close 123k"),
        ("refute (register newer)", "Nitro checkpoint 74k"),
        ("conclude", "Raiden settle 116k"),
        ("= cooperative exit (close, pays both)", "Nitro 112k"),
        ("= non-coop exit (reg + concl, pays both)", "Nitro 195k"),
    ):
        if op in evm:
            anvil = _g(c, "evm_gas", "anvil", op)
            rows.append((f"gas {op}", f"{evm[op]:,} (anvil {anvil:,})", anchor))
    for name, w in _g(c, "bitcoin_weight", default={}).items():
        if "bolt3_expected_wu" in w:
            rows.append(
                (f"weight {name}", f"{w['weight_wu']} WU", f"BOLT 3 {w['bolt3_expected_wu']}")
            )
    for name, op in _g(c, "solana", "operations", default={}).items():
        if name.startswith(("register", "conclude (8", "close_cooperative", "fund (open")):
            rows.append(
                (
                    f"solana {name}",
                    f"{op['compute_units']:,} CU, {op['tx_bytes']} B",
                    "tx <= 1232 B",
                )
            )
    s = results.get("scale", {})
    if "memory" in s:
        m = s["memory"]
        rows.append(
            (
                f"memory per channel ({m['channels']:,} machines)",
                f"{m['tracemalloc_kib_per_channel']} KiB traced, "
                f"{m['rss_kib_per_channel']} KiB RSS",
                "<= 20 KiB",
            )
        )
    if "restart" in s:
        r = s["restart"]
        rows.append(
            (
                f"restore {r['channels']:,} channels",
                f"{r['restore_s']} s (first process after the fill "
                f"{r.get('restore_s_first_process_after_fill', '-')} s); first checkpoint "
                f"{r['first_checkpoint_ms']} ms",
                "< 3 s for 100,000",
            )
        )
        if "idle_tick_ms" in r:
            rows.append(
                (
                    f"idle tick, {r['channels']:,} channels",
                    f"p50 {r['idle_tick_ms']['p50']} ms, max {r['idle_tick_ms']['max']} ms",
                    "a job every second, payments wait behind it",
                )
            )
    v = results.get("virtual", {})
    if "virtual_payments_per_s" in v:
        rows.append(
            (
                f"payments in a virtual channel ({v['payments']:,}, no store)",
                f"{v['virtual_payments_per_s']:,}/s vs {v['htlc_via_hub_payments_per_s']:,}/s "
                f"through the hub with HTLCs (x{v['speedup']})",
                "faster than via the hub",
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, ~3 min in total")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--out", help="JSON output (default docs/bench/results[-quick].json)")
    args = ap.parse_args()
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}")
    default = "results-quick.json" if args.quick else "results.json"
    out = Path(args.out) if args.out else ROOT / "docs" / "bench" / default
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    if args.only and out.exists():
        # A subset updates its sections of the last run and keeps the others.
        results = json.loads(out.read_text())
    results.update(
        {
            "mode": "quick" if args.quick else "full",
            "machine": bench_common.machine(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    for name in chosen:
        print(f"[{name}] ...", end="", flush=True)
        results[name] = run_section(name, args.quick)
        problem = results[name].get("error") or results[name].get("warning")
        print(f" {results[name].get('seconds')} s" + (" (see below)" if problem else ""))
        if problem:
            print(f"    {problem}")
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    results["targets"] = bench_targets.judge(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    m = results["machine"]
    print(
        f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, "
        f"Python {m['python']}, SQLite {m['sqlite']} ({results['mode']} mode, "
        f"{results['total_seconds']} s)"
    )
    rows = table(results)
    w0 = max((len(r[0]) for r in rows), default=10)
    w1 = max((len(r[1]) for r in rows), default=10)
    print(f"{'measurement':<{w0}}  {'value':<{w1}}  anchor / target")
    for a, b, c in rows:
        print(f"{a:<{w0}}  {b:<{w1}}  {c}")
    print("\nissue 19's targets, judged from this run (scripts/bench_targets.py):")
    for line in bench_targets.lines(results["targets"]):
        print(line)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
