"""The Electrum section of the benchmarks runs and reports sane, same-run figures.

A bounded run (one round, a few payments, one hop, Bitcoin channels in memory and in
SQLite): ~25 s here, most of it the embedded ledgers and Electrum starting. Skipped with the
reason when Debian's python3-electrum is not installed (it is a benchmark peer only, never a
dependency of the hub).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import bench_electrum  # noqa: E402  (the scripts directory is not a package)

pytestmark = pytest.mark.bench


def test_electrum_side_by_side_reports_both_peers() -> None:
    missing = bench_electrum.electrum_missing()
    if missing:
        pytest.skip(f"Electrum is not installed for the benchmark: {missing}")
    shapes = tuple(s for s in bench_electrum.SHAPES if s[1] == "bitcoin")
    out = bench_electrum.measure(
        rounds=1,
        per_round=3,
        states_per_round=3,
        bursts_per_round=1,
        hop_counts=(1,),
        shapes=shapes,
    )
    assert out["electrum_version"] == "4.3.4"
    pay = out["payments"]
    electrum = pay["electrum, 1 hop"]
    # BOLT 2 for one payment over one channel: 4 commitments signed (2 per side)
    assert electrum["commitments_signed_per_payment"] == 4
    assert electrum["latency_ms"]["n"] == 3
    assert 0 < electrum["payments_per_s"]["p50"] < 1000
    assert electrum["wallet_file_writes_per_payment"] == 0
    # with its wallet file Electrum writes the db at every commitment and revocation
    wallet = pay["electrum wallet file, 1 hop"]
    assert wallet["commitments_signed_per_payment"] == 4
    assert wallet["wallet_file_writes_per_payment"] >= 4
    for name, _, persist in shapes:
        ours = pay[f"chenilles {name}, 1 hop"]
        assert ours["latency_ms"]["n"] == 3
        assert 0 < ours["payments_per_s"]["p50"] < 10_000
        # one state adds the HTLC, one settles it
        assert ours["signed_states_per_payment"] == 2
        assert (ours["checkpoints_per_payment"] > 0) == persist
        ratio = out["ratios"][f"{name}, 1 hop: payments/s ours / electrum"]["of_medians"]
        assert ratio == pytest.approx(
            ours["payments_per_s"]["p50"] / electrum["payments_per_s"]["p50"], rel=0.02
        )
    flight = out["in_flight"]
    k = flight["payments_in_flight"]
    assert 0 < flight["payments_per_s"][f"electrum, 1 hop, {k} in flight"]["p50"] < 10_000
    for name, _, persist in shapes:
        key = f"chenilles {name}, 1 hop, {k} in flight"
        assert 0 < flight["payments_per_s"][key]["p50"] < 100_000
        # payments in flight share states: fewer than the 2 per payment of one at a time
        assert flight["per_payment"][key]["signed_states"] < 2
        assert (flight["per_payment"][key]["checkpoints"] > 0) == persist
    state = out["state_with_2_htlcs_both_sides"]
    assert state["electrum_ms"]["n"] == state["chenilles_bitcoin_ms"]["n"] == 3
    assert state["electrum_ms"]["p50"] > 0 and state["chenilles_bitcoin_ms"]["p50"] > 0
