"""EVM ledgers for tests and the demo: eth-tester (py-evm, in process) and anvil.

Both give a :class:`Ledger`: a ``web3.Web3`` connected to a real EVM, a list of
funded accounts whose keys we know (they are also unlocked on the node, so
``transact({"from": addr})`` works), and time control.

Neither is a mock: eth-tester runs py-evm, anvil runs revm.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint

#: anvil's default mnemonic (its first accounts are funded with 10,000 ETH).
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"

_REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Ledger:
    """A running EVM ledger.

    ``kind`` is ``"ethtester"`` or ``"anvil"``; ``accounts`` are funded and unlocked.
    """

    kind: str
    w3: Web3
    accounts: list[LocalAccount]
    _time_travel: Callable[[int], None]
    _stop: Callable[[], None] = field(default=lambda: None)

    def now(self) -> int:
        """Timestamp of the latest block (what the contract saw last)."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def time_travel(self, timestamp: int) -> None:
        """Mine a block whose timestamp is exactly ``timestamp`` (must be in the future)."""
        if timestamp <= self.now():
            raise ValueError(f"cannot travel back: {timestamp} <= {self.now()}")
        self._time_travel(timestamp)

    def advance(self, seconds: int) -> int:
        """Mine a block ``seconds`` after the latest one; return its timestamp."""
        target = self.now() + max(1, seconds)
        self._time_travel(target)
        return target

    def mine(self) -> None:
        self.advance(1)

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------- eth-tester


def ethtester_ledger() -> Ledger:
    """An in-process eth-tester ledger on py-evm (chain id 131277322940537)."""
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider

    backend = PyEVMBackend()
    tester = EthereumTester(backend)
    w3 = Web3(EthereumTesterProvider(tester))
    accounts = [Account.from_key(k.to_bytes()) for k in backend.account_keys]

    def travel(ts: int) -> None:
        # py-evm's time_travel mines a block stamped ``ts - 1`` (the pending header's
        # timestamp, which it sets one below the target): aim one past to get ``ts`` exactly
        tester.time_travel(ts + 1)

    ledger = Ledger("ethtester", w3, accounts, travel)
    ledger.tester = tester  # type: ignore[attr-defined]
    return ledger


# -------------------------------------------------------------------------- anvil


def anvil_binary() -> str:
    """``$ANVIL``, else npm ``@foundry-rs/anvil``'s native binary (no node wrapper in
    between, so stopping it stops anvil itself), else ``node_modules/.bin/anvil``, else PATH."""
    env = os.environ.get("ANVIL")
    if env:
        return env
    native = _REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if native.exists() and os.access(native, os.X_OK):
        return str(native)
    local = _REPO_ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found:
        return found
    raise FileNotFoundError("anvil not found: run `npm ci` in the repository root")


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group this module created for ``proc`` (its pid is the group id)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def anvil_ledger(
    *, accounts: int = 10, chain_id: int = 31337, timeout: float = 20.0, hardfork: str = "cancun"
) -> Ledger:
    """Start anvil on a free 127.0.0.1 port, wait until it answers, return its ledger.

    Call ``ledger.stop()`` (or use it as a context manager) to terminate the process.
    """
    port = _free_port()
    cmd = [
        anvil_binary(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--accounts",
        str(accounts),
        "--chain-id",
        str(chain_id),
        "--hardfork",
        hardfork,
        "--mnemonic",
        ANVIL_MNEMONIC,
        "--silent",
    ]
    # own process group: stop() ends anvil and any wrapper child it has, and nothing else
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"anvil exited with {proc.returncode}: {err}")
        try:
            if w3.is_connected() and w3.eth.chain_id == chain_id:
                break
        except Exception:
            pass
        if time.monotonic() > deadline:
            _kill_group(proc, signal.SIGKILL)
            proc.wait()
            raise TimeoutError(f"anvil did not answer on {url} within {timeout}s")
        time.sleep(0.05)

    Account.enable_unaudited_hdwallet_features()
    accts = [
        Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        for i in range(accounts)
    ]

    def travel(ts: int) -> None:
        w3.provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [ts])
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])

    def stop() -> None:
        if proc.poll() is None:
            _kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    ledger = Ledger("anvil", w3, accts, travel, stop)
    ledger.process = proc  # type: ignore[attr-defined]
    ledger.url = url  # type: ignore[attr-defined]
    return ledger


def make_ledger(kind: str) -> Ledger:
    """``"ethtester"`` or ``"anvil"``."""
    if kind == "ethtester":
        return ethtester_ledger()
    if kind == "anvil":
        return anvil_ledger()
    raise ValueError(f"unknown ledger kind {kind!r}")
