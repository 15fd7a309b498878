"""Ready-made node configs for a devnet: a hub and a few users, each with an account on every
devnet ledger, the users dialling the hub, the hub quoting every pair of assets.

What is written is an ordinary node config (docs/operating-a-hub.md): the devnet only saves
the operator the typing. Account keys live in files of mode 0600 beside the config.
"""

from __future__ import annotations

import os
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from ..identity import NodeIdentity
from .ledgers import LedgerProcess, free_port
from .role import DevnetAsset

HUB = "hub"


def _secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode() + b"\n")
    finally:
        os.close(fd)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def rate_between(a: DevnetAsset, b: DevnetAsset) -> tuple[int, int]:
    """How many base units of ``b`` one base unit of ``a`` buys, as numerator/denominator,
    from the reference prices (whole units) and the decimals."""
    ratio = (
        Fraction(Decimal(a.reference_price))
        / Fraction(Decimal(b.reference_price))
        * Fraction(10**b.decimals, 10**a.decimals)
    )
    return ratio.numerator, ratio.denominator


def write_configs(root: Path, names: list[str], ledgers: list[LedgerProcess]) -> dict[str, Path]:
    """One ``nodes/<name>/node.toml`` per name (the first is the hub). Returns the paths."""
    identities: dict[str, NodeIdentity] = {}
    ports: dict[str, tuple[int, int]] = {}
    for name in names:
        data = root / "nodes" / name / "data"
        seed_file = data / "identity.seed"
        if seed_file.exists():
            identities[name] = NodeIdentity.from_seed(bytes.fromhex(seed_file.read_text()))
        else:
            identities[name] = NodeIdentity()
            _secret(seed_file, identities[name].seed.hex())
        ports[name] = (free_port(), free_port())
    hub = names[0]
    paths: dict[str, Path] = {}
    for position, name in enumerate(names):
        home = root / "nodes" / name
        listen, api = ports[name]
        lines = [
            "# Written by `chenilles devnet up`: an ordinary node config (operating-a-hub.md).",
            "[node]",
            f'name = "{name}"',
            'data_dir = "data"',
            f'listen = "127.0.0.1:{listen}"',
            "tick_interval = 0.5",
            "",
            "[api]",
            f'listen = "127.0.0.1:{api}"',
            "",
        ]
        if name != hub:
            hub_listen = ports[hub][0]
            lines += [
                "[[peers]]",
                f'node_id = "{identities[hub].node_id.hex()}"',
                f'address = "127.0.0.1:{hub_listen}"',
                "",
            ]
        for ledger in ledgers:
            chain = ledger.provisioned
            if chain is None:
                continue
            key_file = f"{ledger.name}.key"
            _secret(home / key_file, chain.accounts[position])
            lines += [
                f"[chains.{ledger.name}]",
                f'backend = "{ledger.backend}"',
                f'url = "{chain.url}"',
                f'account_key_file = "{key_file}"',
                *(f"{k} = {_toml_value(v)}" for k, v in sorted(chain.options.items())),
                "",
            ]
        lines += [
            "[policy.open]",
            "# A devnet's disputes may last seconds (a real network's should not: the default",
            "# is 600 s at least). Channels peers open are funded by them alone (the default).",
            "min_challenge = 1",
            "",
        ]
        if name == hub:
            lines += _hub_policy(ledgers)
        path = home / "node.toml"
        path.write_text("\n".join(lines))
        paths[name] = path
    return paths


def _hub_policy(ledgers: list[LedgerProcess]) -> list[str]:
    """The hub quotes every pair of assets on different chains, at the reference prices,
    and charges 1 base unit + 0.1 % on what it sends."""
    assets = {
        text: info
        for ledger in ledgers
        if ledger.provisioned is not None
        for text, info in ledger.provisioned.assets.items()
    }
    lines: list[str] = []
    for text in sorted(assets):
        lines += ["[[policy.fees]]", f'asset = "{text}"', "base = 1", "ppm = 1000", ""]
    for a in sorted(assets):
        for b in sorted(assets):
            if a.rpartition("@")[2] == b.rpartition("@")[2]:
                continue
            numerator, denominator = rate_between(assets[a], assets[b])
            lines += [
                "[[policy.rates]]",
                f"# 1 {assets[a].symbol} = {assets[a].reference_price}/"
                f"{assets[b].reference_price} {assets[b].symbol}",
                f'asset_in = "{a}"',
                f'asset_out = "{b}"',
                f"numerator = {numerator}",
                f"denominator = {denominator}",
                "",
            ]
    return lines
