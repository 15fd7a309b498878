"""``chenilles peer connect`` / ``disconnect``: the peers the node dials, kept across
restarts (``chenilles peers`` lists them)."""

from __future__ import annotations

import click

from .output import output
from .remote import api_options, call, connect
from .root import main


@main.group("peer")
def peer_group() -> None:
    """Connect to or disconnect from a peer (persisted: survives a restart)."""


@peer_group.command("connect")
@click.argument("target", metavar="NODE_ID@HOST:PORT")
@api_options
def peer_connect(
    target: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Dial NODE_ID at HOST:PORT now and after every restart, until `peer disconnect`."""
    node_id, at, address = target.partition("@")
    if not at or not node_id or not address:
        raise click.UsageError("give the peer as NODE_ID@HOST:PORT (node id in 64 hex digits)")
    client = connect(config_path, api_url, token_file)
    body = {"node_id": node_id, "address": address}
    output(call(lambda: client.post("/v1/peers", body)), as_json)


@peer_group.command("disconnect")
@click.argument("node_id")
@api_options
def peer_disconnect(
    node_id: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Close the link to NODE_ID and stop dialling it (removed from the persisted peers; a
    peer listed in the config file is dialled again at the next start)."""
    client = connect(config_path, api_url, token_file)
    output(call(lambda: client.post(f"/v1/peers/{node_id}/disconnect")), as_json)
