"""The "hub with idle channels" and "hub with HTLCs in flight" parts of the payments
benchmark run end to end: a hub restarted from a store that also holds idle channels (each
with its watcher guard), or holding forwards stuck at offline peers or signed and held by
its next peer, still forwards every payment of the line, and the figures of both lines are
reported."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chenilles_hub.demo import Demo, _start_ledgers

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import bench_payments  # noqa: E402  (the scripts directory is not a package)

pytestmark = [pytest.mark.bench, pytest.mark.bitcoin]


@pytest.fixture
def demo() -> Iterator[Demo]:
    ledgers = _start_ledgers(lambda _line: None)
    if ledgers is None:
        pytest.skip("the EVM and Bitcoin backends are needed")
    try:
        yield Demo(ledgers, lambda _line: None)
    finally:
        for backend in ledgers.all:
            close = getattr(backend, "close", None)
            if callable(close):
                close()


def test_a_hub_restarted_with_idle_channels_forwards_and_both_lines_are_measured(
    demo: Demo, tmp_path: Path
) -> None:
    out = bench_payments.idle_channels(
        demo,
        ("evm", "evm", "bitcoin"),
        idle=200,
        rounds=1,
        per_round=3,
        directory=tmp_path,
        clock=bench_payments.wall_clock(demo.ledgers),
    )
    assert out["hub_channels"] == 202  # the idle ones and the line's two
    assert out["hub_guarded_channels"] == 202  # each guarded, as a hub guards its channels
    for key in ("latency_ms_plain", "latency_ms_with_idle_channels"):
        assert out[key]["n"] == 3 and 0 < out[key]["p50"] < 10_000
    assert out["ratio_idle_over_plain_per_round"]["n"] == 1


@pytest.mark.parametrize("key", list(bench_payments.HELD_LINES))
def test_a_hub_holding_forwards_in_flight_still_forwards_and_both_lines_are_measured(
    demo: Demo, tmp_path: Path, key: str
) -> None:
    held_by, _ = bench_payments.HELD_LINES[key]
    out = bench_payments.in_flight(
        demo,
        ("evm", "evm", "bitcoin"),
        pairs=1,
        rounds=1,
        per_round=3,
        directory=tmp_path,
        clock=bench_payments.wall_clock(demo.ledgers),
        held_by=held_by,
    )
    assert out["held_by"] == held_by
    assert out["forwards_held_by_first_hub"] == 32
    assert out["htlcs_held_by_first_hub"] == 64  # each forward's incoming and outgoing HTLC
    # Queued at the hub, the outgoing HTLCs are not signed yet: no duty. Signed and held by
    # the next peer, each is owed a refund.
    assert out["watcher_duties_of_first_hub"] == (32 if held_by == "peer" else 0)
    assert out["hub_node_state_bytes"] < 1_000  # none of them inside the node's state
    for name in ("latency_ms_plain", "latency_ms_with_htlcs_held"):
        assert out[name]["n"] == 3 and 0 < out[name]["p50"] < 10_000
    assert out["ratio_held_over_plain_per_round"]["n"] == 1
    import bench  # scripts/bench.py: the run's table prints the line

    (row,) = [r for r in bench.table({"payments": {key: out}}) if "hub" in r[0]]
    assert "holding 32 forwards" in row[0] and "per round" in row[1]
    assert ("held by its peer" in row[0]) == (held_by == "peer")
