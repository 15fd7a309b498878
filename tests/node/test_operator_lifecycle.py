"""What an operator sees, through real node processes on anvil and the ``chenilles`` CLI:
start-up failures as one ``Error:`` line, ``node check``, the chains in use, a deposit the
chain refused ending ``channel open`` with its cause, ``channel abandon`` (and its
refusal), ``close --force`` followed to the end, and a channel that cannot be restored
quarantined without stopping the node. About 40 s on an idle machine (node starts)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account

from chenilles_hub.cli import main

from .test_server_harness import (
    CHAIN,
    CHENILLES,
    CONSENTING,
    ETH,
    NATIVE,
    AnvilChain,
    NodeProc,
    anvil,
    channel,
    connected,
    free_port,
    make_node,
    open_channel,
    wait_for,
)

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]


def _start_fails(node: NodeProc) -> str:
    """``node start`` with the node's config: it must exit 1 with one Error line."""
    node.write_config()
    result = subprocess.run(
        [*CHENILLES, "node", "start", "--config", str(node.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    return errors[0]


def test_start_up_failures_are_one_error_line(anvil: AnvilChain, tmp_path: Path) -> None:
    node = make_node(tmp_path, "hub", anvil, 4)
    with socket.socket() as busy:  # the API's port is taken
        busy.bind(("127.0.0.1", node.api_port))
        busy.listen()
        line = _start_fails(node)
    assert f"api.listen = 127.0.0.1:{node.api_port}: cannot listen there" in line
    assert "in use" in line

    down = f"http://127.0.0.1:{free_port()}"  # the chain's RPC does not answer
    node.extra = ""
    node.chain = AnvilChain(down, anvil.adjudicator, 0, anvil.keys, anvil.ledger, anvil.token)
    line = _start_fails(node)
    assert line.startswith(f"Error: [chains.evm]: cannot use {down}")

    wrong = "0x" + "11" * 20  # an address without the adjudicator's code
    node.chain = AnvilChain(anvil.url, wrong, 0, anvil.keys, anvil.ledger, anvil.token)
    assert "no contract at" in _start_fails(node)


def test_a_stake_on_an_asset_no_chain_of_the_node_holds_is_refused(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """An asset ``[[policy.peers.stake]]`` does not name asks no stake, so a misspelt one
    (an EVM token's address in lower case, a chain's name for its id) would turn the stake
    off without a word: ``node check`` and ``node start`` refuse it, saying which assets
    the chain has."""
    node = make_node(tmp_path, "hub", anvil, 4)
    node.tail = f'[[policy.peers.stake]]\nasset = "{anvil.token.lower()}@{CHAIN}"\nmin = 1\n'
    error = _start_fails(node)
    assert "stake:" in error and "is not an asset of" in error and anvil.token in error
    result = CliRunner().invoke(
        main, ["node", "check", "--json", "--config", str(node.config_path)]
    )
    assert result.exit_code == 1
    assert "is not an asset of" in json.loads(result.stdout)["error"]["message"]
    node.tail = '[[policy.peers.stake]]\nasset = "native@eip155:1"\nmin = 1\n'
    assert "is on no chain of this node" in _start_fails(node)


def test_node_check_reaches_the_chain_and_says_what_it_found(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    node = make_node(tmp_path, "hub", anvil, 4)
    node.write_config()
    runner = CliRunner()  # in this process: the same code as the command, without its start-up
    result = runner.invoke(main, ["node", "check", "--json", "--config", str(node.config_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["problems"] == []
    (found,) = report["chains"]
    assert found["adjudicator"] == anvil.adjudicator
    assert found["account"].lower() == Account.from_key(anvil.key(4)).address.lower()
    assert found["balances"][NATIVE] > 0

    node.chain = AnvilChain(
        f"http://127.0.0.1:{free_port()}", anvil.adjudicator, 0, anvil.keys, anvil.ledger
    )
    node.write_config()
    result = runner.invoke(main, ["node", "check", "--json", "--config", str(node.config_path)])
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "check_failed" and "[chains.evm]: cannot use" in error["message"]


@pytest.fixture(scope="module")
def pair(
    anvil: AnvilChain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[NodeProc, NodeProc]]:
    """Alice and Bob, shared by the tests below in their order (the last stops Bob)."""
    base = tmp_path_factory.mktemp("pair")
    alice = make_node(base, "alice", anvil, 6)
    bob = make_node(base, "bob", anvil, 7)
    alice.peers = [bob]
    alice.tail = bob.tail = CONSENTING
    try:
        bob.start(wait=False)
        alice.start(wait=False)
        bob.wait_ready()
        alice.wait_ready()
        wait_for(lambda: connected(alice, bob), what="connected")
        yield alice, bob
    finally:
        alice.stop()
        bob.stop()


def _set_balance(anvil: AnvilChain, key: str, wei: int) -> None:
    address = Account.from_key(key).address
    anvil.ledger.w3.provider.make_request("anvil_setBalance", [address, hex(wei)])


def test_top_and_ps_show_which_thread_of_a_node_is_which(pair: tuple[NodeProc, NodeProc]) -> None:
    """An operator looking at a busy node with ``top -H`` or py-spy sees the worker that
    signs (``node``), the ``writer`` that syncs the store and each chain's fetch thread by
    name, not a column of ``python``."""
    alice, _ = pair
    assert alice.process is not None
    tasks = Path(f"/proc/{alice.process.pid}/task")

    def names() -> set[str]:
        seen = set()
        for comm in tasks.glob("*/comm"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                seen.add(comm.read_text(errors="replace").strip())
        return seen

    # the chain's fetch thread starts with the first poll
    wanted = {"node", "writer", "fetch-evm"}
    try:
        wait_for(lambda: wanted <= names(), what="the node's threads named")
    except TimeoutError:
        raise AssertionError(f"threads named {sorted(names())}, not all of {wanted}") from None


def test_a_refused_deposit_ends_the_wait_with_its_cause_and_the_channel_is_abandoned(
    anvil: AnvilChain, pair: tuple[NodeProc, NodeProc]
) -> None:
    alice, bob = pair
    assert bob.process is not None
    info = alice.api.get("/v1/info")
    assert info["chain_details"][0]["adjudicator"] == anvil.adjudicator
    # Bob holds still while Alice's wallet empties between her open and her deposit.
    os.kill(bob.process.pid, signal.SIGSTOP)
    try:
        args = ["--peer", bob.node_id, "--asset", NATIVE, "--amount", str(ETH), "--timeout", "60"]
        opener = subprocess.Popen(
            [*CHENILLES, "channel", "open", *args, "--config", str(alice.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert opener.stderr is not None
        first = opener.stderr.readline()
        assert "waiting for the peer to accept" in first, first
        _set_balance(anvil, alice.chain.key(alice.account), 10**6)
    finally:
        os.kill(bob.process.pid, signal.SIGCONT)
    out, err = opener.communicate(timeout=90)
    assert opener.returncode == 1, out + err
    (line,) = [x for x in err.splitlines() if x.startswith("Error:")]
    assert "failed: handling the peer's Accept failed" in line
    assert "nsufficient funds" in line, line
    assert "gave up waiting" not in line

    (row,) = json.loads(alice.cli("channel", "list", "--json").stdout)
    assert row["status"] == "opening" and "nsufficient funds" in row["last_error"]
    _set_balance(anvil, alice.chain.key(alice.account), 100 * ETH)
    result = alice.cli("channel", "abandon", row["channel_id"], "--json")
    assert json.loads(result.stdout)["status"] == "abandoned"
    assert channel(alice, row["channel_id"])["status"] == "abandoned"
    again = alice.cli("channel", "abandon", row["channel_id"], "--json", check=False)
    assert again.returncode == 1
    assert json.loads(again.stdout)["error"]["code"] == "not_abandonable"


def test_a_channel_that_cannot_be_restored_is_quarantined_not_fatal(
    anvil: AnvilChain, pair: tuple[NodeProc, NodeProc]
) -> None:
    alice, bob = pair
    channel_id = open_channel(alice, bob, ETH)
    alice.stop()  # restarted with another key: the channel's is not there
    right_key = alice.account
    alice.account = 8  # another account: it holds no key of the channel's
    alice.start()
    rows = json.loads(alice.cli("channel", "list", "--json").stdout)
    (row,) = [r for r in rows if r["channel_id"] == channel_id]
    assert row["status"] == "quarantined" and "could not be restored" in row["last_error"]
    shown = alice.cli("channel", "show", channel_id, "--json")
    assert json.loads(shown.stdout)["status"] == "quarantined"
    closing = alice.cli("channel", "close", channel_id, "--json", check=False)
    assert json.loads(closing.stdout)["error"]["code"] == "channel_quarantined"
    alice.stop()
    alice.account = right_key  # the cause fixed: the channel is back
    alice.start()
    assert channel(alice, channel_id)["status"] == "active"


def test_an_active_channel_is_not_abandoned_and_force_close_is_followed_to_the_end(
    anvil: AnvilChain, pair: tuple[NodeProc, NodeProc]
) -> None:
    alice, bob = pair
    channel_id = open_channel(alice, bob, ETH, challenge=3)
    refused = alice.cli("channel", "abandon", channel_id, "--json", check=False)
    assert refused.returncode == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "not_abandonable" and "close" in error["hint"]
    assert channel(alice, channel_id)["status"] == "active"  # the refusal changed nothing

    bob.stop()  # a peer gone for good: only the chain can close the channel
    with anvil.mining(0.2):
        started = time.monotonic()
        result = alice.cli("channel", "close", channel_id, "--force", "--timeout", "60")
    assert "challenge period ends at chain time" in result.stderr, result.stderr
    assert "dispute of version" in result.stderr or "concluded" in result.stderr
    assert "status" in result.stdout and "closed" in result.stdout
    shown: dict[str, Any] = channel(alice, channel_id)
    assert shown["status"] == "closed" and time.monotonic() - started < 60
