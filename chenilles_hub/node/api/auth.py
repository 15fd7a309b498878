"""Who may call what: scoped API tokens, in the spirit of lnd's macaroons.

Three scopes, each containing the one before:

- ``readonly``: every view (``GET``): info, channels, payments, invoices, metrics...
- ``invoices``: ``readonly`` plus creating invoices (a shop's web server: it can ask to be
  paid, never pay, open or close).
- ``admin``: everything (the token file ``api.token`` in the data directory is one).

Every route of the API declares its scope in :data:`ROUTE_SCOPES`; a route missing there
is admin-only (a new route never leaks by default). Tokens an operator creates (``chenilles
token create --scope readonly``) are shown once and kept only as a SHA-256 digest in the
store (setting ``api-token/<id>``): a copy of the database grants nothing. A token reads
``chn1_<id>_<secret>``; its id finds the record, the digest is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Literal

import msgspec
from aiohttp import web

Scope = Literal["readonly", "invoices", "admin"]
SCOPES: tuple[Scope, ...] = ("readonly", "invoices", "admin")
#: What each scope grants, as the scopes it contains.
_GRANTS: dict[Scope, frozenset[str]] = {
    "readonly": frozenset({"readonly"}),
    "invoices": frozenset({"readonly", "invoices"}),
    "admin": frozenset(SCOPES),
}
TOKEN_PREFIX = "api-token/"
_TOKEN_TAG = "chn1"

#: (method, route pattern) -> the scope it needs. ``/health`` needs no token at all.
ROUTE_SCOPES: dict[tuple[str, str], Scope] = {
    ("GET", "/openapi.json"): "readonly",
    ("GET", "/metrics"): "readonly",
    ("GET", "/v1/info"): "readonly",
    ("GET", "/v1/peers"): "readonly",
    ("POST", "/v1/peers"): "admin",
    ("POST", "/v1/peers/{node_id}/disconnect"): "admin",
    ("GET", "/v1/channels"): "readonly",
    ("POST", "/v1/channels"): "admin",
    ("GET", "/v1/channels/opening/{temp_id}"): "readonly",
    ("GET", "/v1/channels/{channel_id}"): "readonly",
    ("POST", "/v1/channels/{channel_id}/close"): "admin",
    ("POST", "/v1/channels/{channel_id}/abandon"): "admin",
    ("POST", "/v1/channels/{channel_id}/transfers"): "admin",
    ("POST", "/v1/transfers"): "admin",
    ("GET", "/v1/invoices"): "readonly",
    ("POST", "/v1/invoices"): "invoices",
    ("GET", "/v1/invoices/{payment_hash}"): "readonly",
    # withdrawing an invoice is part of managing invoices (a point of sale may cancel)
    ("POST", "/v1/invoices/{payment_hash}/cancel"): "invoices",
    ("GET", "/v1/forwards"): "readonly",
    ("GET", "/v1/policy"): "readonly",
    ("POST", "/v1/policy/fees"): "admin",
    ("POST", "/v1/policy/rates"): "admin",
    ("GET", "/v1/wallet"): "readonly",
    ("GET", "/v1/wallet/coins"): "readonly",
    ("POST", "/v1/wallet/send"): "admin",
    ("GET", "/v1/payments"): "readonly",
    ("POST", "/v1/payments"): "admin",
    ("GET", "/v1/payments/{payment_hash}"): "readonly",
    # planning a route or asking a quote spends nothing, but a quote binds the hub's rate:
    ("POST", "/v1/route"): "readonly",
    ("POST", "/v1/quote"): "admin",
    ("GET", "/v1/backends"): "readonly",
    ("GET", "/v1/graph"): "readonly",
    ("POST", "/v1/graph"): "admin",
    ("POST", "/v1/stop"): "admin",
    ("GET", "/v1/apps"): "readonly",
    ("POST", "/v1/apps/{app}/channels"): "admin",
    ("GET", "/v1/channels/{channel_id}/app"): "readonly",
    ("POST", "/v1/channels/{channel_id}/app/moves"): "admin",
    ("GET", "/v1/virtual"): "readonly",
    ("POST", "/v1/virtual"): "admin",
    ("GET", "/v1/virtual/{id}"): "readonly",
    ("POST", "/v1/virtual/{id}/payments"): "admin",
    ("POST", "/v1/virtual/{id}/close"): "admin",
    ("GET", "/v1/tokens"): "admin",
    ("POST", "/v1/tokens"): "admin",
    ("DELETE", "/v1/tokens/{token_id}"): "admin",
    # a backup holds every channel's signed state (encrypted): admin only
    ("GET", "/v1/backup"): "admin",
    ("POST", "/v1/backup"): "admin",
}
PUBLIC = frozenset({("GET", "/health")})


def required_scope(method: str, pattern: str) -> Scope:
    """The scope a route needs (``HEAD`` as its ``GET``); admin if it declares none."""
    method = "GET" if method == "HEAD" else method
    return ROUTE_SCOPES.get((method, pattern), "admin")


def grants(scope: Scope, needed: Scope) -> bool:
    return needed in _GRANTS[scope]


class TokenRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A token as the store keeps it: never the token itself, only its digest."""

    id: str
    scope: Scope
    digest: bytes
    label: str
    created_at: int


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenBook:
    """The admin token (from its file) and the tokens created at run time, by id.

    ``save(key, value)`` writes one record to the store (an empty value drops it); the
    server passes one that runs on the node's thread, and :meth:`load` fills the book from
    the store's records once the store is open."""

    def __init__(self, admin_token: str) -> None:
        self._admin = admin_token.encode()
        self.records: dict[str, TokenRecord] = {}

    def load(self, stored: list[tuple[str, bytes]]) -> None:
        records = {}
        for _, value in stored:
            if value:
                record = msgspec.json.decode(value, type=TokenRecord)
                records[record.id] = record
        self.records = records

    def scope_of(self, token: str) -> Scope | None:
        """The scope ``token`` grants, or ``None`` if it is no valid token."""
        if hmac.compare_digest(token.encode(), self._admin):
            return "admin"
        tag, _, rest = token.partition("_")
        token_id, _, _ = rest.partition("_")
        record = self.records.get(token_id) if tag == _TOKEN_TAG else None
        if record is None:
            return None
        return record.scope if hmac.compare_digest(_digest(token), record.digest) else None

    def create(
        self, scope: Scope, label: str, save: Callable[[str, bytes], None]
    ) -> tuple[str, TokenRecord]:
        """A new token of ``scope``: persisted (as its digest) before it is returned."""
        token_id = secrets.token_hex(8)
        token = f"{_TOKEN_TAG}_{token_id}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(token_id, scope, _digest(token), label, int(time.time()))
        save(TOKEN_PREFIX + token_id, msgspec.json.encode(record))
        self.records[token_id] = record
        return token, record

    def revoke(self, token_id: str, save: Callable[[str, bytes], None]) -> bool:
        if token_id not in self.records:
            return False
        save(TOKEN_PREFIX + token_id, b"")
        del self.records[token_id]
        return True


def record_view(record: TokenRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "scope": record.scope,
        "label": record.label,
        "created_at": record.created_at,
    }


def check_access(request: web.Request, book: TokenBook) -> tuple[int, str, str] | None:
    """``None`` if the request may go on, else (status, code, message) to answer: 401
    without a valid bearer token, 403 with a token whose scope does not grant the route."""
    resource = request.match_info.route.resource
    pattern = resource.canonical if resource is not None else request.path
    if (request.method, pattern) in PUBLIC or (request.method == "HEAD" and pattern == "/health"):
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    scope = book.scope_of(token.strip()) if scheme.lower() == "bearer" else None
    if scope is None:
        return 401, "unauthorized", "missing or wrong bearer token"
    if resource is None:
        return None  # no such route: the router answers 404 or 405
    needed = required_scope(request.method, pattern)
    if not grants(scope, needed):
        return (
            403,
            "forbidden",
            f"this token's scope is {scope}; {request.method} {pattern} needs {needed}",
        )
    return None
