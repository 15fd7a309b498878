"""The ``chenilles`` command line.

``chenilles node start`` runs a node in the foreground (for systemd, a container, or a
terminal); every other node command talks to a running node's local HTTP API, found
through the node's config file (``--config``, or ``$CHENILLES_CONFIG``): its API address
and token file. Output is a human-readable table; ``--json`` prints what the API returned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from . import apps, plugins

_PROCESS_START = time.monotonic()


@click.group()
@click.version_option(package_name="chenilles-hub")
def main() -> None:
    """Chenilles: generalized state channels and a cross-chain payment hub."""


# === installed backends and the demo ===========================================================


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
        rows = _client(config_path, None, None).get("/v1/backends")
        _output(
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
    _table(installed, [(k, k) for k in ("name", "family", "version", "chains", "distribution")])


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
    _table(installed, [(k, k) for k in ("name", "version", "families", "backends", "distribution")])


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
        from .devnet.demo import demo_processes

        sys.exit(demo_processes(directory, keep, block_time))
    from .demo import run_demo

    sys.exit(run_demo())


def _register_tools() -> None:
    from .deploy import deploy_command
    from .devnet.cli import devnet

    main.add_command(deploy_command)
    main.add_command(devnet)


_register_tools()


# === output helpers ============================================================================

Column = tuple[str, "str | Callable[[dict[str, Any]], object]"]


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    cells = [
        [_cell(col(row) if callable(col) else row.get(col)) for _, col in columns] for row in rows
    ]
    widths = [
        max(len(title), *(len(c[i]) for c in cells)) if cells else len(title)
        for i, (title, _) in enumerate(columns)
    ]
    click.echo("  ".join(t.upper().ljust(w) for (t, _), w in zip(columns, widths, strict=True)))
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _output(data: Any, as_json: bool, columns: Sequence[Column] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    elif columns is not None and isinstance(data, list):
        if not data:
            click.echo("(none)")
        else:
            _table(data, columns)
    elif isinstance(data, dict):
        width = max((len(k) for k in data), default=0)
        for key, value in data.items():
            if isinstance(value, dict | list):
                value = json.dumps(value)
            click.echo(f"{key.ljust(width)}  {value}")
    else:
        click.echo(data)


def _short(value: str | None, n: int = 16) -> str:
    return "" if not value else (value if len(value) <= n else value[:n] + "…")


# === talking to a node =========================================================================


def _client(config_path: str | None, api_url: str | None, token_file: str | None) -> Any:
    from .node.api.client import NodeClient
    from .node.config import ConfigError, load_config

    if api_url and token_file:
        return NodeClient(api_url, Path(token_file).read_text().strip())
    if not config_path:
        raise click.UsageError("give --config hub.toml (or set CHENILLES_CONFIG)")
    try:
        config = load_config(config_path)
        return NodeClient(api_url or config.api_url, config.read_token())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def api_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--config``, ``--api-url``, ``--token-file`` and ``--json`` for every API command."""
    fn = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)
    fn = click.option("--token-file", type=click.Path(dir_okay=False), help="API token file.")(fn)
    fn = click.option("--api-url", help="Node API URL (default: from the config).")(fn)
    fn = click.option(
        "--config",
        "config_path",
        envvar="CHENILLES_CONFIG",
        type=click.Path(dir_okay=False),
        help="The node's config file ($CHENILLES_CONFIG).",
    )(fn)
    return fn


def _call(fn: Callable[[], Any]) -> Any:
    from .node.api.client import ApiCallError

    try:
        return fn()
    except ApiCallError as exc:
        raise click.ClickException(str(exc)) from None


def _wait(
    describe: Callable[[], tuple[bool, str]], timeout: float, quiet: bool, interval: float = 0.2
) -> None:
    """Poll until ``describe()`` says done, showing its progress text as it changes."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        done, text = describe()
        if text != last and not quiet:
            click.echo(f"  ... {text}", err=True)
            last = text
        if done:
            return
        if time.monotonic() > deadline:
            raise click.ClickException(f"gave up waiting after {timeout:.0f}s ({text})")
        time.sleep(interval)


# === chenilles node ============================================================================


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

    from .node.config import ConfigError, load_config
    from .node.runtime.logs import setup_logging
    from .node.runtime.server import HubServer

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(log_format or config.log_format, config.log_level, config.log_file)
    logging.getLogger("chenilles.server").info(
        "process up; imports took %.2fs", time.monotonic() - _PROCESS_START
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
    from .node.api.client import ApiCallError, NodeClient
    from .node.config import ConfigError, load_config

    config = load_config(config_path)
    pid: int | None = None
    with contextlib.suppress(OSError, ValueError):
        pid = int(config.pid_file.read_text().strip())
    try:
        NodeClient(config.api_url, config.read_token(), timeout=5).post("/v1/stop")
    except (ApiCallError, ConfigError) as exc:
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
    client = _client(config_path, api_url, token_file)
    _output(_call(lambda: client.get("/v1/info")), as_json)


@main.command("peers")
@api_options
def peers_command(
    config_path: str | None, api_url: str | None, token_file: str | None, as_json: bool
) -> None:
    """Configured and connected peers."""
    client = _client(config_path, api_url, token_file)
    rows = _call(lambda: client.get("/v1/peers"))
    _output(
        rows,
        as_json,
        [
            ("node", lambda r: _short(r["node_id"])),
            ("address", "address"),
            ("connected", "connected"),
            ("edges", "announced_edges"),
        ],
    )


# === chenilles channel ========================================================================


@main.group("channel")
def channel_group() -> None:
    """Open, close and list channels."""


def _channel_columns() -> list[Column]:
    def balance(side: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: ", ".join(f"{b[side]} {b['asset']}" for b in r["balances"])

    return [
        ("channel", lambda r: _short(r["channel_id"])),
        ("peer", lambda r: _short(r["peer"], 12)),
        ("status", "status"),
        ("version", "version"),
        ("local", balance("local")),
        ("remote", balance("remote")),
        ("htlcs", lambda r: len(r["htlcs"])),
    ]


@channel_group.command("list")
@click.option("--status", help="Only channels in this status (active, closed, ...).")
@api_options
def channel_list(
    status: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Channels with their balances."""
    client = _client(config_path, api_url, token_file)
    path = "/v1/channels" + (f"?status={status}" if status else "")
    _output(_call(lambda: client.get(path)), as_json, _channel_columns())


@channel_group.command("open")
@click.option("--peer", required=True, help="The peer's node id (hex).")
@click.option("--asset", required=True, help="token@chain, e.g. native@eip155:31337.")
@click.option("--amount", required=True, type=int, help="Our deposit (base units).")
@click.option("--remote-amount", default=0, type=int, help="The peer's deposit.")
@click.option(
    "--challenge", default=600, type=int, show_default=True, help="Challenge period (seconds)."
)
@click.option("--wait/--no-wait", default=True, help="Wait until the channel is active.")
@click.option("--timeout", default=120.0, show_default=True)
@api_options
def channel_open(
    peer: str,
    asset: str,
    amount: int,
    remote_amount: int,
    challenge: int,
    wait: bool,
    timeout: float,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Open a channel with a connected peer and fund our side on-chain."""
    client = _client(config_path, api_url, token_file)
    body = {
        "peer": peer,
        "asset": asset,
        "amount": amount,
        "remote_amount": remote_amount,
        "challenge_duration": challenge,
    }
    started = _call(lambda: client.post("/v1/channels", body))
    result: dict[str, Any] = started
    if wait:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = _call(lambda: client.get(f"/v1/channels/opening/{started['temp_id']}"))
            if result["status"] == "refused":
                raise click.ClickException(f"the peer refused: {result.get('reason')}")
            text = {
                "negotiating": "waiting for the peer to accept",
                "opening": result.get("waiting") or "funding on-chain, waiting for both deposits",
            }.get(result["status"], result["status"])
            return result["status"] == "active", text

        _wait(progress, timeout, as_json)
    _output(result, as_json)


@channel_group.command("close")
@click.argument("channel_id")
@click.option("--force", is_flag=True, help="Register on-chain without the peer.")
@click.option("--wait/--no-wait", default=True, help="Wait until settled on-chain.")
@click.option("--timeout", default=120.0, show_default=True)
@api_options
def channel_close(
    channel_id: str,
    force: bool,
    wait: bool,
    timeout: float,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Close a channel (cooperatively unless --force)."""
    client = _client(config_path, api_url, token_file)
    result = _call(lambda: client.post(f"/v1/channels/{channel_id}/close", {"force": force}))
    if wait and not force:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = _call(lambda: client.get(f"/v1/channels/{channel_id}"))
            text = {
                "active": "waiting for the peer to sign the final state",
                "closing": "settling on-chain",
            }.get(result["status"], result["status"])
            return result["status"] == "closed", text

        _wait(progress, timeout, as_json)
    if isinstance(result, dict) and "balances" in result:
        result = {k: result[k] for k in ("channel_id", "status", "version", "balances", "receipts")}
    _output(result, as_json)


# === invoices and payments ====================================================================


@main.command("invoice")
@click.option("--amount", required=True, type=int, help="Amount in base units.")
@click.option("--asset", required=True, help="token@chain.")
@click.option("--ttl", default=3600, type=int, show_default=True, help="Seconds valid.")
@click.option("--description", default="")
@api_options
def invoice_command(
    amount: int,
    asset: str,
    ttl: int,
    description: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Create an invoice; prints the string to give the payer."""
    client = _client(config_path, api_url, token_file)
    body = {"amount": amount, "asset": asset, "ttl": ttl, "description": description}
    result = _call(lambda: client.post("/v1/invoices", body))
    if as_json:
        _output(result, True)
    else:
        click.echo(result["invoice"])


def _route_body(invoice: str, max_lock: int | None, source_asset: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"invoice": invoice}
    if max_lock is not None:
        body["max_lock"] = max_lock
    if source_asset:
        body["source_asset"] = source_asset
    return body


def _route_columns() -> list[Column]:
    return [
        ("hop", lambda r: _short(r["to"], 12)),
        ("channel", lambda r: _short(r["channel_id"])),
        ("amount", "amount"),
        ("asset", "asset"),
        ("lock (s)", "lock_seconds"),
    ]


@main.command("route")
@click.argument("invoice")
@click.option("--max-lock", type=int, help="Longest lock of our funds (seconds).")
@click.option("--source-asset", help="Pay with this asset (token@chain).")
@api_options
def route_command(
    invoice: str,
    max_lock: int | None,
    source_asset: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Show the route a payment of INVOICE would take (nothing is paid)."""
    client = _client(config_path, api_url, token_file)
    result = _call(lambda: client.post("/v1/route", _route_body(invoice, max_lock, source_asset)))
    if as_json:
        _output(result, True)
        return
    _table(result["hops"], _route_columns())
    click.echo(f"total sent: {result['sent']} {result['sent_asset']}")


@main.command("pay")
@click.argument("invoice")
@click.option("--max-lock", type=int, help="Longest lock of our funds (seconds).")
@click.option("--source-asset", help="Pay with this asset (token@chain).")
@click.option("--wait/--no-wait", default=True, help="Wait until it succeeds or fails.")
@click.option("--timeout", default=120.0, show_default=True)
@api_options
def pay_command(
    invoice: str,
    max_lock: int | None,
    source_asset: str | None,
    wait: bool,
    timeout: float,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Pay INVOICE along the cheapest route."""
    client = _client(config_path, api_url, token_file)
    result = _call(
        lambda: client.post("/v1/payments", _route_body(invoice, max_lock, source_asset))
    )
    payment_hash = result["payment_hash"]
    if wait:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = _call(lambda: client.get(f"/v1/payments/{payment_hash}"))
            return result["status"] != "pending", f"payment {result['status']}"

        _wait(progress, timeout, as_json, interval=0.05)
    _output(result, as_json)
    if result["status"] == "failed":
        sys.exit(1)


@main.command("payments")
@click.option("--status", help="pending, succeeded or failed.")
@api_options
def payments_command(
    status: str | None,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Payments this node started."""
    client = _client(config_path, api_url, token_file)
    path = "/v1/payments" + (f"?status={status}" if status else "")
    _output(
        _call(lambda: client.get(path)),
        as_json,
        [
            ("payment", lambda r: _short(r["payment_hash"])),
            ("status", "status"),
            ("amount", "amount"),
            ("asset", "asset"),
            ("sent", "sent"),
            ("reason", "reason"),
        ],
    )


@main.command("quote")
@click.option("--asset-in", required=True, help="What we would pay the hub (token@chain).")
@click.option("--asset-out", required=True, help="What the hub would send (token@chain).")
@click.option("--amount-out", required=True, type=int, help="Amount out (base units).")
@api_options
def quote_command(
    asset_in: str,
    asset_out: str,
    amount_out: int,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """A signed, short-lived rate quote from this hub."""
    client = _client(config_path, api_url, token_file)
    body = {"asset_in": asset_in, "asset_out": asset_out, "amount_out": amount_out}
    _output(_call(lambda: client.post("/v1/quote", body)), as_json)


# === app channels ==============================================================================


def _json_option(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.UsageError(f"{what} is JSON, e.g. '{{\"cell\": 4}}': {exc}") from None
    if not isinstance(value, dict):
        raise click.UsageError(f"{what} is a JSON object")
    return value


@main.group("app")
def app_group() -> None:
    """Channels that run an app (``chenilles apps`` lists the installed ones)."""


@app_group.command("open")
@click.argument("app")
@click.option("--peer", required=True, help="The peer's node id (hex).")
@click.option("--asset", required=True, help="token@chain, e.g. native@eip155:31337.")
@click.option("--amount", required=True, type=int, help="Our deposit (base units).")
@click.option("--remote-amount", default=0, type=int, help="The peer's deposit.")
@click.option(
    "--challenge", default=600, type=int, show_default=True, help="Challenge period (seconds)."
)
@click.option("--options", "options", help="The app's opening options as JSON, e.g. '{\"x\": 0}'.")
@click.option("--wait/--no-wait", default=True, help="Wait until the channel is active.")
@click.option("--timeout", default=120.0, show_default=True)
@api_options
def app_open(
    app: str,
    peer: str,
    asset: str,
    amount: int,
    remote_amount: int,
    challenge: int,
    options: str | None,
    wait: bool,
    timeout: float,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Open a channel running APP with a connected peer, from the app's opening options."""
    client = _client(config_path, api_url, token_file)
    body = {
        "peer": peer,
        "asset": asset,
        "amount": amount,
        "remote_amount": remote_amount,
        "challenge_duration": challenge,
        "options": _json_option(options, "--options"),
    }
    started = _call(lambda: client.post(f"/v1/apps/{app}/channels", body))
    result: dict[str, Any] = started
    if wait:

        def progress() -> tuple[bool, str]:
            nonlocal result
            result = _call(lambda: client.get(f"/v1/channels/opening/{started['temp_id']}"))
            if result["status"] == "refused":
                raise click.ClickException(f"the peer refused: {result.get('reason')}")
            return result["status"] == "active", result["status"]

        _wait(progress, timeout, as_json)
    _output(result, as_json)


@app_group.command("show")
@click.argument("channel_id")
@api_options
def app_show(
    channel_id: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """The channel's app: its state, whose turn it is, its dispute on-chain if any."""
    client = _client(config_path, api_url, token_file)
    _output(_call(lambda: client.get(f"/v1/channels/{channel_id}/app")), as_json)


@app_group.command("move")
@click.argument("channel_id")
@click.argument("move")
@api_options
def app_move(
    channel_id: str,
    move: str,
    config_path: str | None,
    api_url: str | None,
    token_file: str | None,
    as_json: bool,
) -> None:
    """Make MOVE (the app's JSON, e.g. '{"cell": 4}') in the channel's app: proposed to the
    peer, or forced on-chain during a dispute."""
    client = _client(config_path, api_url, token_file)
    body = {"move": _json_option(move, "MOVE")}
    _output(_call(lambda: client.post(f"/v1/channels/{channel_id}/app/moves", body)), as_json)


if __name__ == "__main__":
    main()
