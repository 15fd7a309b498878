"""The demo and the developer's tools: ``demo``, ``devnet``, ``deploy``."""

from __future__ import annotations

import sys

import click

from .root import main


@main.command("demo")
@click.option(
    "--processes",
    is_flag=True,
    help="Separate node processes over the devnet ledgers (each chain's real RPC).",
)
@click.option("--dir", "directory", help="With --processes: the devnet directory to use.")
@click.option("--keep", is_flag=True, help="With --processes: leave the ledgers running.")
@click.option("--block-time", default=1.0, show_default=True, help="With --processes.")
def demo_command(processes: bool, directory: str | None, keep: bool, block_time: float) -> None:
    """Run the end-to-end demo on the embedded ledgers (or, with --processes, as node
    processes over the devnet)."""
    if processes:
        from ..devnet.demo import demo_processes

        sys.exit(demo_processes(directory, keep, block_time))
    from ..demo import run_demo

    sys.exit(run_demo())


def register_tools() -> None:
    from ..deploy import deploy_command
    from ..devnet.cli import devnet

    main.add_command(deploy_command)
    main.add_command(devnet)


register_tools()
