"""A Bitcoin devnet: a separate process serving bitcoind's JSON-RPC over a regtest chain
whose every block libbitcoinkernel validated, with a real mempool.

Modules, one job each:

| module | job |
|---|---|
| `server` | HTTP, auth, JSON-RPC 1.0/2.0 and batches, the worker thread, life cycle |
| `rpc` | the methods: Core's arguments, errors and results |
| `node` | chain + mempool + mining + reorgs + persistence of the mempool |
| `mempool` | acceptance (Core's order and reasons), dependency order, eviction |
| `policy` | Core's standardness and context checks, as pure functions |
| `fees` | estimatesmartfee from recent blocks |
| `views` | headers, blocks, transactions, mempool entries as Core prints them |
| `amounts` | exact decimal BTC in and out |
| `addresses`, `descriptors`, `scripts` | regtest addresses, descriptors, script types / asm |
| `persist` | mempool file, cookie, ready file (atomic writes) |

Run it with ``python -m chenilles_bitcoin.devnet --datadir DIR`` (see ``__main__``) or
through ``BitcoinBackendFactory.devnet_command``. docs/bitcoin.md says where it differs
from bitcoind.
"""

from __future__ import annotations

import sys


def command(datadir: str, host: str, port: int, block_time: float) -> list[str]:
    """The argv that starts a devnet (what `chenilles devnet` launches)."""
    return [
        sys.executable,
        "-m",
        "chenilles_bitcoin.devnet",
        "--datadir",
        str(datadir),
        "--host",
        host,
        "--port",
        str(port),
        "--block-time",
        str(block_time),
    ]


__all__ = ["command"]
