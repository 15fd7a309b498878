"""``chenilles deploy BACKEND``: put a backend's on-chain code on a chain, print what a node
config must pin, and optionally write it into node configs.

Deploying is the operator's explicit act, done once per chain: nodes never deploy on their
own (one that did would open channels on a contract no peer knows). A backend offers it
through an optional ``deploy(url, key, **options) -> dict`` method of its plugin factory,
returning the ``[chains.NAME]`` keys to pin (``adjudicator``, ``tokens``, ``from_block``...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import tomlkit

from . import plugins


def pin_in_config(path: Path, chain: str, values: dict[str, Any]) -> None:
    """Set ``values`` in ``[chains.<chain>]`` of the config at ``path``, keeping the rest of
    the file (comments, order) as it was."""
    document = tomlkit.parse(path.read_text())
    chains = document.setdefault("chains", tomlkit.table())
    if chain not in chains:
        raise click.ClickException(f"{path} has no [chains.{chain}] table")
    for key, value in values.items():
        chains[chain][key] = value
    path.write_text(tomlkit.dumps(document))


@click.command("deploy")
@click.argument("backend")
@click.option("--url", required=True, help="The chain's RPC endpoint.")
@click.option(
    "--key-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="File holding the deployer's private key (it pays the fees).",
)
@click.option(
    "--config",
    "configs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Node config(s) to pin the deployment in (repeatable).",
)
@click.option("--chain", "chain_name", help="The [chains.NAME] table to write (default: BACKEND).")
@click.option("--json", "as_json", is_flag=True)
def deploy_command(
    backend: str,
    url: str,
    key_file: str,
    configs: tuple[str, ...],
    chain_name: str | None,
    as_json: bool,
) -> None:
    """Deploy BACKEND's contracts on the chain at --url and print the addresses to pin."""
    try:
        factory = plugins.backend(backend)
    except plugins.UnknownBackend as exc:
        raise click.ClickException(str(exc)) from None
    deploy = getattr(factory, "deploy", None)
    if deploy is None:
        raise click.ClickException(f"the {backend} backend has nothing to deploy")
    key = Path(key_file).read_text().strip()
    try:
        pinned: dict[str, Any] = deploy(url, key)
    except Exception as exc:  # the chain refused, or is not there: say so in one line
        raise click.ClickException(f"deploying on {url} failed: {exc}") from None
    for config in configs:
        pin_in_config(Path(config), chain_name or backend, pinned)
    if as_json:
        click.echo(json.dumps(pinned, indent=2))
        return
    for key_name, value in pinned.items():
        click.echo(f"{key_name} = {json.dumps(value)}")
    for config in configs:
        click.echo(f"pinned in {config} [chains.{chain_name or backend}]")
