"""``chenilles channel``: open, close, show, list and abandon channels.

Waits show what the channel waits for (its ``waiting``: a deposit's confirmations, the
peer's signature, a dispute's deadline in chain time) and end with the cause when the
channel reports an error (its ``last_error``), not with a bare timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from .errors import CliError
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
        ("waiting / last error", _state_text),
    ]


def _state_text(row: dict[str, Any]) -> str:
    text = row.get("waiting") or ""
    if row.get("last_error"):
        text = f"{text} [error: {row['last_error']}]" if text else f"error: {row['last_error']}"
    return text


def _failure(row: dict[str, Any], since: float) -> str | None:
    """The channel's last error if it happened during this wait (an older one is history)."""
    at = row.get("last_error_at")
    if row.get("last_error") and at is not None and at >= int(since):
        return str(row["last_error"])
    return None


def open_and_follow(
    client: Any, path: str, body: dict[str, Any], wait: bool, timeout: float, as_json: bool
) -> None:
    """POST an open to ``path`` and, with ``wait``, follow the opening until the channel is
    active, showing what it waits for and ending with its error if it fails meanwhile (a
    payment channel's open and an app channel's open alike)."""
    since = time.time() - 1
    started = call(lambda: client.post(path, body))
    result: dict[str, Any] = started
    if wait:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = call(lambda: client.get(f"/v1/channels/opening/{started['temp_id']}"))
            if result["status"] == "refused":
                raise CliError(f"the peer refused: {result.get('reason')}", "channel_failed")
            depth = ""
            if result.get("channel_id"):
                channel = call(lambda: client.get(f"/v1/channels/{result['channel_id']}"))
                failure = _failure(channel, since)
                if failure:
                    raise CliError(
                        f"channel {result['channel_id'][:16]}… failed: {failure}",
                        "channel_failed",
                        "chenilles channel show for more; abandon it if no funds left",
                    )
                if channel.get("confirmations"):
                    seen = channel["confirmations"]
                    depth = f" [{seen['have']} of {seen['need']} confirmations]"
            text = {
                "negotiating": "waiting for the peer to accept",
                "opening": result.get("waiting") or "funding on-chain, waiting for both deposits",
            }.get(result["status"], result["status"]) + depth
            return result["status"] == "active", text

        wait_until(progress, timeout, as_json)
    output(result, as_json)


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
    open_and_follow(client, "/v1/channels", body, wait, timeout, as_json)


@channel_group.command("close")
@click.argument("channel_id")
@click.option("--force", is_flag=True, help="Register on-chain without the peer.")
@click.option(
    "--wait/--no-wait",
    default=True,
    help="Wait until concluded and withdrawn (with --force: through the dispute).",
)
@click.option(
    "--timeout",
    type=float,
    help="Seconds to wait (default 120; with --force the challenge period + 300).",
)
@api_options
def channel_close(
    channel_id: str,
    force: bool,
    wait: bool,
    timeout: float | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Close a channel (cooperatively unless --force) and follow it until closed."""
    client = connect(config_path, api_url, token_file)
    since = time.time() - 1
    result = call(lambda: client.post(f"/v1/channels/{channel_id}/close", {"force": force}))
    if force and not as_json and result.get("deadline"):
        deadline = result["deadline"]
        click.echo(
            f"  registered version {deadline['registered_version']} on-chain (tx "
            f"{result.get('txid')}); the challenge period ends at chain time "
            f"{deadline['chain_time']}",
            err=True,
        )
    if wait:
        if timeout is None:
            timeout = 120.0
            if force:
                timeout = float(result.get("challenge_duration") or 600) + 300.0

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = call(lambda: client.get(f"/v1/channels/{channel_id}"))
            failure = _failure(result, since)
            if failure and not force:  # a dispute retries on every block: keep following
                raise CliError(
                    f"closing {channel_id[:16]}… failed: {failure}",
                    "channel_failed",
                    "the node tries again; chenilles channel close --force to go on-chain",
                )
            text = result.get("waiting") or result["status"]
            if result.get("peer_connected") is False and result["status"] != "disputed":
                text = f"{text} (the peer is not connected)"
            if force and failure:
                text = f"{text} [last error: {failure}]"
            return result["status"] == "closed", text

        wait_until(progress, timeout, as_json)
    if isinstance(result, dict) and "balances" in result:
        keep = ("channel_id", "status", "version", "balances", "receipts", "deadline", "txid")
        result = {k: result[k] for k in keep if k in result}
    output(result, as_json)


@channel_group.command("show")
@click.argument("channel_id")
@api_options
def channel_show(
    channel_id: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """One channel: balances, status, what it waits for, its last error."""
    client = connect(config_path, api_url, token_file)
    output(call(lambda: client.get(f"/v1/channels/{channel_id}")), as_json)


@channel_group.command("abandon")
@click.argument("channel_id")
@api_options
def channel_abandon(
    channel_id: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Give up an opening channel whose funds never left (checked on the chain).

    Refused (not_abandonable) if our deposit was sent or the chain holds any deposit for
    it: such a channel is closed (channel close --force), not abandoned."""
    client = connect(config_path, api_url, token_file)
    result = call(lambda: client.post(f"/v1/channels/{channel_id}/abandon"))
    output({k: result[k] for k in ("channel_id", "status", "peer", "chain")}, as_json)
