"""Node processes for scripts: start ``chenilles node start`` from a config, talk to its API,
wait for what matters (a channel active, a payment done, both sides agreeing).

What the processes demo, the devnet tests and an operator's own scripts share. Nothing here
reaches into a node: every step goes through its HTTP API, as an operator's would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..node.api.client import ApiCallError, NodeClient

T = TypeVar("T")
CHENILLES = [sys.executable, "-m", "chenilles_hub.cli"]


def wait_for(condition: Callable[[], T], timeout: float = 60.0, what: str = "") -> T:
    """Poll ``condition`` until it returns something true (an API error counts as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(ApiCallError):
            last = condition()
            if last:
                return last  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what or condition}: last {last!r}")


@dataclass(eq=False)
class NodeProcess:
    """One ``chenilles node start`` process, from its config file."""

    name: str
    config_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: The API client, kept (with its connection) while the URL and token stay the same.
    _client: NodeClient | None = field(default=None, repr=False)

    @property
    def config(self) -> dict[str, Any]:
        return tomllib.loads(self.config_path.read_text())

    @property
    def directory(self) -> Path:
        return self.config_path.parent

    @property
    def api_url(self) -> str:
        listen: str = self.config["api"]["listen"]
        return "http://" + listen

    @property
    def api(self) -> NodeClient:
        token = (self.directory / "data" / "api.token").read_text().strip()
        client = self._client
        if client is None or (client.url, client.token) != (self.api_url, token):
            if client is not None:
                client.close()
            client = self._client = NodeClient(self.api_url, token, timeout=60)
        return client

    @property
    def node_id(self) -> str:
        node_id: str = NodeClient(self.api_url, "-", 5).get("/health")["node_id"]
        return node_id

    @property
    def listen(self) -> str:
        address: str = self.config["node"]["listen"]
        return address

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
        """SIGKILL: no goodbye, nothing flushed (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        path = self.directory / "node.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # --- what operators do, through the API -------------------------------------------------

    def wallet(self, asset: str) -> int:
        """The on-chain balance of ``asset`` (token@chain) in this node's account."""
        chain = asset.rpartition("@")[2]
        row = next(b for b in self.api.get("/v1/backends") if b["chain"] == chain)
        return int(row["balances"][asset])

    def channel(self, channel_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.api.get(f"/v1/channels/{channel_id}")
        return view

    def connected_to(self, other: NodeProcess) -> bool:
        peer = other.node_id
        return any(p["node_id"] == peer and p["connected"] for p in self.api.get("/v1/peers"))

    def connect(self, other: NodeProcess, timeout: float = 30) -> None:
        if not self.connected_to(other):
            self.api.post("/v1/peers", {"node_id": other.node_id, "address": other.listen})
        wait_for(lambda: self.connected_to(other), timeout, f"{self.name} -> {other.name}")

    def open_channel(
        self,
        peer: NodeProcess,
        asset: str,
        amount: int,
        *,
        challenge: int = 600,
        timeout: float = 120,
    ) -> str:
        """Open a channel funded by this node and wait until both sides call it active."""
        self.connect(peer)
        started = self.api.post(
            "/v1/channels",
            {
                "peer": peer.node_id,
                "asset": asset,
                "amount": amount,
                "challenge_duration": challenge,
            },
        )
        opened = wait_for(
            lambda: (
                (r := self.api.get(f"/v1/channels/opening/{started['temp_id']}"))["status"]
                == "active"
                and r
            ),
            timeout,
            f"channel {self.name}-{peer.name} active",
        )
        channel_id: str = opened["channel_id"]
        wait_for(lambda: peer.channel(channel_id)["status"] == "active", timeout, "active there")
        return channel_id

    def pay(self, payee: NodeProcess, amount: int, asset: str, timeout: float = 120) -> Any:
        """Pay an invoice ``payee`` issues; wait for the outcome."""
        invoice = payee.api.post("/v1/invoices", {"amount": amount, "asset": asset})
        started = wait_for(
            lambda: self.api.post("/v1/payments", {"invoice": invoice["invoice"], "wait": True}),
            timeout,
            f"a route from {self.name} to {payee.name}",
        )
        if started["status"] != "pending":
            return started
        return wait_for(
            lambda: (
                (p := self.api.get(f"/v1/payments/{started['payment_hash']}"))["status"]
                != "pending"
                and p
            ),
            timeout,
            "the payment done",
        )

    def wait_closed(self, channel_id: str, timeout: float = 240) -> dict[str, Any]:
        return wait_for(
            lambda: (c := self.channel(channel_id))["status"] == "closed" and c,
            timeout,
            f"{channel_id[:8]} closed on {self.name}",
        )


def expected_wallet_changes(
    channel_id: str, parties: list[tuple[NodeProcess, int]], funder: NodeProcess
) -> dict[str, int]:
    """What each party's wallet must have gained from a closed channel: its net change in
    the channel (final balance - deposit), less the fees it paid from its wallet and the rent
    it locked (its receipts), less, for the funder, the fees paid out of the channel's funds
    (Bitcoin's commitment and closing transactions, whoever broadcast them)."""
    receipts = {n.name: n.channel(channel_id)["receipts"] for n, _ in parties}
    from_channel = {
        r["txid"]: r["fee"] for rs in receipts.values() for r in rs if r["fee_from_channel"]
    }
    result = {}
    for node, change in parties:
        own = sum(r["fee"] + r["rent"] for r in receipts[node.name] if not r["fee_from_channel"])
        result[node.name] = change - own - (sum(from_channel.values()) if node is funder else 0)
    return result
