"""Bad input through the HTTP API: a 400 naming the field, never a 500, never a node that
stops. Against node processes over anvil (``channel_pair``): the explicit cases of issue 12
(item 9) first, then hypothesis over every endpoint with hostile values in every field.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.fuzzing import explore

from .test_server_harness import CHAIN, NATIVE, NodeProc, anvil, channel_pair

pytestmark = [pytest.mark.node, pytest.mark.adversarial, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil", "channel_pair"]

Pair = tuple[NodeProc, NodeProc, str]
HUGE = "9" * 5000


def _call(node: NodeProc, method: str, path: str, body: bytes | None) -> tuple[int, Any]:
    token = (node.data_dir / "api.token").read_text().strip()
    request = urllib.request.Request(
        f"http://127.0.0.1:{node.api_port}{path}",
        method=method,
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _explicit(
    channel_id: str, peer: str, invoice: str
) -> list[tuple[str, str, dict[str, Any], str]]:
    return [
        ("POST", "/v1/invoices", {"amount": HUGE, "asset": NATIVE}, "bad_amount"),
        ("POST", "/v1/invoices", {"amount": 5, "asset": NATIVE, "ttl": 2**64}, "bad_field"),
        ("POST", "/v1/invoices", {"amount": 5, "asset": NATIVE, "ttl": HUGE}, "bad_field"),
        ("POST", "/v1/invoices", {"amount": 5, "asset": NATIVE, "ttl": 0}, "bad_field"),
        ("POST", f"/v1/channels/{channel_id}/transfers", {"amount": HUGE}, "bad_amount"),
        (
            "POST",
            "/v1/transfers",
            {"transfers": [{"channel_id": channel_id, "amount": HUGE}]},
            "bad_amount",
        ),
        ("POST", "/v1/channels", {"peer": peer, "asset": NATIVE, "amount": HUGE}, "bad_amount"),
        (
            "POST",
            "/v1/channels",
            {"peer": peer, "asset": NATIVE, "amount": 1, "remote_amount": HUGE},
            "bad_amount",
        ),
        (
            "POST",
            "/v1/channels",
            {"peer": peer, "asset": NATIVE, "amount": 1, "challenge_duration": HUGE},
            "bad_field",
        ),
        ("POST", "/v1/route", {"invoice": invoice, "max_lock": HUGE}, "bad_field"),
        ("POST", "/v1/payments", {"invoice": invoice, "max_lock": 2**300}, "bad_field"),
        (
            "POST",
            "/v1/quote",
            {"asset_in": NATIVE, "asset_out": NATIVE, "amount_out": HUGE},
            "bad_amount",
        ),
    ]


def _oversized_amounts_and_durations_answer_400(channel_pair: Pair) -> None:
    alice, bob, channel_id = channel_pair
    invoice = bob.api.post("/v1/invoices", {"amount": 5, "asset": NATIVE})["invoice"]
    for method, path, body, code in _explicit(channel_id, bob.node_id, invoice):
        status, answer = _call(alice, method, path, _json(body))
        got = answer["error"]["code"] if isinstance(answer, dict) else answer
        assert (status, got) == (400, code), (
            path,
            body,
        )
        assert "Traceback" not in alice.log_tail(400)


# --- hypothesis over every endpoint ----------------------------------------------------------

_HEX = "0123456789abcdef"
_hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=2**255, max_value=2**300),
    st.sampled_from([4301, 5000]).map(lambda n: "9" * n),
    st.floats(),
    st.text(max_size=80),
    st.text("0123456789", min_size=1, max_size=100),
    st.text(_HEX, min_size=60, max_size=70),
    st.sampled_from(["-1", "0", "1e3", " 1", "١٢", NATIVE, f"x@{CHAIN}", "native@", "@"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


#: Numbers where a field wants one: out of range, too long, negative, not integers.
_numbers = st.one_of(
    st.sampled_from([4301, 5000, 6000]).map(lambda n: "9" * n),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=2**255, max_value=2**300),
    st.integers(max_value=0),
    st.integers(min_value=70, max_value=90).map(lambda n: "1" + "0" * n),
    st.floats(),
    st.sampled_from(["-1", "0", "1e3", " 1", "١٢", "0x10", ""]),
)
_NUMERIC = {"amount", "remote_amount", "amount_out", "ttl", "max_lock", "challenge_duration"}


def _hostile_for(name: str) -> st.SearchStrategy[Any]:
    return st.one_of(_numbers, _numbers, _hostile) if name in _NUMERIC else _hostile


def _body(
    valid: dict[str, st.SearchStrategy[Any]], extra: tuple[str, ...] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """A valid request with one or two fields replaced by hostile values (or dropped):
    the other checks pass, so the hostile value reaches the code that reads it."""
    names = [*valid, *extra]
    base = st.fixed_dictionaries(valid)
    hostile = st.lists(
        st.sampled_from(names).flatmap(lambda n: st.tuples(st.just(n), _hostile_for(n))),
        min_size=1,
        max_size=2,
    ).map(dict)
    dropped = st.sets(st.sampled_from(names), max_size=1)
    return st.tuples(base, hostile, dropped).map(
        lambda t: {k: v for k, v in {**t[0], **t[1]}.items() if k not in t[2]}
    )


def _requests(
    channel_id: str, peer: str, invoice: str
) -> st.SearchStrategy[tuple[str, str, bytes | None]]:
    amount = st.integers(1, 10**6)
    asset = st.just(NATIVE)
    ids = st.one_of(st.text(max_size=70), st.text(_HEX, min_size=64, max_size=64))
    invoices = st.one_of(st.just(invoice), st.text(max_size=40))

    def post(
        path: str, valid: dict[str, st.SearchStrategy[Any]], *extra: str
    ) -> st.SearchStrategy[tuple[str, str, bytes | None]]:
        mutated = _body(valid, extra).map(_json)
        body = st.one_of(mutated, mutated, mutated, st.binary(max_size=300), _hostile.map(_json))
        return st.tuples(st.just("POST"), st.just(path), body)

    def get(template: str) -> st.SearchStrategy[tuple[str, str, bytes | None]]:
        return ids.map(
            lambda x: (
                "GET",
                template.format(urllib.parse.quote(x, safe="")) if x else "/v1/x",
                None,
            )
        )

    transfer = _body({"channel_id": st.just(channel_id), "amount": amount}, ("asset",))
    endpoints = [
        post("/v1/invoices", {"amount": amount, "asset": asset}, "ttl", "description"),
        post(
            "/v1/channels",
            {"peer": st.just(peer), "asset": asset, "amount": st.just(0)},
            "remote_amount",
            "challenge_duration",
        ),
        post(f"/v1/channels/{channel_id}/transfers", {"amount": amount}, "asset"),
        st.tuples(
            st.just("POST"),
            st.just("/v1/transfers"),
            st.one_of(
                st.lists(transfer, min_size=1, max_size=3).map(lambda t: _json({"transfers": t})),
                _hostile.map(lambda h: _json({"transfers": h})),
            ),
        ),
        post("/v1/route", {"invoice": invoices}, "max_lock", "source_asset"),
        post(
            "/v1/payments",
            {"invoice": invoices, "wait": st.just(False)},
            "max_lock",
            "source_asset",
        ),
        post(
            "/v1/quote",
            {"asset_in": asset, "asset_out": asset, "amount_out": amount},
        ),
        post("/v1/graph", {}, "edges", "rates"),
        ids.map(lambda x: ("POST", f"/v1/channels/{urllib.parse.quote(x, safe='')}/close", None)),
        get("/v1/channels/{}"),
        get("/v1/channels/opening/{}"),
        get("/v1/payments/{}"),
        st.text(max_size=20).map(
            lambda s: ("GET", "/v1/channels?status=" + urllib.parse.quote(s), None)
        ),
        st.sampled_from(
            [("GET", p, None) for p in ("/v1/info", "/v1/peers", "/v1/backends", "/metrics")]
        ),
    ]
    return st.sampled_from(endpoints).flatmap(lambda endpoint: endpoint)


def test_bad_input_answers_400_and_no_input_answers_500_or_stops_the_node(
    channel_pair: Pair,
) -> None:
    """One test (one pair of node processes): the explicit cases, then the search."""
    _oversized_amounts_and_durations_answer_400(channel_pair)
    alice, bob, channel_id = channel_pair
    seen: dict[int, int] = {}

    def no_crash(request: tuple[str, str, bytes | None]) -> None:
        method, path, body = request
        status, answer = _call(alice, method, path, body)
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, (request, status, answer)
        if status >= 400:
            assert isinstance(answer, dict) and answer["error"]["code"], (request, answer)

    invoice = bob.api.post("/v1/invoices", {"amount": 5, "asset": NATIVE})["invoice"]
    explore(no_crash, _requests(channel_id, bob.node_id, invoice))
    assert alice.process is not None and alice.process.poll() is None, alice.log_tail()
    assert "Traceback" not in alice.log_tail(100_000), alice.log_tail()
    assert seen.get(400, 0) > 10, seen  # the search reached the checks
    # The node still does its job: a transfer through the channel is signed.
    status, answer = _call(
        alice, "POST", f"/v1/channels/{channel_id}/transfers", _json({"amount": 7})
    )
    assert status == 200 and answer["version"] > 0, answer
