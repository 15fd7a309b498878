"""The devnet's HTTP side: bitcoind's JSON-RPC over aiohttp, as Bitcoin Core serves it.

Behaviour copied from Core's httprpc.cpp and request.cpp:

- only POST, on ``/`` (and ``/wallet/<name>``, answered as ``/``): 405 / 404 otherwise;
- HTTP basic auth against the ``.cookie`` credential (always written, as bitcoind does when
  no password is configured) and ``--rpcuser``/``--rpcpassword``: no header -> 401 with
  ``WWW-Authenticate: Basic realm="jsonrpc"``; wrong credentials -> 401 after 250 ms (Core
  sleeps too, to slow guessing), compared in constant time;
- bodies above `MAX_BODY` -> 413 without reading them;
- JSON-RPC 1.0 ("jsonrpc" absent or "1.0"): ``{"result", "error", "id"}``; an error answers
  HTTP 500, or 404 for an unknown method, 400 for an invalid request object;
- JSON-RPC 2.0: ``{"jsonrpc": "2.0", "result" | "error", "id"}`` with HTTP 200 even for
  errors; a request without id is a notification: executed, answered 204;
- batches (a JSON array): always 200, one reply per non-notification item;
- unparsable JSON: 500 with RPC_PARSE_ERROR "Parse error".

Every call runs on one worker thread that owns the `DevnetNode`, so the event loop stays
free (auth delays, other connections) and calls are serialized.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from . import errors as E
from . import persist
from .amounts import dumps
from .errors import RpcError
from .node import DevnetNode
from .rpc import Context, dispatch

log = logging.getLogger("chenilles.devnet")
MAX_BODY = 8 * 1024 * 1024
AUTH_FAILURE_DELAY = 0.25
WWW_AUTHENTICATE = 'Basic realm="jsonrpc"'
_MISSING = object()
T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    """How to run a devnet (the command line's options)."""

    datadir: Path
    host: str = "127.0.0.1"
    port: int = 18443
    block_time: float = 0.0
    rpcuser: str | None = None
    rpcpassword: str | None = None
    coinbase_script: bytes = b"\x51"


class _Request:
    """One parsed JSON-RPC request object (Core's JSONRPCRequest::parse)."""

    def __init__(self, obj: Any) -> None:
        self.id: Any = _MISSING
        self.v2 = False
        if not isinstance(obj, dict):
            raise RpcError(E.RPC_INVALID_REQUEST, "Invalid Request object")
        self.id = obj.get("id", _MISSING)
        version = obj.get("jsonrpc")
        if version is not None:
            if not isinstance(version, str):
                raise RpcError(E.RPC_INVALID_REQUEST, "jsonrpc field must be a string")
            if version == "2.0":
                self.v2 = True
            elif version != "1.0":
                raise RpcError(E.RPC_INVALID_REQUEST, "JSON-RPC version not supported")
        method = obj.get("method")
        if method is None:
            raise RpcError(E.RPC_INVALID_REQUEST, "Missing method")
        if not isinstance(method, str):
            raise RpcError(E.RPC_INVALID_REQUEST, "Method must be a string")
        self.method = method
        params = obj.get("params")
        if params is None:
            params = []
        elif not isinstance(params, list | dict):
            raise RpcError(E.RPC_INVALID_REQUEST, "Params must be an array or object")
        self.params = params

    @property
    def notification(self) -> bool:
        return self.v2 and self.id is _MISSING


def reply(result: Any, error: RpcError | None, req_id: Any, v2: bool) -> dict[str, Any]:
    """Core's JSONRPCReplyObj: both fields in 1.0, only one in 2.0; id echoed if given."""
    out: dict[str, Any] = {"jsonrpc": "2.0"} if v2 else {}
    if error is None:
        out["result"] = result
        if not v2:
            out["error"] = None
    else:
        if not v2:
            out["result"] = None
        out["error"] = error.to_json()
    if req_id is not _MISSING:
        out["id"] = req_id
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


class DevnetServer:
    """The node, its worker thread and the aiohttp application."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devnet-chain")
        self.node: DevnetNode | None = None
        self.stopping = asyncio.Event()
        self.started = time.time()
        self._credentials: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run_on_chain(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, fn, *args)

    def request_stop(self) -> None:
        """Callable from the worker thread (the ``stop`` method) or a signal handler."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stopping.set)

    # -- HTTP -----------------------------------------------------------------------------

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        ok = False
        for cred in self._credentials:  # compare with every credential: no early exit
            ok |= hmac.compare_digest(given, cred)
        return ok

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, text="JSONRPC server handles only POST requests")
        if request.path != "/" and not request.path.startswith("/wallet/"):
            return web.Response(status=404)
        header = request.headers.get("Authorization")
        if header is None:
            return web.Response(status=401, headers={"WWW-Authenticate": WWW_AUTHENTICATE})
        if not self._authorized(header):
            log.warning("incorrect password attempt from %s", request.remote)
            await asyncio.sleep(AUTH_FAILURE_DELAY)
            return web.Response(status=401, headers={"WWW-Authenticate": WWW_AUTHENTICATE})
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413, text="Request body too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="Request body too large")
        try:
            doc = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return self._error_response(RpcError(E.RPC_PARSE_ERROR, "Parse error"), _MISSING, False)
        if isinstance(doc, list):
            replies = await self.run_on_chain(self._batch, doc)
            return self._json(200, replies)
        if not isinstance(doc, dict):
            return self._error_response(
                RpcError(E.RPC_PARSE_ERROR, "Top-level object parse error"), _MISSING, False
            )
        return await self.run_on_chain(self._single, doc)

    def _single(self, doc: dict[str, Any]) -> web.Response:
        try:
            req = _Request(doc)
        except RpcError as exc:
            return self._error_response(exc, doc.get("id", _MISSING), doc.get("jsonrpc") == "2.0")
        try:
            result = self._call(req)
        except RpcError as exc:
            if req.notification:
                return web.Response(status=204)
            if req.v2:
                return self._json(200, reply(None, exc, req.id, True))
            return self._error_response(exc, req.id, False)
        if req.notification:
            return web.Response(status=204)
        return self._json(200, reply(result, None, req.id, req.v2))

    def _batch(self, items: list[Any]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            try:
                req = _Request(item)
            except RpcError as exc:
                req_id = item.get("id", _MISSING) if isinstance(item, dict) else _MISSING
                v2 = isinstance(item, dict) and item.get("jsonrpc") == "2.0"
                out.append(reply(None, exc, req_id, v2))
                continue
            try:
                response = reply(self._call(req), None, req.id, req.v2)
            except RpcError as exc:
                response = reply(None, exc, req.id, req.v2)
            if not req.notification:
                out.append(response)
        return out

    def _call(self, req: _Request) -> Any:
        assert self.node is not None
        ctx = Context(self.node, self.request_stop, self.started)
        try:
            return dispatch(ctx, req.method, req.params)
        except RpcError:
            raise
        except Exception as exc:  # a bug must not kill the server: Core's RPC_MISC_ERROR
            log.exception("%s failed", req.method)
            raise RpcError(E.RPC_MISC_ERROR, f"{type(exc).__name__}: {exc}") from exc

    def _error_response(self, exc: RpcError, req_id: Any, v2: bool) -> web.Response:
        status = 500
        if exc.code == E.RPC_INVALID_REQUEST:
            status = 400
        elif exc.code == E.RPC_METHOD_NOT_FOUND:
            status = 404
        return self._json(status, reply(None, exc, req_id, v2))

    @staticmethod
    def _json(status: int, doc: Any) -> web.Response:
        return web.Response(
            status=status, body=(dumps(doc) + "\n").encode(), content_type="application/json"
        )

    # -- life cycle -----------------------------------------------------------------------

    async def _mine_on_interval(self) -> None:
        assert self.node is not None
        node = self.node
        while True:
            await asyncio.sleep(self.config.block_time)
            try:
                await self.run_on_chain(node.mine, 1)
            except Exception:
                log.exception("interval mining failed")

    async def serve(self, on_ready: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Run until SIGTERM, SIGINT or the ``stop`` method."""
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        cfg.datadir.mkdir(parents=True, exist_ok=True)
        persist.remove(cfg.datadir / persist.READY_FILE)
        self.node = await self.run_on_chain(DevnetNode, cfg.datadir, cfg.coinbase_script)
        user, password = persist.write_cookie(cfg.datadir)
        self._credentials = [f"{user}:{password}".encode()]
        if cfg.rpcuser is not None and cfg.rpcpassword is not None:
            self._credentials.append(f"{cfg.rpcuser}:{cfg.rpcpassword}".encode())
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, cfg.host, cfg.port)
        miner: asyncio.Task[None] | None = None
        try:
            await site.start()
            port = runner.addresses[0][1]
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.stopping.set)
            host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
            info = {
                "ready": True,
                "url": f"http://{host}:{port}",
                "host": cfg.host,
                "port": port,
                "chain": "regtest",
                "datadir": str(cfg.datadir),
                "cookie_file": str(cfg.datadir / persist.COOKIE_FILE),
                "pid": os.getpid(),
                "height": self.node.chain.tip_height(),
            }
            line = persist.write_ready(cfg.datadir, info)
            if on_ready is not None:
                on_ready(info)
            else:
                print(line, flush=True)
            if cfg.block_time > 0:
                miner = asyncio.create_task(self._mine_on_interval())
            await self.stopping.wait()
        finally:
            if miner is not None:
                miner.cancel()
            await runner.cleanup()
            await self.run_on_chain(self.node.close)
            self.executor.shutdown(wait=True)
            persist.remove(cfg.datadir / persist.COOKIE_FILE)
            persist.remove(cfg.datadir / persist.READY_FILE)
            log.info("devnet stopped")
