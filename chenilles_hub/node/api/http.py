"""The node's local HTTP API (aiohttp): what the CLI and operators' scripts talk to.

Bound to loopback by default (elsewhere TLS only); every endpoint but ``/health`` needs
``Authorization: Bearer <token>`` of a scope that covers it (``auth``: readonly, invoices,
admin; 403 otherwise). Requests are
validated here, then run on the node's thread through ``NodeService.call`` (so the API never
races the peers). Errors are JSON: ``{"error": {"code", "message", "hint"}}`` (the codes
and their hints are catalogued in ``errors.py``) with a 4xx status
for bad input, 404 for an unknown channel or payment, 401 without a valid token, 503 while
a standby waits for the leader lease. The OpenAPI 3 description is at ``/openapi.json``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from chenilles_hub.core.errors import ChannelError

from . import access, apps, channels, history, node_routes, payments, policy, virtual, wallet
from .auth import check_access
from .inputs import MAX_BODY, SERVER_KEY, error_response, json_response, service
from .metrics import CONTENT_TYPE, render
from .openapi import openapi_document
from .operations import ApiError
from .service import NodeService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("chenilles.api")


#: aiohttp's own refusals (no such route, wrong method, body too large) under stable codes
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication first, then every failure as a JSON error."""
    server: NodeService = request.app[SERVER_KEY]  # type: ignore[assignment]
    refused = check_access(request, server.tokens)
    if refused is not None:
        return error_response(*refused)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.hint)
    except web.HTTPException as exc:
        if exc.status >= 400:
            code = _HTTP_CODES.get(exc.status, exc.reason.lower().replace(" ", "_"))
            return error_response(exc.status, code, exc.reason)
        raise
    except ChannelError as exc:
        return error_response(422, getattr(exc, "code", "refused"), str(exc))
    except Exception as exc:  # the node's own bug: still JSON, and the cause in the log
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal", f"the node failed: {type(exc).__name__}")


async def health(request: web.Request) -> web.Response:
    server = service(request)
    return json_response({"status": "ok", "role": server.role, "node_id": server.node_id.hex()})


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def metrics(request: web.Request) -> web.Response:
    server = service(request)
    # (the links are the event loop's: read here, not in the scrape on the node's thread)
    strangers = server.stranger_links()
    stats = {**server.stats, "handshakes_refused": strangers["handshakes_refused"]}
    peers_connected = len(server.connections())

    def scrape() -> str:
        return render(
            server.node,
            stats,
            peers_connected,
            server.role,
            dict(server.chain_polls),
            dict(server.chain_fetches),
            server.load(),
        )

    text = await server.read(scrape) if server.node is not None else scrape()
    return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})


def build_app(server: NodeService) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[SERVER_KEY] = server
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/info", node_routes.info)
    app.router.add_get("/v1/peers", node_routes.peers)
    app.router.add_post("/v1/peers", node_routes.add_peer)
    app.router.add_post("/v1/peers/{node_id}/disconnect", node_routes.remove_peer)
    app.router.add_get("/v1/channels", channels.list_channels)
    app.router.add_post("/v1/channels", channels.open_channel)
    app.router.add_get("/v1/channels/opening/{temp_id}", channels.open_progress)
    app.router.add_get("/v1/channels/{channel_id}", channels.get_channel)
    app.router.add_post("/v1/channels/{channel_id}/close", channels.close_channel)
    app.router.add_post("/v1/channels/{channel_id}/abandon", channels.abandon_channel)
    app.router.add_post("/v1/channels/{channel_id}/transfers", channels.transfer)
    app.router.add_post("/v1/transfers", channels.transfers)
    app.router.add_get("/v1/invoices", payments.list_invoices)
    app.router.add_post("/v1/invoices", payments.create_invoice)
    app.router.add_get("/v1/payments", payments.list_payments)
    app.router.add_post("/v1/payments", payments.pay)
    app.router.add_get("/v1/payments/{payment_hash}", payments.get_payment)
    app.router.add_post("/v1/route", payments.route)
    app.router.add_post("/v1/quote", payments.quote)
    app.router.add_get("/v1/backends", node_routes.backends)
    app.router.add_get("/v1/graph", node_routes.get_graph)
    app.router.add_post("/v1/graph", node_routes.set_graph)
    app.router.add_post("/v1/stop", node_routes.stop)
    apps.add_routes(app.router)
    history.add_routes(app.router)
    policy.add_routes(app.router)
    wallet.add_routes(app.router)
    access.add_routes(app.router)
    virtual.add_routes(app.router)
    return app


async def start_api(
    server: NodeService, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Serve the API (over TLS with ``ssl_context``: then plaintext is refused)."""
    runner = web.AppRunner(build_app(server), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(
        runner, server.config.api_host, server.config.api_port, ssl_context=ssl_context
    )
    await site.start()
    port = server.config.api_port
    sockets = getattr(site._server, "sockets", None) if site._server else None
    if sockets:
        port = sockets[0].getsockname()[1]
    return runner, port
