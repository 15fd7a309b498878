"""Devnet tests: `chenilles devnet up` in a temporary directory, and real node processes
started from the configs it wrote. Every ledger is a separate process speaking its chain's
real RPC; nothing is shared in memory between nodes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chenilles_hub.node.api.client import ApiCallError, NodeClient
from tests.node.test_server_harness import wait_for

CHENILLES = [sys.executable, "-m", "chenilles_hub.cli"]


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

    def node(self, name: str) -> DevnetNode:
        return DevnetNode(name, Path(self.info["nodes"][name]))

    def url(self, ledger: str) -> str:
        return next(x["url"] for x in self.info["ledgers"] if x["name"] == ledger)


@dataclass
class DevnetNode:
    name: str
    config_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> dict[str, Any]:
        return tomllib.loads(self.config_path.read_text())

    @property
    def directory(self) -> Path:
        return self.config_path.parent

    @property
    def api_url(self) -> str:
        return "http://" + self.config["api"]["listen"]

    @property
    def api(self) -> NodeClient:
        token = (self.directory / "data" / "api.token").read_text().strip()
        return NodeClient(self.api_url, token, timeout=60)

    @property
    def node_id(self) -> str:
        node_id: str = NodeClient(self.api_url, "-", 5).get("/health")["node_id"]
        return node_id

    def start(self, timeout: float = 60) -> None:
        log = (self.directory / "node.log").open("ab")
        self.process = subprocess.Popen(
            [*CHENILLES, "node", "start", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            with contextlib.suppress(ApiCallError, OSError):
                if NodeClient(self.api_url, "-", 2).get("/health").get("role") == "leader":
                    return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        path = self.directory / "node.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return chenilles(*args, "--config", str(self.config_path), check=check)


def connected(a: DevnetNode, b: DevnetNode) -> bool:
    peer = b.node_id
    return any(p["node_id"] == peer and p["connected"] for p in a.api.get("/v1/peers"))


def open_channel(a: DevnetNode, b: DevnetNode, asset: str, amount: int, timeout: float = 90) -> str:
    """``a`` opens a channel with ``b`` in ``asset``, funded by ``a``; waits until active."""
    wait_for(lambda: connected(a, b), what=f"{a.name} connected to {b.name}")
    started = a.api.post("/v1/channels", {"peer": b.node_id, "asset": asset, "amount": amount})
    result = wait_for(
        lambda: (
            (r := a.api.get(f"/v1/channels/opening/{started['temp_id']}"))["status"] == "active"
            and r
        ),
        timeout=timeout,
        what=f"channel {a.name}-{b.name} active",
    )
    channel_id: str = result["channel_id"]
    wait_for(
        lambda: b.api.get(f"/v1/channels/{channel_id}")["status"] == "active",
        timeout=timeout,
        what="active on the peer",
    )
    return channel_id


def pay(payer: DevnetNode, payee: DevnetNode, amount: int, asset: str) -> dict[str, Any]:
    invoice = payee.api.post("/v1/invoices", {"amount": amount, "asset": asset})
    started: dict[str, Any] = wait_for(
        lambda: payer.api.post("/v1/payments", {"invoice": invoice["invoice"], "wait": True}),
        what="a route to the payee (announcements)",
    )
    if started["status"] != "pending":
        return started
    result: dict[str, Any] = wait_for(
        lambda: (
            (p := payer.api.get(f"/v1/payments/{started['payment_hash']}"))["status"] != "pending"
            and p
        ),
        timeout=90,
        what="payment done",
    )
    return result
