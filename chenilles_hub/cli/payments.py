"""Invoices, routes, payments and quotes."""

from __future__ import annotations

import sys
from typing import Any

import click

from .output import Column, output, short, table
from .remote import api_options, call, connect, wait_until
from .root import main


@main.command("invoice")
@click.option("--amount", required=True, type=int, help="Amount in base units.")
@click.option("--asset", required=True, help="token@chain.")
@click.option("--ttl", default=3600, type=int, show_default=True, help="Seconds valid.")
@click.option("--description", default="")
@api_options
def invoice_command(
    amount: int,
    asset: str,
    ttl: int,
    description: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Create an invoice; prints the string to give the payer."""
    client = connect(config_path, api_url, token_file)
    body = {"amount": amount, "asset": asset, "ttl": ttl, "description": description}
    result = call(lambda: client.post("/v1/invoices", body))
    if as_json:
        output(result, True)
    else:
        click.echo(result["invoice"])


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


@main.command("pay")
@click.argument("invoice")
@click.option("--max-lock", type=int, help="Longest lock of our funds (seconds).")
@click.option("--source-asset", help="Pay with this asset (token@chain).")
@click.option("--wait/--no-wait", default=True, help="Wait until it succeeds or fails.")
@click.option("--timeout", default=120.0, show_default=True)
@api_options
def pay_command(
    invoice: str,
    max_lock: int | None,
    source_asset: str | None,
    wait: bool,
    timeout: float,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Pay INVOICE along the cheapest route."""
    client = connect(config_path, api_url, token_file)
    result = call(lambda: client.post("/v1/payments", _route_body(invoice, max_lock, source_asset)))
    payment_hash = result["payment_hash"]
    if wait:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = call(lambda: client.get(f"/v1/payments/{payment_hash}"))
            return result["status"] != "pending", f"payment {result['status']}"

        wait_until(progress, timeout, as_json, interval=0.05)
    output(result, as_json)
    if result["status"] == "failed":
        sys.exit(1)


@main.command("payments")
@click.option("--status", help="pending, succeeded or failed.")
@api_options
def payments_command(
    status: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Payments this node started."""
    client = connect(config_path, api_url, token_file)
    path = "/v1/payments" + (f"?status={status}" if status else "")
    output(
        call(lambda: client.get(path)),
        as_json,
        [
            ("payment", lambda r: short(r["payment_hash"])),
            ("status", "status"),
            ("amount", "amount"),
            ("asset", "asset"),
            ("sent", "sent"),
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
