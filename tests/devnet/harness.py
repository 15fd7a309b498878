"""Devnet tests: `chenilles devnet up` in a temporary directory, and real node processes
started from the configs it wrote (chenilles_hub.devnet.processes). Every ledger is a
separate process speaking its chain's real RPC; nothing is shared in memory between nodes."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chenilles_hub.devnet.processes import CHENILLES, NodeProcess

DevnetNode = NodeProcess


def chenilles(
    *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CHENILLES, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"chenilles {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


@dataclass
class Devnet:
    root: Path
    info: dict[str, Any]

    @classmethod
    def up(cls, root: Path, *args: str) -> Devnet:
        out = chenilles("devnet", "up", "--dir", str(root), "--json", *args)
        return cls(root, json.loads(out.stdout))

    def down(self) -> None:
        chenilles("devnet", "down", "--dir", str(self.root), check=False)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(
            chenilles("devnet", "status", "--dir", str(self.root), "--json").stdout
        )
        return result

    def node(self, name: str) -> NodeProcess:
        return NodeProcess(name, Path(self.info["nodes"][name]))

    def url(self, ledger: str) -> str:
        url: str = next(x["url"] for x in self.info["ledgers"] if x["name"] == ledger)
        return url


def open_channel(a: NodeProcess, b: NodeProcess, asset: str, amount: int) -> str:
    return a.open_channel(b, asset, amount)


def pay(payer: NodeProcess, payee: NodeProcess, amount: int, asset: str) -> dict[str, Any]:
    result: dict[str, Any] = payer.pay(payee, amount, asset)
    return result
