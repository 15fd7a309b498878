"""A fourth chain, end to end, exactly as a third party adds one.

``chenilles new-backend toyledger`` writes a project (an account ledger with ed25519
transactions, fees, blocks and a real channel contract, in Python); pip builds and installs
it into a directory of its own (``--target``: the shared .venv is never changed, so tests
running beside this one see only the in-tree backends). Then, through the entry points
only: ``chenilles backends`` lists it, the project's own test module runs the hub's
conformance suite on it (through the ``pytest11`` plugin), and in-process nodes carry a
payment from Solana into it and win a dispute on it against a cheating hub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chenilles_hub import plugins
from chenilles_hub.circuit.quote import Rate
from chenilles_hub.cli.new_backend import render_backend
from chenilles_hub.core import Asset
from chenilles_hub.demo import run_demo
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
from chenilles_hub.sandbox import Sandbox
from chenilles_hub.testing import BackendConformance

pytestmark = pytest.mark.solana

SUITE_SIZE = sum(name.startswith("test_") for name in dir(BackendConformance))
CHENILLES = str(Path(sys.executable).with_name("chenilles"))
LAMPORT = 10**9


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the generated project, the directory it is installed into), on ``sys.path``
    for this process while the module runs."""
    root = tmp_path_factory.mktemp("toyledger")
    project = render_backend("toyledger", root)
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            *("-m", "pip", "install", "-q", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--target", str(target), str(project)),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(target))
    plugins._cached_factories.cache_clear()
    try:
        yield project, target
    finally:
        sys.path.remove(str(target))
        for name in [m for m in sys.modules if m.startswith("chenilles_toyledger")]:
            del sys.modules[name]
        plugins._cached_factories.cache_clear()


def _env(target: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *sys.path])}


def test_new_backend_refuses_bad_names_and_existing_projects(tmp_path: Path) -> None:
    for bad in ("Toy", "1chain", "my-chain", "x"):
        with pytest.raises(ValueError, match="a backend name"):
            render_backend(bad, tmp_path)
    render_backend("again", tmp_path)
    with pytest.raises(FileExistsError):
        render_backend("again", tmp_path)
    out = subprocess.run(
        [CHENILLES, "new-backend", "Bad-Name", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "a backend name" in out.stderr


def test_the_generated_code_is_lint_and_type_clean(installed: tuple[Path, Path]) -> None:
    """What an author starts from is held to the project's own standards."""
    project, _ = installed
    bin_dir = Path(sys.executable).parent
    ruff = [str(bin_dir / "ruff"), "--isolated", "--line-length", "100", "--no-cache"]
    for args in (["check", "."], ["format", "--check", "."]):
        run = subprocess.run(
            [*ruff[:1], args[0], *ruff[1:], *args[1:]], cwd=project, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr
    run = subprocess.run(
        [
            str(bin_dir / "mypy"),
            "--ignore-missing-imports",
            "--no-incremental",
            "chenilles_toyledger",
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout


def test_it_is_listed_beside_the_builtin_backends(installed: tuple[Path, Path]) -> None:
    _, target = installed
    out = subprocess.run(
        [CHENILLES, "backends", "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=_env(target),
    ).stdout
    listed = {row["name"]: row for row in json.loads(out)}
    assert listed["toyledger"]["distribution"] == "chenilles-toyledger 0.1.0"
    assert listed["toyledger"]["chains"] == ["toyledger:local"]
    assert {"evm", "bitcoin", "solana"} <= set(listed)


def test_its_own_tests_run_the_conformance_suite_and_pass(installed: tuple[Path, Path]) -> None:
    project, target = installed
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        env=_env(target),
    )
    assert run.returncode == 0, run.stdout[-3000:]
    # all but the reorg and token tests (no reorgs, no tokens: BackendInfo, assets())
    assert f"{SUITE_SIZE - 2} passed, 2 skipped" in run.stdout, run.stdout[-500:]


def test_a_payment_crosses_into_it_and_a_cheating_hub_loses_a_dispute_on_it(
    installed: tuple[Path, Path],
) -> None:
    toy_factory = plugins.backend("toyledger")
    box = Sandbox(
        [plugins.backend("solana").embedded(), toy_factory.embedded()],
    )
    with box:
        sol_chain, toy_chain = box.chain("solana"), box.chain("toyledger")
        sol, toy = Asset(sol_chain, "native"), Asset(toy_chain, "native")
        hub = box.node(
            "hub",
            policy=ForwardingPolicy(
                fees={toy: FeePolicy(base=10, ppm=1000)},
                rates={(sol, toy): Rate(10**6, LAMPORT)},  # 1 SOL buys 1,000,000 toy units
            ),
        )
        alice = box.node("alice", [sol_chain])
        bob = box.node("bob", [toy_chain])
        c_alice = box.open(alice, hub, sol_chain, {sol: (10 * LAMPORT, 0)})
        c_bob = box.open(hub, bob, toy_chain, {toy: (10**9, 0)})
        stale = hub.channels[c_bob].machine.latest  # version 0: the hub holds everything
        assert stale is not None

        payment = box.pay(alice, bob.invoice(50_000, toy), sol)
        assert payment.status == "succeeded"
        assert bob.channels[c_bob].machine.state.free(toy) == (10**9 - 50_000, 50_000)
        paid = alice.channels[c_alice].machine.state.free(sol)[1]
        assert paid == payment.sent == Rate(10**6, LAMPORT).required_input(50_000 + 10 + 50)

        # The hub goes silent and registers version 0 on the toy chain, where Bob had
        # nothing. Bob's watcher answers with the latest state, concludes and withdraws.
        toy_backend = box.backends[toy_chain]
        bob_account = bob.accounts[toy_chain]
        before = toy_backend.balance(bob_account, toy)
        box.network.silence(hub)
        params = hub.channels[c_bob].params
        toy_backend.register(params, stale, hub.accounts[toy_chain])
        for _ in range(20):
            box.advance(600)
            if bob.channels[c_bob].status == "closed":
                break
        channel = bob.channels[c_bob]
        assert channel.status == "closed", bob.journal[-5:]
        assert any("refuted stale version 0" in line for line in bob.journal)
        fees = sum(r.fee for r in channel.receipts)
        assert fees > 0
        assert toy_backend.balance(bob_account, toy) == before + 50_000 - fees


def test_the_demo_takes_the_fourth_chain_in(installed: tuple[Path, Path]) -> None:
    """``chenilles demo`` starts every installed ledger and pays a user on each: the
    generated chain too, in its own units, with every balance checked."""
    lines: list[str] = []
    assert run_demo(lines.append) == 0, "\n".join(lines[-40:])
    text = "\n".join(lines)
    assert "toyledger  toyledger:local" in text  # its embedded ledger started
    assert "dave receives 200.000000 TOYL (200000000 micro) on toyledger:local" in text
    assert "[ok ] dave received native on-chain" in text and "[BAD]" not in text
