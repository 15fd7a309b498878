"""The node's local HTTP API (aiohttp): what the CLI and operators' scripts talk to.

Bound to loopback by default; every endpoint but ``/health`` needs
``Authorization: Bearer <token>`` (the token file in the data directory). Requests are
validated here, then run on the node's thread through ``HubServer.call`` (so the API never
races the peers). Errors are JSON: ``{"error": code, "message": text}`` with a 4xx status
for bad input, 404 for an unknown channel or payment, 401 without a valid token, 503 while
a standby waits for the leader lease. The OpenAPI 3 description is at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from ..core import Asset
from ..core.errors import ChannelError
from ..core.messages import BoundedCodec
from . import operations as ops
from .bootstrap import parse_asset
from .config import ConfigError, PeerConfig, parse_address
from .gossip import Announcement
from .metrics import CONTENT_TYPE, render
from .openapi import openapi_document
from .operations import ApiError
from .work import TransferFailed

if TYPE_CHECKING:
    from .hub import Node
    from .server import HubServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 256 * 1024
#: Seconds a transfer request waits for the peer's signature before answering 504.
TRANSFER_TIMEOUT = 30.0
#: Most transfers in one ``POST /v1/transfers``.
MAX_TRANSFERS = 1000
#: Seconds a payment request with ``"wait": true`` waits for the outcome.
PAYMENT_WAIT = 60.0
SERVER_KEY = web.AppKey("server", object)
_graph_codec: BoundedCodec[Announcement] = BoundedCodec(Announcement, "graph", MAX_BODY)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=1))


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"error": code, "message": message}, status)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication first, then every failure as a JSON error."""
    server: HubServer = request.app[SERVER_KEY]  # type: ignore[assignment]
    if request.path != "/health":
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), server.token.encode()
        ):
            return _error(401, "unauthorized", "missing or wrong bearer token")
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except ChannelError as exc:
        return _error(422, getattr(exc, "code", "refused"), str(exc))


# --- input helpers ----------------------------------------------------------------------------


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "too_large", f"request body over {MAX_BODY} bytes")
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return data


def _amount(data: dict[str, Any], key: str, *, required: bool = True, default: int = 0) -> int:
    value = data.get(key)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"{key} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ApiError(400, "bad_amount", f"{key} must be an integer (base units)")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise ApiError(400, "bad_amount", f"{key} must be a non-negative integer")
        value = int(value)
    if value < 0 or value >= 2**256:
        raise ApiError(400, "bad_amount", f"{key} is out of range")
    return value


def _positive(data: dict[str, Any], key: str, *, required: bool = True, default: int = 0) -> int:
    value = _amount(data, key, required=required, default=default)
    if value <= 0 and (required or key in data):
        raise ApiError(400, "bad_amount", f"{key} must be positive")
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(400, "bad_field", f"{key} must be true or false")
    return value


def _text(data: dict[str, Any], key: str, *, required: bool = True, limit: int = 4096) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ApiError(400, "missing_field" if value is None else "bad_field", f"{key}: a string")
    if len(value) > limit:
        raise ApiError(400, "bad_field", f"{key} is longer than {limit} characters")
    return value


def _asset(data: dict[str, Any], key: str, *, required: bool = True) -> Asset | None:
    text = _text(data, key, required=required)
    if not text:
        return None
    try:
        return parse_asset(text)
    except ValueError as exc:
        raise ApiError(400, "bad_asset", str(exc)) from None


def _node_id(text: str, key: str = "node_id") -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, "bad_node_id", f"{key} must be hex") from None
    if len(value) != 32:
        raise ApiError(400, "bad_node_id", f"{key} must be 32 bytes (64 hex digits)")
    return value


def _server(request: web.Request) -> HubServer:
    return request.app[SERVER_KEY]  # type: ignore[return-value]


def _node(request: web.Request) -> Node:
    node = _server(request).node
    if node is None:
        raise ApiError(503, "not_leader", "this process is a standby waiting for the lease")
    return node


# --- handlers ---------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    server = _server(request)
    return _json({"status": "ok", "role": server.role, "node_id": server.node_id.hex()})


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


async def metrics(request: web.Request) -> web.Response:
    server = _server(request)

    def scrape() -> str:
        return render(server.node, dict(server.stats), len(server.links), server.role)

    text = await server.read(scrape) if server.node is not None else scrape()
    return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})


async def info(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)

    def view() -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for channel in node.channels.values():
            by_status[channel.status] = by_status.get(channel.status, 0) + 1
        return {
            "node_id": server.node_id.hex(),
            "name": server.config.name,
            "role": server.role,
            "listen": f"{server.config.listen_host}:{server.listen_port}",
            "api": f"{server.config.api_host}:{server.api_port}",
            "chains": sorted(node.backends),
            "channels": by_status,
            "peers_connected": len(server.links),
            "payments": len(node.payments),
            "uptime": round(__import__("time").time() - server.started_at, 1),
        }

    return _json(await server.read(view))


async def peers(request: web.Request) -> web.Response:
    server = _server(request)
    known = set(server.peers) | set(server.links)
    rows = []
    for peer in sorted(known):
        config = server.peers.get(peer)
        link = server.links.get(peer)
        rows.append(
            {
                "node_id": peer.hex(),
                "address": f"{config.host}:{config.port}" if config else None,
                "connected": link is not None and not link.conn.closed,
                "inbound": link is not None and link.initiator == peer,
                "announced_edges": len(server.graph.announced.get(peer, Announcement()).edges),
            }
        )
    return _json(rows)


async def add_peer(request: web.Request) -> web.Response:
    server = _server(request)
    _node(request)
    data = await _body(request)
    node_id = _node_id(_text(data, "node_id"))
    try:
        host, port = parse_address(_text(data, "address"), "address")
    except ConfigError as exc:
        raise ApiError(400, "bad_address", str(exc)) from None
    if node_id == server.node_id:
        raise ApiError(400, "bad_node_id", "that is this node's own id")
    server.add_peer(PeerConfig(node_id, host, port))
    return _json({"node_id": node_id.hex(), "address": f"{host}:{port}"}, 201)


async def list_channels(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    status = request.query.get("status")

    def view() -> list[dict[str, Any]]:
        return [
            ops.channel_view(node, c)
            for c in node.channels.values()
            if status is None or c.status == status
        ]

    return _json(await server.read(view))


async def get_channel(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    channel_hex = request.match_info["channel_id"]
    return _json(
        await server.read(lambda: ops.channel_view(node, ops.find_channel(node, channel_hex)))
    )


async def open_channel(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    data = await _body(request)
    peer = _node_id(_text(data, "peer"), "peer")
    asset = _asset(data, "asset")
    assert asset is not None
    amount = _amount(data, "amount")
    remote = _amount(data, "remote_amount", required=False)
    if amount + remote == 0:
        raise ApiError(400, "bad_amount", "a channel needs a deposit on at least one side")
    challenge = _amount(data, "challenge_duration", required=False, default=600)
    if not 1 <= challenge <= 365 * 86400:
        raise ApiError(400, "bad_field", "challenge_duration: 1 s to 365 days")
    if peer == server.node_id:
        raise ApiError(400, "bad_node_id", "a channel needs another node")
    if asset.chain not in node.backends:
        raise ApiError(400, "unknown_chain", f"this node has no backend for {asset.chain}")
    if asset not in node.backends[asset.chain].assets():
        raise ApiError(400, "unknown_asset", f"{asset} is not an asset of {asset.chain}")
    link = server.links.get(peer)
    if link is None or link.conn.closed:
        raise ApiError(409, "peer_not_connected", f"peer {peer.hex()[:16]} is not connected")
    temp_id = await server.call(
        node.open_channel, peer, asset.chain, {asset: (amount, remote)}, challenge
    )
    return _json({"temp_id": temp_id.hex(), "status": "negotiating"}, 202)


async def open_progress(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    temp_hex = request.match_info["temp_id"]
    return _json(await server.read(ops.open_status, node, temp_hex))


async def close_channel(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    data = await _body(request)
    force = _flag(data, "force")
    channel = await server._in_worker(ops.find_channel, node, request.match_info["channel_id"])
    if channel.status in ("closed", "closing"):
        raise ApiError(409, "channel_closed", f"the channel is already {channel.status}")
    if force:
        if channel.status == "disputed":
            raise ApiError(409, "channel_disputed", "a dispute is already running")
        receipt = await server.call(node.force_close, channel.channel_id)
        return _json(
            {"channel_id": channel.channel_id.hex(), "status": "disputed", "txid": receipt.txid},
            202,
        )
    if channel.status != "active":
        raise ApiError(409, "channel_not_active", f"the channel is {channel.status}")
    await server.call(node.close, channel.channel_id)
    return _json({"channel_id": channel.channel_id.hex(), "status": "closing"}, 202)


def _transfer_item(node: Node, data: dict[str, Any], channel_hex: str) -> tuple[Any, Asset, int]:
    """A checked direct transfer: (channel, asset, amount); ``ApiError`` if it is not one."""
    amount = _positive(data, "amount")
    channel = ops.find_channel(node, channel_hex)
    asset = _asset(data, "asset", required=False)
    if asset is None:
        if len(channel.params.assets) != 1:
            raise ApiError(400, "missing_field", "asset is required: the channel holds several")
        asset = channel.params.assets[0]
    if asset not in channel.params.assets:
        raise ApiError(400, "unknown_asset", f"the channel does not hold {asset}")
    if channel.status != "active":
        raise ApiError(409, "channel_not_active", f"the channel is {channel.status}")
    return channel, asset, amount


async def transfer(request: web.Request) -> web.Response:
    """Pay the channel's peer directly and answer once the signed state carrying it is held
    by both sides (the keysend of a direct channel: no invoice, no HTLC)."""
    server = _server(request)
    node = _node(request)
    data = await _body(request)
    channel, asset, amount = await server._in_worker(
        _transfer_item, node, data, request.match_info["channel_id"]
    )
    try:
        version = await asyncio.wait_for(
            server.transfer(channel.channel_id, asset, amount), TRANSFER_TIMEOUT
        )
    except TransferFailed as exc:
        raise ApiError(422, "transfer_refused", str(exc)) from None
    except TimeoutError:
        raise ApiError(
            504, "transfer_pending", "not signed by the peer yet; the transfer stays queued"
        ) from None
    return _json({"channel_id": channel.channel_id.hex(), "amount": amount, "version": version})


async def transfers(request: web.Request) -> web.Response:
    """Many direct transfers in one request (payouts to many peers): every item is checked
    before any is queued (one bad item: 400 naming it, nothing queued); the answer lists,
    in order, each transfer's signed version or why it failed."""
    server = _server(request)
    node = _node(request)
    data = await _body(request)
    raw = data.get("transfers")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TRANSFERS:
        raise ApiError(400, "bad_field", f"transfers: a list of 1 to {MAX_TRANSFERS} items")

    def check_all() -> list[tuple[Any, Asset, int]]:
        checked = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                raise ApiError(400, "bad_field", f"transfers[{index}] must be an object")
            try:
                checked.append(_transfer_item(node, item, _text(item, "channel_id", limit=64)))
            except ApiError as exc:
                raise ApiError(exc.status, exc.code, f"transfers[{index}]: {exc.message}") from None
        return checked

    checked = await server._in_worker(check_all)
    try:
        outcomes = await asyncio.wait_for(
            server.transfers([(c.channel_id, a, n) for c, a, n in checked]), TRANSFER_TIMEOUT
        )
    except TimeoutError:
        raise ApiError(
            504, "transfer_pending", "not all signed by the peers yet; they stay queued"
        ) from None
    return _json(
        {
            "transfers": [
                {"channel_id": c.channel_id.hex(), "amount": n}
                | ({"version": o} if isinstance(o, int) else {"error": str(o)})
                for (c, _, n), o in zip(checked, outcomes, strict=True)
            ]
        }
    )


async def list_invoices(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    return _json(
        await server.read(
            lambda: [ops.invoice_view(node, inv) for inv, _ in node.invoices.values()]
        )
    )


async def create_invoice(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    data = await _body(request)
    amount = _positive(data, "amount")
    asset = _asset(data, "asset")
    assert asset is not None
    ttl = _positive(data, "ttl", required=False, default=3600)
    description = _text(data, "description", required=False, limit=200)
    if asset.chain not in node.backends or asset not in node.backends[asset.chain].assets():
        raise ApiError(400, "unknown_asset", f"this node cannot receive {asset}")
    invoice = await server.call(
        lambda: node.invoice(amount, asset, ttl=ttl, description=description)
    )
    return _json(await server._in_worker(ops.invoice_view, node, invoice), 201)


def _route_args(node: Node, server: HubServer, data: dict[str, Any]) -> tuple[Any, int, Any]:
    invoice = ops.parse_invoice(_text(data, "invoice", limit=8192))
    max_lock = _positive(data, "max_lock", required=False, default=server.config.max_lock)
    source_asset = _asset(data, "source_asset", required=False)
    return invoice, max_lock, source_asset


async def route(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    invoice, max_lock, source_asset = _route_args(node, server, await _body(request))

    def plan() -> dict[str, Any]:
        found = ops.plan_route(node, server.graph, invoice, max_lock, source_asset)
        return ops.route_view(found, node.clock())

    return _json(await server._in_worker(plan))


async def pay(request: web.Request) -> web.Response:
    """Start paying an invoice (202, follow it at /v1/payments/{hash}); with ``"wait": true``
    answer only once it succeeded or failed (200), or with its pending view after
    ``PAYMENT_WAIT`` seconds (202)."""
    server = _server(request)
    node = _node(request)
    data = await _body(request)
    wait = _flag(data, "wait")
    invoice, max_lock, source_asset = _route_args(node, server, data)
    with server.payment_outcome(invoice.payment_hash) as outcome:
        result = await server.call(ops.pay, node, server.graph, invoice, max_lock, source_asset)
        if not wait:
            return _json(result, 202)
        try:
            await asyncio.wait_for(asyncio.shield(outcome), PAYMENT_WAIT)
        except TimeoutError:
            return _json(result, 202)
    payment = node.payments[invoice.payment_hash]
    view = await server._in_worker(ops.payment_view, payment)
    return _json({**view, "route": result["route"]}, 200)


async def list_payments(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    status = request.query.get("status")
    return _json(
        await server.read(
            lambda: [
                ops.payment_view(p)
                for p in node.payments.values()
                if status is None or p.status == status
            ]
        )
    )


async def get_payment(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    text = request.match_info["payment_hash"]
    try:
        payment_hash = bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, "bad_payment_hash", "a payment hash is 64 hex digits") from None
    payment = node.payments.get(payment_hash)
    if payment is None:
        raise ApiError(404, "unknown_payment", f"no payment {text}")
    return _json(await server.read(ops.payment_view, payment))


async def quote(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    data = await _body(request)
    asset_in, asset_out = _asset(data, "asset_in"), _asset(data, "asset_out")
    assert asset_in is not None and asset_out is not None
    amount_out = _positive(data, "amount_out")
    return _json(await server._in_worker(ops.quote, node, asset_in, asset_out, amount_out))


async def backends(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    return _json(
        await server.read(lambda: [ops.backend_view(node, b) for b in node.backends.values()])
    )


async def get_graph(request: web.Request) -> web.Response:
    server = _server(request)
    node = _node(request)
    graph = await server._in_worker(server.graph.graph, node)
    announcement = Announcement(graph.edges, tuple(graph.rates.values()))
    return web.Response(body=msgspec.json.encode(announcement), content_type="application/json")


async def set_graph(request: web.Request) -> web.Response:
    server = _server(request)
    _node(request)
    raw = await request.read()
    try:
        announcement = _graph_codec.decode(raw)
    except ChannelError as exc:
        raise ApiError(400, "bad_graph", str(exc)) from None
    server.graph.operator = announcement
    return _json({"edges": len(announcement.edges), "rates": len(announcement.rates)})


async def stop(request: web.Request) -> web.Response:
    server = _server(request)
    server.request_stop("stop requested through the API")
    return _json({"status": "stopping"}, 202)


def build_app(server: HubServer) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[SERVER_KEY] = server
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/info", info)
    app.router.add_get("/v1/peers", peers)
    app.router.add_post("/v1/peers", add_peer)
    app.router.add_get("/v1/channels", list_channels)
    app.router.add_post("/v1/channels", open_channel)
    app.router.add_get("/v1/channels/opening/{temp_id}", open_progress)
    app.router.add_get("/v1/channels/{channel_id}", get_channel)
    app.router.add_post("/v1/channels/{channel_id}/close", close_channel)
    app.router.add_post("/v1/channels/{channel_id}/transfers", transfer)
    app.router.add_post("/v1/transfers", transfers)
    app.router.add_get("/v1/invoices", list_invoices)
    app.router.add_post("/v1/invoices", create_invoice)
    app.router.add_get("/v1/payments", list_payments)
    app.router.add_post("/v1/payments", pay)
    app.router.add_get("/v1/payments/{payment_hash}", get_payment)
    app.router.add_post("/v1/route", route)
    app.router.add_post("/v1/quote", quote)
    app.router.add_get("/v1/backends", backends)
    app.router.add_get("/v1/graph", get_graph)
    app.router.add_post("/v1/graph", set_graph)
    app.router.add_post("/v1/stop", stop)
    return app


async def start_api(server: HubServer) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(build_app(server), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, server.config.api_host, server.config.api_port)
    await site.start()
    port = server.config.api_port
    sockets = getattr(site._server, "sockets", None) if site._server else None
    if sockets:
        port = sockets[0].getsockname()[1]
    return runner, port
