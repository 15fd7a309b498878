"""Real node processes (``chenilles node start``) on loopback, over one anvil chain."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_server_harness import (
    ETH,
    NATIVE,
    AnvilChain,
    NodeProc,
    agreed,
    anvil,
    channel,
    connected,
    make_node,
    open_channel,
    pay,
    wait_for,
)

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]  # the fixture, imported for pytest


@pytest.fixture
def pair(anvil: AnvilChain, tmp_path: Path) -> Iterator[tuple[NodeProc, NodeProc]]:
    alice = make_node(tmp_path, "alice", anvil, 0)
    bob = make_node(tmp_path, "bob", anvil, 1)
    alice.peers = [bob]
    bob.start(wait=False)
    alice.start(wait=False)
    try:
        bob.wait_ready()
        alice.wait_ready()
        yield alice, bob
    finally:
        for node in (alice, bob):
            node.stop()


def test_two_nodes_open_pay_and_close_through_the_api(pair: tuple[NodeProc, NodeProc]) -> None:
    alice, bob = pair
    channel_id = open_channel(alice, bob, ETH)
    for _ in range(3):
        assert pay(alice, bob, 10**17)["status"] == "succeeded"
    a, b = agreed(alice, bob, channel_id)
    assert a["balances"][0]["local"] == ETH - 3 * 10**17
    assert b["balances"][0]["local"] == 3 * 10**17
    before = bob.api.get("/v1/backends")[0]["balances"][NATIVE]
    alice.api.post(f"/v1/channels/{channel_id}/close")
    wait_for(lambda: channel(alice, channel_id)["status"] == "closed", what="closed")
    # Bob's side is paid out on-chain: his account grew by his balance, minus his fees if
    # he had to send a transaction himself to collect it.
    after = wait_for(
        lambda: (v := bob.api.get("/v1/backends")[0]["balances"][NATIVE]) > before and v
    )
    assert 3 * 10**17 - 10**16 < after - before <= 3 * 10**17


def test_a_restarted_peer_resumes_and_both_agree(pair: tuple[NodeProc, NodeProc]) -> None:
    alice, bob = pair
    channel_id = open_channel(alice, bob, ETH)
    assert pay(alice, bob, 10**16)["status"] == "succeeded"
    bob.stop()
    bob.start()
    wait_for(lambda: connected(alice, bob), what="reconnected")
    assert pay(alice, bob, 2 * 10**16)["status"] == "succeeded"
    a, _ = agreed(alice, bob, channel_id)
    assert a["balances"][0]["remote"] == 3 * 10**16


def test_three_nodes_route_through_the_hub_with_announced_edges(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    fee = f"""
[[policy.fees]]
asset = "{NATIVE}"
base = 1000
ppm = 100
"""
    alice = make_node(tmp_path, "alice", anvil, 2)
    hub = make_node(tmp_path, "hub", anvil, 3)
    bob = make_node(tmp_path, "bob", anvil, 4)
    hub.tail = fee
    alice.peers, bob.peers = [hub], [hub]
    nodes = (hub, alice, bob)
    try:
        hub.start(wait=False)
        alice.start(wait=False)
        bob.start(wait=False)
        for node in nodes:
            node.wait_ready()
        c1 = open_channel(alice, hub, ETH)
        c2 = open_channel(hub, bob, ETH)
        invoice = bob.api.post("/v1/invoices", {"amount": 10**17, "asset": NATIVE})
        route = wait_for(
            lambda: alice.api.post("/v1/route", {"invoice": invoice["invoice"]}),
            what="a route (hub's edges announced)",
        )
        assert [h["to"] for h in route["hops"]] == [hub.node_id, bob.node_id]
        fee_paid = 1000 + -(-(10**17) * 100 // 10**6)
        assert route["sent"] == 10**17 + fee_paid
        # Through the CLI this time, with --json for the script.
        result = alice.cli("pay", invoice["invoice"], "--json")
        assert json.loads(result.stdout)["status"] == "succeeded"
        a1, _ = agreed(alice, hub, c1)
        h2, _ = agreed(hub, bob, c2)
        assert a1["balances"][0]["local"] == ETH - 10**17 - fee_paid
        assert h2["balances"][0]["remote"] == 10**17
        listing = alice.cli("payments").stdout
        assert "succeeded" in listing
    finally:
        for node in nodes:
            node.stop()


def test_node_stop_through_the_cli_is_graceful(anvil: AnvilChain, tmp_path: Path) -> None:
    node = make_node(tmp_path, "solo", anvil, 5)
    node.start()
    started = time.monotonic()
    assert "stopped" in node.cli("node", "stop").stdout
    assert node.process is not None and node.process.wait(10) == 0
    assert time.monotonic() - started < 10
    assert not (node.data_dir / "node.pid").exists()
    assert (node.data_dir / "api.token").stat().st_mode & 0o777 == 0o600
