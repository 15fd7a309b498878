"""A counting reverse proxy in front of a ledger's JSON-RPC server (benchmarks only).

The devnet's Bitcoin and Solana servers (and anvil) keep no request counts, and their CPU
alone does not say how often a node asks them something. Put between the nodes and a
ledger (the node configs point at the proxy), this forwards every HTTP request unchanged
over a real socket and counts the requests and the JSON-RPC methods in them (a batch counts
each call), so a benchmark can report how often each node polls its chain while payments
run. It runs its own event loop in a thread of the benchmark process.

``delay`` (seconds, settable at any time) holds each request that long before forwarding
it: a far endpoint (a hosted RPC provider is tens of milliseconds away), on loopback.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Any

from aiohttp import ClientSession, web

#: Headers that describe one hop, not the request: the proxy's own connection sets them.
HOP_HEADERS = frozenset({"host", "connection", "content-length", "transfer-encoding", "keep-alive"})


def _methods(body: bytes) -> list[str]:
    """The JSON-RPC method names in a request body (one, or each of a batch)."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return ["(not json)"]
    calls = parsed if isinstance(parsed, list) else [parsed]
    return [str(c.get("method")) if isinstance(c, dict) else "(bad call)" for c in calls]


class RpcCounter:
    """Forward ``http://127.0.0.1:<port>`` to ``upstream`` and count what passes."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self._lock = threading.Lock()
        self._requests = 0
        self._calls: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        #: seconds each request waits before it is forwarded (a far endpoint's round trip)
        self.delay = 0.0

    def start(self) -> str:
        """Serve on a free loopback port; returns the proxy's URL."""
        self._thread.start()
        port: int = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(30)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def snapshot(self) -> dict[str, Any]:
        """Requests and JSON-RPC calls by method so far."""
        with self._lock:
            return {"requests": self._requests, "calls": dict(self._calls)}

    async def _serve(self) -> int:
        self._session = ClientSession()
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp does not expose the bound port
        assert server is not None
        port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return port

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        with self._lock:
            self._requests += 1
            self._calls.update(_methods(body) if body else [f"({request.method})"])
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        assert self._session is not None
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            reply_headers = {
                k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS
            }
            reply_headers.pop("Content-Encoding", None)  # aiohttp decoded the body
            return web.Response(body=payload, status=answer.status, headers=reply_headers)
