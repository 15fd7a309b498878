"""Shared helpers of the benchmark scripts: statistics, the machine, JSON output.

Each ``scripts/bench_<section>.py`` runs one section of ``scripts/bench.py`` in its own
process (so memory and start-up figures are not polluted by the other sections) and writes
its result as JSON to the path given with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "backends" / "evm", ROOT / "backends" / "bitcoin"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
sys.path.insert(1, str(ROOT / "backends" / "solana"))


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float | int]:
    """Median, IQR, p99, min, max and count of ``values`` (same unit as the input)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), digits),
        "p25": round(pct(values, 25), digits),
        "p75": round(pct(values, 75), digits),
        "p99": round(pct(values, 99), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "mean": round(statistics.fmean(values), digits),
    }


def repeat(fn: Callable[[], float], times: int) -> dict[str, float | int]:
    """Run ``fn`` (which returns one measurement) ``times`` times; summarise the results."""
    return summary([fn() for _ in range(times)])


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln), ""
        )
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    import sqlite3

    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def rss_kib() -> int:
    """Resident set size of this process now (not the peak), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def section_main(run: Callable[[bool], dict[str, Any]], doc: str | None) -> None:
    """The command line of one section: ``[--quick] [--json PATH]``; prints the JSON."""
    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="write the result here (else print it)")
    args = ap.parse_args()
    result = run(args.quick)
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
