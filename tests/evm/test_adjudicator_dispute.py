"""Disputes: register, refute, wait, conclude (which pays both participants)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from chenilles_evm.adjudicator import ContractReverted, Phase
from chenilles_evm.eip712 import ETH

if TYPE_CHECKING:  # the fixture `env` gives an Env (tests/evm has no package)
    from conftest import Env

pytestmark = pytest.mark.evm


def test_cheater_registers_old_state_honest_refutes(env: Env) -> None:
    env.fund_eth((100, 100))
    old = env.state(1, ((150, 50),))  # good for a (the cheater)
    latest = env.state(5, ((60, 140),))
    old_sigs, latest_sigs = env.sign_both(old), env.sign_both(latest)

    r = env.adj.register(env.params, old, old_sigs, env.a.address)
    reg = r.event("Registered").args
    assert reg["version"] == 1 and reg["timeout"] == r.timestamp + 100

    # the honest watcher sees the event and answers with the latest state
    seen = [e for e in env.adj.events(r.block_number) if e.name == "Registered"]
    assert seen[-1].args["channelId"] == env.cid
    r2 = env.adj.refute(env.params, latest, latest_sigs, env.watcher.address)
    assert r2.event("Registered").args["version"] == 5
    info = env.adj.dispute(env.cid)
    assert (info.version, info.phase, info.state_hash) == (5, Phase.DISPUTE, latest.abi_hash())

    # the cheater can neither go back nor re-register the same version
    for s, sigs in ((old, old_sigs), (latest, latest_sigs)):
        with pytest.raises(ContractReverted) as e:
            env.adj.register(env.params, s, sigs, env.a.address)
        assert e.value.error_name == "StaleVersion"

    with pytest.raises(ContractReverted) as e:  # too early
        env.adj.conclude(env.params, latest, env.b.address)
    assert e.value.error_name == "ChallengePeriodActive"
    env.ledger.time_travel(info.timeout)
    with pytest.raises(ContractReverted) as e:  # concluding needs the registered state
        env.adj.conclude(env.params, old, env.b.address)
    assert e.value.error_name == "StateMismatch"
    c = env.adj.conclude(env.params, latest, env.b.address)
    env.expect_paid(c, {ETH: (60, 140)})  # the latest state, not the cheater's


def test_silent_peer_register_wait_conclude_withdraw(env: Env) -> None:
    env.fund_eth((10**18, 0))
    s = env.state(3, ((4 * 10**17, 6 * 10**17),))
    r = env.adj.register(env.params, s, env.sign_both(s), env.b.address)
    timeout = r.event("Registered").args["timeout"]
    env.ledger.time_travel(timeout - 10)
    with pytest.raises(ContractReverted) as e:
        env.adj.conclude(env.params, s, env.b.address)
    assert e.value.error_name == "ChallengePeriodActive"
    env.ledger.time_travel(timeout + 1)
    with pytest.raises(ContractReverted) as e:  # too late to refute
        newer = env.state(4, ((0, 10**18),))
        env.adj.register(env.params, newer, env.sign_both(newer), env.b.address)
    assert e.value.error_name == "ChallengePeriodOver"
    before = env.wallets()
    c = env.adj.conclude(env.params, s, env.b.address)
    assert c.event("Concluded").args["version"] == 3
    env.expect_paid(c, {ETH: (4 * 10**17, 6 * 10**17)})
    # the silent peer is paid without lifting a finger; the concluder net of its fee
    assert env.wallets() == (before[0] + 4 * 10**17, before[1] + 6 * 10**17 - env.fee(c))
    with pytest.raises(ContractReverted) as e:
        env.adj.conclude(env.params, s, env.b.address)
    assert e.value.error_name == "AlreadyConcluded"
    with pytest.raises(ContractReverted) as e:  # and no second payout by withdrawing
        env.adj.withdraw(env.params, 1, ETH, env.watcher.address, env.b.address)
    assert e.value.error_name == "AlreadyWithdrawn"


def test_register_erc20_and_eth_channel(env: Env) -> None:
    env.fund_eth((5, 0))
    env.fund_token((0, 9))
    s = env.state(1, ((1, 4), (9, 0)), assets=(ETH, env.token.address))
    env.adj.register(env.params, s, env.sign_both(s), env.a.address)
    env.ledger.advance(101)
    c = env.adj.conclude(env.params, s, env.a.address)
    env.expect_paid(c, {ETH: (1, 4), env.token.address: (9, 0)})
    assert env.token.balance_of(env.a.address) == 9


def test_cooperative_close_overrides_a_dispute(env: Env) -> None:
    env.fund_eth((10, 10))
    s = env.state(4, ((15, 5),))
    env.adj.register(env.params, s, env.sign_both(s), env.a.address)
    stale = env.state(3, ((0, 20),), is_final=True)
    with pytest.raises(ContractReverted) as e:
        env.adj.conclude_cooperative(env.params, stale, env.sign_both(stale), env.b.address)
    assert e.value.error_name == "StaleVersion"
    final = env.state(5, ((12, 8),), is_final=True)
    r = env.adj.conclude_cooperative(env.params, final, env.sign_both(final), env.b.address)
    env.expect_paid(r, {ETH: (12, 8)})
    assert env.adj.dispute(env.cid).state_hash == b"\x00" * 32
