"""The OpenAPI 3 description of the node API (served at ``/openapi.json``).

Written as data next to the handlers rather than generated: the API is small, and an
explicit document is what client authors read. ``tests/node/test_api.py`` checks that every
route the app serves is described here and the other way round.
"""

from __future__ import annotations

from typing import Any

from . import access
from .errors import catalog
from .openapi_operator import operator_paths

_AMOUNT = {"type": "integer", "minimum": 0, "description": "base units (wei, sat, lamport)"}
_ASSET = {"type": "string", "example": "native@eip155:31337", "description": "token@chain"}
_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    # OpenAPI 3.0 (JSON Schema draft 4/5) wants a non-empty ``required`` or none at all.
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


def _op(
    summary: str,
    body: dict[str, Any] | None = None,
    ok: str = "200",
    errors: tuple[str, ...] = ("401",),
    params: tuple[str, ...] = (),
    auth: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "success", "content": {"application/json": {}}},
            **{code: {"$ref": f"#/components/responses/E{code}"} for code in errors},
        },
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": _HEX32} for p in params
        ]
    if not auth:
        op["security"] = []
    return op


_ROUTE_BODY = _obj(
    ["invoice"],
    invoice={"type": "string", "description": "an encoded invoice (chenilles invoice)"},
    max_lock={"type": "integer", "description": "longest the payer's funds may be locked (s)"},
    source_asset=_ASSET,
)
_PAY_BODY = {
    **_ROUTE_BODY,
    "properties": {
        **_ROUTE_BODY["properties"],
        "timeout": {
            "type": "integer",
            "minimum": 5,
            "description": "seconds the payment may stay pending waiting for HTLC slots or "
            "an offline peer (default 60); then it fails and its money is unlocked",
        },
        "wait": {
            "type": "boolean",
            "description": "answer 200 once the payment succeeded or failed (202 if still "
            "pending after 60 s)",
        },
        "quotes": {
            "type": "array",
            "items": {"type": "object"},
            "description": "for a route that changes asset: each converting hub's quote, as "
            "its POST /v1/quote returned it (a hub refuses a conversion without one)",
        },
    },
}


def _app_paths(bad: tuple[str, ...]) -> dict[str, Any]:
    """App channels (node/api/apps.py)."""
    app_param = {"name": "app", "in": "path", "required": True, "schema": {"type": "string"}}
    open_op = _op(
        "open a channel running an app with a connected peer; follow it at "
        "/v1/channels/opening/{temp_id}",
        _obj(
            ["peer", "asset", "amount"],
            peer=_HEX32,
            asset=_ASSET,
            amount=_AMOUNT,
            remote_amount=_AMOUNT,
            challenge_duration={"type": "integer", "minimum": 1},
            options={"type": "object", "description": "the app's opening options (its JSON)"},
            app_data={"type": "string", "description": "or the opening app data, in hex"},
        ),
        ok="202",
        errors=(*bad, "404", "409", "422"),
    )
    open_op["parameters"] = [app_param]
    return {
        "/v1/apps": {"get": _op("installed apps and the chains this node runs each on")},
        "/v1/apps/{app}/channels": {"post": open_op},
        "/v1/channels/{channel_id}/app": {
            "get": _op(
                "the channel's app: its state, whose turn it is, its dispute on-chain",
                errors=("400", "401", "404", "422"),
                params=("channel_id",),
            )
        },
        "/v1/channels/{channel_id}/app/moves": {
            "post": _op(
                "our move: proposed to the peer, or forced on-chain during a dispute "
                "(422: the app refuses it)",
                _obj(
                    [],
                    move={"type": "object", "description": "the move, in the app's JSON"},
                    data={"type": "string", "description": "or the move's bytes, in hex"},
                ),
                ok="202",
                errors=("400", "401", "404", "409", "422"),
                params=("channel_id",),
            )
        },
    }


def _virtual_paths(bad: tuple[str, ...]) -> dict[str, Any]:
    """Virtual channels (node/api/virtual.py)."""
    vid = {"name": "id", "in": "path", "required": True, "schema": _HEX32}
    pay = _op(
        "pay the other end of the virtual channel (the hub takes no part)",
        _obj(["amount"], amount=_AMOUNT),
        ok="202",
        errors=("400", "401", "404", "422"),
    )
    close = _op(
        "close the virtual channel: both ends settle their ledger channels off-chain",
        ok="202",
        errors=("400", "401", "404", "422"),
    )
    show = _op("one virtual channel", errors=("400", "401", "404"))
    for op in (pay, close, show):
        op["parameters"] = [vid]
    return {
        "/v1/virtual": {
            "get": _op("virtual channels: status, balances, the ledger channels funding each"),
            "post": _op(
                "open a virtual channel with peer through hub (both connected), funded by "
                "our ledger channel of the virtual app with the hub; 202 with the request id",
                _obj(
                    ["hub", "peer", "amount"],
                    hub=_HEX32,
                    peer=_HEX32,
                    amount=_AMOUNT,
                    remote_amount=_AMOUNT,
                    lifetime={"type": "integer", "minimum": 60, "description": "seconds"},
                    grace={"type": "integer", "minimum": 1, "description": "seconds"},
                    rate={
                        "type": "string",
                        "pattern": "^[0-9]+/[0-9]+$",
                        "description": "NUM/DEN: the hub's rate into the peer's asset we "
                        "accept (an offer at another is refused); absent: any",
                    },
                ),
                ok="202",
                errors=(*bad, "409", "422"),
            ),
        },
        "/v1/virtual/{id}": {"get": show},
        "/v1/virtual/{id}/payments": {"post": pay},
        "/v1/virtual/{id}/close": {"post": close},
    }


def openapi_document() -> dict[str, Any]:
    """The document; every route that takes a token may also answer 403 (its scope)."""
    document = _document()
    for operations in document["paths"].values():
        for op in operations.values():
            if "401" in op["responses"]:
                op["responses"].setdefault("403", {"$ref": "#/components/responses/E403"})
    return document


def _document() -> dict[str, Any]:
    bad = ("400", "401", "503")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Chenilles hub node API",
            "version": "1",
            "description": "Local operator API of one node. Amounts are integers in base "
            "units; assets are written token@chain.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/health": {"get": _op("liveness and role (no token needed)", errors=(), auth=False)},
            "/openapi.json": {"get": _op("this document")},
            "/metrics": {"get": _op("Prometheus metrics (text format)")},
            "/v1/info": {
                "get": _op(
                    "node id, addresses, chains (and unavailable ones, why), counts, "
                    "background tasks that failed (backup, announce, tick)",
                    errors=("401", "503"),
                )
            },
            "/v1/peers": {
                "get": _op("configured and connected peers"),
                "post": _op(
                    "dial a peer and keep dialling it, across restarts (persisted)",
                    _obj(["node_id", "address"], node_id=_HEX32, address={"type": "string"}),
                    ok="201",
                    errors=bad,
                ),
            },
            "/v1/channels": {
                "get": _op("channels with balances and HTLCs (?status=active ...)"),
                "post": _op(
                    "open a channel with a connected peer; follow it at "
                    "/v1/channels/opening/{temp_id}",
                    _obj(
                        ["peer", "asset", "amount"],
                        peer=_HEX32,
                        asset=_ASSET,
                        amount=_AMOUNT,
                        remote_amount=_AMOUNT,
                        challenge_duration={"type": "integer", "minimum": 1},
                    ),
                    ok="202",
                    errors=(*bad, "409"),
                ),
            },
            "/v1/channels/opening/{temp_id}": {
                "get": _op(
                    "progress of an opening: negotiating, opening (with what it waits for: "
                    "the deposits at the chain's confirmation depth), active, refused",
                    errors=("400", "401", "404"),
                    params=("temp_id",),
                )
            },
            "/v1/channels/{channel_id}": {
                "get": _op(
                    "one channel: balances, HTLCs, status (quarantined: not restored at "
                    "start), waiting (what it waits for), deadline (a dispute's end in chain "
                    "time), last_error",
                    errors=("400", "401", "404"),
                    params=("channel_id",),
                )
            },
            "/v1/channels/{channel_id}/close": {
                "post": _op(
                    "close cooperatively, or with force=true register on-chain (answers the "
                    "channel with its dispute deadline in chain time)",
                    _obj([], force={"type": "boolean"}),
                    ok="202",
                    errors=("400", "401", "404", "409"),
                    params=("channel_id",),
                )
            },
            "/v1/channels/{channel_id}/abandon": {
                "post": _op(
                    "give up an opening channel whose funds never left (no deposit of ours "
                    "sent, none on the chain); 409 not_abandonable otherwise",
                    ok="200",
                    errors=("400", "401", "404", "409"),
                    params=("channel_id",),
                )
            },
            "/v1/channels/{channel_id}/transfers": {
                "post": _op(
                    "pay the channel's peer directly; answers with the version of the signed"
                    " state that carries the transfer (422 refused, 504 not signed within 30 s)",
                    _obj(["amount"], amount=_AMOUNT, asset=_ASSET),
                    errors=("400", "401", "404", "409", "422", "504"),
                    params=("channel_id",),
                )
            },
            "/v1/transfers": {
                "post": _op(
                    "many direct transfers at once (1 to 1000); each item checked before any"
                    " is queued; answers each one's signed version or why it failed",
                    _obj(
                        ["transfers"],
                        transfers={
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 1000,
                            "items": _obj(
                                ["channel_id", "amount"],
                                channel_id=_HEX32,
                                amount=_AMOUNT,
                                asset=_ASSET,
                            ),
                        },
                    ),
                    errors=("400", "401", "404", "409", "504"),
                )
            },
            "/v1/invoices": {
                "get": _op("invoices this node issued"),
                "post": _op(
                    "create an invoice",
                    _obj(
                        ["amount", "asset"],
                        amount=_AMOUNT,
                        asset=_ASSET,
                        ttl={"type": "integer", "minimum": 1},
                        description={"type": "string", "maxLength": 200},
                    ),
                    ok="201",
                    errors=bad,
                ),
            },
            "/v1/payments": {
                "get": _op(
                    "payments this node started, with route and fees "
                    "(?status=pending&since=&until=, unix seconds)"
                ),
                "post": _op(
                    "pay an invoice along the cheapest route (202: follow it; 200 with wait)",
                    _PAY_BODY,
                    ok="202",
                    errors=(*bad, "409", "422"),
                ),
            },
            "/v1/payments/{payment_hash}": {
                "get": _op("one payment", errors=("400", "401", "404"), params=("payment_hash",))
            },
            "/v1/route": {
                "post": _op(
                    "find a route for an invoice (dry run)", _ROUTE_BODY, errors=(*bad, "422")
                )
            },
            "/v1/quote": {
                "post": _op(
                    "a signed, short-lived rate quote from this hub",
                    _obj(
                        ["asset_in", "asset_out", "amount_out"],
                        asset_in=_ASSET,
                        asset_out=_ASSET,
                        amount_out=_AMOUNT,
                    ),
                    errors=(*bad, "422"),
                )
            },
            "/v1/backends": {"get": _op("chains: backend, account, balances")},
            "/v1/graph": {
                "get": _op("the routing graph this node knows (edges, rates)"),
                "post": _op(
                    "give extra edges and rates (replaces the previous operator graph)",
                    _obj([], edges={"type": "array"}, rates={"type": "array"}),
                    errors=bad,
                ),
            },
            "/v1/stop": {"post": _op("stop the node gracefully", ok="202")},
            **_app_paths(bad),
            **operator_paths(bad),
            **access.openapi_paths(),
            **_virtual_paths(bad),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _error_schema()},
            "responses": _error_responses(),
        },
    }


_STATUS_TEXT = {
    400: "bad input",
    401: "missing or wrong bearer token",
    403: "the token's scope does not allow this route",
    404: "unknown channel, payment or opening",
    405: "method not allowed",
    409: "conflict with the current state",
    413: "request body too large",
    422: "valid input the node cannot act on (no route, no rate, a refusal)",
    500: "the node failed (a bug; the log has the cause)",
    503: "standby: this process does not hold the leader lease",
    504: "the peer did not sign in time; the request stays queued while the node runs",
}


def _error_schema() -> dict[str, Any]:
    """``{"error": {"code", "message", "hint"}}``; ``code`` is one of the catalog's."""
    return _obj(
        ["error"],
        error=_obj(
            ["code", "message", "hint"],
            code={"type": "string", "enum": sorted(catalog())},
            message={"type": "string", "description": "what exactly went wrong"},
            hint={"type": "string", "description": "what to do about it (may be empty)"},
        ),
    )


def _error_responses() -> dict[str, Any]:
    """One response per status, its description listing the codes answered with it."""
    by_status: dict[int, list[str]] = {}
    for code, entry in catalog().items():
        by_status.setdefault(entry.status, []).append(code)
    return {
        f"E{status}": {
            "description": f"{text}; error.code one of: "
            + ", ".join(sorted(by_status.get(status, []))),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, text in _STATUS_TEXT.items()
    }
