"""Hash-time-locked payments resolved on chain."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

import pytest
from chenilles_evm.adjudicator import ContractReverted
from chenilles_evm.eip712 import ETH, Htlc

if TYPE_CHECKING:  # the fixture `env` gives an Env (tests/evm has no package)
    from conftest import Env

pytestmark = pytest.mark.evm


def _lock(env: Env, expiry_in: int = 1000, amount: int = 30, payer: int = 0):
    preimage = secrets.token_bytes(32)
    h = Htlc(1, payer, ETH, amount, hashlib.sha256(preimage).digest(), env.ledger.now() + expiry_in)
    env.fund_eth((100, 100))
    bal = (100 - amount, 100) if payer == 0 else (100, 100 - amount)
    s = env.state(2, (bal,), htlcs=(h,))
    r = env.adj.register(env.params, s, env.sign_both(s), env.a.address)
    return preimage, h, s, r.event("Registered").args["timeout"]


def test_htlc_revealed_before_expiry_pays_payee(env: Env) -> None:
    preimage, h, s, timeout = _lock(env)
    r = env.adj.reveal_preimage(preimage, env.b.address)
    ev = r.event("PreimageRevealed").args
    assert (ev["paymentHash"], ev["preimage"], ev["time"]) == (
        h.payment_hash,
        preimage,
        r.timestamp,
    )
    assert env.adj.revealed_at(h.payment_hash) == r.timestamp <= h.expiry
    env.ledger.time_travel(timeout)
    c = env.adj.conclude(env.params, s, env.a.address)  # before expiry: resolved by the reveal
    assert c.event("HtlcResolved").args["paidToPayee"] is True
    env.expect_paid(c, {ETH: (70, 130)})


def test_htlc_revealed_after_expiry_refunds_payer(env: Env) -> None:
    preimage, h, s, timeout = _lock(env, expiry_in=50, payer=1)
    env.ledger.time_travel(h.expiry + 1)
    env.adj.reveal_preimage(preimage, env.a.address)  # too late
    assert env.adj.revealed_at(h.payment_hash) > h.expiry
    env.ledger.time_travel(max(timeout, h.expiry + 2))
    c = env.adj.conclude(env.params, s, env.a.address)
    assert c.event("HtlcResolved").args["paidToPayee"] is False
    env.expect_paid(c, {ETH: (100, 100)})  # payer 1 refunded


def test_htlc_wrong_preimage_refunds_and_unresolved_blocks_conclude(env: Env) -> None:
    _preimage, h, s, timeout = _lock(env, expiry_in=500)
    env.adj.reveal_preimage(secrets.token_bytes(32), env.b.address)  # not the preimage
    assert env.adj.revealed_at(h.payment_hash) == 0
    env.ledger.time_travel(timeout)
    with pytest.raises(ContractReverted) as e:  # neither revealed nor expired yet
        env.adj.conclude(env.params, s, env.a.address)
    assert e.value.error_name == "HtlcNotResolvable" and e.value.error_args == (1,)
    env.ledger.time_travel(h.expiry + 1)
    c = env.adj.conclude(env.params, s, env.a.address)
    env.expect_paid(c, {ETH: (100, 100)})


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_preimage_must_be_32_bytes(env: Env, length: int) -> None:
    data = secrets.token_bytes(length)
    with pytest.raises(ContractReverted) as e:
        env.adj.reveal_preimage(data, env.a.address)
    assert e.value.error_name == "InvalidPreimageLength" and e.value.error_args == (length,)
    assert env.adj.revealed_at(hashlib.sha256(data).digest()) == 0


def test_first_reveal_wins(env: Env) -> None:
    p = secrets.token_bytes(32)
    r1 = env.adj.reveal_preimage(p, env.a.address)
    env.ledger.advance(100)
    r2 = env.adj.reveal_preimage(p, env.b.address)
    assert r2.events == ()
    assert env.adj.revealed_at(hashlib.sha256(p).digest()) == r1.timestamp


def test_htlc_in_erc20_with_several_locks(env: Env) -> None:
    env.fund_token((100, 100))
    tok = env.token.address
    pre = [secrets.token_bytes(32) for _ in range(3)]
    now = env.ledger.now()
    hs = (
        Htlc(1, 0, tok, 10, hashlib.sha256(pre[0]).digest(), now + 300),  # revealed -> b
        Htlc(2, 1, tok, 20, hashlib.sha256(pre[1]).digest(), now + 300),  # not revealed -> refund b
        Htlc(3, 1, tok, 5, hashlib.sha256(pre[2]).digest(), now + 300),  # revealed -> a
    )
    s = env.state(8, ((90, 75),), assets=(tok,), htlcs=hs)
    env.adj.register(env.params, s, env.sign_both(s), env.b.address)
    env.adj.reveal_preimage(pre[0], env.b.address)
    env.adj.reveal_preimage(pre[2], env.a.address)
    env.ledger.time_travel(now + 301)
    c = env.adj.conclude(env.params, s, env.b.address)
    env.expect_paid(c, {tok: (95, 105)})
    assert (env.token.balance_of(env.a.address), env.token.balance_of(env.b.address)) == (95, 105)
    assert env.token.balance_of(env.adj.address) == 0
