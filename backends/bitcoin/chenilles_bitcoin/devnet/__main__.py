"""``python -m chenilles_bitcoin.devnet --datadir DIR [--host H] [--port N] [--block-time S]
[--rpcuser U --rpcpassword P] [--coinbase-address ADDR]``: a bitcoind-compatible devnet.

Prints one JSON line ``{"ready": true, "url": ...}`` on stdout when it serves (also written
to DIR/ready.json); SIGTERM or the ``stop`` RPC shut it down cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .addresses import AddressError, address_to_script
from .descriptors import DescriptorError, parse
from .server import Config, DevnetServer


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m chenilles_bitcoin.devnet",
        description="A regtest devnet speaking bitcoind's JSON-RPC, every block validated "
        "by libbitcoinkernel.",
    )
    p.add_argument("--datadir", required=True, type=Path, help="chain, mempool, cookie")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18443, help="0 picks a free port")
    p.add_argument(
        "--block-time", type=float, default=0.0, help="mine a block every S seconds (0: on demand)"
    )
    p.add_argument("--rpcuser")
    p.add_argument("--rpcpassword")
    p.add_argument(
        "--coinbase-address",
        help="address or descriptor paid by interval-mined blocks (default: OP_TRUE)",
    )
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    if (args.rpcuser is None) != (args.rpcpassword is None):
        p.error("--rpcuser and --rpcpassword go together")
    if args.block_time < 0:
        p.error("--block-time must be >= 0")
    if not 0 <= args.port <= 65535:
        p.error("--port must be within 0..65535")
    script = b"\x51"
    if args.coinbase_address:
        try:
            script = address_to_script(args.coinbase_address)
        except AddressError:
            try:
                desc = parse(args.coinbase_address)
            except DescriptorError as exc:
                p.error(f"--coinbase-address: {exc}")
            if len(desc.scripts) != 1:
                p.error("--coinbase-address: the descriptor must stand for one script")
            script = desc.scripts[0]
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    return Config(
        datadir=args.datadir.absolute(),
        host=args.host,
        port=args.port,
        block_time=args.block_time,
        rpcuser=args.rpcuser,
        rpcpassword=args.rpcpassword,
        coinbase_script=script,
    )


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    asyncio.run(DevnetServer(config).serve())


if __name__ == "__main__":
    main()
