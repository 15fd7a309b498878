"""``chenilles node`` (start, stop, info) and ``chenilles peers``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time

import click

from .errors import CliError
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
    """Run the node in the foreground until SIGTERM / SIGINT / `chenilles node stop`.

    Every start-up failure (the config, a port in use, a chain that does not answer, a
    missing adjudicator) ends the process with one ``Error:`` line naming the cause."""
    import asyncio

    from ..node.config import ConfigError, load_config
    from ..node.runtime.logs import setup_logging
    from ..node.runtime.server import HubServer

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise CliError(str(exc), "config") from None
    setup_logging(log_format or config.log_format, config.log_level, config.log_file)
    log = logging.getLogger("chenilles.server")
    log.info("process up; imports took %.2fs", time.monotonic() - PROCESS_START)
    server: HubServer | None = None
    try:
        server = HubServer(config)
        code = asyncio.run(server.run())
    except ConfigError as exc:
        log.error("cannot start: %s", exc)
        raise CliError(str(exc), "startup") from None
    except Exception as exc:
        if server is not None and server.role != "starting":
            log.exception("the node failed")  # a bug while serving: the log keeps the cause
            raise CliError(f"the node failed: {type(exc).__name__}: {exc}", "error") from None
        log.debug("start-up failed", exc_info=True)
        raise CliError(f"cannot start: {type(exc).__name__}: {exc}", "startup") from None
    sys.exit(code)


@node_group.command("check")
@click.option(
    "--config",
    "config_path",
    envvar="CHENILLES_CONFIG",
    required=True,
    type=click.Path(dir_okay=False),
    help="The node's config (TOML).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def node_check(config_path: str, as_json: bool) -> None:
    """Validate a config without starting the node: its keys and values, the data dir, the
    ports, and every chain (reached over its RPC: the chain id, our account and balance,
    the adjudicator or program the node would use)."""
    from ..node.config import ConfigError, load_config
    from .check import check_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise CliError(str(exc), "config") from None
    report = check_config(config)
    if report["problems"]:
        if not as_json:
            output({k: v for k, v in report.items() if k != "problems"}, False)
        raise CliError("; ".join(report["problems"]), "check_failed")
    output(report, as_json)


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

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise CliError(str(exc), "config") from None
    pid: int | None = None
    with contextlib.suppress(OSError, ValueError):
        pid = int(config.pid_file.read_text().strip())
    try:
        tls = str(config.cert_path) if config.api_uses_tls else None
        NodeClient(config.api_url, config.read_token(), timeout=5, cafile=tls).post("/v1/stop")
    except (ApiCallError, ConfigError, OSError) as exc:
        if pid is None:
            raise CliError(
                f"the node does not answer ({exc}) and has no pid file", "not_running"
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
            raise CliError(f"process {pid} still runs after {timeout:.0f}s", "timeout")
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
