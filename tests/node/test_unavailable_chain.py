"""A backend whose ``connect()`` refuses ``from_block`` does not stop a restarting node.

The node passes ``from_block`` (where its event feed was) when it restarts. A third-party
backend written before the contract said it must take it used to raise ``TypeError`` there
and crash the node, leaving the channels on every other chain without a watcher. Now the
node starts, that chain is unavailable with a reason the operator can act on (``node info``,
``node check``), and a channel on another chain still pays (issue 16).

The backend here is installed as a third party's would be (an entry point on the
``PYTHONPATH`` of the node process, nothing changed in the project): a ``picky`` backend
whose ``connect(url, program_id, ...)`` has no ``from_block`` parameter, delegating to the
Solana backend on a real devnet server.
"""

from __future__ import annotations

import json
import os
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chenilles_solana.backend import SolanaBackend, embedded_backend

from chenilles_hub import plugins
from chenilles_hub.backend import BackendInfo
from chenilles_hub.node.config import ConfigError, load_config
from chenilles_hub.node.runtime.bootstrap import build_chains
from chenilles_hub.node.store.sqlite import SQLiteStore
from tests.solana.devnet_harness import DevnetProc

from .test_server_harness import ETH, NATIVE, AnvilChain, agreed, anvil, make_node, open_channel

pytestmark = [pytest.mark.node, pytest.mark.solana, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]

PICKY = '''
"""A backend from before ``from_block``: its connect() does not take it."""
from chenilles_hub.backend import BackendInfo
from chenilles_hub.hookspecs import hookimpl
from chenilles_solana.backend import connect_backend


class PickyFactory:
    info = BackendInfo(
        name="picky", version="0.1", family="Picky", chains=("solana:localnet",)
    )

    def embedded(self, **options):
        raise NotImplementedError("no embedded ledger")

    def connect(self, url, program_id, test_mint=None, mint_authority=None):
        return connect_backend(
            url,
            chain="solana:localnet",
            program_id=program_id,
            test_mint=test_mint,
            mint_authority=mint_authority,
        )


@hookimpl
def chenilles_backends():
    return [PickyFactory()]
'''


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[DevnetProc]:
    proc = DevnetProc(tmp_path / "solana-devnet", slot_ms=50)
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def picky_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The picky backend on the node processes' path, as an installed distribution."""
    site = tmp_path / "site"
    dist = site / "chenilles_picky-0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "chenilles_picky.py").write_text(PICKY)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: chenilles-picky\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[chenilles.backends]\npicky = chenilles_picky\n")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), *([path] if path else [])]))


def test_a_backend_refusing_from_block_leaves_its_chain_unavailable_not_the_node_down(
    anvil: AnvilChain, devnet: DevnetProc, picky_installed: None, tmp_path: Path
) -> None:
    alice = make_node(tmp_path, "alice", anvil, 6)
    bob = make_node(tmp_path, "bob", anvil, 7)
    alice.peers = [bob]
    alice.tail = textwrap.dedent(
        f"""
        [chains.picky]
        backend = "picky"
        url = "{devnet.url}"
        account_key = "{secrets.token_hex(32)}"
        program_id = "{devnet.ready["program_id"]}"
        test_mint = "{devnet.ready["test_mint"]}"
        mint_authority = "{devnet.ready["test_mint_authority"]}"
        """
    )
    try:
        bob.start(wait=False)
        alice.start()
        bob.wait_ready()
        # first start: no from_block yet, the picky chain is in use beside the EVM one
        assert alice.api.get("/v1/info")["chains"] == ["eip155:31337", "solana:localnet"]
        channel_id = open_channel(alice, bob, ETH // 10)
        assert alice.stop() == 0
        store = SQLiteStore(alice.data_dir / "node.sqlite")
        try:
            origin = store.get_setting("chain-origin/picky")
        finally:
            store.close()
        assert origin is not None, "the first start remembered no origin for the picky chain"

        alice.start()  # the restart passes from_block=origin: picky's connect() refuses it
        info = alice.api.get("/v1/info")
        assert info["chains"] == ["eip155:31337"]
        [unavailable] = info["unavailable_chains"]
        assert unavailable["chain"] == "solana:localnet"
        error = unavailable["error"]
        for words in (
            "[chains.picky]",
            f"from_block={int(origin)}",
            "TypeError",
            "install a version of the backend whose connect() takes from_block",
        ):
            assert words.lower() in error.lower(), (words, error)
        shown = alice.cli("node", "info").stdout
        assert "unavailable_chains" in shown and "from_block" in shown
        assert "connect() refused from_block" in alice.log_tail(200)

        # the EVM channel is restored and pays
        invoice = bob.api.post("/v1/invoices", {"amount": 10**15, "asset": NATIVE})
        paid = alice.cli("pay", invoice["invoice"], "--json")
        assert json.loads(paid.stdout)["status"] == "succeeded"
        mine, theirs = agreed(alice, bob, channel_id)
        assert mine["balances"][0]["local"] == ETH // 10 - 10**15
        assert theirs["balances"][0]["local"] == 10**15

        # node check says so before any restart (from the signature of connect)
        checked = alice.cli("node", "check", check=False)
        assert checked.returncode != 0
        assert "[chains.picky]: the picky backend's connect() does not take from_block" in (
            checked.stderr
        ), checked.stderr
    finally:
        alice.stop()
        bob.stop()


# --- the decision, in process: when a failed connect sets a chain aside -----------------------


class _Flaky:
    """A backend factory whose ``connect`` refuses ``from_block`` and/or every connection;
    what it connects to is a real (embedded) Solana ledger."""

    info = BackendInfo(name="flaky", version="0.1", family="Flaky", chains=("solana:localnet",))

    def __init__(self, *, takes_from_block: bool = False, reachable: bool = True) -> None:
        self.takes_from_block = takes_from_block
        self.reachable = reachable
        self.calls: list[dict[str, Any]] = []
        self.closed = 0

    def embedded(self, **options: Any) -> SolanaBackend:
        raise NotImplementedError

    def connect(self, url: str, **options: Any) -> SolanaBackend:
        self.calls.append(options)
        if not self.reachable:
            raise ConnectionRefusedError(f"{url}: connection refused")
        if "from_block" in options and not self.takes_from_block:
            raise ValueError("unknown option 'from_block'")
        backend = embedded_backend()

        def close() -> None:
            self.closed += 1

        backend.close = close  # type: ignore[method-assign]
        return backend


def _build(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    factory: _Flaky,
    origin: int | None,
    extra: str = "",
) -> Any:
    original = plugins.backend
    monkeypatch.setattr(plugins, "backend", lambda n: factory if n == "flaky" else original(n))
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "hub.toml"
    path.write_text(
        '[node]\nname = "hub"\nlisten = "127.0.0.1:9735"\n[api]\nlisten = "127.0.0.1:9736"\n'
        '[chains.flaky]\nbackend = "flaky"\nurl = "http://127.0.0.1:9"\n'
        f'account_key = "{secrets.token_hex(32)}"\n{extra}'
    )
    store = SQLiteStore(tmp_path / "node.sqlite")
    try:
        if origin is not None:
            store.set_setting("chain-origin/flaky", str(origin).encode())
        return build_chains(load_config(path), store)
    finally:
        store.close()


def test_on_restart_a_refused_from_block_sets_the_chain_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = _Flaky()
    chains = _build(tmp_path, monkeypatch, factory, origin=123)
    assert not chains.backends and not chains.names
    entry = chains.unavailable["flaky"]
    assert entry.chain == "solana:localnet" and entry.backend == "flaky"
    assert "from_block=123 (ValueError: unknown option 'from_block')" in entry.error
    # the second connection only told the cause apart: closed, never used
    assert [c.get("from_block") for c in factory.calls] == [123, None]
    assert factory.closed == 1


def test_a_first_start_and_a_backend_taking_from_block_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _Flaky()
    chains = _build(tmp_path / "first", monkeypatch, first, origin=None)
    assert chains.names == {"flaky": "solana:localnet"} and not chains.unavailable
    assert first.calls == [{}]
    good = _Flaky(takes_from_block=True)
    chains = _build(tmp_path / "good", monkeypatch, good, origin=77)
    assert chains.names == {"flaky": "solana:localnet"} and not chains.unavailable
    assert good.calls == [{"from_block": 77}]


def test_an_unreachable_chain_or_the_operators_own_from_block_still_stop_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the node's own ``from_block`` is contained: a chain that cannot connect at all,
    or a ``from_block`` the operator configured, is refused as on a first start."""
    down = _Flaky(reachable=False)
    with pytest.raises(ConfigError, match=r"^\[chains.flaky\]: cannot use .*connection refused"):
        _build(tmp_path / "down", monkeypatch, down, origin=123)
    assert [c.get("from_block") for c in down.calls] == [123, None]
    configured = _Flaky()
    with pytest.raises(ConfigError, match=r"^\[chains.flaky\]: .*unknown option 'from_block'"):
        _build(tmp_path / "own", monkeypatch, configured, origin=None, extra="from_block = 5\n")
    assert configured.calls == [{"from_block": 5}]
