"""``chenilles node check``: everything a start would check, without starting.

The config is parsed (unknown keys, types, bounds), the policy's assets read, the data dir
and both ports looked at, and every chain connected exactly as ``node start`` would (the
backend's keys, the RPC, the adjudicator or program, the account key), then closed. What
is found is reported (chain id, account, balance, on-chain code in use); every problem is
one line, and the command fails if there is any.
"""

from __future__ import annotations

import inspect
import os
import socket
from pathlib import Path
from typing import Any

from ..node.config import ConfigError, NodeConfig


def _port_problem(key: str, host: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return f"{key} = {host}:{port}: cannot listen there: {exc.strerror or exc}"
    return None


def _node_running(config: NodeConfig) -> bool:
    try:
        pid = int(config.pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _data_dir_problem(path: Path) -> str | None:
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"node.data_dir = {path}: not writable by this user"
    return None


def _resume_problems(config: NodeConfig) -> list[str]:
    """A URL chain whose backend's ``connect`` cannot take ``from_block`` works on a first
    start and is unavailable after every restart (the node will not resume its event feed
    without it): say so now. Read from the signature; a backend taking ``**options`` that
    refuses it anyway is found at the restart (``node info``, unavailable_chains)."""
    from .. import plugins

    problems = []
    for chain in config.chains:
        if chain.embedded:
            continue
        try:
            connect = plugins.backend(chain.backend).connect
            parameters = inspect.signature(connect).parameters.values()
        except (plugins.UnknownBackend, TypeError, ValueError):
            continue  # reported by build_chains, or not introspectable
        if not any(
            p.name == "from_block" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
        ):
            problems.append(
                f"[chains.{chain.name}]: the {chain.backend} backend's connect() does not take "
                "from_block, so after a restart the node cannot resume this chain's event feed "
                "and leaves the chain unavailable: install a version of the backend that takes "
                "it (docs/writing-a-backend.md)"
            )
    return problems


def check_config(config: NodeConfig) -> dict[str, Any]:
    from ..node.api.operations import chain_summary
    from ..node.runtime.bootstrap import (
        build_chains,
        build_member_stakes,
        build_open_policy,
        build_policy,
        stake_problems,
    )

    problems: list[str] = []
    notes: list[str] = []
    report: dict[str, Any] = {
        "config": str(config.path),
        "name": config.name,
        "data_dir": str(config.data_dir),
        "listen": f"{config.listen_host}:{config.listen_port}",
        "api": f"{config.api_host}:{config.api_port}",
        "store": config.store,
    }
    for step in (build_policy, build_open_policy, build_member_stakes):
        try:
            step(config)
        except ConfigError as exc:
            problems.append(str(exc))
    problem = _data_dir_problem(config.data_dir)
    if problem:
        problems.append(problem)
    running = _node_running(config)
    for key, host, port in (
        ("node.listen", config.listen_host, config.listen_port),
        ("api.listen", config.api_host, config.api_port),
    ):
        problem = _port_problem(key, host, port)
        if problem and running:
            notes.append(f"{problem} (the node runs: its own port)")
        elif problem:
            problems.append(problem)
    problems += _resume_problems(config)
    chains_found: list[dict[str, Any]] = []
    try:
        chains = build_chains(config)
    except ConfigError as exc:
        problems.append(str(exc))
    else:
        try:
            try:
                problems += stake_problems(config, chains)
            except ConfigError as exc:
                problems.append(str(exc))
            for name, chain in chains.names.items():
                backend, account = chains.backends[chain], chains.accounts[chain]
                found = chain_summary(backend, account, name)
                balances: dict[str, int | str] = {}
                for asset in backend.assets():
                    try:
                        balances[str(asset)] = backend.balance(account, asset)
                    except Exception as exc:  # a chain that answers partly: say what failed
                        balances[str(asset)] = f"unknown: {exc}"[:200]
                found["balances"] = balances
                chains_found.append(found)
        finally:
            chains.close()
    report["chains"] = chains_found
    report["notes"] = notes
    report["problems"] = problems
    report["ok"] = not problems
    return report
