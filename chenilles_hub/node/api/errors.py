"""Every error code the node API (and the CLI) can answer, with its HTTP status and a hint.

Codes are stable: scripts branch on them, so a code is never renamed or reused. An error
body is ``{"error": {"code": ..., "message": ..., "hint": ...}}``: the code for machines,
the message saying what exactly went wrong (the field, the amount), the hint what the
operator can do about it. The catalog is also what OpenAPI and the error-codes table in
docs/operating-a-hub.md are checked against (``tests/node/test_error_codes.py``), so a
handler cannot answer a code nobody documented.

Two sources: the API's own codes (below) and the refusals of the core and the circuit
layer (``ChannelError`` subclasses, answered with 422 and their class ``code``), which are
collected from the class tree so that a new refusal class is catalogued by being written.
"""

from __future__ import annotations

from dataclasses import dataclass

from chenilles_hub.circuit import errors as _circuit_errors  # noqa: F401  (registers classes)
from chenilles_hub.core.errors import ChannelError

# The node's own refusal classes, imported so the catalog sees them whatever was imported
# before (the catalog is built from the class tree).
from ..hub import history as _history  # noqa: F401
from ..hub import htlc_queue as _htlc_queue  # noqa: F401


@dataclass(frozen=True)
class ErrorCode:
    status: int
    meaning: str
    hint: str = ""


#: The API's own codes (status, what it means, what to do).
API_ERRORS: dict[str, ErrorCode] = {
    # --- 400: the request itself is wrong -------------------------------------------------
    "bad_json": ErrorCode(400, "the body is not a JSON object", "send a JSON object body"),
    "missing_field": ErrorCode(400, "a required field is missing", "see the OpenAPI schema"),
    "bad_field": ErrorCode(400, "a field has the wrong type or range", "see the message"),
    "bad_amount": ErrorCode(
        400, "an amount is not an integer in 0..2**256-1", "amounts are integers in base units"
    ),
    "bad_asset": ErrorCode(400, "an asset is not written token@chain", "e.g. native@eip155:1"),
    "unknown_asset": ErrorCode(
        400, "the asset is not one this node or channel holds", "see chenilles backends"
    ),
    "unknown_chain": ErrorCode(400, "no configured chain has this id", "see chenilles node info"),
    "bad_node_id": ErrorCode(400, "a node id is not 64 hex digits", "copy it from node info"),
    "bad_address": ErrorCode(400, "an address is not host:port", "e.g. 203.0.113.5:9735"),
    "bad_channel_id": ErrorCode(400, "a channel id is not 64 hex digits", "see channel list"),
    "bad_temp_id": ErrorCode(400, "an opening id is not 64 hex digits", ""),
    "bad_payment_hash": ErrorCode(400, "a payment hash is not 64 hex digits", ""),
    "bad_invoice": ErrorCode(400, "the invoice does not decode", "copy the whole invoice"),
    "own_invoice": ErrorCode(400, "the invoice is payable to this node itself", ""),
    "bad_quote": ErrorCode(400, "a quote object does not decode", "pass quotes as returned"),
    "bad_graph": ErrorCode(400, "the graph document does not decode", "see GET /v1/graph"),
    "bad_app_input": ErrorCode(400, "the app's options or move do not decode", ""),
    "bad_rate": ErrorCode(
        400,
        "a rate is not a positive decimal of whole units (or numerator/denominator)",
        "e.g. --rate 0.05: 1 unit in buys 0.05 units out",
    ),
    "bad_scope": ErrorCode(400, "a token scope is not readonly, invoices or admin", ""),
    "bad_label": ErrorCode(400, "a token label is not a short text", "at most 200 characters"),
    "bad_token_id": ErrorCode(400, "a token id is not 16 hex digits", "see chenilles token list"),
    "not_supported": ErrorCode(
        400, "the chain's backend does not offer this (no wallet, no coins)", ""
    ),
    "bad_virtual_id": ErrorCode(
        400, "a virtual channel id is not 64 hex digits", "see chenilles virtual list"
    ),
    # --- 401 / 404 / 405 / 413 ------------------------------------------------------------
    "unauthorized": ErrorCode(
        401, "missing or wrong bearer token", "the token is in the data dir (api.token)"
    ),
    "forbidden": ErrorCode(
        403,
        "the token's scope does not allow this route",
        "use a token of a wider scope (chenilles token create --scope ...)",
    ),
    "not_found": ErrorCode(404, "no such endpoint", "see /openapi.json"),
    "unknown_channel": ErrorCode(404, "no channel has this id", "see chenilles channel list"),
    "unknown_open": ErrorCode(404, "no opening has this temporary id", ""),
    "unknown_payment": ErrorCode(404, "no payment has this hash", "see chenilles payments"),
    "unknown_app": ErrorCode(404, "no installed app has this name", "see GET /v1/apps"),
    "unknown_token": ErrorCode(404, "no token has this id", "see chenilles token list"),
    "unknown_peer": ErrorCode(404, "no peer has this node id", "see chenilles peers"),
    "unknown_invoice": ErrorCode(404, "no invoice has this hash", "see chenilles invoice list"),
    "unknown_virtual_channel": ErrorCode(
        404, "no virtual channel has this request or channel id", "see chenilles virtual list"
    ),
    "method_not_allowed": ErrorCode(405, "the endpoint does not take this method", ""),
    "too_large": ErrorCode(413, "the body is over 256 KiB", "split the request"),
    # --- 409: conflicts with the current state --------------------------------------------
    "peer_not_connected": ErrorCode(
        409, "the peer is not connected", "connect it first (chenilles peers)"
    ),
    "already_paid": ErrorCode(409, "this invoice was already paid from this node", ""),
    "channel_closed": ErrorCode(409, "the channel is closed", ""),
    "channel_disputed": ErrorCode(409, "the channel is being closed on-chain", ""),
    "channel_not_active": ErrorCode(
        409, "the channel is not active", "see its status and waiting in channel show"
    ),
    "channel_quarantined": ErrorCode(
        409,
        "the channel could not be restored at start and is set aside",
        "read its last_error; fix the config (its chain, its key) and restart",
    ),
    "not_abandonable": ErrorCode(
        409,
        "the channel's funds may have left: it cannot be abandoned",
        "close it instead (chenilles channel close --force)",
    ),
    "no_app": ErrorCode(409, "the channel runs no app", ""),
    # --- 422: valid, but the node cannot do it --------------------------------------------
    "transfer_refused": ErrorCode(422, "the peer or the channel refused the transfer", ""),
    "payment_refused": ErrorCode(422, "the payment could not be started", "see the message"),
    "refused": ErrorCode(422, "the channel refused the request", "see the message"),
    "insufficient_funds": ErrorCode(
        422,
        "the wallet holds less than the amount to send; nothing was sent",
        "see chenilles wallet balance",
    ),
    "send_refused": ErrorCode(
        422, "the chain refused the wallet's transaction; nothing was sent", "see the message"
    ),
    # --- 5xx ------------------------------------------------------------------------------
    "internal": ErrorCode(
        500, "the node failed (a bug)", "the node's log has the traceback; please report it"
    ),
    "not_leader": ErrorCode(
        503, "this process is a standby waiting for the leader lease", "ask the leader"
    ),
    "transfer_pending": ErrorCode(
        504,
        "the peer did not sign in time; the transfer stays queued while the node runs",
        "look at the channel's balance later: a node that stops drops a transfer not yet "
        "signed, so check before sending it again",
    ),
}

#: Hints for the refusals that operators meet most.
_REFUSAL_HINTS = {
    "insufficient_balance": "the wallet or the channel holds less than asked "
    "(chenilles backends shows the balances)",
    "no_route": "open a channel towards the payee, or wait for the hub's announcements",
    "no_rate": "the hub quotes no rate for this pair of assets",
    "insufficient_capacity": "a channel on the route has too little free balance",
    "too_many_htlcs": "the channel has no free HTLC slot; try again shortly",
    "dust_exposure": "the channel holds as much in HTLCs too small for an output as a node "
    "allows (option max_dust_exposure_sat): wait for them to settle, or pay through "
    "another channel",
    "invoice_expired": "ask the payee for a new invoice",
    "channel_busy": "retry later, or pay through another channel",
    "record_full": "the peer keeps refusing this channel's proposals: close it",
}


#: Meanings for refusal classes whose docstring does not say it to an operator.
_MEANINGS = {
    "channel_error": "the channel refused the request (the message says why)",
    "routing": "the route or forward breaks a routing rule (the message says which)",
    "circuit": "the payment circuit refused the request (the message says why)",
}


def _refusals() -> dict[str, ErrorCode]:
    """Every ``ChannelError`` code (core, routing, circuit): answered as 422 refusals."""
    found: dict[str, ErrorCode] = {}
    todo: list[type[ChannelError]] = [ChannelError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.code in found or cls.code in API_ERRORS:
            continue
        doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        first = doc.split(". ")[0].rstrip(".").replace("``", "`")
        meaning = _MEANINGS.get(cls.code) or first or cls.code.replace("_", " ")
        found[cls.code] = ErrorCode(422, meaning, _REFUSAL_HINTS.get(cls.code, ""))
    return found


def catalog() -> dict[str, ErrorCode]:
    """Every code, API codes first, then the refusals, sorted within each."""
    refusals = _refusals()
    return {
        **{k: API_ERRORS[k] for k in API_ERRORS},
        **{k: refusals[k] for k in sorted(refusals)},
    }


def hint_for(code: str) -> str:
    entry = API_ERRORS.get(code) or _refusals_cached().get(code)
    return entry.hint if entry else ""


_CACHE: dict[str, ErrorCode] = {}


def _refusals_cached() -> dict[str, ErrorCode]:
    if not _CACHE:
        _CACHE.update(_refusals())
    return _CACHE


def error_body(code: str, message: str, hint: str | None = None) -> dict[str, object]:
    """The one shape of every error the API (and the CLI under ``--json``) answers."""
    return {
        "error": {
            "code": code,
            "message": message,
            "hint": hint_for(code) if hint is None else hint,
        }
    }
