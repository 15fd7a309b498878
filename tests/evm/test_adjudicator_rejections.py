"""Every rejection reverts with its custom error and leaves the channel unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from chenilles_evm.adjudicator import AdjudicatorClient, ContractReverted, Erc20
from chenilles_evm.eip712 import ETH, HALF_N, SECP256K1_N, Htlc, sign_state

if TYPE_CHECKING:  # the fixture `env` gives an Env (tests/evm has no package)
    from conftest import Env

pytestmark = pytest.mark.evm


def _expect(err: str, fn, *args, **kw) -> ContractReverted:
    with pytest.raises(ContractReverted) as e:
        fn(*args, **kw)
    assert e.value.error_name == err, e.value
    return e.value


def test_forged_signature(env: Env) -> None:
    env.fund_eth((10, 10))
    snap = env.snapshot()
    s = env.state(1, ((20, 0),))
    forged = [env.adj.sign(s, env.a.key), env.adj.sign(s, env.watcher.key)]  # b never signed
    assert _expect(
        "InvalidSignature", env.adj.register, env.params, s, forged, env.a.address
    ).error_args == (1,)
    swapped = list(reversed(env.sign_both(s)))
    _expect("InvalidSignature", env.adj.register, env.params, s, swapped, env.a.address)
    tampered = env.sign_both(s)
    tampered[0] = tampered[0][:10] + bytes([tampered[0][10] ^ 1]) + tampered[0][11:]
    _expect("InvalidSignature", env.adj.register, env.params, s, tampered, env.a.address)
    signed_other = env.sign_both(env.state(1, ((10, 10),)))  # signature of another state
    _expect("InvalidSignature", env.adj.register, env.params, s, signed_other, env.a.address)
    _expect("InvalidSignature", env.adj.register, env.params, s, [b"", b"\x00" * 65], env.a.address)
    assert env.snapshot() == snap


def test_malleable_signature_rejected(env: Env) -> None:
    env.fund_eth((10, 10))
    s = env.state(1, ((10, 10),))
    sigs = env.sign_both(s)
    r, s_, v = sigs[0][:32], int.from_bytes(sigs[0][32:64], "big"), sigs[0][64]
    assert s_ <= HALF_N  # we sign low-s
    high = r + (SECP256K1_N - s_).to_bytes(32, "big") + bytes([55 - v])  # same signer, high s
    _expect("InvalidSignature", env.adj.register, env.params, s, [high, sigs[1]], env.a.address)
    raw_v = sigs[0][:64] + bytes([v - 27])  # v in {0, 1}
    _expect("InvalidSignature", env.adj.register, env.params, s, [raw_v, sigs[1]], env.a.address)
    env.adj.register(env.params, s, sigs, env.a.address)  # the canonical form works


@pytest.mark.parametrize(
    "where", ["other_chain", "other_contract", "other_contract_same_id", "other_channel"]
)
def test_signature_replay_rejected(env: Env, where: str) -> None:
    env.fund_eth((10, 10))
    snap = env.snapshot()
    s = env.state(1, ((20, 0),))
    if where == "other_chain":
        sigs = [sign_state(s, k, env.adj.chain_id + 1, env.adj.address) for k in env.private_keys()]
        _expect("InvalidSignature", env.adj.register, env.params, s, sigs, env.a.address)
    elif where == "other_contract":
        # a state and signatures valid on another deployment name another channel here
        other = AdjudicatorClient.deploy(env.w3, env.watcher.address)
        s2 = s.replace(channel_id=other.channel_id(env.params))
        _expect(
            "WrongChannel",
            env.adj.register,
            env.params,
            s2,
            env.sign_both(s2, other),
            env.a.address,
        )
    elif where == "other_contract_same_id":
        # right channel id, but signed under the other deployment's EIP-712 domain
        other = AdjudicatorClient.deploy(env.w3, env.watcher.address)
        _expect(
            "InvalidSignature",
            env.adj.register,
            env.params,
            s,
            env.sign_both(s, other),
            env.a.address,
        )
    else:
        other_params = env.new_params()
        env.fund_eth((10, 10), other_params)
        _expect("WrongChannel", env.adj.register, other_params, s, env.sign_both(s), env.a.address)
        assert env.snapshot(other_params)[0].version == 0
    assert env.snapshot() == snap


def test_stale_version(env: Env) -> None:
    env.fund_eth((10, 10))
    s5 = env.state(5, ((12, 8),))
    env.adj.register(env.params, s5, env.sign_both(s5), env.a.address)
    snap = env.snapshot()
    for v in (1, 4, 5):
        s = env.state(v, ((0, 20),))
        err = _expect(
            "StaleVersion", env.adj.register, env.params, s, env.sign_both(s), env.b.address
        )
        assert err.error_args == (5, v)
    assert env.snapshot() == snap


def test_non_conserving(env: Env) -> None:
    env.fund_eth((10, 10))
    snap = env.snapshot()
    over = env.state(1, ((11, 10),))
    err = _expect(
        "NonConserving", env.adj.register, env.params, over, env.sign_both(over), env.a.address
    )
    assert err.error_args == ("0x0000000000000000000000000000000000000000", 21, 20)
    h = Htlc(1, 0, ETH, 1, b"\x01" * 32, 2**40)
    over_h = env.state(1, ((10, 10),), htlcs=(h,))
    _expect(
        "NonConserving", env.adj.register, env.params, over_h, env.sign_both(over_h), env.a.address
    )
    unfunded = env.state(1, ((10, 10), (1, 0)), assets=(ETH, env.token.address))
    _expect(
        "NonConserving",
        env.adj.register,
        env.params,
        unfunded,
        env.sign_both(unfunded),
        env.a.address,
    )
    assert env.snapshot() == snap


def test_malformed_states(env: Env) -> None:
    env.fund_eth((10, 10))
    snap = env.snapshot()
    tok = env.token.address
    cases = [
        (env.state(1, ((10, 10), (0, 0)), assets=(ETH, ETH)), "DuplicateAsset"),
        (
            env.state(1, ((10, 10),), htlcs=(Htlc(4, 0, tok, 0, b"\x01" * 32, 1),)),
            "UnknownHtlcAsset",
        ),
        (env.state(1, ((10, 10),), htlcs=(Htlc(4, 2, ETH, 0, b"\x01" * 32, 1),)), "InvalidState"),
        (env.state(1, ()), "InvalidState"),  # balances/assets length mismatch below
    ]
    cases[-1] = (cases[-1][0].replace(assets=(ETH,)), "InvalidState")
    many = tuple(f"0x{i:040x}" for i in range(1, 10))
    cases.append((env.state(1, tuple((0, 0) for _ in many), assets=many), "TooManyAssets"))
    htlcs = tuple(Htlc(i, 0, ETH, 0, b"\x01" * 32, 1) for i in range(33))
    cases.append((env.state(1, ((10, 10),), htlcs=htlcs), "TooManyHtlcs"))
    for s, err in cases:
        _expect(err, env.adj.register, env.params, s, env.sign_both(s), env.a.address)
    assert env.snapshot() == snap


def test_withdraw_twice_and_by_others(env: Env) -> None:
    # b's receiver refuses the token: the close credits b's share, to be pulled by b only
    tok = Erc20.deploy_blocklist_token(env.w3, env.watcher.address)
    env.fund_token((10, 10), token=tok)
    tok.set_blocked(env.b.address, True, env.watcher.address)
    final = env.state(2, ((5, 15),), assets=(tok.address,), is_final=True)
    r = env.adj.conclude_cooperative(env.params, final, env.sign_both(final), env.a.address)
    env.expect_paid(r, {tok.address: (5, 0)}, credited={tok.address: (0, 15)})
    w = tok.address
    _expect(
        "Unauthorized", env.adj.withdraw, env.params, 1, w, env.watcher.address, env.watcher.address
    )
    _expect("Unauthorized", env.adj.withdraw, env.params, 1, w, env.a.address, env.a.address)
    snap = env.snapshot(assets=(w,))
    # a failed pull reverts as a whole: the credit stays
    _expect("TransferFailed", env.adj.withdraw, env.params, 1, w, env.b.address, env.b.address)
    assert env.snapshot(assets=(w,)) == snap
    r = env.adj.withdraw(env.params, 1, w, env.watcher.address, env.b.address)
    assert r.event("Withdrawn").args["amount"] == 15
    assert tok.balance_of(env.watcher.address) == 15
    snap = env.snapshot(assets=(w,))
    for i, who in ((1, env.b), (0, env.a)):  # withdrawn, and paid at the close
        err = _expect(
            "AlreadyWithdrawn", env.adj.withdraw, env.params, i, w, who.address, who.address
        )
        assert err.error_args == (i, w.lower())
    assert env.snapshot(assets=(w,)) == snap and tok.balance_of(env.adj.address) == 0


def test_withdraw_before_conclude(env: Env) -> None:
    env.fund_eth((10, 10))
    _expect("NotConcluded", env.adj.withdraw, env.params, 0, ETH, env.a.address, env.a.address)
    s = env.state(1, ((10, 10),))
    env.adj.register(env.params, s, env.sign_both(s), env.a.address)
    snap = env.snapshot()
    _expect("NotConcluded", env.adj.withdraw, env.params, 0, ETH, env.a.address, env.a.address)
    assert env.snapshot() == snap and env.w3.eth.get_balance(env.adj.address) == 20


def test_conclude_and_progress_without_registration(env: Env) -> None:
    env.fund_eth((1, 1))
    s = env.state(1, ((1, 1),))
    _expect("NotRegistered", env.adj.conclude, env.params, s, env.a.address)
    _expect("NoApp", env.adj.progress, env.params, s, s, 0, b"", env.a.address)
