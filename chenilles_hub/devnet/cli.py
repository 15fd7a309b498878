"""``chenilles devnet up | down | status | mine | advance``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .ledgers import (
    DevnetError,
    DevnetState,
    LedgerProcess,
    alive,
    devnet_backends,
    load_state,
    role_of,
    save_state,
    start,
    stop_pid,
)
from .nodes import write_configs

DEFAULT_ROOT = "devnet"
DEFAULT_NODES = "hub,alice,bob,carol"


def _root(path: str) -> Path:
    return Path(path).resolve()


@click.group("devnet")
def devnet() -> None:
    """Shared local ledgers as separate processes (each chain's real RPC), and node configs.

    \b
    chenilles devnet up                 # every installed chain with a devnet ledger
    chenilles node start --config devnet/nodes/hub/node.toml
    chenilles devnet mine --chain bitcoin 6
    chenilles devnet down
    """


def _specs(chains: str | None, evm_networks: int) -> list[tuple[str, str, int]]:
    """(name in configs, backend, index) of each ledger to run."""
    backends = [c.strip() for c in chains.split(",")] if chains else devnet_backends()
    specs: list[tuple[str, str, int]] = []
    for backend in backends:
        count = evm_networks if backend == "evm" else 1
        for index in range(count):
            specs.append((backend if index == 0 else f"{backend}-{index + 1}", backend, index))
    return specs


@devnet.command("up")
@click.option("--dir", "root", default=DEFAULT_ROOT, show_default=True, help="Devnet directory.")
@click.option("--chains", help="Comma-separated backends (default: every installed one).")
@click.option("--evm-networks", default=1, show_default=True, help="EVM ledgers to run.")
@click.option("--nodes", default=DEFAULT_NODES, show_default=True, help="Hub first, then users.")
@click.option("--block-time", default=1.0, show_default=True, help="Seconds between blocks.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def up(
    root: str, chains: str | None, evm_networks: int, nodes: str, block_time: float, as_json: bool
) -> None:
    """Start the ledgers (or keep those already running), provision them, write node configs."""
    where = _root(root)
    state = load_state(where)
    names = [n.strip() for n in nodes.split(",") if n.strip()]
    if len(names) < 2:
        raise click.UsageError("--nodes needs a hub and at least one user")
    running = {ledger.name: ledger for ledger in state.ledgers if alive(ledger.pid)}
    ledgers: list[LedgerProcess] = []
    try:
        for name, backend, index in _specs(chains, evm_networks):
            ledger = running.get(name) or start(where, name, backend, index, block_time=block_time)
            ledgers.append(ledger)
            state.ledgers = [*[x for x in state.ledgers if x.name != name], ledger]
            save_state(where, state)  # a later failure still leaves this one findable
        for ledger in ledgers:
            role = role_of(ledger.backend)
            ledger.provisioned = role.devnet_provision(
                ledger.url, ledger.datadir, len(names), block_time
            )
        paths = write_configs(where, names, ledgers)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    state.nodes = names
    save_state(where, state)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ledgers": [{"name": x.name, "url": x.url, "pid": x.pid} for x in ledgers],
                    "nodes": {n: str(p) for n, p in paths.items()},
                },
                indent=2,
            )
        )
        return
    for ledger in ledgers:
        chain = ledger.provisioned.chain if ledger.provisioned else "?"
        click.echo(f"{ledger.name:10} {chain:28} {ledger.url}  pid {ledger.pid}")
    for name, path in paths.items():
        click.echo(f"node {name:6} chenilles node start --config {path}")


@devnet.command("down")
@click.option("--dir", "root", default=DEFAULT_ROOT, show_default=True)
@click.option("--purge", is_flag=True, help="Also delete the ledgers' data and node configs.")
def down(root: str, purge: bool) -> None:
    """Stop every ledger of the devnet (their chains are kept unless --purge)."""
    where = _root(root)
    state = load_state(where)
    for ledger in state.ledgers:
        if alive(ledger.pid):
            stop_pid(ledger.pid)
            click.echo(f"stopped {ledger.name} (pid {ledger.pid})")
    if purge:
        import shutil

        shutil.rmtree(where / "ledgers", ignore_errors=True)
        shutil.rmtree(where / "nodes", ignore_errors=True)
        save_state(where, DevnetState())
        click.echo(f"removed {where}/ledgers and {where}/nodes")


@devnet.command("status")
@click.option("--dir", "root", default=DEFAULT_ROOT, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def status(root: str, as_json: bool) -> None:
    """The devnet's ledgers (running or not) and node configs."""
    where = _root(root)
    state = load_state(where)
    rows = [
        {
            "name": x.name,
            "backend": x.backend,
            "chain": x.provisioned.chain if x.provisioned else None,
            "url": x.url,
            "pid": x.pid,
            "running": alive(x.pid) and role_of(x.backend).devnet_ready(x.url),
        }
        for x in state.ledgers
    ]
    nodes = {n: str(where / "nodes" / n / "node.toml") for n in state.nodes}
    if as_json:
        click.echo(json.dumps({"ledgers": rows, "nodes": nodes}, indent=2))
        return
    if not rows:
        click.echo(f"no devnet in {where} (chenilles devnet up)")
    for row in rows:
        flag = "up" if row["running"] else "DOWN"
        click.echo(f"{row['name']:10} {flag:4} {row['chain'] or '?':28} {row['url']}")
    for name, path in nodes.items():
        click.echo(f"node {name:6} {path}")


def _ledgers(root: str, chain: str | None) -> list[LedgerProcess]:
    state = load_state(_root(root))
    chosen = [x for x in state.ledgers if chain is None or x.name == chain]
    if not chosen:
        raise click.ClickException(f"no devnet ledger {chain or ''} in {_root(root)}".strip())
    down = [x.name for x in chosen if not alive(x.pid)]
    if down:
        raise click.ClickException(f"not running: {', '.join(down)} (chenilles devnet up)")
    return chosen


@devnet.command("mine")
@click.argument("blocks", type=click.IntRange(1, 10_000), default=1)
@click.option("--dir", "root", default=DEFAULT_ROOT, show_default=True)
@click.option("--chain", help="One ledger (default: all).")
def mine(blocks: int, root: str, chain: str | None) -> None:
    """Produce BLOCKS blocks now on each ledger (or one)."""
    for ledger in _ledgers(root, chain):
        role_of(ledger.backend).devnet_mine(ledger.url, ledger.datadir, blocks)
        click.echo(f"{ledger.name}: mined {blocks}")


@devnet.command("advance")
@click.argument("seconds", type=click.IntRange(1, 10 * 365 * 86400))
@click.option("--dir", "root", default=DEFAULT_ROOT, show_default=True)
@click.option("--chain", help="One ledger (default: all).")
def advance(seconds: int, root: str, chain: str | None) -> None:
    """Move each ledger's clock SECONDS ahead (challenge periods, HTLC expiries)."""
    for ledger in _ledgers(root, chain):
        try:
            role_of(ledger.backend).devnet_advance(ledger.url, ledger.datadir, seconds)
        except ValueError as exc:
            click.echo(f"{ledger.name}: not advanced: {exc}", err=True)
            continue
        click.echo(f"{ledger.name}: advanced {seconds} s")
