"""The devnet process: JSON-RPC 2.0 over HTTP, as a Solana RPC node serves it.

``python -m chenilles_solana.devnet --datadir DIR --host 127.0.0.1 --port N [--slot-ms MS]``

- POST / takes one request or a batch (an array); GET /health answers ``ok`` as Solana's
  RPC nodes do. Bodies over 50 KiB are refused with HTTP 413 (Solana's cap).
- Malformed JSON is ``-32700``, a malformed request ``-32600``, an unknown method
  ``-32601``, bad parameters ``-32602``; nothing runs for any of them.
- When ready, one JSON line ``{"ready": true, "url", "program_id", ...}`` goes to stdout
  and to ``DIR/ready.json``. SIGTERM (or SIGINT) stops it cleanly: the journal is already
  durable, so stopping only closes files.
- One server per datadir (a lock file); a second one refuses to start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from ..program_client import load_program
from . import genesis
from .chain import DevnetChain, DevnetError
from .errors import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, RpcError
from .journal import JournalCorrupt
from .rpc import DevnetRpc

log = logging.getLogger("chenilles_solana.devnet")

#: Solana's RPC refuses larger request bodies (agave rpc.rs MAX_REQUEST_BODY_SIZE).
MAX_REQUEST_BODY_SIZE = 50 * 1024
READY_FILE = "ready.json"
LOCK_FILE = "lock"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _envelope(
    request_id: Any, *, result: Any = None, error: RpcError | None = None
) -> dict[str, Any]:
    if error is not None:
        return {"jsonrpc": "2.0", "error": error.to_json(), "id": request_id}
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


class JsonRpcHandler:
    """Envelopes, batches and errors around :class:`DevnetRpc`."""

    def __init__(self, rpc: DevnetRpc, on_fatal: Any) -> None:
        self.rpc = rpc
        self.on_fatal = on_fatal
        #: Set when the journal failed: LiteSVM may hold effects the disk does not, so no
        #: answer may be given from it any more (the server is stopping).
        self.dead = False

    def one(self, request: Any) -> dict[str, Any] | None:
        """The response to one request object (None for a notification: no ``id``)."""
        if not isinstance(request, dict):
            return _envelope(None, error=RpcError(INVALID_REQUEST, "Invalid request"))
        request_id = request.get("id")
        valid_id = request_id is None or (
            isinstance(request_id, str | int) and not isinstance(request_id, bool)
        )
        if (
            request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
            or not valid_id
        ):
            rid = request_id if valid_id else None
            return _envelope(rid, error=RpcError(INVALID_REQUEST, "Invalid request"))
        try:
            if self.dead:
                raise RpcError(INTERNAL_ERROR, "Internal error")
            result = self.rpc.call(request["method"], request.get("params"))
            response = _envelope(request_id, result=result)
        except RpcError as exc:
            response = _envelope(request_id, error=exc)
        except DevnetError as exc:
            log.error("fatal: %s", exc)
            self.dead = True
            self.on_fatal()
            response = _envelope(request_id, error=RpcError(INTERNAL_ERROR, "Internal error"))
        except Exception:
            log.exception("%s failed", request["method"])
            response = _envelope(request_id, error=RpcError(INTERNAL_ERROR, "Internal error"))
        return response if "id" in request else None

    def handle(self, body: bytes) -> Any:
        """The response document for a request body (None: nothing to answer)."""
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError):
            return _envelope(None, error=RpcError(PARSE_ERROR, "Parse error"))
        if isinstance(payload, list):
            if not payload:
                return _envelope(None, error=RpcError(INVALID_REQUEST, "Invalid request"))
            responses = [r for r in (self.one(item) for item in payload) if r is not None]
            return responses or None
        return self.one(payload)


def make_app(handler: JsonRpcHandler) -> web.Application:
    async def post(request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp answers 413 past client_max_size
        document = handler.handle(body)
        if document is None:
            return web.Response(status=200)
        return web.Response(
            text=json.dumps(document, separators=(",", ":")), content_type="application/json"
        )

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=MAX_REQUEST_BODY_SIZE)
    app.router.add_post("/", post)
    app.router.add_get("/health", health)
    return app


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def serve(chain: DevnetChain, host: str, port: int) -> int:
    stop = asyncio.Event()
    exit_code = 0

    def fatal() -> None:
        nonlocal exit_code
        exit_code = 1
        stop.set()

    handler = JsonRpcHandler(DevnetRpc(chain), fatal)
    runner = web.AppRunner(make_app(handler), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    ready = {
        "ready": True,
        "url": _url(host, bound),
        "program_id": str(genesis.PROGRAM_ID),
        "test_mint": str(genesis.TEST_MINT),
        "test_mint_authority": genesis.TEST_MINT_AUTHORITY_SEED.hex(),
        "slot_ms": chain.clock.slot_ms,
        "pid": os.getpid(),
    }
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before anyone can know our pid
        loop.add_signal_handler(sig, stop.set)
    line = json.dumps(ready)
    _write_atomically(chain.datadir / READY_FILE, line + "\n")
    print(line, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        (chain.datadir / READY_FILE).unlink(missing_ok=True)
    return exit_code


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chenilles_solana.devnet",
        description="A Solana devnet: Solana's JSON-RPC over LiteSVM, with the Chenilles "
        "channel program deployed at a fixed id; state kept in DATADIR.",
    )
    parser.add_argument("--datadir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8899, help="0 picks a free port")
    parser.add_argument(
        "--slot-ms", type=int, default=400, help="milliseconds per slot (default 400)"
    )
    args = parser.parse_args(argv)
    if args.slot_ms <= 0:
        parser.error("--slot-ms must be positive")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0..65535")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="devnet: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    datadir: Path = args.datadir
    datadir.mkdir(parents=True, exist_ok=True)
    lock = open(datadir / LOCK_FILE, "a")  # noqa: SIM115 (held for the process' life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"devnet: {datadir} is in use by another devnet server", file=sys.stderr)
        return 2
    (datadir / READY_FILE).unlink(missing_ok=True)
    try:
        chain = DevnetChain(datadir, load_program(), args.slot_ms)
    except (DevnetError, JournalCorrupt, OSError) as exc:
        print(f"devnet: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(chain, args.host, args.port))
    except OSError as exc:  # the port is taken, the host is not ours
        print(f"devnet: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    finally:
        chain.close()
        with contextlib.suppress(OSError):
            lock.close()
