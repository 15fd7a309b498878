"""Two real node processes over loopback: payments and signed updates per second.

Starts anvil (npm @foundry-rs/anvil), two ``chenilles node start`` processes with SQLite
stores (WAL, synchronous FULL) talking over the encrypted TCP transport, opens one EVM
channel and pays through the HTTP API, sequentially (latency) and with several payments in
flight (throughput). Every payment is two signed channel states (add HTLC, settle), each
persisted on both sides before its signature leaves.

    .venv/bin/python scripts/bench_nodes.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.node.test_server_harness import (  # noqa: E402  (the harness the node tests use)
    ETH,
    AnvilChain,
    make_node,
    open_channel,
    pay,
)


def _anvil() -> AnvilChain:
    from chenilles_evm.backend import connect_backend
    from chenilles_evm.ledgers import anvil_ledger

    ledger = anvil_ledger()
    url = ledger.url  # type: ignore[attr-defined]
    deployer = connect_backend(url)
    keys = ["0x" + bytes(a.key).hex() for a in ledger.accounts]
    token = next(a.token for a in deployer.assets() if a.token != "native")
    return AnvilChain(
        url, deployer.adjudicator.address, int(ledger.w3.eth.block_number), keys, ledger, token
    )


def run(quick: bool) -> dict[str, object]:
    sequential = 20 if quick else 100
    concurrent = 40 if quick else 200
    chain = _anvil()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        alice = make_node(base, "alice", chain, 2)
        bob = make_node(base, "bob", chain, 3)
        alice.peers = [bob]
        try:
            bob.start(wait=False)
            alice.start(wait=False)
            bob.wait_ready()
            alice.wait_ready()
            open_channel(alice, bob, ETH)
            latencies = []
            for _ in range(sequential):
                started = time.perf_counter()
                assert pay(alice, bob, 1000)["status"] == "succeeded"
                latencies.append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda _: pay(alice, bob, 1000), range(concurrent)))
            elapsed = time.perf_counter() - started
            ok = sum(r["status"] == "succeeded" for r in results)
        finally:
            alice.stop()
            bob.stop()
            chain.ledger.stop()
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "sequential_payments": sequential,
        "latency_ms_p50": round(statistics.median(latencies), 2),
        "latency_ms_p99": round(quantiles[98], 2),
        "concurrent_payments": concurrent,
        "succeeded": ok,
        "payments_per_s_8_in_flight": round(ok / elapsed, 1),
        "signed_states_per_s_8_in_flight": round(2 * ok / elapsed, 1),
        "note": "latency includes the HTTP API round trips and the client's 30 ms status polling",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.quick)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
