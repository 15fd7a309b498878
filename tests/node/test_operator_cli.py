"""The operator's run-time tools against running node processes on anvil, through the CLI
with ``--json`` (which talks to the HTTP API): wallet, policy, peers (persisted across a
restart), invoices (list, show, cancel), payments' timeout, routes that say why."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from chenilles_hub.node.api.client import ApiCallError

from .test_server_harness import (
    CHAIN,
    ETH,
    NATIVE,
    AnvilChain,
    NodeProc,
    agreed,
    anvil,
    channel,
    channel_pair,
    connected,
    make_node,
    wait_for,
)

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil", "channel_pair"]

Pair = tuple[NodeProc, NodeProc, str]


def cli_json(node: NodeProc, *args: str) -> Any:
    return json.loads(node.cli(*args, "--json").stdout)


def native_balance(rows: list[dict[str, Any]]) -> int:
    (row,) = [r for r in rows if r["chain"] == CHAIN]
    (native,) = [a for a in row["assets"] if a["asset"] == NATIVE]
    return int(native["balance"])


def test_wallet_balance_send_and_a_refusal_that_sends_nothing(
    channel_pair: Pair, anvil: AnvilChain
) -> None:
    alice, bob, _ = channel_pair
    mine = cli_json(alice, "wallet", "balance")
    (row,) = mine
    assert row["chain"] == CHAIN and row["address"].startswith("0x")
    decimals = {a["asset"]: a["decimals"] for a in row["assets"]}
    assert decimals[NATIVE] == 18 and len(decimals) == 2  # ETH and the test token
    theirs = bob.api.get("/v1/wallet")
    to = theirs[0]["address"]
    before = native_balance(theirs)
    sent = cli_json(alice, "wallet", "send", "--asset", NATIVE, "--to", to, "--amount", "12345")
    assert sent["txid"].startswith("0x") and sent["fee"] > 0
    assert native_balance(bob.api.get("/v1/wallet")) == before + 12345
    held = native_balance(alice.api.get("/v1/wallet"))
    refused = alice.cli(
        "wallet", "send", "--asset", NATIVE, "--to", to, "--amount", str(held + 1), check=False
    )
    assert refused.returncode == 1
    assert "insufficient_funds" in refused.stderr and "nothing was sent" in refused.stderr
    assert native_balance(alice.api.get("/v1/wallet")) == held  # not even gas
    with pytest.raises(ApiCallError) as bad:
        alice.api.post("/v1/wallet/send", {"asset": NATIVE, "to": "0x12", "amount": 1})
    assert bad.value.code == "send_refused"
    with pytest.raises(ApiCallError) as coins:
        alice.api.get(f"/v1/wallet/coins?chain={CHAIN}")
    assert coins.value.code == "not_supported"


def test_invoices_list_show_cancel_and_a_cancelled_invoice_is_not_paid(
    channel_pair: Pair,
) -> None:
    alice, bob, channel_id = channel_pair
    text = bob.cli("invoice", "--amount", "7000", "--asset", NATIVE, "--description", "x").stdout
    listed = cli_json(bob, "invoice", "list")
    (mine,) = [i for i in listed if i["invoice"] == text.strip()]
    assert mine["status"] == "open"
    shown = bob.api.get(f"/v1/invoices/{mine['payment_hash']}")
    assert shown["amount"] == 7000 and shown["description"] == "x"
    cancelled = cli_json(bob, "invoice", "cancel", mine["payment_hash"])
    assert cancelled["status"] == "cancelled"
    paid = alice.cli("pay", text.strip(), "--json", check=False)
    assert paid.returncode == 1
    result = json.loads(paid.stdout)
    assert result["status"] == "failed" and "invoice_cancelled" in result["reason"]
    agreed(alice, bob, channel_id)  # the HTLC came back: nothing stays locked
    with pytest.raises(ApiCallError) as again:
        bob.api.post(f"/v1/invoices/{'ab' * 32}/cancel")
    assert again.value.code == "unknown_invoice"
    failed = cli_json(alice, "payments", "--status", "failed", "--since", "1h")
    assert any(p["payment_hash"] == mine["payment_hash"] for p in failed)
    assert cli_json(bob, "forwards", "--since", "1h") == {"forwards": [], "totals": [], "count": 0}


def test_pay_timeout_bounds_and_route_errors_say_why(channel_pair: Pair) -> None:
    alice, bob, _ = channel_pair
    invoice = bob.api.post("/v1/invoices", {"amount": 5, "asset": NATIVE})["invoice"]
    with pytest.raises(ApiCallError) as short:
        alice.api.post("/v1/payments", {"invoice": invoice, "timeout": 2})
    assert short.value.code == "bad_field"
    too_big = bob.api.post("/v1/invoices", {"amount": 50 * ETH, "asset": NATIVE})["invoice"]
    routed = alice.cli("route", too_big, check=False)
    assert routed.returncode == 1
    assert "insufficient_capacity" in routed.stderr and "at most" in routed.stderr
    paid = alice.cli("pay", invoice, "--timeout", "20")
    assert "succeeded" in paid.stdout and "fees: none" in paid.stdout


def test_policy_and_peers_set_at_run_time_survive_a_restart(
    channel_pair: Pair, anvil: AnvilChain, tmp_path: Any
) -> None:
    alice, bob, channel_id = channel_pair
    token = f"{anvil.token}@{CHAIN}"
    shown = cli_json(alice, "policy", "show")
    assert shown["rates"][0]["rate"] == "2000"  # the config's 2000/1, both 18 decimals
    alice.api.post("/v1/policy/fees", {"asset": NATIVE, "base": 5, "ppm": 100})
    set_rate = cli_json(alice, "policy", "rate", "--in", NATIVE, "--out", token, "--rate", "1500.5")
    (rate,) = set_rate["rates"]
    assert (rate["numerator"], rate["denominator"], rate["rate"]) == (3001, 2, "1500.5")
    carol = make_node(tmp_path, "carol", anvil, 5)
    try:
        carol.start()
        alice.cli("peer", "connect", f"{carol.node_id}@127.0.0.1:{carol.listen_port}")
        wait_for(lambda: connected(alice, carol), what="alice dialled carol")
        alice.stop()
        alice.start()
        wait_for(lambda: connected(alice, carol), what="alice dialled carol again")
        after = alice.api.get("/v1/policy")
        assert after["fees"] == [{"asset": NATIVE, "base": 5, "ppm": 100, "decimals": 18}]
        assert after["rates"][0]["rate"] == "1500.5"  # not the config's 2000
        wait_for(lambda: connected(alice, bob), what="alice back with bob")
        agreed(alice, bob, channel_id)
        out = cli_json(alice, "peer", "disconnect", carol.node_id)
        assert out["status"] == "disconnected"
        wait_for(lambda: not connected(alice, carol), what="alice let carol go")
        alice.stop()
        alice.start()
        wait_for(lambda: connected(alice, bob), what="alice back with bob")
        time.sleep(1.0)  # several reconnect intervals: carol is no longer dialled
        assert not connected(alice, carol)
    finally:
        carol.stop()


def test_a_payment_to_an_offline_payee_fails_within_its_timeout(channel_pair: Pair) -> None:
    """Issue 15: the money stayed locked for ~48 minutes. Now the payer's bound holds: the
    HTLC waits for the offline peer no longer than ``--timeout``, then the payment fails and
    nothing stays locked."""
    alice, bob, channel_id = channel_pair
    invoice = bob.api.post("/v1/invoices", {"amount": 4321, "asset": NATIVE})["invoice"]
    before = channel(alice, channel_id)
    bob.stop()
    try:
        wait_for(lambda: not connected(alice, bob), what="alice saw bob go")
        paid = alice.cli("pay", invoice, "--timeout", "5", "--json", check=False)
        result = json.loads(paid.stdout)
        assert paid.returncode == 1 and result["status"] == "failed"
        assert result["reason"].startswith("payment_timeout")
        assert result["finished_at"] - result["created_at"] <= 5 + 1  # within the bound
        after = channel(alice, channel_id)
        assert after["balances"] == before["balances"] and not after["htlcs"]
    finally:
        bob.start()
    wait_for(lambda: connected(alice, bob), what="bob back")
    agreed(alice, bob, channel_id)
