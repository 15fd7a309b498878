#!/usr/bin/env python3
"""Fuzz the node for a while: the peer wire decoder, the handshake, ``Node.receive`` (real
messages of real EVM and Bitcoin channels, mutated) and the HTTP API (node processes on
anvil), under hypothesis.

The same properties run in CI on a bounded number of inputs (seconds); here each target
keeps drawing new inputs until its share of ``--minutes`` is spent::

    .venv/bin/python scripts/fuzz.py --minutes 30            # every target
    .venv/bin/python scripts/fuzz.py --minutes 5 --only wire # one family

A crash is an exception other than the documented typed errors escaping the decoder or
the handshake, a contained failure of the node on a peer's message, any 500 from the API,
or a node process that stops. Any of them fails the run, with hypothesis's minimal input.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: target family -> (pytest node ids, how many test functions share the family's time)
TARGETS = {
    "wire": (["tests/node/test_wire_fuzz.py"], 3),
    "receive": (["tests/circuit/test_receive_fuzz.py"], 2),
    "api": (["tests/node/test_api_fuzz.py"], 1),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="total time (default 5)")
    parser.add_argument("--only", choices=sorted(TARGETS), action="append", help="a family")
    parser.add_argument(
        "--examples", type=int, default=500, help="inputs per search before a new seed"
    )
    args = parser.parse_args()
    families = args.only or sorted(TARGETS)
    tests = sum(TARGETS[f][1] for f in families)
    per_test = max(1.0, args.minutes * 60 / tests)
    failed = []
    for family in families:
        paths, _ = TARGETS[family]
        env = {
            **os.environ,
            "CHENILLES_FUZZ_SECONDS": str(per_test),
            "CHENILLES_FUZZ_EXAMPLES": str(args.examples),
        }
        print(f"== {family}: {per_test:.0f} s per test", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *paths],
            cwd=ROOT,
            env=env,
        )
        if result.returncode != 0:
            failed.append(family)
    print("crashes in: " + ", ".join(failed) if failed else "0 crashes", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
