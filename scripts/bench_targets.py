"""Issue 19's targets, judged from one run's results: what ``scripts/bench.py`` prints
last and writes as ``targets`` in its JSON, so that whether a target holds is read from
the run itself (same machine, same hour) rather than from a table written by hand.

Each target is judged only from the sections the run holds; one whose section is
missing, skipped or failed says so and counts as neither met nor missed. The thresholds
are the issue's: medians, and ratios measured in the same run where a bound or a peer
exists.

    .venv/bin/python scripts/bench_targets.py [docs/bench/results.json]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: How a target's figure is read from the results (raises if the run does not hold it, or
#: holds it for another size than the target's).
Reader = Callable[[dict[str, Any]], float]


def _electrum(key: str) -> Reader:
    return lambda r: float(r["electrum"]["ratios"][key]["of_medians"])


def _two_nodes(r: dict[str, Any]) -> float:
    for row in r["nodes"]["transfer_throughput"]:
        shape = (row["channels"], row["requests_in_flight"], row["transfers_per_request"])
        if shape == (128, 2, 128):
            return 100 * float(row["ratio_to_bound"])
    raise KeyError("no 2 x 128 round")


def _routing(r: dict[str, Any]) -> float:
    params = r["routing"]["params"]
    if (params["nodes"], params["channels"]) != (20_000, 100_000):
        raise ValueError(f"a graph of {params['nodes']} nodes / {params['channels']} channels")
    return float(r["routing"]["fast"]["p50_ms"])


def _restore(r: dict[str, Any]) -> float:
    restart = r["scale"]["restart"]
    if restart["channels"] != 100_000:
        raise ValueError(f"{restart['channels']} channels restored")
    return float(restart["restore_s"])


def _payment(name: str) -> Reader:
    return lambda r: float(r["payments"]["configs"][name]["latency_ms"]["p50"])


#: (target, its reader, unit, threshold, whether the figure must be at least (True) or
#: below (False) the threshold)
TARGETS: tuple[tuple[str, Reader, str, float, bool], ...] = (
    (
        "EVM + SQLite, 1 hop: payments/s against Electrum's",
        _electrum("evm, sqlite, 1 hop: payments/s ours / electrum"),
        "x",
        10.0,
        True,
    ),
    (
        "EVM + SQLite, 2 hops: payments/s against Electrum's",
        _electrum("evm, sqlite, 2 hop: payments/s ours / electrum"),
        "x",
        10.0,
        True,
    ),
    (
        "Bitcoin + SQLite, 1 hop: payments/s against Electrum's",
        _electrum("bitcoin, sqlite, 1 hop: payments/s ours / electrum"),
        "x",
        10.0,
        True,
    ),
    (
        "Bitcoin + SQLite, 2 hops: payments/s against Electrum's",
        _electrum("bitcoin, sqlite, 2 hop: payments/s ours / electrum"),
        "x",
        10.0,
        True,
    ),
    (
        "two node processes, 2 x 128: signed states/s, % of the bound around the round",
        _two_nodes,
        "%",
        50.0,
        True,
    ),
    (
        "3-hop EVM -> EVM -> Bitcoin payment p50",
        _payment("evm->btc, 3 hops"),
        "ms",
        8.0,
        False,
    ),
    (
        "route p50, 20k nodes / 100k channels, random payers",
        _routing,
        "ms",
        5.0,
        False,
    ),
    (
        "restore of 100,000 channels",
        _restore,
        "s",
        3.0,
        False,
    ),
)


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: its figure in this run, the threshold, and ``met`` (``None``
    when the run does not hold the figure, with ``why``)."""
    rows: list[dict[str, Any]] = []
    for name, read, unit, threshold, at_least in TARGETS:
        row: dict[str, Any] = {
            "target": name,
            "threshold": f"{'>=' if at_least else '<'} {threshold:g} {unit}",
        }
        try:
            value = read(results)
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            row.update(value=None, met=None, why=f"not in this run ({type(exc).__name__}: {exc})")
        else:
            row.update(value=value, met=value >= threshold if at_least else value < threshold)
        row["unit"] = unit
        rows.append(row)
    return rows


def lines(rows: list[dict[str, Any]]) -> list[str]:
    """The rows for the console."""
    width = max(len(r["target"]) for r in rows)
    out = []
    for r in rows:
        verdict = {True: "met", False: "NOT MET", None: "-"}[r["met"]]
        value = "-" if r["value"] is None else f"{r['value']:g} {r['unit']}"
        tail = f"  ({r['why']})" if "why" in r else ""
        out.append(f"{r['target']:<{width}}  {value:>10}  {r['threshold']:<10}  {verdict}{tail}")
    return out


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "bench" / "results.json"
    for line in lines(judge(json.loads(path.read_text()))):
        print(line)


if __name__ == "__main__":
    main()
