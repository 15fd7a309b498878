"""API handlers about virtual channels (docs/virtual-channels.md): open one through a hub,
pay in it, close it, and list them with the ledger channels that fund each.

A virtual channel is named by its request id (known at once) or, once the hub's terms are
in, by its channel id. Opening answers 202 with the request id: the hub offers terms to
both ends and funds the guarantees by off-chain updates; follow it with ``GET
/v1/virtual``. Payments and the close answer 202 once proposed; the other end's node signs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from chenilles_hub.circuit.quote import Rate
from chenilles_hub.core.errors import WrongChannel

from .inputs import (
    amount_field,
    json_response,
    node_id_field,
    node_of,
    read_body,
    service,
    text_field,
)
from .operations import ApiError

if TYPE_CHECKING:
    from ..hub.node import Node

#: Defaults for an open: a day to live, an hour of grace for the hub.
DEFAULT_LIFETIME = 86400
DEFAULT_GRACE = 3600


def _handle(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ApiError(400, "bad_virtual_id", "a virtual channel id is 64 hex digits")
    return value


def _rate(data: dict[str, Any]) -> Rate | None:
    """``rate``: "NUM/DEN", the conversion into the peer's asset the caller accepts (Bob's
    base units per base unit of ours; the hub's rate, fixed at open). Absent: any."""
    text = data.get("rate")
    if text is None:
        return None
    parts = text.split("/") if isinstance(text, str) else []
    try:
        num, den = (int(p) for p in parts)
    except ValueError:
        num = den = 0
    if len(parts) != 2 or not (0 < num < 2**128 and 0 < den < 2**128):
        raise ApiError(400, "bad_field", "rate: NUM/DEN, two positive integers below 2**128")
    return Rate(num, den)


def _find(node: Node, text: str) -> dict[str, Any]:
    try:
        return node.virtual.describe(node.virtual.get(_handle(text)))
    except WrongChannel:
        raise ApiError(404, "unknown_virtual_channel", f"no virtual channel {text[:16]}") from None


async def list_virtual(request: web.Request) -> web.Response:
    node = node_of(request)
    return json_response({"virtual_channels": await service(request).read(node.virtual_list)})


async def get_virtual(request: web.Request) -> web.Response:
    node = node_of(request)
    return json_response(await service(request).read(_find, node, request.match_info["id"]))


async def open_virtual(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    hub = node_id_field(text_field(data, "hub"), "hub")
    peer = node_id_field(text_field(data, "peer"), "peer")
    amount = amount_field(data, "amount")
    remote = amount_field(data, "remote_amount", required=False)
    lifetime = amount_field(data, "lifetime", required=False, default=DEFAULT_LIFETIME)
    grace = amount_field(data, "grace", required=False, default=DEFAULT_GRACE)
    rate = _rate(data)
    if not 60 <= lifetime <= 365 * 86400 or not 1 <= grace <= 365 * 86400:
        raise ApiError(400, "bad_field", "lifetime: 60 s to 365 days; grace: 1 s to 365 days")
    if len({hub, peer, server.node_id}) != 3:
        raise ApiError(400, "bad_node_id", "the hub, the peer and this node are three nodes")
    connected = server.connections()
    for who, what in ((hub, "hub"), (peer, "peer")):
        if who not in connected:
            raise ApiError(409, "peer_not_connected", f"{what} {who.hex()[:16]} is not connected")
    request_id = await server.call(
        node.virtual_open, hub, peer, (amount, remote), lifetime, grace, rate
    )
    return json_response({"request_id": request_id.hex(), "status": "requested"}, 202)


async def pay_virtual(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    amount = amount_field(data, "amount")
    view = await server.read(_find, node, request.match_info["id"])
    await server.call(node.virtual_pay, _handle(request.match_info["id"]), amount)
    return json_response({"request_id": view["request_id"], "status": "proposed"}, 202)


async def close_virtual(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    view = await server.read(_find, node, request.match_info["id"])
    await server.call(node.virtual_close, _handle(request.match_info["id"]))
    return json_response({"request_id": view["request_id"], "status": "closing"}, 202)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/virtual", list_virtual)
    router.add_post("/v1/virtual", open_virtual)
    router.add_get("/v1/virtual/{id}", get_virtual)
    router.add_post("/v1/virtual/{id}/payments", pay_virtual)
    router.add_post("/v1/virtual/{id}/close", close_virtual)
