"""``chenilles app``: channels that run an app."""

from __future__ import annotations

import click

from .channels import open_and_follow
from .output import output
from .remote import api_options, call, connect, json_option
from .root import main


@main.group("app")
def app_group() -> None:
    """Channels that run an app (``chenilles apps`` lists the installed ones)."""


@app_group.command("open")
@click.argument("app")
@click.option("--peer", required=True, help="The peer's node id (hex).")
@click.option("--asset", required=True, help="token@chain, e.g. native@eip155:31337.")
@click.option("--amount", required=True, type=int, help="Our deposit (base units).")
@click.option("--remote-amount", default=0, type=int, help="The peer's deposit.")
@click.option(
    "--challenge", default=600, type=int, show_default=True, help="Challenge period (seconds)."
)
@click.option("--options", "options", help="The app's opening options as JSON, e.g. '{\"x\": 0}'.")
@click.option("--wait/--no-wait", default=True, help="Wait until the channel is active.")
@click.option("--timeout", default=120.0, show_default=True)
@api_options
def app_open(
    app: str,
    peer: str,
    asset: str,
    amount: int,
    remote_amount: int,
    challenge: int,
    options: str | None,
    wait: bool,
    timeout: float,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Open a channel running APP with a connected peer, from the app's opening options."""
    client = connect(config_path, api_url, token_file)
    body = {
        "peer": peer,
        "asset": asset,
        "amount": amount,
        "remote_amount": remote_amount,
        "challenge_duration": challenge,
        "options": json_option(options, "--options"),
    }
    open_and_follow(client, f"/v1/apps/{app}/channels", body, wait, timeout, as_json)


@app_group.command("show")
@click.argument("channel_id")
@api_options
def app_show(
    channel_id: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """The channel's app: its state, whose turn it is, its dispute on-chain if any."""
    client = connect(config_path, api_url, token_file)
    output(call(lambda: client.get(f"/v1/channels/{channel_id}/app")), as_json)


@app_group.command("move")
@click.argument("channel_id")
@click.argument("move")
@api_options
def app_move(
    channel_id: str,
    move: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Make MOVE (the app's JSON, e.g. '{"cell": 4}') in the channel's app: proposed to the
    peer, or forced on-chain during a dispute."""
    client = connect(config_path, api_url, token_file)
    body = {"move": json_option(move, "MOVE")}
    output(call(lambda: client.post(f"/v1/channels/{channel_id}/app/moves", body)), as_json)
