"""API handlers about channels: list, show, open, close, and direct transfers."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from chenilles_hub.core import Asset

from ..hub.funding import NotAbandonable
from . import operations as ops
from .channel_views import quarantined_view
from .inputs import (
    amount_field,
    asset_field,
    flag_field,
    json_response,
    node_id_field,
    node_of,
    positive_field,
    read_body,
    seconds_field,
    service,
    text_field,
)
from .operations import ApiError
from .service import TransferFailed

if TYPE_CHECKING:
    from ..hub.node import Node

#: Seconds a transfer request waits for the peer's signature before answering 504.
TRANSFER_TIMEOUT = 30.0
#: Most transfers in one ``POST /v1/transfers``.
MAX_TRANSFERS = 1000


async def list_channels(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    status = request.query.get("status")

    connected = server.connections()

    def view() -> list[dict[str, Any]]:
        return [
            ops.channel_view(node, c) | {"peer_connected": c.peer in connected}
            for c in node.channels.values()
            if status is None or c.status == status
        ] + [
            quarantined_view(q)
            for q in node.quarantined.values()
            if status is None or status == "quarantined"
        ]

    return json_response(await server.read(view))


async def get_channel(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    channel_hex = request.match_info["channel_id"]
    connections = server.connections()  # on the event loop, where the links change

    def view() -> dict[str, Any]:
        try:
            quarantined = node.quarantined.get(bytes.fromhex(channel_hex))
        except ValueError:
            quarantined = None
        if quarantined is not None:
            return quarantined_view(quarantined)
        channel = ops.find_channel(node, channel_hex)
        connected = channel.peer in connections
        return ops.channel_view(node, channel) | {"peer_connected": connected}

    return json_response(await server.read(view))


async def abandon_channel(request: web.Request) -> web.Response:
    """Give up an opening channel whose funds never left (checked on the chain); 409
    ``not_abandonable`` (changing nothing) if any deposit may be on its way or held."""
    server = service(request)
    node = node_of(request)
    channel = await server.in_worker(ops.find_channel, node, request.match_info["channel_id"])
    try:
        await server.call(node.abandon, channel.channel_id)
    except NotAbandonable as exc:
        raise ApiError(409, "not_abandonable", str(exc)) from None
    return json_response(await server.read(ops.channel_view, node, channel))


async def open_channel(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    peer = node_id_field(text_field(data, "peer"), "peer")
    asset = asset_field(data, "asset")
    assert asset is not None
    amount = amount_field(data, "amount")
    remote = amount_field(data, "remote_amount", required=False)
    if amount + remote == 0:
        raise ApiError(400, "bad_amount", "a channel needs a deposit on at least one side")
    challenge = seconds_field(data, "challenge_duration", default=600)
    if peer == server.node_id:
        raise ApiError(400, "bad_node_id", "a channel needs another node")
    if asset.chain not in node.backends:
        raise ApiError(400, "unknown_chain", f"this node has no backend for {asset.chain}")
    if asset not in node.backends[asset.chain].assets():
        raise ApiError(400, "unknown_asset", f"{asset} is not an asset of {asset.chain}")
    if peer not in server.connections():
        raise ApiError(409, "peer_not_connected", f"peer {peer.hex()[:16]} is not connected")
    temp_id = await server.call(
        node.open_channel, peer, asset.chain, {asset: (amount, remote)}, challenge
    )
    return json_response({"temp_id": temp_id.hex(), "status": "negotiating"}, 202)


async def open_progress(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    temp_hex = request.match_info["temp_id"]
    return json_response(await server.read(ops.open_status, node, temp_hex))


async def close_channel(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    force = flag_field(data, "force")
    channel = await server.in_worker(ops.find_channel, node, request.match_info["channel_id"])
    if channel.status in ("closed", "closing"):
        raise ApiError(409, "channel_closed", f"the channel is already {channel.status}")
    if force:
        if channel.status == "disputed":
            raise ApiError(409, "channel_disputed", "a dispute is already running")
        receipt = await server.call(node.force_close, channel.channel_id)
        view = await server.read(ops.channel_view, node, channel)
        return json_response({**view, "txid": receipt.txid}, 202)
    if channel.status != "active":
        raise ApiError(409, "channel_not_active", f"the channel is {channel.status}")
    await server.call(node.close, channel.channel_id)
    return json_response({"channel_id": channel.channel_id.hex(), "status": "closing"}, 202)


def _transfer_item(node: Node, data: dict[str, Any], channel_hex: str) -> tuple[Any, Asset, int]:
    """A checked direct transfer: (channel, asset, amount); ``ApiError`` if it is not one."""
    amount = positive_field(data, "amount")
    channel = ops.find_channel(node, channel_hex)
    asset = asset_field(data, "asset", required=False)
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
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    channel, asset, amount = await server.in_worker(
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
            504,
            "transfer_pending",
            "not signed by the peer yet; the transfer stays queued while the node runs",
        ) from None
    return json_response(
        {"channel_id": channel.channel_id.hex(), "amount": amount, "version": version}
    )


async def transfers(request: web.Request) -> web.Response:
    """Many direct transfers in one request (payouts to many peers): every item is checked
    before any is queued (one bad item: 400 naming it, nothing queued); the answer lists,
    in order, each transfer's signed version or why it failed."""
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    raw = data.get("transfers")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TRANSFERS:
        raise ApiError(400, "bad_field", f"transfers: a list of 1 to {MAX_TRANSFERS} items")

    def check_all() -> list[tuple[Any, Asset, int]]:
        checked = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                raise ApiError(400, "bad_field", f"transfers[{index}] must be an object")
            try:
                checked.append(_transfer_item(node, item, text_field(item, "channel_id", limit=64)))
            except ApiError as exc:
                raise ApiError(exc.status, exc.code, f"transfers[{index}]: {exc.message}") from None
        return checked

    checked = await server.in_worker(check_all)
    try:
        outcomes = await asyncio.wait_for(
            server.transfers([(c.channel_id, a, n) for c, a, n in checked]), TRANSFER_TIMEOUT
        )
    except TimeoutError:
        raise ApiError(
            504,
            "transfer_pending",
            "not all signed by the peers yet; they stay queued while the node runs",
        ) from None
    return json_response(
        {
            "transfers": [
                {"channel_id": c.channel_id.hex(), "amount": n}
                | ({"version": o} if isinstance(o, int) else {"error": str(o)})
                for (c, _, n), o in zip(checked, outcomes, strict=True)
            ]
        }
    )
