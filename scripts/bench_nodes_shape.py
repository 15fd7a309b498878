"""One shape of ``bench_nodes.py``, several rounds in one pair of node processes: the
figure to compare between branches (run each branch's copy alternately; the machine's
load moves more than most changes do).

Starts anvil and two ``chenilles node start`` processes as ``bench_nodes.py`` does, opens
the channels, runs one warm-up round, then ``--rounds`` rounds of the shape (default: 128
channels, 2 requests in flight of 128 transfers each: issue 19's "two node processes").
Prints each round and the median signed states/s against the same run's signature bound.

    .venv/bin/python scripts/bench_nodes_shape.py [--rounds 3] [--channels 128]
        [--in-flight 2] [--per-request 128] [--transfers 8000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_nodes
from bench_updates import signature_bound

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.node.test_server_harness import ETH, make_node, open_channel  # noqa: E402


def run(args: argparse.Namespace) -> dict[str, Any]:
    load = (args.channels, args.in_flight, args.per_request)
    bound = signature_bound("evm_secp256k1", 2000)["bound_updates_per_s_per_side"]
    chain = bench_nodes._anvil()
    anvil_pid = chain.ledger.process.pid
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        alice = make_node(Path(tmp), "alice", chain, 2)
        bob = make_node(Path(tmp), "bob", chain, 3)
        alice.timing = bob.timing = bench_nodes.NODE_TIMING
        alice.peers = [bob]
        try:
            bob.start(wait=False)
            alice.start(wait=False)
            bob.wait_ready()
            alice.wait_ready()
            channels = [open_channel(alice, bob, ETH) for _ in range(args.channels)]
            bench_nodes._throughput(alice, bob, anvil_pid, load, args.transfers // 4, channels)
            for _ in range(args.rounds):
                result = bench_nodes._throughput(
                    alice, bob, anvil_pid, load, args.transfers, channels
                )
                print(
                    result["signed_states_per_s"],
                    "signed states/s; CPU ms per state",
                    result["cpu_ms_per_state"],
                    "by thread",
                    result["cpu_ms_per_state_by_thread"],
                    "cores busy",
                    result["cpu_cores_busy"],
                    "load",
                    result["load"],
                    f"{100 * result['ratio_to_bound']:.1f} % of the bound around it",
                    flush=True,
                )
                rounds.append(result)
        finally:
            alice.stop()
            bob.stop()
            chain.ledger.stop()
    median = statistics.median(r["signed_states_per_s"] for r in rounds)
    return {
        "shape": {"channels": load[0], "requests_in_flight": load[1], "per_request": load[2]},
        "signature_bound_per_side": bound,
        "median_signed_states_per_s": median,
        "ratio_to_bound": round(median / bound, 3),
        # each round against the bound measured around it (the bound drifts within a run)
        "median_ratio_to_round_bound": statistics.median(r["ratio_to_bound"] for r in rounds),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--per-request", type=int, default=128)
    parser.add_argument("--transfers", type=int, default=8000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args)
    print(
        f"median {result['median_signed_states_per_s']} signed states/s, "
        f"{100 * result['ratio_to_bound']:.1f} % of the signature bound "
        f"({result['signature_bound_per_side']}/s per side); median of the rounds against "
        f"the bound around each: {100 * result['median_ratio_to_round_bound']:.1f} %"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
