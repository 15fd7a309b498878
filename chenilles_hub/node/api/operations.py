"""What the operator can ask of a node, as plain functions over a :class:`~.hub.Node`.

The API validates requests and calls these on the node's thread; they return JSON-ready
dicts. Keeping them free of HTTP means the same views serve the API, the CLI's ``--json``
output and tests. Amounts are integers in base units (wei, sat, lamport) everywhere.
"""

from __future__ import annotations

from typing import Any

from chenilles_hub.backend import Account, ChainBackend
from chenilles_hub.circuit.invoice import Invoice, decode_invoice
from chenilles_hub.circuit.quote import Quote, parse_quote_view, quote_view
from chenilles_hub.core import Asset
from chenilles_hub.core.errors import ChannelError
from chenilles_hub.core.routing import Route

from ..hub.graph_view import GraphView
from ..hub.node import Node
from ..hub.records import Channel, Payment
from ..hub.route_explain import explain_no_route, fees_by_asset, hop_fees
from ..hub.routing_view import invoice_route, onion_hops
from .channel_views import channel_view

__all__ = ["ApiError", "channel_view", "find_channel"]


class ApiError(Exception):
    """An error the API reports as ``{"error": {"code", "message", "hint"}}`` with
    ``status``; ``code`` is one of ``errors.catalog()``, the hint defaults to its entry's."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint


def asset_text(asset: Asset) -> str:
    return str(asset)


def find_channel(node: Node, channel_hex: str) -> Channel:
    try:
        channel_id = bytes.fromhex(channel_hex)
    except ValueError:
        raise ApiError(400, "bad_channel_id", "a channel id is 64 hex digits") from None
    channel = node.channels.get(channel_id)
    if channel is None:
        quarantined = node.quarantined.get(channel_id)
        if quarantined is not None:
            raise ApiError(
                409, "channel_quarantined", f"the channel is quarantined: {quarantined.reason}"
            )
        raise ApiError(404, "unknown_channel", f"no channel {channel_hex}")
    return channel


def open_status(node: Node, temp_hex: str) -> dict[str, Any]:
    try:
        temp_id = bytes.fromhex(temp_hex)
    except ValueError:
        raise ApiError(400, "bad_temp_id", "a temporary channel id is 64 hex digits") from None
    result = node.open_results.get(temp_id)
    if isinstance(result, bytes):
        channel = node.channels[result]
        return {
            "temp_id": temp_hex,
            "status": channel.status,
            "waiting": channel.waiting,
            "channel_id": result.hex(),
        }
    if isinstance(result, str):
        return {"temp_id": temp_hex, "status": "refused", "reason": result}
    if temp_id in node.pending_opens:
        return {"temp_id": temp_hex, "status": "negotiating"}
    raise ApiError(404, "unknown_open", f"no channel opening {temp_hex}")


def payment_view(payment: Payment) -> dict[str, Any]:
    """A payment as the operator sees it. ``fee``: what the forwarders charged, summed when
    they all charged in one asset (``fee_asset``; for a payment that changes asset, that
    is the asset the converting hub sends); ``fees``: per asset."""
    fees = fees_by_asset(payment.route)
    if payment.route:
        fee: int | None = sum(fees.values()) if len(fees) <= 1 else None
        fee_asset = next(iter(fees), asset_text(payment.sent_asset))
    elif payment.asset == payment.sent_asset:
        fee, fee_asset = payment.sent - payment.amount, asset_text(payment.asset)
    else:
        fee, fee_asset = None, None
    return {
        "payment_hash": payment.payment_hash.hex(),
        "status": payment.status,
        "amount": payment.amount,
        "asset": asset_text(payment.asset),
        "sent": payment.sent,
        "sent_asset": asset_text(payment.sent_asset),
        "fee": fee,
        "fee_asset": fee_asset,
        "fees": fees,
        "preimage": payment.preimage.hex() if payment.preimage else None,
        "reason": payment.reason,
        "deadline": payment.deadline or None,
        "created_at": payment.created_at or None,
        "finished_at": payment.finished_at or None,
        "route": {"hops": list(payment.route)},
    }


def invoice_view(node: Node, invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice": invoice.encode(),
        "payment_hash": invoice.payment_hash.hex(),
        "amount": invoice.amount,
        "asset": asset_text(invoice.asset),
        "expires_at": invoice.expires_at,
        "paid": invoice.payment_hash in node.paid_invoices,
        "status": (
            "paid"
            if invoice.payment_hash in node.paid_invoices
            else "cancelled"
            if invoice.payment_hash in node.payment_flow.cancelled_invoices
            else "expired"
            if invoice.expires_at <= node.clock()
            else "open"
        ),
        "description": invoice.description,
    }


def parse_invoice(text: str) -> Invoice:
    try:
        return decode_invoice(text)
    except ChannelError as exc:
        raise ApiError(400, "bad_invoice", str(exc)) from None


def plan_route(
    node: Node,
    graph: GraphView,
    invoice: Invoice,
    max_lock: int,
    source_asset: Asset | None = None,
) -> Route:
    routing = graph.graph(node)
    try:
        return invoice_route(
            routing,
            node.node_id,
            invoice,
            now=node.clock(),
            max_lock=max_lock,
            source_asset=source_asset,
            strategy="cached",  # the payer is always this node: its bound is reused
        )
    except ChannelError as exc:
        code = getattr(exc, "code", "no_route")
        why = explain_no_route(
            routing, node.node_id, invoice.payee, invoice.amount, invoice.asset, source_asset
        )
        if code == "no_route" and why is not None:
            raise ApiError(422, why[0], f"no route: {why[1]}") from None
        raise ApiError(422, code, str(exc)) from None


def route_view(route: Route, now: int) -> dict[str, Any]:
    """The route's hops, each with the fee its sender charges (forwarders' fees, in the
    hop's asset), and the fees per asset in total."""
    hops = [
        {**kept, "chain": hop.edge.chain, "lock_seconds": hop.expiry - now}
        for kept, hop in zip(hop_fees(route), route, strict=True)
    ]
    fees = fees_by_asset(hops)
    return {
        "hops": hops,
        "sent": route[0].amount,
        "sent_asset": asset_text(route[0].edge.asset),
        "fees": fees,
        "fee": sum(fees.values()) if len(fees) <= 1 else None,
        "fee_asset": next(iter(fees), asset_text(route[0].edge.asset)),
    }


def parse_quotes(value: Any) -> tuple[Quote, ...]:
    """The ``quotes`` a payer passes to ``pay``: objects as ``POST /v1/quote`` returned them,
    one per hub of the route that converts between assets."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 20:
        raise ApiError(400, "bad_quote", "quotes is a list of at most 20 quote objects")
    try:
        return tuple(parse_quote_view(item) for item in value)
    except (ChannelError, TypeError) as exc:
        raise ApiError(400, "bad_quote", str(exc)) from None


def pay(
    node: Node,
    graph: GraphView,
    invoice: Invoice,
    max_lock: int,
    source_asset: Asset | None,
    quotes: tuple[Quote, ...] = (),
    timeout: int = 0,
) -> dict[str, Any]:
    """Start paying ``invoice``; ``timeout`` (seconds, 0: none) bounds how long it may stay
    pending waiting for HTLC slots or offline peers before it fails back."""
    if invoice.payment_hash in node.payments:
        raise ApiError(409, "already_paid", "this invoice was already paid from this node")
    if invoice.payee == node.node_id:
        raise ApiError(400, "own_invoice", "this invoice is payable to this node itself")
    route = plan_route(node, graph, invoice, max_lock, source_asset)
    deadline = node.clock() + timeout if timeout else 0
    try:
        payment = node.pay_quoted(
            invoice, onion_hops(route, quotes), deadline, tuple(hop_fees(route))
        )
    except ChannelError as exc:
        raise ApiError(422, getattr(exc, "code", "payment_refused"), str(exc)) from None
    return {**payment_view(payment), "route": route_view(route, node.clock())}


def quote(node: Node, asset_in: Asset, asset_out: Asset, amount_out: int) -> dict[str, Any]:
    """Issue a quote the hub remembers (and honours once) until it expires."""
    try:
        return quote_view(node.quote(asset_in, asset_out, amount_out))
    except ChannelError as exc:
        raise ApiError(422, exc.code, str(exc)) from None


def backend_view(node: Node, backend: ChainBackend) -> dict[str, Any]:
    account = node.accounts[backend.chain]
    balances: dict[str, int | None] = {}
    for asset in backend.assets():
        try:
            balances[asset_text(asset)] = backend.balance(account, asset)
        except Exception:  # an unreachable ledger: report what we can
            balances[asset_text(asset)] = None
    return {
        "name": backend.info.name,
        "family": backend.info.family,
        "version": backend.info.version,
        "chain": backend.chain,
        "description": backend.info.description,
        "account": account.chain_key,
        "assets": [asset_text(a) for a in backend.assets()],
        "balances": balances,
    }


def chain_summary(backend: ChainBackend, account: Account, name: str = "") -> dict[str, Any]:
    """What an operator must know of a chain in use: its id, our account, and the on-chain
    code the node binds to (the adjudicator's address, the program id), as the backend
    reports them. Logged at start and shown by ``node info`` and ``node check``."""
    summary: dict[str, Any] = {
        "chain": backend.chain,
        "backend": backend.info.name,
        "account": account.chain_key,
        "description": backend.info.description,
    }
    if name:
        summary["name"] = name
    adjudicator = getattr(getattr(backend, "adjudicator", None), "address", None)
    if adjudicator:
        summary["adjudicator"] = str(adjudicator)
    program = getattr(backend, "program_id", None)
    if program is not None:
        summary["program_id"] = str(program)
    return summary
