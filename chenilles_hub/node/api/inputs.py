"""Reading requests and writing answers for the API handlers: JSON bodies with size
limits, fields checked one by one (amounts are integers in base units), and errors as
``{"error": {"code", "message", "hint"}}`` (``errors.py``). A field that fails a check
answers 4xx and changes nothing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from chenilles_hub.core import Asset, parse_asset

from .errors import error_body
from .operations import ApiError
from .service import NodeService

if TYPE_CHECKING:
    from ..hub.node import Node

MAX_BODY = 256 * 1024
SERVER_KEY = web.AppKey("server", object)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=1))


def error_response(status: int, code: str, message: str, hint: str | None = None) -> web.Response:
    return json_response(error_body(code, message, hint), status)


async def read_body(request: web.Request) -> dict[str, Any]:
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


#: Amounts are below 2**256 (what every ledger's contract can hold): at most 78 digits.
MAX_AMOUNT = 2**256 - 1
_MAX_DIGITS = len(str(MAX_AMOUNT))
#: The longest duration a request may ask for (an invoice's lifetime, a payment's lock, a
#: challenge period): a year. Past that, expiries no longer fit the protocol's 2**40 s.
MAX_SECONDS = 365 * 86400


def _integer(value: object, key: str, code: str, what: str) -> int:
    """A JSON integer, or a string of ASCII digits (for clients whose numbers are doubles),
    checked for length *before* it is converted: a 5,000-digit string is refused here, not
    by Python's int() limit half-way through a handler."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ApiError(400, code, f"{key} must be an integer ({what})")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise ApiError(400, code, f"{key} must be a non-negative integer ({what})")
        if len(value) > _MAX_DIGITS:
            raise ApiError(400, code, f"{key} is out of range")
        value = int(value)
    return value


def amount_field(data: dict[str, Any], key: str, *, required: bool = True, default: int = 0) -> int:
    value = data.get(key)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"{key} is required")
        return default
    amount = _integer(value, key, "bad_amount", "base units")
    if not 0 <= amount <= MAX_AMOUNT:
        raise ApiError(400, "bad_amount", f"{key} is out of range (0 to 2**256-1)")
    return amount


def seconds_field(
    data: dict[str, Any], key: str, *, default: int, low: int = 1, high: int = MAX_SECONDS
) -> int:
    """An optional duration in seconds, ``low`` to ``high``."""
    value = data.get(key)
    if value is None:
        return default
    seconds = _integer(value, key, "bad_field", "seconds")
    if not low <= seconds <= high:
        raise ApiError(400, "bad_field", f"{key}: {low} to {high} seconds")
    return seconds


def positive_field(
    data: dict[str, Any], key: str, *, required: bool = True, default: int = 0
) -> int:
    value = amount_field(data, key, required=required, default=default)
    if value <= 0 and (required or key in data):
        raise ApiError(400, "bad_amount", f"{key} must be positive")
    return value


def flag_field(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(400, "bad_field", f"{key} must be true or false")
    return value


def text_field(data: dict[str, Any], key: str, *, required: bool = True, limit: int = 4096) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ApiError(400, "missing_field" if value is None else "bad_field", f"{key}: a string")
    if len(value) > limit:
        raise ApiError(400, "bad_field", f"{key} is longer than {limit} characters")
    return value


def asset_field(data: dict[str, Any], key: str, *, required: bool = True) -> Asset | None:
    text = text_field(data, key, required=required)
    if not text:
        return None
    try:
        return parse_asset(text)
    except ValueError as exc:
        raise ApiError(400, "bad_asset", str(exc)) from None


def node_id_field(text: str, key: str = "node_id") -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, "bad_node_id", f"{key} must be hex") from None
    if len(value) != 32:
        raise ApiError(400, "bad_node_id", f"{key} must be 32 bytes (64 hex digits)")
    return value


def time_range(request: web.Request) -> tuple[int, int | None]:
    """``?since=&until=`` (unix seconds, both optional, inclusive) of a history query."""
    bounds: list[int | None] = []
    for key in ("since", "until"):
        text = request.query.get(key)
        if text is None or text == "":
            bounds.append(None)
            continue
        if not (text.isascii() and text.isdigit()) or len(text) > 12:
            raise ApiError(400, "bad_field", f"{key}: unix seconds (a non-negative integer)")
        bounds.append(int(text))
    return bounds[0] or 0, bounds[1]


def service(request: web.Request) -> NodeService:
    return request.app[SERVER_KEY]  # type: ignore[return-value]


def node_of(request: web.Request) -> Node:
    node = service(request).node
    if node is None:
        raise ApiError(503, "not_leader", "this process is a standby waiting for the lease")
    return node
