"""The devnet section of the benchmarks runs end to end and reports sane, per-chain figures.

A bounded run: the real devnet (anvil, the Bitcoin and Solana devnet servers as separate
processes), two node processes, one channel per chain opened and confirmed, a few payments
per chain. Most of its time is the ledgers starting and the Bitcoin funding confirming.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import bench_devnet  # noqa: E402  (the scripts directory is not a package)

pytestmark = [pytest.mark.bench, pytest.mark.devnet]


def test_devnet_section_pays_on_every_chain_and_counts_the_ledger_polls() -> None:
    sizes = bench_devnet.Sizes(rounds=1, sequential=3, in_flight=8, idle_s=1.0, far=3)
    out = bench_devnet.measure(sizes)
    assert out["load_before"] and out["load_after"]
    assert set(out["chains"]) == {"evm", "bitcoin", "solana"}
    assert set(out["open_channel_s"]) == {"evm", "bitcoin", "solana"}
    for chain, r in out["chains"].items():
        assert r["failed"] == 0, (chain, r["failures"])
        assert r["payments"] == 11
        # payments with far endpoints: paid, and Alice's node read every chain off its thread
        far = r["far_endpoints"]
        assert far["payment_latency_ms"]["n"] == 3
        reads = far["last_round_chain_reads"]
        assert set(reads["fetch_ms"]) == {"evm", "bitcoin", "solana"}, reads
        assert all(ms >= 1000 * bench_devnet.FAR_DELAY for ms in reads["fetch_ms"].values())
        lat = r["payment_latency_ms"]
        assert lat["n"] == 3 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] < 10_000
        assert r["transfer_latency_ms"]["n"] == 3
        assert r["sequential_payments_per_s"] > 0 and r["payments_per_s_8_in_flight"] > 0
        for node in ("alice", "bob"):
            assert r["cpu_ms_per_payment"][node] > 0, (chain, node)
        # every ledger is watched while this chain's payments run, and each node polls
        # each ledger through its own proxy
        for window in ("ledgers_during_sequential_payments", "ledgers_during_8_in_flight"):
            assert set(r[window]) == {"evm", "bitcoin", "solana"}
            for row in r[window].values():
                assert row["cpu_cores_busy"] >= 0
                assert set(row["rpc_requests_per_s"]) == {"alice", "bob"}
    for ledger, row in out["ledgers_idle"].items():
        # a node polls the chains it has channels on while nothing happens ...
        assert row["rpc_requests_per_s"]["alice"] > 0, ledger
        assert sum(row["calls"].values()) > 0
    assert set(out["vs_evm"]) == {"bitcoin", "solana"}
    for r in out["vs_evm"].values():
        assert r["p50_latency_x"] > 0
