"""API handlers for access and backups: scoped tokens (``/v1/tokens``) and the static
channel backup (``/v1/backup``). Admin scope for all of them (``auth.ROUTE_SCOPES``)."""

from __future__ import annotations

import re
from typing import Any, cast

from aiohttp import web

from .auth import SCOPES, Scope, record_view
from .inputs import json_response, node_of, read_body, service
from .operations import ApiError

_TOKEN_ID = re.compile(r"^[0-9a-f]{16}$")
_MAX_LABEL = 200


async def list_tokens(request: web.Request) -> web.Response:
    server = service(request)
    rows = [record_view(r) for r in sorted(server.tokens.records.values(), key=lambda r: r.id)]
    return json_response(rows)


async def create_token(request: web.Request) -> web.Response:
    server = service(request)
    data = await read_body(request)
    scope = data.get("scope")
    if scope not in SCOPES:
        raise ApiError(400, "bad_scope", f"scope is one of {', '.join(SCOPES)}")
    label = data.get("label", "")
    if not isinstance(label, str) or len(label) > _MAX_LABEL:
        raise ApiError(400, "bad_label", f"label is a text of at most {_MAX_LABEL} characters")
    node_of(request)  # the store is open once the node is
    token, record = await server.in_worker(
        server.tokens.create, cast(Scope, scope), label, server.save_setting
    )
    # shown this once: the node keeps only its digest
    return json_response({**record_view(record), "token": token}, 201)


async def revoke_token(request: web.Request) -> web.Response:
    server = service(request)
    node_of(request)
    token_id = request.match_info["token_id"]
    if not _TOKEN_ID.match(token_id):
        raise ApiError(400, "bad_token_id", "a token id is 16 hex digits")
    if not await server.in_worker(server.tokens.revoke, token_id, server.save_setting):
        raise ApiError(404, "unknown_token", f"no token {token_id}")
    return json_response({"id": token_id, "revoked": True})


async def export_backup(request: web.Request) -> web.Response:
    """The sealed backup (base64) and a summary of what it holds."""
    node_of(request)
    return json_response(await service(request).backup(write=False))


async def write_backup(request: web.Request) -> web.Response:
    """Write the backup file now (the configured path) and say where."""
    node_of(request)
    return json_response(await service(request).backup(write=True))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/tokens", list_tokens)
    router.add_post("/v1/tokens", create_token)
    router.add_delete("/v1/tokens/{token_id}", revoke_token)
    router.add_get("/v1/backup", export_backup)
    router.add_post("/v1/backup", write_backup)


def openapi_paths() -> dict[str, Any]:
    """These routes' part of the OpenAPI document."""

    def op(summary: str, ok: str = "200", errors: tuple[str, ...] = ()) -> dict[str, Any]:
        return {
            "summary": summary,
            "responses": {
                ok: {"description": "success", "content": {"application/json": {}}},
                **{c: {"$ref": f"#/components/responses/E{c}"} for c in ("401", "403", *errors)},
            },
        }

    create = op("create a token of a scope (shown once; stored as a digest)", "201", ("400",))
    create["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["scope"],
                    "properties": {
                        "scope": {"type": "string", "enum": list(SCOPES)},
                        "label": {"type": "string", "maxLength": _MAX_LABEL},
                    },
                }
            }
        },
    }
    revoke = op("revoke a token", errors=("400", "404"))
    revoke["parameters"] = [
        {
            "name": "token_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        }
    ]
    return {
        "/v1/tokens": {"get": op("the scoped tokens (never their secrets)"), "post": create},
        "/v1/tokens/{token_id}": {"delete": revoke},
        "/v1/backup": {
            "get": op("the encrypted static channel backup (base64) and what it holds"),
            "post": op("write the backup file now (the configured path)"),
        },
    }
