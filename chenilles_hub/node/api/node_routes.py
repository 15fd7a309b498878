"""API handlers about the node itself: info, peers, backends, the routing graph, stop."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from chenilles_hub.core.errors import ChannelError
from chenilles_hub.core.messages import BoundedCodec
from chenilles_hub.core.routing import bounds

from ..config import ConfigError, PeerConfig, parse_address
from ..hub.gossip import Announcement
from . import operations as ops
from .inputs import MAX_BODY, json_response, node_id_field, node_of, read_body, service, text_field
from .operations import ApiError

_graph_codec: BoundedCodec[Announcement] = BoundedCodec(Announcement, "graph", MAX_BODY)


async def info(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    # (the links are the event loop's: read here, not in the view, which runs on the
    # node's thread while the loop may change them)
    strangers = server.stranger_links()
    peers_connected = len(server.connections())

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
            # configured chains the node runs without, and why (their channels: quarantined)
            "unavailable_chains": [
                {"chain": chain, "error": error}
                for chain, error in sorted(node.unavailable.items())
            ],
            # the accounts and on-chain code in use (adjudicator, program id), per chain
            "chain_details": [
                ops.chain_summary(backend, node.accounts[chain])
                for chain, backend in sorted(node.backends.items())
            ],
            "channels": by_status,
            "peers_connected": peers_connected,
            # links of peers neither configured nor in a channel with us, their bound
            # ([policy.peers] max_strangers), connections refused at each bound, links
            # that stopped counting (promoted), strangers that gave way (evicted) and
            # members' links counting again, their standing lapsed (lapsed)
            "strangers": strangers,
            "payments": len(node.payments),
            # what computes the router's bound: "compiled", or scipy and why (slower)
            "router_bound": bounds.KERNEL_STATUS,
            "uptime": round(time.time() - server.started_at, 1),
            # what failed in the background (the backup file, announcements, the timer's
            # tick, the checks of which strangers are members and which members still
            # have standing, a chain's poll, a chain's
            # clock read with it) and has not succeeded since: each also counted in /metrics
            "background_errors": [
                {"task": task, "error": error, "at": at}
                for task, (error, at) in sorted(server.background_errors.items())
            ],
        }

    return json_response(await server.read(view))


async def peers(request: web.Request) -> web.Response:
    server = service(request)
    connected = server.connections()
    rows = []
    for peer in sorted(set(server.peers) | set(connected)):
        config = server.peers.get(peer)
        rows.append(
            {
                "node_id": peer.hex(),
                "address": f"{config.host}:{config.port}" if config else None,
                "connected": peer in connected,
                "inbound": connected.get(peer, False),
                "announced_edges": len(server.graph.announced.get(peer, Announcement()).edges),
                # its quotes, left out of our routing graph (an arbitrage with others', a
                # price beyond the router's range), or null
                "quotes_left_out": server.graph.quotes_left_out.get(peer),
            }
        )
    return json_response(rows)


async def add_peer(request: web.Request) -> web.Response:
    """Connect to a peer and keep dialling it, across restarts too (persisted first)."""
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    node_id = node_id_field(text_field(data, "node_id"))
    try:
        host, port = parse_address(text_field(data, "address"), "address")
    except ConfigError as exc:
        raise ApiError(400, "bad_address", str(exc)) from None
    if node_id == server.node_id:
        raise ApiError(400, "bad_node_id", "that is this node's own id")
    await server.call(node.remember_peer, node_id, host, port)
    server.add_peer(PeerConfig(node_id, host, port))
    return json_response({"node_id": node_id.hex(), "address": f"{host}:{port}"}, 201)


async def remove_peer(request: web.Request) -> web.Response:
    """Disconnect from a peer and stop dialling it (removed from the persisted peers; a
    peer in the config file comes back at the next start)."""
    server = service(request)
    node = node_of(request)
    node_id = node_id_field(request.match_info["node_id"])
    known = node_id in server.peers or node_id in server.connections()
    saved = await server.read(node.settings.peers)
    if not known and not any(p.node_id == node_id for p in saved):
        raise ApiError(404, "unknown_peer", f"no peer {node_id.hex()}")
    await server.call(node.forget_peer, node_id)
    server.remove_peer(node_id)
    return json_response({"node_id": node_id.hex(), "status": "disconnected"})


async def backends(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    return json_response(
        await server.read(lambda: [ops.backend_view(node, b) for b in node.backends.values()])
    )


async def get_graph(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    graph = await server.in_worker(server.graph.graph, node)
    # every field written, empty or not (the wire's announcement leaves empty ones out)
    document = {
        "type": "announce",
        "edges": graph.edges,
        "rates": tuple(graph.rates.values()),
        "time_models": [],
    }
    return web.Response(body=msgspec.json.encode(document), content_type="application/json")


async def set_graph(request: web.Request) -> web.Response:
    server = service(request)
    node_of(request)
    raw = await request.read()
    try:
        announcement = _graph_codec.decode(raw)
    except ChannelError as exc:
        raise ApiError(400, "bad_graph", str(exc)) from None
    server.graph.operator = announcement
    return json_response({"edges": len(announcement.edges), "rates": len(announcement.rates)})


async def stop(request: web.Request) -> web.Response:
    server = service(request)
    server.request_stop("stop requested through the API")
    return json_response({"status": "stopping"}, 202)
