"""The root ``chenilles`` group; every command module adds itself to it."""

from __future__ import annotations

import time

import click

#: when the process started, for the node's "imports took" line
PROCESS_START = time.monotonic()


@click.group()
@click.version_option(package_name="chenilles-hub")
def main() -> None:
    """Chenilles: generalized state channels and a cross-chain payment hub."""
