"""API handlers about payments: invoices, routes, quotes, paying and following payments."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import operations as ops
from .inputs import (
    asset_field,
    flag_field,
    json_response,
    node_of,
    positive_field,
    read_body,
    seconds_field,
    service,
    text_field,
    time_range,
)
from .operations import ApiError
from .service import NodeService

if TYPE_CHECKING:
    from ..hub.node import Node

#: Seconds a payment request with ``"wait": true`` waits for the outcome.
PAYMENT_WAIT = 60.0
#: How long a payment may stay pending waiting for HTLC slots or an offline peer when the
#: payer does not say (``timeout``): then it fails back and its money is unlocked.
DEFAULT_PAYMENT_TIMEOUT = 60


async def list_invoices(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    return json_response(
        await server.read(
            lambda: [ops.invoice_view(node, inv) for inv, _ in node.invoices.values()]
        )
    )


async def create_invoice(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    amount = positive_field(data, "amount")
    asset = asset_field(data, "asset")
    assert asset is not None
    ttl = seconds_field(data, "ttl", default=3600)
    description = text_field(data, "description", required=False, limit=200)
    if asset.chain not in node.backends or asset not in node.backends[asset.chain].assets():
        raise ApiError(400, "unknown_asset", f"this node cannot receive {asset}")
    # The view is built in the job that makes the invoice: no second trip to the node's
    # thread, and the answer still waits for the invoice's write.
    view = await server.call(
        lambda: ops.invoice_view(
            node, node.invoice(amount, asset, ttl=ttl, description=description)
        )
    )
    return json_response(view, 201)


def _route_args(node: Node, server: NodeService, data: dict[str, Any]) -> tuple[Any, int, Any]:
    invoice = ops.parse_invoice(text_field(data, "invoice", limit=8192))
    max_lock = seconds_field(data, "max_lock", default=server.config.max_lock)
    source_asset = asset_field(data, "source_asset", required=False)
    return invoice, max_lock, source_asset


async def route(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    invoice, max_lock, source_asset = _route_args(node, server, await read_body(request))

    def plan() -> dict[str, Any]:
        found = ops.plan_route(node, server.graph, invoice, max_lock, source_asset)
        return ops.route_view(found, node.clock())

    return json_response(await server.in_worker(plan))


async def pay(request: web.Request) -> web.Response:
    """Start paying an invoice (202, follow it at /v1/payments/{hash}); with ``"wait": true``
    answer only once it succeeded or failed (200), or with its pending view after
    ``PAYMENT_WAIT`` seconds (202)."""
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    wait = flag_field(data, "wait")
    invoice, max_lock, source_asset = _route_args(node, server, data)
    quotes = ops.parse_quotes(data.get("quotes"))
    timeout = seconds_field(data, "timeout", default=DEFAULT_PAYMENT_TIMEOUT, low=5)
    with server.payment_outcome(invoice.payment_hash) as outcome:
        result = await server.call(
            ops.pay, node, server.graph, invoice, max_lock, source_asset, quotes, timeout
        )
        if not wait:
            return json_response(result, 202)
        try:
            finished = await asyncio.wait_for(
                asyncio.shield(outcome), min(PAYMENT_WAIT, timeout + 5)
            )
        except TimeoutError:
            return json_response(result, 202)
    view = ops.payment_view(finished)  # a copy taken on the node's thread
    return json_response({**view, "route": result["route"]}, 200)


async def list_payments(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    status = request.query.get("status")
    since, until = time_range(request)
    return json_response(
        await server.read(
            lambda: [
                ops.payment_view(p)
                for p in node.payments.values()
                if (status is None or p.status == status)
                and since <= p.created_at
                and (until is None or p.created_at <= until)
            ]
        )
    )


async def get_payment(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    text = request.match_info["payment_hash"]
    try:
        payment_hash = bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, "bad_payment_hash", "a payment hash is 64 hex digits") from None
    payment = node.payments.get(payment_hash)
    if payment is None:
        raise ApiError(404, "unknown_payment", f"no payment {text}")
    return json_response(await server.read(ops.payment_view, payment))


async def quote(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    asset_in, asset_out = asset_field(data, "asset_in"), asset_field(data, "asset_out")
    assert asset_in is not None and asset_out is not None
    amount_out = positive_field(data, "amount_out")
    # In a group commit: the hub's book is durable before the payer sees the quote.
    return json_response(await server.call(ops.quote, node, asset_in, asset_out, amount_out))
