"""``chenilles node`` (start, stop, info) and ``chenilles peers``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time

import click

from .output import output, short
from .remote import api_options, call, connect
from .root import PROCESS_START, main


@main.group("node")
def node_group() -> None:
    """Run and control a hub node."""


@node_group.command("start")
@click.option(
    "--config",
    "config_path",
    envvar="CHENILLES_CONFIG",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The node's config (TOML).",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Override log.format.")
def node_start(config_path: str, log_format: str | None) -> None:
    """Run the node in the foreground until SIGTERM / SIGINT / `chenilles node stop`."""
    import asyncio

    from ..node.config import ConfigError, load_config
    from ..node.runtime.logs import setup_logging
    from ..node.runtime.server import HubServer

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(log_format or config.log_format, config.log_level, config.log_file)
    logging.getLogger("chenilles.server").info(
        "process up; imports took %.2fs", time.monotonic() - PROCESS_START
    )
    try:
        server = HubServer(config)
        code = asyncio.run(server.run())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@node_group.command("stop")
@click.option(
    "--config",
    "config_path",
    envvar="CHENILLES_CONFIG",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait.")
def node_stop(config_path: str, timeout: float) -> None:
    """Stop a running node: through its API, else SIGTERM to the pid in its data dir."""
    from ..node.api.client import ApiCallError, NodeClient
    from ..node.config import ConfigError, load_config

    config = load_config(config_path)
    pid: int | None = None
    with contextlib.suppress(OSError, ValueError):
        pid = int(config.pid_file.read_text().strip())
    try:
        tls = str(config.cert_path) if config.api_uses_tls else None
        NodeClient(config.api_url, config.read_token(), timeout=5, cafile=tls).post("/v1/stop")
    except (ApiCallError, ConfigError, OSError) as exc:
        if pid is None:
            raise click.ClickException(
                f"the node does not answer ({exc}) and has no pid file"
            ) from None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            click.echo("not running (stale pid file)")
            return
    if pid is not None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # The node removes its pid file as the last step of a graceful stop.
            if not config.pid_file.exists():
                break
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise click.ClickException(f"process {pid} still runs after {timeout:.0f}s")
    click.echo("stopped")


@node_group.command("info")
@api_options
def node_info(
    config_path: str | None, api_url: str | None, token_file: str | None, as_json: bool
) -> None:
    """Node id, addresses, chains and counts."""
    client = connect(config_path, api_url, token_file)
    output(call(lambda: client.get("/v1/info")), as_json)


@main.command("peers")
@api_options
def peers_command(
    config_path: str | None, api_url: str | None, token_file: str | None, as_json: bool
) -> None:
    """Configured and connected peers."""
    client = connect(config_path, api_url, token_file)
    rows = call(lambda: client.get("/v1/peers"))
    output(
        rows,
        as_json,
        [
            ("node", lambda r: short(r["node_id"])),
            ("address", "address"),
            ("connected", "connected"),
            ("edges", "announced_edges"),
        ],
    )
