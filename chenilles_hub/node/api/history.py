"""API handlers for the operator's history: forwards with the fees earned, one invoice,
and cancelling an invoice."""

from __future__ import annotations

from aiohttp import web

from chenilles_hub.core.errors import ChannelError

from ..hub import history
from . import operations as ops
from .inputs import json_response, node_of, service, time_range
from .operations import ApiError


async def list_forwards(request: web.Request) -> web.Response:
    """Forwards that settled in ``?since=&until=`` (unix seconds), newest first, and the
    fees earned per asset over the range."""
    server = service(request)
    node = node_of(request)
    since, until = time_range(request)
    return json_response(await server.read(history.forwards, node.ctx.store, since, until))


def _payment_hash(request: web.Request) -> bytes:
    text = request.match_info["payment_hash"]
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ApiError(400, "bad_payment_hash", "a payment hash is 64 hex digits")
    return value


async def get_invoice(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    payment_hash = _payment_hash(request)
    entry = node.invoices.get(payment_hash)
    if entry is None:
        raise ApiError(404, "unknown_invoice", f"no invoice {payment_hash.hex()}")
    return json_response(await server.read(ops.invoice_view, node, entry[0]))


async def cancel_invoice(request: web.Request) -> web.Response:
    """Withdraw an unpaid invoice: an HTLC that arrives for it later is failed back."""
    server = service(request)
    node = node_of(request)
    payment_hash = _payment_hash(request)
    if payment_hash not in node.invoices:
        raise ApiError(404, "unknown_invoice", f"no invoice {payment_hash.hex()}")

    def cancel() -> None:
        try:
            node.cancel_invoice(payment_hash)
        except ChannelError as exc:
            raise ApiError(409, exc.code, str(exc)) from None

    await server.call(cancel)
    entry = node.invoices[payment_hash]
    return json_response(await server.in_worker(ops.invoice_view, node, entry[0]))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/forwards", list_forwards)
    router.add_get("/v1/invoices/{payment_hash}", get_invoice)
    router.add_post("/v1/invoices/{payment_hash}/cancel", cancel_invoice)
