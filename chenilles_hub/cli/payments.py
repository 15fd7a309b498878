"""Invoices, routes, payments and quotes."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlencode

import click

from .output import Column, output, short, table
from .remote import api_options, call, connect, wait_until
from .root import main


def _route_body(invoice: str, max_lock: int | None, source_asset: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"invoice": invoice}
    if max_lock is not None:
        body["max_lock"] = max_lock
    if source_asset:
        body["source_asset"] = source_asset
    return body


def _route_columns() -> list[Column]:
    return [
        ("hop", lambda r: short(r["to"], 12)),
        ("channel", lambda r: short(r["channel_id"])),
        ("amount", "amount"),
        ("asset", "asset"),
        ("lock (s)", "lock_seconds"),
    ]


@main.command("route")
@click.argument("invoice")
@click.option("--max-lock", type=int, help="Longest lock of our funds (seconds).")
@click.option("--source-asset", help="Pay with this asset (token@chain).")
@api_options
def route_command(
    invoice: str,
    max_lock: int | None,
    source_asset: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Show the route a payment of INVOICE would take (nothing is paid)."""
    client = connect(config_path, api_url, token_file)
    result = call(lambda: client.post("/v1/route", _route_body(invoice, max_lock, source_asset)))
    if as_json:
        output(result, True)
        return
    table(result["hops"], _route_columns())
    click.echo(f"total sent: {result['sent']} {result['sent_asset']}")
    click.echo(f"fees: {_fees_text(result.get('fees') or {})}")


def _fees_text(fees: dict[str, int]) -> str:
    """Forwarders' fees per asset (base units), or "none"."""
    return ", ".join(f"{amount} {asset}" for asset, amount in fees.items()) or "none"


@main.command("pay")
@click.argument("invoice")
@click.option("--max-lock", type=int, help="Longest lock of our funds (seconds).")
@click.option("--source-asset", help="Pay with this asset (token@chain).")
@click.option("--wait/--no-wait", default=True, help="Wait until it succeeds or fails.")
@click.option(
    "--timeout",
    default=60,
    show_default=True,
    type=click.IntRange(5, 365 * 86400),
    help="Seconds the payment may stay pending waiting for HTLC slots or an offline peer; "
    "then it fails and its money is unlocked.",
)
@api_options
def pay_command(
    invoice: str,
    max_lock: int | None,
    source_asset: str | None,
    wait: bool,
    timeout: int,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Pay INVOICE along the cheapest route."""
    client = connect(config_path, api_url, token_file)
    body = {**_route_body(invoice, max_lock, source_asset), "timeout": timeout}
    result = call(lambda: client.post("/v1/payments", body))
    payment_hash = result["payment_hash"]
    if wait:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = call(lambda: client.get(f"/v1/payments/{payment_hash}"))
            return result["status"] != "pending", f"payment {result['status']}"

        # The node fails it back within ``timeout``; an HTLC already locked further on
        # may take a little longer to come back.
        wait_until(progress, timeout + 30, as_json, interval=0.05)
    if as_json:
        output(result, True)
    else:
        _payment_summary(result)
    if result["status"] == "failed":
        sys.exit(1)


def _payment_summary(result: dict[str, Any]) -> None:
    shown = {k: v for k, v in result.items() if k not in ("route", "fees")}
    output(shown, False)
    click.echo(f"fees: {_fees_text(result.get('fees') or {})}")
    hops = (result.get("route") or {}).get("hops", [])
    if hops:
        table(hops, [*_route_columns()[:4], ("fee", lambda r: r.get("fee", ""))])


@main.command("payments")
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed"]))
@click.option("--since", help="Started from (unix s, ISO date, or 24h / 7d back).")
@click.option("--until", help="Started until (unix s, ISO date, or 1h back).")
@api_options
def payments_command(
    status: str | None,
    since: str | None,
    until: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Payments this node started, with their fees (`--json`: with their routes)."""
    from .history import parse_time

    client = connect(config_path, api_url, token_file)
    params = {
        k: v
        for k, v in (("status", status), ("since", parse_time(since)), ("until", parse_time(until)))
        if v
    }
    path = "/v1/payments" + (f"?{urlencode(params)}" if params else "")
    output(
        call(lambda: client.get(path)),
        as_json,
        [
            ("payment", lambda r: short(r["payment_hash"])),
            ("status", "status"),
            ("amount", "amount"),
            ("asset", "asset"),
            ("sent", "sent"),
            ("fees", lambda r: _fees_text(r.get("fees") or {})),
            ("reason", "reason"),
        ],
    )


@main.command("quote")
@click.option("--asset-in", required=True, help="What we would pay the hub (token@chain).")
@click.option("--asset-out", required=True, help="What the hub would send (token@chain).")
@click.option("--amount-out", required=True, type=int, help="Amount out (base units).")
@api_options
def quote_command(
    asset_in: str,
    asset_out: str,
    amount_out: int,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """A signed, short-lived rate quote from this hub."""
    client = connect(config_path, api_url, token_file)
    body = {"asset_in": asset_in, "asset_out": asset_out, "amount_out": amount_out}
    output(call(lambda: client.post("/v1/quote", body)), as_json)
