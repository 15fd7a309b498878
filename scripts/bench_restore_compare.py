#!/usr/bin/env python3
"""Restore time of one store file by two source trees in alternating processes (the same
run, the same load): this checkout and ``--base`` (e.g. main exported with
``git archive <rev> | tar -x -C /tmp/base``; its ``chenilles_hub`` is put first on
``PYTHONPATH``, the backends are this checkout's).

The store holds ``--channels`` EVM channels with realistic snapshots, written by
``bench_scale.fill_store`` with a fixed key and seed: once by each tree, so that each
restores the same channels in the schema it writes (a tree refuses a newer schema), each
record with where its channel lives where the tree keeps it (``Deployments``, checked by the
restore).

    .venv/bin/python scripts/bench_restore_compare.py --base /tmp/base [--channels 100000]
        [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
KEY = "0x" + "42" * 32

ONE = f"""
import gc, shutil, sys, time
from pathlib import Path
sys.path.insert(0, "scripts")
import bench_scale
from eth_account import Account as EthAccount
from chenilles_evm.backend import EvmAccount, embedded_backend
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.store.sqlite import SQLiteStore
mode, src, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
backend = embedded_backend()
account = EvmAccount(EthAccount.from_key("{KEY}"))
if mode == "fill":  # with where each channel lives, where the tree writes it (a node does)
    import inspect
    writes_it = "deployment" in inspect.signature(bench_scale.fill_store).parameters
    extra = {{"deployment": backend.deployment}} if writes_it else {{}}
    bench_scale.fill_store(src, n, backend.chain, account.chain_key, **extra)
    sys.exit()
copy = src.with_name("copy.sqlite")
shutil.copy(src, copy)
node = Node(identity=NodeIdentity(), backends={{backend.chain: backend}},
            accounts={{backend.chain: account}}, clock=lambda: bench_scale.NOW,
            store=SQLiteStore(copy))
gc.collect()
t0 = time.perf_counter()
node.restore()
seconds = time.perf_counter() - t0
assert len(node.channels) == n, len(node.channels)
print(round(seconds, 3))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the other source tree")
    parser.add_argument("--channels", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chenilles-restore-compare-"))
    try:
        script = work / "one.py"
        script.write_text(ONE)
        trees = {"base": args.base.resolve(), "this": HERE}
        fills = {side: work / side / "fill.sqlite" for side in trees}
        for side, src in fills.items():
            src.parent.mkdir()
            subprocess.run(
                [sys.executable, str(script), "fill", str(src), str(args.channels)],
                cwd=trees[side],
                env=_env(side, trees),
                check=True,
            )
        runs: dict[str, list[float]] = {"base": [], "this": []}
        for r in range(args.rounds):
            for side in ("base", "this") if r % 2 == 0 else ("this", "base"):
                out = subprocess.run(
                    [sys.executable, str(script), "restore", str(fills[side]), str(args.channels)],
                    cwd=trees[side],
                    env=_env(side, trees),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[side].append(float(out.stdout.split()[-1]))
                load = Path("/proc/loadavg").read_text().split()[0]
                print(f"round {r + 1} {side}: {runs[side][-1]} s (load {load})", flush=True)
        result = {
            "channels": args.channels,
            "restore_s": runs,
            "median_s": {side: statistics.median(v) for side, v in runs.items()},
            "ratio_of_medians": round(
                statistics.median(runs["base"]) / statistics.median(runs["this"]), 2
            ),
        }
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    finally:
        shutil.rmtree(work)


def _env(side: str, trees: dict[str, Path]) -> dict[str, str]:
    env = dict(os.environ)
    if side == "base":
        env["PYTHONPATH"] = str(trees["base"])
    return env


if __name__ == "__main__":
    main()
