"""``chenilles virtual``: virtual channels through a hub (open, pay, close, list)."""

from __future__ import annotations

from typing import Any

import click

from .output import Column, output, short
from .remote import api_options, call, connect, wait_until
from .root import main


@main.group("virtual")
def virtual_group() -> None:
    """Virtual channels: funded by our ledger channel with a hub, paid without the hub."""


@virtual_group.command("open")
@click.option("--hub", required=True, help="The hub's node id (hex); connected.")
@click.option("--peer", required=True, help="The other end's node id (hex); connected.")
@click.option("--amount", required=True, type=int, help="Our opening balance (base units).")
@click.option("--remote-amount", default=0, type=int, help="The other end's opening balance.")
@click.option("--lifetime", default=86400, type=int, show_default=True, help="Seconds to live.")
@click.option("--grace", default=3600, type=int, show_default=True, help="The hub's grace (s).")
@click.option(
    "--rate",
    default=None,
    help="NUM/DEN: the hub's rate into the peer's asset we accept (its base units per ours).",
)
@click.option("--wait/--no-wait", default=True, help="Wait until the channel is open.")
@click.option("--timeout", default=120.0, show_default=True)
@api_options
def virtual_open(
    hub: str,
    peer: str,
    amount: int,
    remote_amount: int,
    lifetime: int,
    grace: int,
    rate: str | None,
    wait: bool,
    timeout: float,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Open a virtual channel with PEER through HUB: the hub funds it in both ledger
    channels by off-chain updates; nothing goes on-chain."""
    client = connect(config_path, api_url, token_file)
    body = {
        "hub": hub,
        "peer": peer,
        "amount": amount,
        "remote_amount": remote_amount,
        "lifetime": lifetime,
        "grace": grace,
    }
    if rate is not None:
        body["rate"] = rate
    started = call(lambda: client.post("/v1/virtual", body))
    result: dict[str, Any] = started
    if wait:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = call(lambda: client.get(f"/v1/virtual/{started['request_id']}"))
            if result["status"] in ("refused", "expired"):
                raise click.ClickException(f"{result['status']}: {result.get('last_error')}")
            return result["status"] == "open", result["status"]

        wait_until(progress, timeout, as_json)
    output(result, as_json)


@virtual_group.command("pay")
@click.argument("virtual_id")
@click.argument("amount", type=int)
@api_options
def virtual_pay(
    virtual_id: str,
    amount: int,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Pay AMOUNT to the other end of VIRTUAL_ID (its request or channel id)."""
    client = connect(config_path, api_url, token_file)
    path = f"/v1/virtual/{virtual_id}/payments"
    output(call(lambda: client.post(path, {"amount": amount})), as_json)


@virtual_group.command("close")
@click.argument("virtual_id")
@api_options
def virtual_close(
    virtual_id: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Close VIRTUAL_ID: both ends settle their ledger channels with the hub off-chain."""
    client = connect(config_path, api_url, token_file)
    output(call(lambda: client.post(f"/v1/virtual/{virtual_id}/close", {})), as_json)


@virtual_group.command("list")
@api_options
def virtual_list(
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Virtual channels, their balances, and the ledger channels funding each."""
    client = connect(config_path, api_url, token_file)
    result = call(lambda: client.get("/v1/virtual"))
    if as_json:
        output(result, True)
        return
    columns: list[Column] = [
        ("id", lambda v: short(v["virtual_channel_id"] or v["request_id"])),
        ("role", "role"),
        ("status", "status"),
        ("balances", "balances"),
        ("funded by", lambda v: ", ".join(short(c) for c in v["funded_by"])),
        ("last error", lambda v: v.get("last_error") or ""),
    ]
    output(result["virtual_channels"], False, columns)
