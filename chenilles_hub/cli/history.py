"""``chenilles forwards`` (fees earned) and ``chenilles invoice`` (create, list, show,
cancel): what the node did, over a time range."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import click

from .output import output, short, table
from .remote import api_options, call, connect
from .root import main

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str | None, now: float | None = None) -> int | None:
    """Unix seconds, an ISO date or time (UTC unless it says), or a span back from now
    (``30m``, ``24h``, ``7d``)."""
    if text is None:
        return None
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = _RELATIVE.match(text)
    if match:
        return int((now or time.time()) - int(match.group(1)) * _UNIT[match.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: give unix seconds, an ISO date (2026-12-01T10:00), or 30m/24h/7d"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def range_query(since: str | None, until: str | None) -> str:
    params = {k: v for k, v in (("since", parse_time(since)), ("until", parse_time(until))) if v}
    return ("?" + urlencode(params)) if params else ""


_SINCE = click.option("--since", help="From (unix s, ISO date, or 24h / 7d back).")
_UNTIL = click.option("--until", help="Until (unix s, ISO date, or 1h back).")


@main.command("forwards")
@_SINCE
@_UNTIL
@api_options
def forwards_command(
    since: str | None,
    until: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Payments this hub forwarded that settled, and the fees earned per asset (base
    units of the asset the hub sent)."""
    client = connect(config_path, api_url, token_file)
    result = call(lambda: client.get("/v1/forwards" + range_query(since, until)))
    if as_json:
        output(result, True)
        return
    output(
        result["forwards"],
        False,
        [
            ("settled", lambda r: _when(r["settled_at"])),
            ("in", lambda r: f"{r['in_amount']} {r['in_asset']}"),
            ("out", lambda r: f"{r['out_amount']} {r['out_asset']}"),
            ("fee", "fee"),
            ("payment", lambda r: short(r["payment_hash"])),
        ],
    )
    click.echo(f"{result['count']} forwards; fees earned:")
    if result["totals"]:
        table(result["totals"], [("asset", "asset"), ("forwards", "forwards"), ("fees", "fees")])
    else:
        click.echo("  (none)")


def _when(stamp: int | None) -> str:
    if not stamp:
        return ""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


@main.group("invoice", invoke_without_command=True)
@click.option("--amount", type=int, help="Amount in base units.")
@click.option("--asset", help="token@chain.")
@click.option("--ttl", default=3600, type=int, show_default=True, help="Seconds valid.")
@click.option("--description", default="")
@api_options
@click.pass_context
def invoice_group(
    ctx: click.Context,
    amount: int | None,
    asset: str | None,
    ttl: int,
    description: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Create an invoice (`invoice --amount N --asset A`; prints the string to give the
    payer), or list, show and cancel them."""
    if ctx.invoked_subcommand is not None:
        return
    if amount is None or asset is None:
        raise click.UsageError("give --amount (base units) and --asset to create an invoice")
    client = connect(config_path, api_url, token_file)
    body = {"amount": amount, "asset": asset, "ttl": ttl, "description": description}
    result = call(lambda: client.post("/v1/invoices", body))
    if as_json:
        output(result, True)
    else:
        click.echo(result["invoice"])


@invoice_group.command("list")
@click.option("--status", type=click.Choice(["open", "paid", "cancelled", "expired"]))
@api_options
def invoice_list(
    status: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """This node's invoices."""
    client = connect(config_path, api_url, token_file)
    rows: list[dict[str, Any]] = call(lambda: client.get("/v1/invoices"))
    if status:
        rows = [r for r in rows if r["status"] == status]
    output(
        rows,
        as_json,
        [
            ("payment hash", lambda r: short(r["payment_hash"])),
            ("status", "status"),
            ("amount", "amount"),
            ("asset", "asset"),
            ("expires", lambda r: _when(r["expires_at"])),
            ("description", "description"),
        ],
    )


@invoice_group.command("show")
@click.argument("payment_hash")
@api_options
def invoice_show(
    payment_hash: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """One invoice, by its payment hash."""
    client = connect(config_path, api_url, token_file)
    output(call(lambda: client.get(f"/v1/invoices/{payment_hash}")), as_json)


@invoice_group.command("cancel")
@click.argument("payment_hash")
@api_options
def invoice_cancel(
    payment_hash: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Withdraw an unpaid invoice: an HTLC arriving for it is failed back to the payer."""
    client = connect(config_path, api_url, token_file)
    output(call(lambda: client.post(f"/v1/invoices/{payment_hash}/cancel")), as_json)
