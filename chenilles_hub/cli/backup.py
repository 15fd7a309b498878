"""``chenilles backup``: export the static channel backup, look into one, restore one.

``export`` asks the running node (API) for its sealed backup and writes it (0600).
``show`` and ``restore`` work offline on the node's data directory, with the node's own
identity (only it opens the backup): ``restore`` needs the node stopped and a store that
does not know the channels (a fresh node); the node, started afterwards, closes each
restored channel (docs/operating-a-hub.md, "Backups").
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import click

from .output import Column, output, short
from .remote import api_options, call, connect
from .root import main

_COLUMNS: list[Column] = [
    ("channel", lambda r: short(r["channel_id"])),
    ("chain", "chain"),
    ("peer", lambda r: short(r["peer"])),
    ("status", "status"),
    ("version", "version"),
]


@main.group("backup")
def backup_group() -> None:
    """Static channel backups: export, show, restore."""


@backup_group.command("export")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="File.")
@api_options
def backup_export(
    out: str, config_path: str | None, api_url: str | None, token_file: str | None, as_json: bool
) -> None:
    """Write the node's encrypted channel backup to --out (mode 0600)."""
    from ..node.hub.backup import write_file

    client = connect(config_path, api_url, token_file)
    result = call(lambda: client.get("/v1/backup"))
    write_file(Path(out).resolve(), base64.b64decode(result["backup"]))
    summary = {"file": str(Path(out).resolve()), "channels": result["channels"]}
    if as_json:
        output(summary, True)
        return
    click.echo(f"wrote {len(result['channels'])} channel(s) to {summary['file']}")
    if result["channels"]:
        output(result["channels"], False, _COLUMNS)


def _open(config_path: str, file: str) -> tuple[Any, Any]:
    """The config and the backup opened with the node's identity."""
    from ..node.config import ConfigError, load_config
    from ..node.hub.backup import BackupError, unseal
    from ..node.runtime.bootstrap import load_identity

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not config.identity_file.exists():
        raise click.ClickException(
            f"no node identity at {config.identity_file}: a backup opens only with the "
            "identity seed of the node that made it (restore that file first)"
        )
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from None
    try:
        return config, unseal(data, load_identity(config.identity_file))
    except (BackupError, ConfigError) as exc:
        raise click.ClickException(f"{file}: {exc}") from None


_CONFIG = click.option(
    "--config",
    "config_path",
    envvar="CHENILLES_CONFIG",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The node's config (its identity opens the backup).",
)


@backup_group.command("show")
@click.argument("file", type=click.Path(dir_okay=False))
@_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def backup_show(file: str, config_path: str, as_json: bool) -> None:
    """What a backup holds (it must be this node's)."""
    from ..node.hub.backup import summary

    _, backup = _open(config_path, file)
    output(summary(backup), as_json, _COLUMNS)


@backup_group.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@_CONFIG
@click.option(
    "--force-after",
    default=120,
    show_default=True,
    type=click.IntRange(0, 365 * 86400),
    help="Seconds after the node starts to register a channel's state on chain if the peer "
    "has not closed it with us by then.",
)
@click.option("--cooperative-only", is_flag=True, help="Never register on chain.")
@click.option(
    "--backup-is-current",
    is_flag=True,
    help="Vouch that no payment happened since the backup: chains that punish old states "
    "(Bitcoin) may then be force-closed too.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def backup_restore(
    file: str,
    config_path: str,
    force_after: int,
    cooperative_only: bool,
    backup_is_current: bool,
    as_json: bool,
) -> None:
    """Restore a backup into a fresh node (stopped, empty store); start the node next:
    it closes every restored channel and the funds return on chain."""
    from ..node.config import ConfigError
    from ..node.hub.backup import BackupError, restore_into, summary
    from ..node.runtime.bootstrap import open_store
    from ..node.store.base import StoreError

    config, backup = _open(config_path, file)
    try:
        store = open_store(config)
    except (StoreError, ConfigError, OSError) as exc:
        raise click.ClickException(f"cannot open the store (is the node running?): {exc}") from None
    try:
        restore_into(
            store,
            backup,
            int(time.time()),
            -1 if cooperative_only else force_after,
            backup_is_current,
        )
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    rows = summary(backup)
    if as_json:
        output({"restored": rows}, True)
        return
    click.echo(f"restored {len(rows)} channel(s); start the node to close them")
    if rows:
        output(rows, False, _COLUMNS)
