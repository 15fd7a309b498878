"""Talking to a running node: its API client from the config, the shared options, errors
turned into one ``Error:`` line, and polling until something is done."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import CliError


def connect(config_path: str | None, api_url: str | None, token_file: str | None) -> Any:
    from ..node.api.client import NodeClient
    from ..node.config import ConfigError, load_config

    if api_url and token_file:
        try:
            return NodeClient(api_url, Path(token_file).read_text().strip())
        except OSError as exc:
            raise CliError(f"cannot read the token file: {exc}", "config") from None
    if not config_path:
        raise click.UsageError("give --config hub.toml (or set CHENILLES_CONFIG)")
    try:
        config = load_config(config_path)
        url = api_url or config.api_url
        cafile = str(config.cert_path) if url.startswith("https:") else None
        if cafile is not None and not config.cert_path.exists():
            raise ConfigError(
                f"the API uses TLS but its certificate {cafile} is missing: start the node "
                "once, or copy its api.cert there"
            )
        return NodeClient(url, config.read_token(), cafile=cafile)
    except ConfigError as exc:
        raise CliError(str(exc), "config") from None


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


def call(fn: Callable[[], Any]) -> Any:
    from ..node.api.client import ApiCallError

    try:
        return fn()
    except ApiCallError as exc:
        raise CliError(str(exc), exc.code, exc.hint) from None


def wait_until(
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
            raise CliError(f"gave up waiting after {timeout:.0f}s ({text})", "timeout")
        time.sleep(interval)


def json_option(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.UsageError(f"{what} is JSON, e.g. '{{\"cell\": 4}}': {exc}") from None
    if not isinstance(value, dict):
        raise click.UsageError(f"{what} is a JSON object")
    return value
