"""What is installed: the chain backends and the apps (entry points)."""

from __future__ import annotations

import json

import click

from .. import apps, plugins
from .output import output, table
from .remote import connect
from .root import main


@main.command("backends")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Ask this running node for its chains (accounts, balances) instead.",
)
def backends_command(as_json: bool, config_path: str | None) -> None:
    """List the installed chain backends (entry-point group ``chenilles.backends``), or with
    ``--config`` the chains of a running node."""
    if config_path is not None:
        rows = connect(config_path, None, None).get("/v1/backends")
        output(
            rows,
            as_json,
            [
                ("name", "name"),
                ("chain", "chain"),
                ("account", "account"),
                ("balances", lambda r: ", ".join(f"{v} {k}" for k, v in r["balances"].items())),
            ],
        )
        return
    factories = plugins.installed_backends(fresh=True)
    installed = [
        {
            "name": f.info.name,
            "family": f.info.family,
            "version": f.info.version,
            "chains": list(f.info.chains),
            "distribution": plugins.distribution_of(f.info.name) or "?",
            "description": f.info.description,
        }
        for f in factories
    ]
    if as_json:
        click.echo(json.dumps(installed, indent=2))
        return
    if not installed:
        click.echo("no backends installed (pip install chenilles-evm, chenilles-bitcoin, ...)")
        return
    table(installed, [(k, k) for k in ("name", "family", "version", "chains", "distribution")])


@main.command("apps")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def apps_command(as_json: bool) -> None:
    """List the installed apps (entry-point group ``chenilles.apps``): for each, the chain
    families it ships on-chain code for and the installed backends that can run it."""
    backends = plugins.installed_backends(fresh=True)
    installed = [
        {
            "name": p.info.name,
            "version": p.info.version,
            "families": list(p.info.families),
            "backends": [
                b.info.name
                for b in backends
                if b.info.supports_apps and b.info.family in p.info.families
            ],
            "distribution": apps.distribution_of(p.info.name) or "?",
            "description": p.info.description,
        }
        for p in apps.installed_apps(fresh=True)
    ]
    if as_json:
        click.echo(json.dumps(installed, indent=2))
        return
    if not installed:
        click.echo("no apps installed (pip install chenilles-app-tictactoe, ...)")
        return
    table(installed, [(k, k) for k in ("name", "version", "families", "backends", "distribution")])
