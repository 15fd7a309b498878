"""The ``chenilles`` commands against running node processes: tables, --json, errors."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from chenilles_hub.cli import main

from .test_server_harness import (
    CHAIN,
    CHENILLES,
    ETH,
    NATIVE,
    NodeProc,
    agreed,
    anvil,
    channel,
    channel_pair,
    connected,
    wait_for,
)

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil", "channel_pair"]

Pair = tuple[NodeProc, NodeProc, str]


def test_installed_backends_still_listed_without_a_node() -> None:
    result = CliRunner().invoke(main, ["backends", "--json"])
    assert result.exit_code == 0
    assert "evm" in {row["name"] for row in json.loads(result.output)}


def test_channel_list_invoice_route_pay_payments(channel_pair: Pair) -> None:
    alice, bob, channel_id = channel_pair
    table = alice.cli("channel", "list").stdout
    assert table.splitlines()[0].split()[:3] == ["CHANNEL", "PEER", "STATUS"]
    assert channel_id[:16] in table and "active" in table
    rows = json.loads(alice.cli("channel", "list", "--json").stdout)
    assert rows[0]["channel_id"] == channel_id
    invoice = bob.cli("invoice", "--amount", "5000", "--asset", NATIVE).stdout.strip()
    route = alice.cli("route", invoice).stdout
    assert "total sent: 5000" in route
    paid = alice.cli("pay", invoice)
    assert "succeeded" in paid.stdout and "payment" in paid.stderr  # progress on stderr
    payments = json.loads(alice.cli("payments", "--json").stdout)
    assert any(p["status"] == "succeeded" and p["amount"] == 5000 for p in payments)
    agreed(alice, bob, channel_id)
    info = json.loads(alice.cli("node", "info", "--json").stdout)
    assert info["node_id"] == alice.node_id
    chains = json.loads(alice.cli("backends", "--json").stdout)  # --config appended by cli()
    assert chains[0]["chain"] == CHAIN
    quote = json.loads(
        alice.cli(
            "quote",
            "--asset-in",
            NATIVE,
            "--asset-out",
            f"{channel_pair[0].chain.token}@{CHAIN}",
            "--amount-out",
            "10",
            "--json",
        ).stdout
    )
    assert quote["amount_in"] == 1
    assert bob.node_id[:16] in alice.cli("peers").stdout


def test_errors_are_one_line_and_exit_non_zero(channel_pair: Pair) -> None:
    alice, _, _ = channel_pair
    result = alice.cli("pay", "not-an-invoice", check=False)
    assert result.returncode == 1
    assert "bad_invoice" in result.stderr and "Traceback" not in result.stderr
    result = alice.cli("channel", "close", "00" * 32, check=False)
    assert result.returncode == 1 and "unknown_channel" in result.stderr
    result = subprocess.run(
        [*CHENILLES, "channel", "list"], capture_output=True, text=True, env={"PATH": "/usr/bin"}
    )
    assert result.returncode != 0 and "--config" in result.stderr


def test_open_and_close_a_channel_with_progress(channel_pair: Pair) -> None:
    alice, bob, _ = channel_pair
    wait_for(lambda: connected(bob, alice), what="connected")
    with alice.chain.mining():  # the deposit reaches its confirmation depth
        opened = bob.cli(
            "channel",
            "open",
            "--peer",
            alice.node_id,
            "--asset",
            NATIVE,
            "--amount",
            str(ETH // 10),
        )
    assert "waiting for" in opened.stderr or "funding" in opened.stderr
    channel_id = next(
        line.split()[1] for line in opened.stdout.splitlines() if line.startswith("channel_id")
    )
    with alice.chain.mining():  # Alice counts the confirmations on her own
        wait_for(lambda: channel(alice, channel_id)["status"] == "active", what="active")
    closed = bob.cli("channel", "close", channel_id, "--json")
    assert json.loads(closed.stdout)["status"] == "closed"
    wait_for(lambda: channel(alice, channel_id)["status"] == "closed", what="closed on Alice")
