"""API handlers for the forwarding policy at run time: the fees the hub charges and the
rates at which it converts, shown and set without a restart (persisted by the node).

Fees are base units (``base``) plus millionths of the amount sent (``ppm``). Rates are
written in whole units -- ``"rate": "0.05"`` for "one whole unit of ``asset_in`` buys 0.05
whole units of ``asset_out``" -- and converted with each asset's decimals (from its
backend) into a fraction of base units, which is what the hub applies and announces;
``numerator``/``denominator`` set that fraction directly instead."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chenilles_hub.backend import Wallet
from chenilles_hub.circuit.quote import Rate
from chenilles_hub.core import Asset
from chenilles_hub.core.errors import ChannelError

from ..hub.node import Node
from ..hub.operator_settings import rate_in_whole_units, whole_unit_rate
from .inputs import (
    amount_field,
    asset_field,
    flag_field,
    json_response,
    node_of,
    read_body,
    service,
)
from .operations import ApiError


def _decimals(node: Node, asset: Asset) -> int | None:
    backend = node.backends.get(asset.chain)
    if backend is None or not isinstance(backend, Wallet):
        return None
    try:
        return backend.decimals(asset)
    except Exception:  # an unreachable ledger, an unknown token: base units only
        return None


def policy_view(node: Node) -> dict[str, Any]:
    policy = node.policy
    fees = [
        {"asset": str(asset), "base": fee.base, "ppm": fee.ppm, "decimals": _decimals(node, asset)}
        for asset, fee in sorted(policy.fees.items())
    ]
    rates = []
    for (asset_in, asset_out), rate in sorted(policy.rates.items()):
        d_in, d_out = _decimals(node, asset_in), _decimals(node, asset_out)
        whole = None
        if d_in is not None and d_out is not None:
            whole = rate_in_whole_units(rate, d_in, d_out)
        rates.append(
            {
                "asset_in": str(asset_in),
                "asset_out": str(asset_out),
                "rate": whole,
                "numerator": rate.numerator,
                "denominator": rate.denominator,
                "decimals_in": d_in,
                "decimals_out": d_out,
            }
        )
    return {"fees": fees, "rates": rates}


def _known(node: Node, asset: Asset) -> None:
    backend = node.backends.get(asset.chain)
    if backend is None or asset not in backend.assets():
        raise ApiError(400, "unknown_asset", f"this node has no asset {asset}")


async def get_policy(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    return json_response(await server.in_worker(policy_view, node))


async def set_fee(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    asset = asset_field(data, "asset")
    assert asset is not None
    base = amount_field(data, "base", required=False)
    ppm = amount_field(data, "ppm", required=False)
    if ppm > 1_000_000:
        raise ApiError(400, "bad_field", "ppm is 0 to 1,000,000 (millionths of the amount)")
    _known(node, asset)
    await server.call(node.set_fee, asset, base, ppm)
    return json_response(await server.in_worker(policy_view, node))


async def set_rate(request: web.Request) -> web.Response:
    server = service(request)
    node = node_of(request)
    data = await read_body(request)
    asset_in, asset_out = asset_field(data, "asset_in"), asset_field(data, "asset_out")
    assert asset_in is not None and asset_out is not None
    _known(node, asset_in)
    _known(node, asset_out)
    rate: Rate | None = None
    if not flag_field(data, "remove"):
        rate = await server.in_worker(_rate_of, node, data, asset_in, asset_out)
    try:
        await server.call(node.set_rate, asset_in, asset_out, rate)
    except ChannelError as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    return json_response(await server.in_worker(policy_view, node))


def _rate_of(node: Node, data: dict[str, Any], asset_in: Asset, asset_out: Asset) -> Rate:
    text = data.get("rate")
    if text is not None:
        if not isinstance(text, str | int) or isinstance(text, bool):
            raise ApiError(400, "bad_rate", 'rate is a decimal string of whole units, e.g. "0.05"')
        d_in, d_out = _decimals(node, asset_in), _decimals(node, asset_out)
        if d_in is None or d_out is None:
            raise ApiError(
                400,
                "bad_rate",
                "the decimals of these assets are unknown: give numerator and denominator "
                "(base units) instead",
            )
        try:
            return whole_unit_rate(str(text), d_in, d_out)
        except ChannelError as exc:
            raise ApiError(400, "bad_rate", str(exc)) from None
    numerator = amount_field(data, "numerator")
    denominator = amount_field(data, "denominator")
    if numerator <= 0 or denominator <= 0:
        raise ApiError(400, "bad_rate", "numerator and denominator are positive")
    return Rate(numerator, denominator)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/policy", get_policy)
    router.add_post("/v1/policy/fees", set_fee)
    router.add_post("/v1/policy/rates", set_rate)
