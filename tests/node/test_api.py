"""The node's HTTP API: the token, the OpenAPI document, errors for bad input, metrics."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from openapi_spec_validator import validate

from chenilles_hub.circuit.quote import Quote, Rate, check_quote
from chenilles_hub.core import Asset
from chenilles_hub.node.api.client import ApiCallError, NodeClient
from chenilles_hub.node.api.http import build_app
from chenilles_hub.node.api.openapi import openapi_document

from .test_server_harness import (
    CHAIN,
    NATIVE,
    NodeProc,
    agreed,
    anvil,
    channel,
    channel_pair,
    pay,
)

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil", "channel_pair"]

Pair = tuple[NodeProc, NodeProc, str]


def _raw(node: NodeProc, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{node.api_port}{path}",
        method=method,
        headers=headers,
        data=b"{}" if method == "POST" else None,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _concrete(path: str) -> str:
    return (
        path.replace("{channel_id}", "00" * 32)
        .replace("{temp_id}", "00" * 32)
        .replace("{payment_hash}", "00" * 32)
    )


def test_every_endpoint_but_health_needs_the_token(channel_pair: Pair) -> None:
    alice, _, _ = channel_pair
    checked = 0
    for path, methods in openapi_document()["paths"].items():
        for method in methods:
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token-xxxxxxxx"},
                {"Authorization": "Basic abc"},
            ):
                status, body = _raw(alice, method.upper(), _concrete(path), headers)
                if path == "/health":
                    assert status == 200
                    continue
                assert status == 401, (method, path, headers)
                assert body == {
                    "error": {
                        "code": "unauthorized",
                        "message": "missing or wrong bearer token",
                        "hint": "the token is in the data dir (api.token)",
                    }
                }
                checked += 1
    assert checked >= 3 * 20


def test_the_openapi_document_describes_every_route() -> None:
    app = build_app(object())  # type: ignore[arg-type]
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    document = openapi_document()
    described = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert served == described
    assert document["openapi"].startswith("3.")


def test_the_openapi_document_is_valid_openapi() -> None:
    """Checked by a third-party validator: client generators reject an invalid document."""
    validate(openapi_document())


BAD_INPUTS: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/v1/channels", None, 400, "missing_field"),
    ("POST", "/v1/channels", {"peer": "zz", "asset": NATIVE, "amount": 1}, 400, "bad_node_id"),
    ("POST", "/v1/channels", {"peer": "ab" * 32, "asset": "eth", "amount": 1}, 400, "bad_asset"),
    ("POST", "/v1/channels", {"peer": "ab" * 32, "asset": NATIVE, "amount": -5}, 400, "bad_amount"),
    (
        "POST",
        "/v1/channels",
        {"peer": "ab" * 32, "asset": NATIVE, "amount": 1.5},
        400,
        "bad_amount",
    ),
    ("POST", "/v1/channels", {"peer": "ab" * 32, "asset": NATIVE, "amount": 0}, 400, "bad_amount"),
    (
        "POST",
        "/v1/channels",
        {"peer": "ab" * 32, "asset": "native@eip155:9", "amount": 1},
        400,
        "unknown_chain",
    ),
    (
        "POST",
        "/v1/channels",
        {"peer": "ab" * 32, "asset": NATIVE, "amount": 1},
        409,
        "peer_not_connected",
    ),
    ("GET", "/v1/channels/" + "00" * 32, None, 404, "unknown_channel"),
    ("GET", "/v1/channels/xyz", None, 400, "bad_channel_id"),
    ("POST", "/v1/channels/" + "00" * 32 + "/close", {}, 404, "unknown_channel"),
    ("POST", "/v1/channels/" + "00" * 32 + "/transfers", {"amount": 5}, 404, "unknown_channel"),
    ("POST", "/v1/channels/xyz/transfers", {"amount": 5}, 400, "bad_channel_id"),
    ("POST", "/v1/transfers", {}, 400, "bad_field"),
    ("POST", "/v1/transfers", {"transfers": []}, 400, "bad_field"),
    ("POST", "/v1/transfers", {"transfers": [7]}, 400, "bad_field"),
    ("POST", "/v1/transfers", {"transfers": [{"amount": 1}]}, 400, "missing_field"),
    (
        "POST",
        "/v1/transfers",
        {"transfers": [{"channel_id": "00" * 32, "amount": 1}]},
        404,
        "unknown_channel",
    ),
    ("GET", "/v1/channels/opening/" + "00" * 32, None, 404, "unknown_open"),
    ("POST", "/v1/invoices", {"amount": 0, "asset": NATIVE}, 400, "bad_amount"),
    ("POST", "/v1/invoices", {"amount": 5}, 400, "missing_field"),
    ("POST", "/v1/invoices", {"amount": 5, "asset": "native@eip155:1"}, 400, "unknown_asset"),
    ("POST", "/v1/invoices", {"amount": "12x", "asset": NATIVE}, 400, "bad_amount"),
    ("POST", "/v1/payments", {"invoice": "garbage"}, 400, "bad_invoice"),
    ("POST", "/v1/payments", {}, 400, "missing_field"),
    ("POST", "/v1/payments", {"invoice": "x", "wait": "yes"}, 400, "bad_field"),
    ("POST", "/v1/invoices", {"amount": "\u00b2", "asset": NATIVE}, 400, "bad_amount"),
    ("GET", "/v1/payments/" + "00" * 32, None, 404, "unknown_payment"),
    ("GET", "/v1/payments/nothex", None, 400, "bad_payment_hash"),
    ("POST", "/v1/route", {"invoice": 42}, 400, "bad_field"),
    ("POST", "/v1/quote", {"asset_in": NATIVE, "asset_out": NATIVE}, 400, "missing_field"),
    (
        "POST",
        "/v1/quote",
        {"asset_in": NATIVE, "asset_out": "x@" + CHAIN, "amount_out": 5},
        422,
        "no_rate",
    ),
    ("POST", "/v1/peers", {"node_id": "ab" * 32, "address": "nowhere"}, 400, "bad_address"),
    ("POST", "/v1/graph", {"edges": "no"}, 400, "bad_graph"),
    ("GET", "/v1/nothing", None, 404, "not_found"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_INPUTS)
def test_bad_input_gets_a_4xx_with_a_clear_message(
    channel_pair: Pair, method: str, path: str, body: Any, status: int, code: str
) -> None:
    alice, _, _ = channel_pair
    with pytest.raises(ApiCallError) as caught:
        alice.api.request(method, path, body)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message


def test_a_body_that_is_not_json_is_refused(channel_pair: Pair) -> None:
    alice, _, _ = channel_pair
    token = (alice.data_dir / "api.token").read_text().strip()
    request = urllib.request.Request(
        f"http://127.0.0.1:{alice.api_port}/v1/invoices",
        method="POST",
        data=b"{nope",
        headers={"Authorization": f"Bearer {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["code"] == "bad_json"


def test_info_channels_route_pay_and_metrics(channel_pair: Pair) -> None:
    alice, bob, channel_id = channel_pair
    info = alice.api.get("/v1/info")
    assert info["node_id"] == alice.node_id and info["chains"] == [CHAIN]
    assert info["router_bound"] == "compiled"  # make bootstrap built the router's kernel
    # Bob is configured at Alice's: no stranger is linked
    assert info["strangers"] == {
        "connected": 0,
        "max": 64,
        "refused": 0,
        "handshakes_refused": 0,
        "promoted": 0,
        "evicted": 0,
        "lapsed": 0,
    }
    listed = alice.api.get("/v1/channels?status=active")
    assert [c["channel_id"] for c in listed] == [channel_id]
    invoice = bob.api.post("/v1/invoices", {"amount": 12345, "asset": NATIVE})
    route = alice.api.post("/v1/route", {"invoice": invoice["invoice"]})
    assert route["sent"] == 12345 and route["hops"][0]["channel_id"] == channel_id
    paid = pay(alice, bob, 777)
    assert paid["status"] == "succeeded" and paid["amount"] == 777
    assert hashlib.sha256(bytes.fromhex(paid["preimage"])).hexdigest() == paid["payment_hash"]
    stored = alice.api.get(f"/v1/payments/{paid['payment_hash']}")  # the answer is the record
    assert {k: v for k, v in paid.items() if k != "route"} == {
        k: v for k, v in stored.items() if k != "route"
    }
    with pytest.raises(ApiCallError) as caught:  # an invoice is paid once
        alice.api.post("/v1/payments", {"invoice": invoice["invoice"]})
        alice.api.post("/v1/payments", {"invoice": invoice["invoice"]})
    assert caught.value.status == 409
    metrics = alice.api.get("/metrics")
    assert 'chenilles_channels{status="active"} 1' in metrics
    assert 'chenilles_payments{status="succeeded"}' in metrics
    assert f'chenilles_channel_balance{{asset="{NATIVE}",side="local"}}' in metrics
    assert "chenilles_forwarding_failures_total" in metrics
    assert "chenilles_watcher_actions_total" in metrics
    assert "chenilles_peers_connected 1" in metrics
    assert "chenilles_strangers_refused_total 0" in metrics
    assert "chenilles_handshakes_refused_total 0" in metrics
    totals = {
        line.split()[0]: int(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith(("chenilles_checkpoint_writes_total", "chenilles_receive_batches_total"))
    }
    # Every payment was written durably; never more transactions than worker jobs.
    assert totals["chenilles_checkpoint_writes_total"] > 0
    assert totals["chenilles_checkpoint_writes_total"] <= totals["chenilles_receive_batches_total"]
    # How loaded the node is: its thread's time in jobs (and its own CPU in them, never
    # more), what its jobs handled (a job that only goes on proposing handles nothing,
    # so not one a job) and the writes' time.
    load = {
        line.split()[0]: float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith(
            (
                "chenilles_worker_busy_seconds_total",
                "chenilles_worker_cpu_seconds_total",
                "chenilles_job_items_total",
                "chenilles_checkpoint_write_seconds_total",
            )
        )
    }
    assert load["chenilles_worker_busy_seconds_total"] > 0
    assert load["chenilles_worker_cpu_seconds_total"] > 0
    assert load["chenilles_worker_cpu_seconds_total"] <= load["chenilles_worker_busy_seconds_total"]
    assert load["chenilles_job_items_total"] > 0
    assert load["chenilles_checkpoint_write_seconds_total"] > 0
    backends = alice.api.get("/v1/backends")
    assert backends[0]["chain"] == CHAIN and backends[0]["balances"][NATIVE] > 0
    graph = alice.api.get("/v1/graph")  # the wire format: bytes are base64
    assert {base64.b64decode(e["channel_id"]).hex() for e in graph["edges"]} == {channel_id}
    # The same document is accepted back (an operator copies one node's graph to another).
    assert alice.api.post("/v1/graph", graph)["edges"] == len(graph["edges"])


def test_direct_transfers_answer_with_the_signed_version(channel_pair: Pair) -> None:
    alice, bob, channel_id = channel_pair
    path = f"/v1/channels/{channel_id}/transfers"
    before_a, before_b = agreed(alice, bob, channel_id)
    local = before_a["balances"][0]["local"]

    # Bad input changes nothing: zero, negative, not an integer, more than we hold, an
    # asset the channel does not hold.
    for body, status, code in (
        ({"amount": 0}, 400, "bad_amount"),
        ({"amount": -1}, 400, "bad_amount"),
        ({"amount": 1.5}, 400, "bad_amount"),
        ({}, 400, "missing_field"),
        ({"amount": 1, "asset": f"0x{'ab' * 20}@{CHAIN}"}, 400, "unknown_asset"),
        ({"amount": local + 1}, 422, "transfer_refused"),
    ):
        with pytest.raises(ApiCallError) as caught:
            alice.api.post(path, body)
        assert (caught.value.status, caught.value.code) == (status, code), body
    assert agreed(alice, bob, channel_id)[0]["version"] == before_a["version"]

    first = alice.api.post(path, {"amount": 1000})
    assert first == {"channel_id": channel_id, "amount": 1000, "version": before_a["version"] + 1}
    # The answer comes once both sides hold the state: the peer already shows it.
    assert channel(bob, channel_id)["version"] >= first["version"]

    # Concurrent transfers: each answered with the version that carries it; those queued
    # behind a proposal in flight share the next state.
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: alice.api.post(path, {"amount": n}), range(1, 33)))
    versions = [a["version"] for a in answers]
    assert min(versions) > first["version"]
    after_a, after_b = agreed(alice, bob, channel_id)
    assert after_a["version"] == max(versions)
    sent = 1000 + sum(range(1, 33))
    assert after_a["balances"][0]["local"] == local - sent
    assert after_b["balances"][0]["local"] == before_b["balances"][0]["local"] + sent


def test_many_transfers_in_one_request(channel_pair: Pair) -> None:
    alice, bob, channel_id = channel_pair
    before_a, before_b = agreed(alice, bob, channel_id)
    local = before_a["balances"][0]["local"]

    # One bad item refuses the whole request, naming it, and queues nothing.
    with pytest.raises(ApiCallError) as caught:
        alice.api.post(
            "/v1/transfers",
            {"transfers": [{"channel_id": channel_id, "amount": 5}, {"channel_id": channel_id}]},
        )
    assert (caught.value.status, caught.value.code) == (400, "missing_field")
    assert "transfers[1]" in caught.value.message
    assert agreed(alice, bob, channel_id)[0]["version"] == before_a["version"]

    # Valid items each get an answer; one the channel cannot carry (more than the free
    # balance once the others are paid) fails alone.
    items = [{"channel_id": channel_id, "amount": n} for n in (10, 20, 30)]
    items.insert(1, {"channel_id": channel_id, "amount": local})
    answer = alice.api.post("/v1/transfers", {"transfers": items})["transfers"]
    assert [a["amount"] for a in answer] == [10, local, 20, 30]
    assert "error" in answer[1] and "version" not in answer[1]
    assert all(a["version"] > before_a["version"] for a in (answer[0], answer[2], answer[3]))
    after_a, after_b = agreed(alice, bob, channel_id)
    assert after_a["balances"][0]["local"] == local - 60
    assert after_b["balances"][0]["local"] == before_b["balances"][0]["local"] + 60

    # More transfers on one channel than one proposal carries (64): they go out in several
    # states, none is lost, and the peer never sees an oversized proposal.
    many = [{"channel_id": channel_id, "amount": 1} for _ in range(150)]
    answer = alice.api.post("/v1/transfers", {"transfers": many})["transfers"]
    versions = sorted({a["version"] for a in answer})
    assert len(answer) == 150 and len(versions) >= 3
    final_a, final_b = agreed(alice, bob, channel_id)
    assert final_a["version"] == versions[-1]
    assert final_b["balances"][0]["local"] == after_b["balances"][0]["local"] + 150


def test_quote_is_signed_by_the_hub(channel_pair: Pair, anvil: Any) -> None:
    alice, _, _ = channel_pair
    token = f"{anvil.token}@{CHAIN}"
    quote = alice.api.post(
        "/v1/quote", {"asset_in": NATIVE, "asset_out": token, "amount_out": 4000}
    )
    assert quote["hub"] == alice.node_id and quote["amount_in"] == 2
    check_quote(
        Quote(
            quote_id=bytes.fromhex(quote["quote_id"]),
            hub=bytes.fromhex(quote["hub"]),
            asset_in=Asset(CHAIN, "native"),
            asset_out=Asset(CHAIN, anvil.token),
            amount_out=4000,
            amount_in=2,
            rate=Rate(quote["rate"]["numerator"], quote["rate"]["denominator"]),
            fee=0,
            expires_at=quote["expires_at"],
            signature=bytes.fromhex(quote["signature"]),
        ),
        quote["expires_at"] - 1,
    )


def test_a_wrong_token_or_an_unreachable_node_is_explained(channel_pair: Pair) -> None:
    alice, _, _ = channel_pair
    client = NodeClient(f"http://127.0.0.1:{alice.api_port}", "x" * 40)
    with pytest.raises(ApiCallError) as caught:
        client.get("/v1/info")
    assert caught.value.status == 401
    unreachable = NodeClient("http://127.0.0.1:1", "x", timeout=2)
    with pytest.raises(ApiCallError) as caught:
        unreachable.get("/health")
    assert caught.value.status == 0 and "unreachable" in caught.value.code
