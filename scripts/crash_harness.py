#!/usr/bin/env python3
"""kill -9 node processes at every step of channels' lives and check the books each time.

Two node processes on one chain (anvil, or the Bitcoin or Solana devnet ledger, a process
each), SQLite or PostgreSQL stores; see tests/node/crash_harness.py for the episodes and what
is checked after every kill and restart::

    .venv/bin/python scripts/crash_harness.py --kills 100 --store sqlite --seed 1
    .venv/bin/python scripts/crash_harness.py --kills 100 --store postgres --seed 2
    .venv/bin/python scripts/crash_harness.py --chain bitcoin --kills 30 --seed 3
    .venv/bin/python scripts/crash_harness.py --chain solana --kills 30 --seed 4

PostgreSQL: ``scripts/ensure_postgres.sh`` first (or ``--dsn``). Exits 1 on the first
property that does not hold, with the node logs' tails.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chenilles_hub.node.api.client import ApiCallError  # noqa: E402
from tests.node import PG_DSN  # noqa: E402
from tests.node.crash_chains import chain_under_test  # noqa: E402
from tests.node.crash_harness import CrashHarness, HarnessFailure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="kills in total (default 200)")
    parser.add_argument("--chain", choices=["evm", "bitcoin", "solana"], default="evm")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dsn", default=PG_DSN, help="PostgreSQL DSN (with --store postgres)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (logs, stores)")
    args = parser.parse_args()
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        tmp = args.keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="crash-"))
        chain = stack.enter_context(chain_under_test(args.chain, Path(tmp) / "devnet"))
        harness = CrashHarness(
            Path(tmp) / "nodes",
            chain,
            args.store,
            args.seed,
            postgres_dsn=args.dsn if args.store == "postgres" else None,
            log=lambda line: print(line, flush=True),
        )
        try:
            tally = harness.run(args.kills)
        except (HarnessFailure, TimeoutError, ApiCallError) as exc:
            print(f"FAILED after {harness.tally.summary()}:\n{exc}", flush=True)
            for node in harness.nodes.values():
                print(f"--- {node.name}'s log\n{node.log_tail(30)}")
            return 1
    took = time.monotonic() - started
    print(f"OK {args.chain} {args.store} seed {args.seed}: {tally.summary()} in {took:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
