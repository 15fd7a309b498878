"""The example app (escrow): forced moves on chain, and the Python mirror agrees."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest
from chenilles_evm.adjudicator import ContractReverted, Params, Phase, State, _send, deploy_contract
from chenilles_evm.eip712 import ETH
from chenilles_evm.escrow_app import (
    LOCKED,
    REFUNDED,
    RELEASED,
    Escrow,
    refund,
    release,
    valid_transition,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if TYPE_CHECKING:  # the fixture `env` gives an Env (tests/evm has no package)
    from conftest import Env

pytestmark = pytest.mark.evm


def _expect(err: str, fn, *args) -> None:
    with pytest.raises(ContractReverted) as e:
        fn(*args)
    assert e.value.error_name == err, e.value


def _escrow_channel(env: Env, deadline_in: int):
    app = deploy_contract(env.w3, "EscrowApp", sender=env.watcher.address)
    params = env.new_params(challenge=100, app=app.address)
    env.fund_eth((100, 0), params)
    esc = Escrow(LOCKED, 0, env.ledger.now() + deadline_in, 40)  # a buys from b
    s1 = env.state(1, ((100, 0),), app_data=esc.encode(), params=params)
    return app, params, esc, s1


def test_escrow_release_by_forced_move(env: Env) -> None:
    _app, params, esc, s1 = _escrow_channel(env, 10_000)
    cid = env.adj.channel_id(params)
    r = env.adj.register(params, s1, env.sign_both(s1), env.a.address)
    timeout = r.event("Registered").args["timeout"]
    s2 = release(s1, esc)
    sig_a = env.adj.sign(s2, env.a.key)
    _expect("ChallengePeriodActive", env.adj.progress, params, s1, s2, 0, sig_a, env.a.address)
    env.ledger.time_travel(timeout)
    snap = env.snapshot(params)
    # the seller cannot release for the buyer, nor sign as the buyer
    _expect(
        "InvalidTransition",
        env.adj.progress,
        params,
        s1,
        s2,
        1,
        env.adj.sign(s2, env.b.key),
        env.b.address,
    )
    _expect(
        "InvalidSignature",
        env.adj.progress,
        params,
        s1,
        s2,
        0,
        env.adj.sign(s2, env.b.key),
        env.b.address,
    )
    # the buyer cannot take its money back before the deadline
    early = refund(s1, esc)
    _expect(
        "InvalidTransition",
        env.adj.progress,
        params,
        s1,
        early,
        0,
        env.adj.sign(early, env.a.key),
        env.a.address,
    )
    bad_version = s2.replace(version=3)
    _expect(
        "StaleVersion",
        env.adj.progress,
        params,
        s1,
        bad_version,
        0,
        env.adj.sign(bad_version, env.a.key),
        env.a.address,
    )
    assert env.snapshot(params) == snap

    p = env.adj.progress(params, s1, s2, 0, sig_a, env.watcher.address)
    ev = p.event("Progressed").args
    assert ev["state"] == s2 and ev["mover"] == 0 and ev["version"] == 2
    assert env.adj.dispute(cid).phase == Phase.FORCEEXEC
    _expect("StateMismatch", env.adj.conclude, params, s1, env.b.address)
    c = env.adj.conclude(params, s2, env.b.address)  # final move: no further period
    env.expect_paid(c, {ETH: (60, 40)}, params)


def test_escrow_refund_after_deadline_and_silence(env: Env) -> None:
    _app, params, esc, s1 = _escrow_channel(env, 50)
    cid = env.adj.channel_id(params)
    r = env.adj.register(params, s1, env.sign_both(s1), env.b.address)
    timeout = r.event("Registered").args["timeout"]
    env.ledger.time_travel(timeout)
    _expect(
        "ChallengePeriodActive", env.adj.conclude, params, s1, env.a.address
    )  # moves still allowed
    s2 = refund(s1, esc)
    env.adj.progress(
        params, s1, s2, 0, env.adj.sign(s2, env.a.key), env.a.address
    )  # buyer, after deadline
    c = env.adj.conclude(params, s2, env.a.address)
    env.expect_paid(c, {ETH: (100, 0)}, params)
    assert env.adj.holding(cid, ETH) == 0


def test_app_channel_without_moves_concludes_after_two_periods(env: Env) -> None:
    _app, params, _esc, s1 = _escrow_channel(env, 10_000)
    r = env.adj.register(params, s1, env.sign_both(s1), env.b.address)
    timeout = r.event("Registered").args["timeout"]
    env.ledger.time_travel(timeout + 50)
    _expect("ChallengePeriodActive", env.adj.conclude, params, s1, env.a.address)
    env.ledger.time_travel(timeout + 100)
    s2 = refund(s1, _esc)
    _expect(
        "ChallengePeriodOver",
        env.adj.progress,
        params,
        s1,
        s2,
        1,
        env.adj.sign(s2, env.b.key),
        env.b.address,
    )
    c = env.adj.conclude(params, s1, env.a.address)
    env.expect_paid(c, {ETH: (100, 0)}, params)


# ------------------------------------------------------ mirror vs contract (hypothesis)

_ZERO_CID = b"\x00" * 32
_TOKEN = "0x00000000000000000000000000000000000000aa"


@st.composite
def _transitions(draw):
    two_assets = draw(st.booleans())
    assets = (ETH, _TOKEN) if two_assets else (ETH,)
    bal = st.integers(0, 300)
    fb = tuple((draw(bal), draw(bal)) for _ in assets)
    buyer = draw(st.sampled_from([0, 1, 1, 0, 2]))
    amount = draw(st.integers(0, 200))
    off = draw(st.integers(100_000, 10_000_000)) * draw(st.sampled_from([-1, 1]))
    status0 = draw(st.sampled_from([LOCKED, LOCKED, LOCKED, RELEASED, REFUNDED]))
    esc = Escrow(status0, buyer, off, amount)  # deadline relative to now, fixed later
    kind = draw(st.sampled_from(["release", "refund", "random"]))
    mover = draw(st.integers(0, 1))
    to_status = {"release": RELEASED, "refund": REFUNDED}.get(kind) or draw(st.integers(0, 3))
    b = [list(x) for x in fb]
    if kind == "release" and buyer <= 1:
        b[0][buyer] -= amount
        b[0][1 - buyer] += amount
    if kind == "random" or draw(st.integers(0, 9)) == 0:
        i, p = draw(st.integers(0, len(assets) - 1)), draw(st.integers(0, 1))
        b[i][p] += draw(st.integers(-5, 5))
    tb = tuple((x[0], x[1]) for x in b)
    mutate = draw(
        st.sampled_from(["none"] * 6 + ["buyer", "deadline", "amount", "final", "len", "dirty"])
    )
    return assets, fb, tb, esc, to_status, mover, mutate


@pytest.fixture
def escrow_app(ledger):
    return deploy_contract(ledger.w3, "EscrowApp", sender=ledger.accounts[3].address)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(t=_transitions())
def test_python_mirror_agrees_with_contract(ledger, escrow_app, t) -> None:
    assets, fb, tb, esc, to_status, mover, mutate = t
    now = ledger.now()
    deadline = now + esc.deadline
    old = Escrow(esc.status, esc.buyer, deadline, esc.amount)
    new = Escrow(to_status, esc.buyer, deadline, esc.amount)
    is_final = True
    if mutate == "buyer":
        new = Escrow(new.status, 1 - new.buyer if new.buyer <= 1 else 0, new.deadline, new.amount)
    elif mutate == "deadline":
        new = Escrow(new.status, new.buyer, new.deadline + 1, new.amount)
    elif mutate == "amount":
        new = Escrow(new.status, new.buyer, new.deadline, new.amount + 1)
    elif mutate == "final":
        is_final = False
    new_data = new.encode()
    if mutate == "len":
        new_data = new_data + b"\x00"
    elif mutate == "dirty":
        new_data = new_data[:30] + b"\x01" + new_data[31:]  # status word with bits above uint8
    if any(x < 0 for pair in tb for x in pair):
        return  # not a valid ABI uint256; the adjudicator would never pass it
    s_from = State(_ZERO_CID, 1, assets, fb, (), old.encode(), False)
    s_to = State(_ZERO_CID, 2, assets, tb, (), new_data, is_final)
    expected = valid_transition(s_from, s_to, mover, now)
    params = Params(
        (ledger.accounts[0].address, ledger.accounts[1].address),
        100,
        secrets.token_bytes(32),
        escrow_app.address,
    )
    fn = escrow_app.functions.validTransition(
        params.to_abi(), s_from.to_abi(), s_to.to_abi(), mover
    )
    try:
        got = _send(ledger.w3, fn.call)
    except ContractReverted:
        got = None
    assert got == expected, (t, got, expected)
