"""``chenilles channel``: open, close and list channels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .output import Column, output, short
from .remote import api_options, call, connect, wait_until
from .root import main


@main.group("channel")
def channel_group() -> None:
    """Open, close and list channels."""


def _channel_columns() -> list[Column]:
    def balance(side: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: ", ".join(f"{b[side]} {b['asset']}" for b in r["balances"])

    return [
        ("channel", lambda r: short(r["channel_id"])),
        ("peer", lambda r: short(r["peer"], 12)),
        ("status", "status"),
        ("version", "version"),
        ("local", balance("local")),
        ("remote", balance("remote")),
        ("htlcs", lambda r: len(r["htlcs"])),
    ]


@channel_group.command("list")
@click.option("--status", help="Only channels in this status (active, closed, ...).")
@api_options
def channel_list(
    status: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Channels with their balances."""
    client = connect(config_path, api_url, token_file)
    path = "/v1/channels" + (f"?status={status}" if status else "")
    output(call(lambda: client.get(path)), as_json, _channel_columns())


@channel_group.command("open")
@click.option("--peer", required=True, help="The peer's node id (hex).")
@click.option("--asset", required=True, help="token@chain, e.g. native@eip155:31337.")
@click.option("--amount", required=True, type=int, help="Our deposit (base units).")
@click.option("--remote-amount", default=0, type=int, help="The peer's deposit.")
@click.option(
    "--challenge", default=600, type=int, show_default=True, help="Challenge period (seconds)."
)
@click.option("--wait/--no-wait", default=True, help="Wait until the channel is active.")
@click.option("--timeout", default=120.0, show_default=True)
@api_options
def channel_open(
    peer: str,
    asset: str,
    amount: int,
    remote_amount: int,
    challenge: int,
    wait: bool,
    timeout: float,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Open a channel with a connected peer and fund our side on-chain."""
    client = connect(config_path, api_url, token_file)
    body = {
        "peer": peer,
        "asset": asset,
        "amount": amount,
        "remote_amount": remote_amount,
        "challenge_duration": challenge,
    }
    started = call(lambda: client.post("/v1/channels", body))
    result: dict[str, Any] = started
    if wait:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = call(lambda: client.get(f"/v1/channels/opening/{started['temp_id']}"))
            if result["status"] == "refused":
                raise click.ClickException(f"the peer refused: {result.get('reason')}")
            text = {
                "negotiating": "waiting for the peer to accept",
                "opening": result.get("waiting") or "funding on-chain, waiting for both deposits",
            }.get(result["status"], result["status"])
            return result["status"] == "active", text

        wait_until(progress, timeout, as_json)
    output(result, as_json)


@channel_group.command("close")
@click.argument("channel_id")
@click.option("--force", is_flag=True, help="Register on-chain without the peer.")
@click.option("--wait/--no-wait", default=True, help="Wait until settled on-chain.")
@click.option("--timeout", default=120.0, show_default=True)
@api_options
def channel_close(
    channel_id: str,
    force: bool,
    wait: bool,
    timeout: float,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Close a channel (cooperatively unless --force)."""
    client = connect(config_path, api_url, token_file)
    result = call(lambda: client.post(f"/v1/channels/{channel_id}/close", {"force": force}))
    if wait and not force:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = call(lambda: client.get(f"/v1/channels/{channel_id}"))
            text = {
                "active": "waiting for the peer to sign the final state",
                "closing": "settling on-chain",
            }.get(result["status"], result["status"])
            return result["status"] == "closed", text

        wait_until(progress, timeout, as_json)
    if isinstance(result, dict) and "balances" in result:
        result = {k: result[k] for k in ("channel_id", "status", "version", "balances", "receipts")}
    output(result, as_json)
