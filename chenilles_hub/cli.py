"""The ``chenilles`` command line."""

from __future__ import annotations

import json
import sys

import click

from . import plugins


@click.group()
@click.version_option(package_name="chenilles-hub")
def main() -> None:
    """Chenilles: generalized state channels and a cross-chain payment hub."""


@main.command("backends")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def backends_command(as_json: bool) -> None:
    """List the installed chain backends (entry-point group ``chenilles.backends``)."""
    factories = plugins.installed_backends(fresh=True)
    rows = [
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
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no backends installed (pip install chenilles-evm, chenilles-bitcoin, ...)")
        return
    widths = {
        key: max(len(key), *(len(_cell(r[key])) for r in rows))
        for key in ("name", "family", "version", "chains", "distribution")
    }
    header = "  ".join(key.upper().ljust(w) for key, w in widths.items())
    click.echo(header)
    for row in rows:
        click.echo("  ".join(_cell(row[key]).ljust(w) for key, w in widths.items()))


def _cell(value: object) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


@main.command("demo")
def demo_command() -> None:
    """Run the end-to-end demo on the embedded ledgers."""
    from .demo import run_demo

    sys.exit(run_demo())


if __name__ == "__main__":
    main()
