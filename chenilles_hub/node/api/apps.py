"""API handlers about app channels: the apps this node runs, opening a channel with an app
and its opening state, the app's state and whose turn it is, and moves.

An app's opening state and its moves are written in the app's own JSON (its plugin's
``initial_data`` / ``encode_move``: ``{"x": 0}``, ``{"cell": 4}``, an escrow's terms ...) or
as raw hex (``app_data`` / ``data``) for an app without JSON helpers. A move the app
refuses answers 422 at once and changes nothing; during a dispute a move is forced on
the ledger when its window opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from chenilles_hub import apps as installed

from . import operations as ops
from .inputs import (
    amount_field,
    asset_field,
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


def app_chains(node: Node, app: str) -> list[str]:
    """This node's chains on which ``app`` runs (its backend enforces it, it is bound)."""
    chains = []
    for chain, backend in node.backends.items():
        if not backend.info.supports_apps:
            continue
        try:
            backend.use_app(app)
        except Exception:
            continue
        chains.append(chain)
    return sorted(chains)


def _plugin(name: str) -> installed.AppPlugin:
    try:
        return installed.app(name)
    except installed.AppNotInstalled as exc:
        raise ApiError(404, "unknown_app", str(exc)) from None


def _encoded(data: dict[str, Any], json_key: str, hex_key: str, encode: Any) -> bytes:
    """The app's bytes from its JSON form (``json_key``) or from hex (``hex_key``)."""
    if json_key in data and hex_key in data:
        raise ApiError(400, "bad_field", f"give {json_key} or {hex_key}, not both")
    if hex_key in data:
        text = text_field(data, hex_key, limit=8192)
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ApiError(400, "bad_field", f"{hex_key} must be hex") from None
    value = data.get(json_key, {})
    if not isinstance(value, dict):
        raise ApiError(400, "bad_field", f"{json_key} must be a JSON object")
    try:
        return bytes(encode(value))
    except ValueError as exc:
        raise ApiError(400, "bad_app_input", str(exc)) from None


async def list_apps(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)

    def view() -> list[dict[str, Any]]:
        return [
            {
                "name": p.info.name,
                "version": p.info.version,
                "families": list(p.info.families),
                "description": p.info.description,
                "chains": app_chains(node, p.info.name) if p.info.name in node.ctx.apps else [],
            }
            for p in installed.installed_apps()
        ]

    return json_response(await server.read(view))


async def open_app_channel(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    plugin = _plugin(request.match_info["app"])
    data = await read_body(request)
    peer = node_id_field(text_field(data, "peer"), "peer")
    asset = asset_field(data, "asset")
    assert asset is not None
    amount = amount_field(data, "amount")
    remote = amount_field(data, "remote_amount", required=False)
    challenge = amount_field(data, "challenge_duration", required=False, default=600)
    if not 1 <= challenge <= 365 * 86400:
        raise ApiError(400, "bad_field", "challenge_duration: 1 s to 365 days")
    if asset.chain not in node.backends:
        raise ApiError(400, "unknown_chain", f"this node has no backend for {asset.chain}")
    if peer == server.node_id:
        raise ApiError(400, "bad_node_id", "a channel needs another node")
    app_data = _encoded(data, "options", "app_data", plugin.initial_data)
    if peer not in server.connections():
        raise ApiError(409, "peer_not_connected", f"peer {peer.hex()[:16]} is not connected")
    temp_id = await server.call(
        node.open_channel,
        peer,
        asset.chain,
        {asset: (amount, remote)},
        challenge,
        plugin.info.name,
        app_data,
    )
    return json_response({"temp_id": temp_id.hex(), "status": "negotiating"}, 202)


async def get_app(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    channel_hex = request.match_info["channel_id"]

    def view() -> dict[str, Any]:
        channel = ops.find_channel(node, channel_hex)
        status = node.app_status(channel.channel_id)
        return {"channel_id": channel.channel_id.hex(), "status": channel.status, **status}

    return json_response(await server.read(view))


async def move(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    channel = await server.in_worker(ops.find_channel, node, request.match_info["channel_id"])
    if not channel.params.app:
        raise ApiError(409, "no_app", "this channel runs no app")
    plugin = _plugin(channel.params.app)
    encoded = _encoded(data, "move", "data", plugin.encode_move)
    await server.call(node.app_move, channel.channel_id, encoded)
    how = "forced on-chain in its window" if channel.status == "disputed" else "proposed"
    return json_response({"channel_id": channel.channel_id.hex(), "status": how}, 202)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/apps", list_apps)
    router.add_post("/v1/apps/{app}/channels", open_app_channel)
    router.add_get("/v1/channels/{channel_id}/app", get_app)
    router.add_post("/v1/channels/{channel_id}/app/moves", move)
