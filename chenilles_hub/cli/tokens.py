"""``chenilles token``: scoped API tokens (readonly, invoices, admin), like lnd's macaroons.

A token is shown once, when created; the node keeps only its digest. Give a shop's web
server an ``invoices`` token, a dashboard a ``readonly`` one; ``revoke`` ends one at once.
"""

from __future__ import annotations

import click

from .output import output
from .remote import api_options, call, connect
from .root import main


@main.group("token")
def token_group() -> None:
    """Scoped API tokens: create, list, revoke."""


@token_group.command("create")
@click.option(
    "--scope",
    required=True,
    type=click.Choice(["readonly", "invoices", "admin"]),
    help="readonly: views only; invoices: views and creating invoices; admin: everything.",
)
@click.option("--label", default="", help="What the token is for (shown in the list).")
@api_options
def token_create(
    scope: str,
    label: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Create a token (printed once: store it now)."""
    client = connect(config_path, api_url, token_file)
    result = call(lambda: client.post("/v1/tokens", {"scope": scope, "label": label}))
    if as_json:
        output(result, True)
    else:
        click.echo(result["token"])
        click.echo(f"id {result['id']}, scope {result['scope']} (shown once)", err=True)


@token_group.command("list")
@api_options
def token_list(
    config_path: str | None, api_url: str | None, token_file: str | None, as_json: bool
) -> None:
    """The tokens created (never their secrets)."""
    client = connect(config_path, api_url, token_file)
    rows = call(lambda: client.get("/v1/tokens"))
    output(
        rows,
        as_json,
        [("id", "id"), ("scope", "scope"), ("label", "label"), ("created", "created_at")],
    )


@token_group.command("revoke")
@click.argument("token_id")
@api_options
def token_revoke(
    token_id: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Revoke a token by its id: it is refused from now on."""
    client = connect(config_path, api_url, token_file)
    output(call(lambda: client.request("DELETE", f"/v1/tokens/{token_id}")), as_json)
