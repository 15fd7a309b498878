"""Support for the node-process tests: anvil, configs, real ``chenilles node start`` processes.

No tests here (pytest collects the module and finds none): the other ``test_server*``,
``test_cli*``, ``test_api*`` and ``test_crash*`` modules import these helpers and fixtures.
Every node process connects by URL to one anvil and one adjudicator deployed by the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chenilles_hub.devnet import ledgers
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.api.client import ApiCallError, NodeClient

REPO = Path(__file__).resolve().parents[2]
CHENILLES = [sys.executable, "-m", "chenilles_hub.cli"]
ETH = 10**18
CHAIN = "eip155:31337"
NATIVE = f"native@{CHAIN}"
#: The operator's consent for tests about something else: any challenge duration from 1 s,
#: and deposits into channels peers open up to 100 ETH.
CONSENTING = f"""
[policy.open]
min_challenge = 1

[[policy.open.deposit]]
asset = "{NATIVE}"
max = {100 * ETH}
"""


def free_port() -> int:
    """A port for a node process: outside the ephemeral range (``devnet.ledgers``), so no
    outgoing connection takes it before the node binds it."""
    return ledgers.free_port()


@dataclass
class AnvilChain:
    url: str
    adjudicator: str
    from_block: int
    keys: list[str]
    ledger: Any
    token: str = ""

    def key(self, index: int) -> str:
        return self.keys[index]

    def mine(self, blocks: int = 1) -> None:
        """Mine blocks at the node's clock (no time travel), as a chain with a block time
        would: deposits reach the confirmation depth the nodes wait for."""
        for _ in range(blocks):
            self.ledger.w3.provider.make_request("evm_mine", [])

    @contextlib.contextmanager
    def mining(self, interval: float = 0.1) -> Iterator[None]:
        """Blocks come by themselves while the body runs (a command that waits for a
        channel to open, in another process)."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                with contextlib.suppress(Exception):
                    self.mine()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilChain]:
    with anvil_chain() as chain:
        yield chain


@contextlib.contextmanager
def anvil_chain() -> Iterator[AnvilChain]:
    """An anvil process with the adjudicator deployed (also for scripts/crash_harness.py)."""
    from chenilles_evm.backend import connect_backend
    from chenilles_evm.ledgers import anvil_ledger

    ledger = anvil_ledger()
    try:
        url = ledger.url  # type: ignore[attr-defined]
        deployer = connect_backend(url, deploy=True)  # deploys the adjudicator once for every node
        address = deployer.adjudicator.address
        keys = ["0x" + bytes(a.key).hex() for a in ledger.accounts]
        token = next(a.token for a in deployer.assets() if a.token != "native")
        yield AnvilChain(url, address, int(ledger.w3.eth.block_number), keys, ledger, token)
    finally:
        ledger.stop()


@dataclass
class NodeProc:
    """One ``chenilles node start`` process and its config, data dir and API client."""

    name: str
    directory: Path
    identity: NodeIdentity
    listen_port: int
    api_port: int
    chain: AnvilChain
    account: int
    peers: list[NodeProc] = field(default_factory=list)
    extra: str = ""
    #: TOML appended after the peers (e.g. a [[policy.fees]] table)
    tail: str = ""
    #: How often the node polls its chain and announces itself: often, so tests are quick.
    timing: str = "tick_interval = 0.2\nannounce_interval = 0.3"
    #: The ``[chains.NAME]`` table(s), when not the anvil's (a devnet ledger's, say)
    chain_toml: str | None = None
    process: subprocess.Popen[bytes] | None = None
    log_handle: Any = None
    #: The API client, kept (with its connection, across restarts) while the port and
    #: token stay the same: what a script talking to a node does.
    client: NodeClient | None = None

    @property
    def node_id(self) -> str:
        return self.identity.node_id.hex()

    @property
    def config_path(self) -> Path:
        return self.directory / "hub.toml"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def write_config(self) -> None:
        peers = "".join(
            f'\n[[peers]]\nnode_id = "{p.node_id}"\naddress = "127.0.0.1:{p.listen_port}"\n'
            for p in self.peers
        )
        self.config_path.write_text(
            f"""
[node]
name = "{self.name}"
data_dir = "data"
listen = "127.0.0.1:{self.listen_port}"
{self.timing}
reconnect_min = 0.05
reconnect_max = 0.3
{self.extra}

[api]
listen = "127.0.0.1:{self.api_port}"

[log]
format = "json"
level = "INFO"

{self.chain_section()}
{peers}
{self.tail}"""
        )

    def chain_section(self) -> str:
        if self.chain_toml is not None:
            return self.chain_toml
        return f"""[chains.evm]
url = "{self.chain.url}"
account_key = "{self.chain.key(self.account)}"
adjudicator = "{self.chain.adjudicator}"
from_block = {self.chain.from_block}
tokens = ["{self.chain.token}"]
"""

    def start(self, wait: bool = True) -> None:
        self.write_config()
        self.log_handle = open(self.directory / "node.log", "ab")  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [*CHENILLES, "node", "start", "--config", str(self.config_path)],
            stdout=self.log_handle,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=env,
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds until the API says the node runs as leader."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n" + self.log_tail()
                )
            with contextlib.suppress(ApiCallError, OSError):
                health = NodeClient(f"http://127.0.0.1:{self.api_port}", "-", 2).get("/health")
                if health.get("role") == "leader":
                    return time.monotonic() - started
            time.sleep(0.02)
        raise TimeoutError(f"{self.name} not ready in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        path = self.directory / "node.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def api(self) -> NodeClient:
        token = (self.data_dir / "api.token").read_text().strip()
        url = f"http://127.0.0.1:{self.api_port}"
        client = self.client
        if client is None or (client.url, client.token) != (url, token):
            if client is not None:
                client.close()
            client = self.client = NodeClient(url, token, timeout=30)
        return client

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, no goodbye (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self._close_log()

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()
        return int(self.process.returncode or 0)

    def _close_log(self) -> None:
        if self.log_handle is not None:
            self.log_handle.close()
            self.log_handle = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*CHENILLES, *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"chenilles {' '.join(args)} failed:\n{result.stderr}")
        return result


def make_node(
    tmp_path: Path, name: str, chain: AnvilChain, account: int, extra: str = ""
) -> NodeProc:
    directory = tmp_path / name
    (directory / "data").mkdir(parents=True)
    identity = NodeIdentity()
    seed = directory / "data" / "identity.seed"
    seed.write_text(identity.seed.hex() + "\n")
    seed.chmod(0o600)
    return NodeProc(
        name, directory, identity, free_port(), free_port(), chain, account, extra=extra
    )


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(ApiCallError):
            last = condition()
            if last:
                return last
        time.sleep(0.03)
    raise TimeoutError(f"timed out waiting for {what or condition}: last {last!r}")


def connected(a: NodeProc, b: NodeProc) -> bool:
    return any(p["node_id"] == b.node_id and p["connected"] for p in a.api.get("/v1/peers"))


def open_channel(
    a: NodeProc, b: NodeProc, amount: int, remote: int = 0, challenge: int | None = None
) -> str:
    wait_for(lambda: connected(a, b), what=f"{a.name} connected to {b.name}")
    body: dict[str, Any] = {
        "peer": b.node_id,
        "asset": NATIVE,
        "amount": amount,
        "remote_amount": remote,
    }
    if challenge is not None:
        body["challenge_duration"] = challenge
    started = a.api.post("/v1/channels", body)

    def active() -> dict[str, Any] | None:
        result: dict[str, Any] = a.api.get(f"/v1/channels/opening/{started['temp_id']}")
        if result["status"] == "opening":
            a.chain.mine()  # the chain moves on: the deposits reach their depth
        return result if result["status"] == "active" else None

    result = wait_for(active, what="channel active")
    channel_id: str = result["channel_id"]

    def active_on_the_peer() -> bool:
        if b.api.get(f"/v1/channels/{channel_id}")["status"] == "active":
            return True
        a.chain.mine()
        return False

    wait_for(active_on_the_peer, what="active on the peer")
    return channel_id


def channel(node: NodeProc, channel_id: str) -> dict[str, Any]:
    result: dict[str, Any] = node.api.get(f"/v1/channels/{channel_id}")
    return result


def agreed(a: NodeProc, b: NodeProc, channel_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides idle on the same version with mirrored balances and no HTLCs left."""

    def check() -> tuple[dict[str, Any], dict[str, Any]] | None:
        ca, cb = channel(a, channel_id), channel(b, channel_id)
        if ca["version"] != cb["version"] or not (ca["idle"] and cb["idle"]):
            return None
        if ca["htlcs"] or cb["htlcs"]:
            return None
        for ba, bb in zip(ca["balances"], cb["balances"], strict=True):
            if (ba["local"], ba["remote"]) != (bb["remote"], bb["local"]):
                return None
        return ca, cb

    result: tuple[dict[str, Any], dict[str, Any]] = wait_for(check, what="both sides agree")
    return result


def pay(payer: NodeProc, payee: NodeProc, amount: int) -> dict[str, Any]:
    """Pay through the API; the node answers once the payment succeeded or failed."""
    invoice = payee.api.post("/v1/invoices", {"amount": amount, "asset": NATIVE})
    started = payer.api.post("/v1/payments", {"invoice": invoice["invoice"], "wait": True})
    if started["status"] != "pending":
        return started
    result: dict[str, Any] = wait_for(
        lambda: (
            (p := payer.api.get(f"/v1/payments/{started['payment_hash']}"))["status"] != "pending"
            and p
        ),
        what="payment done",
    )
    return result


@pytest.fixture(scope="module")
def channel_pair(
    anvil: AnvilChain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[NodeProc, NodeProc, str]]:
    """Alice and Bob (processes) with one active channel; Alice quotes native -> token."""
    base = tmp_path_factory.mktemp("pair")
    alice = make_node(base, "alice", anvil, 2)
    bob = make_node(base, "bob", anvil, 3)
    alice.peers = [bob]
    alice.tail = f"""
[[policy.rates]]
asset_in = "{NATIVE}"
asset_out = "{anvil.token}@{CHAIN}"
numerator = 2000
denominator = 1
"""
    try:
        bob.start(wait=False)
        alice.start(wait=False)
        bob.wait_ready()
        alice.wait_ready()
        yield alice, bob, open_channel(alice, bob, ETH)
    finally:
        alice.stop()
        bob.stop()
