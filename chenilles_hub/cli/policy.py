"""``chenilles policy``: the hub's fees and conversion rates, shown and changed while it
runs (persisted by the node; no restart)."""

from __future__ import annotations

from typing import Any

import click

from .output import output, table
from .remote import api_options, call, connect
from .root import main


@main.group("policy")
def policy_group() -> None:
    """Fees and conversion rates of this hub.

    \b
    Fees are charged on what the hub sends: BASE base units plus PPM millionths of the
    amount. Base units are the chain's smallest unit: wei (1e-18 ETH), sat (1e-8 BTC),
    lamport (1e-9 SOL), a token's smallest unit. Rates are written in whole units:
    `--rate 0.05` from ETH to BTC means 1 ETH buys 0.05 BTC; the node turns it into a
    fraction of base units with each asset's decimals."""


def _show(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output(result, True)
        return
    click.echo("fees (charged on what the hub sends):")
    if result["fees"]:
        table(result["fees"], [("asset", "asset"), ("base (base units)", "base"), ("ppm", "ppm")])
    else:
        click.echo("  (none: forwarding is free)")
    click.echo("rates (whole units of asset_out per whole unit of asset_in):")
    if result["rates"]:
        table(
            result["rates"],
            [
                ("asset in", "asset_in"),
                ("asset out", "asset_out"),
                ("rate", "rate"),
                ("base units", lambda r: f"{r['numerator']}/{r['denominator']}"),
            ],
        )
    else:
        click.echo("  (none: this hub converts nothing)")


@policy_group.command("show")
@api_options
def policy_show(
    config_path: str | None, api_url: str | None, token_file: str | None, as_json: bool
) -> None:
    """The fees and rates in force."""
    client = connect(config_path, api_url, token_file)
    _show(call(lambda: client.get("/v1/policy")), as_json)


@policy_group.command("fee")
@click.option("--asset", required=True, help="The asset sent (token@chain).")
@click.option("--base", default=0, show_default=True, type=int, help="Base units per forward.")
@click.option(
    "--ppm", default=0, show_default=True, type=int, help="Millionths of the amount sent."
)
@api_options
def policy_fee(
    asset: str,
    base: int,
    ppm: int,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Set the fee for forwarding ASSET: BASE base units + PPM millionths of the amount."""
    client = connect(config_path, api_url, token_file)
    body = {"asset": asset, "base": base, "ppm": ppm}
    _show(call(lambda: client.post("/v1/policy/fees", body)), as_json)


@policy_group.command("rate")
@click.option("--in", "asset_in", required=True, help="What the hub receives (token@chain).")
@click.option("--out", "asset_out", required=True, help="What the hub sends (token@chain).")
@click.option("--rate", help="Whole units of --out per whole unit of --in, e.g. 0.05.")
@click.option("--numerator", type=int, help="Or the base-unit fraction: numerator ...")
@click.option("--denominator", type=int, help="... and denominator (out = in * n / d).")
@click.option("--remove", is_flag=True, help="Stop converting this pair.")
@api_options
def policy_rate(
    asset_in: str,
    asset_out: str,
    rate: str | None,
    numerator: int | None,
    denominator: int | None,
    remove: bool,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Set (or --remove) the rate at which the hub converts --in into --out."""
    body: dict[str, Any] = {"asset_in": asset_in, "asset_out": asset_out}
    if remove:
        body["remove"] = True
    elif rate is not None:
        body["rate"] = rate
    elif numerator is not None and denominator is not None:
        body["numerator"], body["denominator"] = numerator, denominator
    else:
        raise click.UsageError("give --rate (whole units), or --numerator and --denominator")
    client = connect(config_path, api_url, token_file)
    _show(call(lambda: client.post("/v1/policy/rates", body)), as_json)
