"""Funding (ETH, ERC-20, USDT-like tokens) and the cooperative close."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from chenilles_evm.adjudicator import ContractReverted, Erc20, Phase
from chenilles_evm.eip712 import ETH, Htlc

if TYPE_CHECKING:  # the fixture `env` gives an Env (tests/evm has no package)
    from conftest import Env

pytestmark = pytest.mark.evm

E = 10**18


def test_channel_id_and_digest_match_contract(env: Env) -> None:
    assert env.adj.channel_id(env.params) == env.adj.contract_channel_id(env.params)
    h = Htlc(7, 1, env.token.address, 12345, b"\x42" * 32, 1_900_000_000)
    s = env.state(
        9,
        ((1, 2), (3, 4)),
        assets=(ETH, env.token.address),
        htlcs=(h,),
        app_data=b"\x01\x02",
        is_final=True,
    )
    assert env.adj.digest(s) == env.adj.contract_digest(s)
    empty = env.state(0, ())
    assert env.adj.digest(empty) == env.adj.contract_digest(empty)


def test_eth_funding_and_cooperative_close(env: Env) -> None:
    r0 = env.adj.deposit(env.params, 0, ETH, 3 * E, env.a.address)
    assert r0.event("Deposited").args["holdings"] == 3 * E
    env.adj.deposit(env.params, 1, ETH, 2 * E, env.b.address)
    assert env.adj.holding(env.cid, ETH) == 5 * E
    before, contract_before = env.wallets(), env.held()

    final = env.state(12, ((1 * E, 4 * E),), is_final=True)
    r = env.adj.conclude_cooperative(env.params, final, env.sign_both(final), env.watcher.address)
    assert r.event("ConcludedCooperatively").args["version"] == 12
    assert env.adj.dispute(env.cid).phase == Phase.CONCLUDED
    # the close paid both, to the wei, in its own transaction (sent by a third party)
    env.expect_paid(r, {ETH: (1 * E, 4 * E)})
    assert env.wallets() == (before[0] + 1 * E, before[1] + 4 * E)
    assert env.held() == contract_before - 5 * E
    assert env.adj.holding(env.cid, ETH) == 0
    # nothing is left to withdraw, for either participant
    for i, who in enumerate((env.a, env.b)):
        with pytest.raises(ContractReverted) as e:
            env.adj.withdraw(env.params, i, ETH, who.address, who.address)
        assert e.value.error_name == "AlreadyWithdrawn"
    # a concluded channel takes no deposits
    with pytest.raises(ContractReverted) as e:
        env.adj.deposit(env.params, 0, ETH, 1, env.a.address)
    assert e.value.error_name == "AlreadyConcluded"


def test_erc20_funding_and_cooperative_close(env: Env) -> None:
    env.fund_token((700, 300))
    usdt = Erc20.deploy_no_return_token(env.w3, env.watcher.address)
    env.fund_token((0, 50), token=usdt)
    assert env.adj.holding(env.cid, env.token.address) == 1000
    assert env.adj.holding(env.cid, usdt.address) == 50

    final = env.state(
        3, ((400, 600), (50, 0)), assets=(env.token.address, usdt.address), is_final=True
    )
    r = env.adj.conclude_cooperative(env.params, final, env.sign_both(final), env.a.address)
    env.expect_paid(r, {env.token.address: (400, 600), usdt.address: (50, 0)})
    assert env.token.balance_of(env.a.address) == 400
    assert env.token.balance_of(env.b.address) == 600
    assert usdt.balance_of(env.a.address) == 50  # a token that returns nothing is paid too
    assert env.token.balance_of(env.adj.address) == 0 == usdt.balance_of(env.adj.address)


def test_deposit_rejections(env: Env) -> None:
    with pytest.raises(ContractReverted) as e:  # ERC-20 without allowance
        env.token.mint(env.a.address, 10, env.a.address)
        env.adj.deposit(env.params, 0, env.token.address, 10, env.a.address)
    assert e.value.error_name == "TransferFailed"
    with pytest.raises(ContractReverted) as e:  # an account without code is no token
        env.adj.deposit(env.params, 0, env.watcher.address, 10, env.a.address)
    assert e.value.error_name == "TransferFailed"
    with pytest.raises(ContractReverted) as e:
        env.adj.deposit(env.params, 2, ETH, 10, env.a.address)
    assert e.value.error_name == "InvalidParticipant"
    bad = env.params.__class__((env.a.address, env.a.address), 100, env.params.nonce)
    with pytest.raises(ContractReverted) as e:
        env.adj.deposit(bad, 0, ETH, 10, env.a.address)
    assert e.value.error_name == "InvalidParams"
    assert env.adj.holding(env.cid, ETH) == 0
    assert env.adj.holding(env.cid, env.token.address) == 0


def test_cooperative_close_requires_final_no_htlcs_and_exact_sums(env: Env) -> None:
    env.fund_eth((5, 5))
    snap = env.snapshot()
    cases = [
        (env.state(2, ((5, 5),), is_final=False), "NotFinal"),
        (
            env.state(
                2, ((4, 5),), htlcs=(Htlc(1, 0, ETH, 1, b"\x01" * 32, 2**40),), is_final=True
            ),
            "HtlcsLocked",
        ),
        (env.state(2, ((4, 5),), is_final=True), "NonConserving"),
        (env.state(2, ((6, 5),), is_final=True), "NonConserving"),
    ]
    for state, err in cases:
        with pytest.raises(ContractReverted) as e:
            env.adj.conclude_cooperative(env.params, state, env.sign_both(state), env.a.address)
        assert e.value.error_name == err
    assert env.snapshot() == snap
