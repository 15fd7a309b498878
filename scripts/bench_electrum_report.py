"""Summaries of the Electrum section (``scripts/bench_electrum.py``): medians with spread
per shape, and ours / Electrum's ratios of the medians and per round."""

from __future__ import annotations

from typing import Any

import bench_common
from bench_electrum_ours import ELECTRUM, ELECTRUM_FILE, IN_FLIGHT


def _rate(latencies_ms: list[float]) -> float:
    return len(latencies_ms) / (sum(latencies_ms) / 1e3)


def summarise_bursts(
    bursts: dict[str, list[list[float]]],
    counted: dict[str, dict[str, float]],
    hop_counts: tuple[int, ...],
    shapes: tuple[tuple[str, str, bool], ...],
) -> dict[str, Any]:
    """payments/s with ``IN_FLIGHT`` started together, and ours / Electrum's."""

    def rate(chunk: list[float]) -> float:
        return IN_FLIGHT * len(chunk) / sum(chunk)

    out: dict[str, Any] = {
        "payments_in_flight": IN_FLIGHT,
        "driver": "grouped: one checkpoint per node per round of messages (the server's jobs)",
        "payments_per_s": {},
        "per_payment": {},
        "ratios": {},
    }
    for key, chunks in bursts.items():
        per_burst = [IN_FLIGHT / s for chunk in chunks for s in chunk]
        out["payments_per_s"][key] = bench_common.summary(per_burst, 1)
        c = counted[key]
        out["per_payment"][key] = {
            what: round(c[what] / c["payments"], 2) for what in c if what != "payments"
        }
    for hops in hop_counts:
        for name, _, persist in shapes:
            mine_key = f"chenilles {name}, {hops} hop, {IN_FLIGHT} in flight"
            mine = bursts[mine_key]
            for label in [ELECTRUM, ELECTRUM_FILE] if persist else [ELECTRUM]:
                base_key = f"{label}, {hops} hop, {IN_FLIGHT} in flight"
                base = bursts[base_key]
                per_round = [rate(m) / rate(e) for m, e in zip(mine, base, strict=True)]
                e50 = out["payments_per_s"][base_key]["p50"]
                m50 = out["payments_per_s"][mine_key]["p50"]
                out["ratios"][f"{name}, {hops} hop, {IN_FLIGHT} in flight: ours / {label}"] = {
                    "of_medians": round(m50 / e50, 2),
                    "per_round": bench_common.summary(per_round, 2),
                }
    return out


def summarise(
    samples: dict[str, list[list[float]]],
    counted: dict[str, dict[str, float]],
    hop_counts: tuple[int, ...],
    shapes: tuple[tuple[str, str, bool], ...],
) -> dict[str, Any]:
    def flat(key: str) -> list[float]:
        return [x for chunk in samples[key] for x in chunk]

    payments: dict[str, Any] = {}
    for key in samples:
        if key.endswith("state"):
            continue
        rates = [_rate(chunk) for chunk in samples[key]]
        c = counted[key]
        entry: dict[str, Any] = {
            "latency_ms": bench_common.summary(flat(key), 2),
            "payments_per_s": bench_common.summary(rates, 1),
        }
        for what in (
            "signed_states",
            "checkpoints",
            "relaxed_checkpoints",
            "commitments_signed",
            "wallet_file_writes",
        ):
            if what in c:
                entry[f"{what}_per_payment"] = round(c[what] / c["payments"], 2)
        payments[key] = entry
    ratios: dict[str, Any] = {}
    for hops in hop_counts:
        for name, _, persist in shapes:
            mine = samples[f"chenilles {name}, {hops} hop"]
            against = [ELECTRUM, ELECTRUM_FILE] if persist else [ELECTRUM]
            for label in against:
                base = samples[f"{label}, {hops} hop"]
                per_round_ratio = [_rate(m) / _rate(e) for m, e in zip(mine, base, strict=True)]
                ratios[f"{name}, {hops} hop: payments/s ours / {label}"] = {
                    "of_medians": round(
                        payments[f"chenilles {name}, {hops} hop"]["payments_per_s"]["p50"]
                        / payments[f"{label}, {hops} hop"]["payments_per_s"]["p50"],
                        2,
                    ),
                    "per_round": bench_common.summary(per_round_ratio, 2),
                }
    e_state, c_state = flat("electrum state"), flat("chenilles bitcoin state")
    per_round_state = [
        bench_common.pct(e, 50) / bench_common.pct(c, 50)
        for e, c in zip(samples["electrum state"], samples["chenilles bitcoin state"], strict=True)
    ]
    state = {
        "electrum_ms": bench_common.summary(e_state, 3),
        "chenilles_bitcoin_ms": bench_common.summary(c_state, 3),
        "ratio_electrum_over_ours": {
            "of_medians": round(bench_common.pct(e_state, 50) / bench_common.pct(c_state, 50), 2),
            "per_round": bench_common.summary(per_round_state, 2),
        },
    }
    return {
        "payments": payments,
        "ratios": ratios,
        "state_with_2_htlcs_both_sides": state,
    }
