"""``chenilles wallet``: the node's own on-chain accounts (balance, coins, send)."""

from __future__ import annotations

from typing import Any

import click

from .output import output
from .remote import api_options, call, connect
from .root import main


@main.group("wallet")
def wallet_group() -> None:
    """The node's on-chain accounts: what they hold outside channels, and sending from them.

    Amounts are integers in base units (wei, sat, lamport; a token's smallest unit)."""


def whole(amount: int | None, decimals: int | None) -> str:
    """``amount`` base units in whole units, exactly (``1500000000000000000`` at 18 -> 1.5)."""
    if amount is None:
        return "?"
    if not decimals:
        return str(amount)
    digits = str(amount).rjust(decimals + 1, "0")
    text = f"{digits[:-decimals]}.{digits[-decimals:]}".rstrip("0").rstrip(".")
    return text


@wallet_group.command("balance")
@click.option("--chain", help="Only this chain (CAIP-2, e.g. eip155:31337).")
@api_options
def wallet_balance(
    chain: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Balance per chain and asset (base units, and whole units where decimals are known)."""
    client = connect(config_path, api_url, token_file)
    rows: list[dict[str, Any]] = call(lambda: client.get("/v1/wallet"))
    if chain:
        rows = [r for r in rows if r["chain"] == chain]
    if as_json:
        output(rows, True)
        return
    flat = [
        {
            **a,
            "chain": r["chain"],
            "address": r["address"],
            "whole": whole(a["balance"], a["decimals"]),
        }
        for r in rows
        for a in r["assets"]
    ]
    output(
        flat,
        False,
        [
            ("chain", "chain"),
            ("asset", "asset"),
            ("balance (base units)", "balance"),
            ("whole units", "whole"),
            ("address", "address"),
        ],
    )


@wallet_group.command("coins")
@click.option("--chain", required=True, help="A UTXO chain (bip122:...).")
@api_options
def wallet_coins(
    chain: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """The unspent outputs (coins) of the node's Bitcoin wallet."""
    client = connect(config_path, api_url, token_file)
    from urllib.parse import quote

    rows = call(lambda: client.get(f"/v1/wallet/coins?chain={quote(chain)}"))
    output(
        rows,
        as_json,
        [
            ("txid", "txid"),
            ("vout", "vout"),
            ("value (sat)", "value"),
            ("height", "height"),
            ("spendable", "spendable"),
        ],
    )


@wallet_group.command("send")
@click.option("--chain", help="The chain (CAIP-2); defaults to the asset's.")
@click.option("--asset", required=True, help="token@chain, or a token on --chain (native).")
@click.option("--to", "to", required=True, help="The receiving address, in the chain's notation.")
@click.option(
    "--amount", required=True, type=int, help="Base units (wei, sat, lamport), not whole units."
)
@api_options
def wallet_send(
    chain: str | None,
    asset: str,
    to: str,
    amount: int,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Send AMOUNT base units of ASSET to an address. Refused, with nothing sent, above the
    account's balance; the chain's fee comes on top."""
    if "@" not in asset:
        if not chain:
            raise click.UsageError("give --asset as token@chain, or --chain with it")
        asset = f"{asset}@{chain}"
    elif chain and not asset.endswith("@" + chain):
        raise click.UsageError(f"--asset {asset} is not on --chain {chain}")
    client = connect(config_path, api_url, token_file)
    body = {"asset": asset, "to": to, "amount": amount}
    result = call(lambda: client.post("/v1/wallet/send", body))
    if as_json:
        output(result, True)
        return
    click.echo(f"sent {result['amount']} {result['asset']} to {result['to']}")
    click.echo(f"txid {result['txid']}  fee {result['fee']} {result['fee_asset']}")
