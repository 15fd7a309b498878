"""Payouts: a conclusion pays both participants in its own transaction, exactly once.

A payout the receiver refuses (an EIP-7702 account whose code rejects ETH or burns gas, a
token that blocks the receiver) is credited for that participant's ``withdraw`` and never
blocks the other payouts, but a concluder can never force a credit by starving a payout of
gas. Reentrancy from a receiver or a token hook hits the lock. Tests that need an account
with code that still signs with its key run on Prague: py-evm already does, and anvil is
started with ``--hardfork prague`` for them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator

import pytest
from chenilles_evm.adjudicator import (
    ContractReverted,
    Erc20,
    State,
    TxResult,
    delegate_code,
    deploy_contract,
    load_artifact,
)
from chenilles_evm.eip712 import ETH, Htlc
from chenilles_evm.ledgers import Ledger, anvil_ledger
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector

from .conftest import Env, make_env

pytestmark = pytest.mark.evm

E = 10**18
#: TestWallet modes (contracts/evm/TestWallet.sol)
ACCEPT, REJECT, BURN, REENTER, STINGY = 0, 1, 2, 3, 4
#: StingyGasToken: ``transfer`` reverts with less gas left than this (of the 100,000 a
#: token payout forwards)
TOKEN_MIN_GAS = 60_000
REENTRANCY = function_signature_to_4byte_selector("Reentrancy()")


def _expect(err: str, fn, *args) -> ContractReverted:
    with pytest.raises(ContractReverted) as e:
        fn(*args)
    assert e.value.error_name == err, e.value
    return e.value


@pytest.fixture(scope="module")
def prague(ledger: Ledger) -> Iterator[Ledger]:
    if ledger.kind == "ethtester":
        yield ledger  # py-evm's latest fork is Prague
        return
    led = anvil_ledger(hardfork="prague")
    yield led
    led.stop()


@pytest.fixture
def penv(prague: Ledger) -> Env:
    return make_env(prague)


@pytest.fixture
def delegate(penv: Env) -> Iterator[Callable[..., None]]:
    """``delegate(account, mode)``: from now on ``account`` runs TestWallet in ``mode``
    when paid ETH; ``delegate(account, REENTER, calldata)``: it sends ``calldata`` to the
    adjudicator when paid ETH or hooked by HookToken. Undone after the test: the ledger
    and its accounts are shared."""
    wallet = deploy_contract(penv.w3, "TestWallet", sender=penv.watcher.address)
    touched: list[LocalAccount] = []

    def set_mode(account: LocalAccount, mode: int, reentry: bytes | str | None = None) -> None:
        data = wallet.encode_abi("configure", [mode, penv.adj.address])
        delegate_code(penv.w3, account, wallet.address, data)
        touched.append(account)
        if reentry is not None:  # stores the calldata as a contract's code: more gas
            assert mode == REENTER
            data = wallet.encode_abi("configureReentry", [penv.adj.address, reentry])
            tx = {"from": account.address, "to": account.address, "data": data, "gas": 2_000_000}
            receipt = penv.w3.eth.wait_for_transaction_receipt(penv.w3.eth.send_transaction(tx))
            assert receipt["status"] == 1

    yield set_mode
    for account in touched:
        delegate_code(penv.w3, account, ETH)
        assert penv.w3.eth.get_code(account.address) == b""


def _wallet_events(env: Env, result: TxResult, who: str, name: str) -> list:
    """The ``name`` events that account ``who`` logged (running TestWallet) in ``result``."""
    receipt = env.w3.eth.get_transaction_receipt(result.tx_hash)
    wallet = env.w3.eth.contract(address=who, abi=load_artifact("TestWallet")["abi"])
    event = getattr(wallet.events, name)()
    topic = bytes(env.w3.keccak(text=event.abi_element_identifier))
    return [
        event.process_log(log)["args"]
        for log in receipt["logs"]
        if log["address"] == who and log["topics"] and bytes(log["topics"][0]) == topic
    ]


# ---------------------------------------------------------------- exactly once


def test_no_second_payout_after_a_cooperative_close(env: Env) -> None:
    env.fund_eth((3 * E, 2 * E))
    env.fund_token((70, 30))
    assets = (ETH, env.token.address)
    final = env.state(9, ((E, 4 * E), (0, 100)), assets=assets, is_final=True)
    sigs = env.sign_both(final)
    before, contract = env.wallets(), env.held()
    r = env.adj.conclude_cooperative(env.params, final, sigs, env.watcher.address)
    env.expect_paid(r, {ETH: (E, 4 * E), env.token.address: (0, 100)})
    assert env.wallets() == (before[0] + E, before[1] + 4 * E)
    assert env.wallets(env.token.address) == (0, 100)
    assert env.held() == contract - 5 * E and env.held(env.token.address) == 0

    # payout after payout: every way back in is closed, and nothing moves
    snap = env.snapshot(assets=assets)
    wallets, tokens = env.wallets(), env.wallets(env.token.address)
    _expect(
        "AlreadyConcluded", env.adj.conclude_cooperative, env.params, final, sigs, env.a.address
    )
    _expect("AlreadyConcluded", env.adj.register, env.params, final, sigs, env.watcher.address)
    _expect("AlreadyConcluded", env.adj.conclude, env.params, final, env.watcher.address)
    for asset in assets:
        for i, who in enumerate((env.a, env.b)):
            _expect(
                "AlreadyWithdrawn", env.adj.withdraw, env.params, i, asset, who.address, who.address
            )
    assert env.snapshot(assets=assets) == snap
    assert env.wallets() == wallets and env.wallets(env.token.address) == tokens
    assert env.held() == contract - 5 * E and env.held(env.token.address) == 0


def test_no_second_payout_after_a_dispute(env: Env) -> None:
    env.fund_eth((10, 10))
    s = env.state(4, ((7, 13),))
    r = env.adj.register(env.params, s, env.sign_both(s), env.a.address)
    env.ledger.time_travel(r.event("Registered").args["timeout"])
    contract = env.held()
    c = env.adj.conclude(env.params, s, env.watcher.address)
    env.expect_paid(c, {ETH: (7, 13)})
    assert env.held() == contract - 20
    _expect("AlreadyConcluded", env.adj.conclude, env.params, s, env.watcher.address)
    final = env.state(5, ((0, 20),), is_final=True)
    _expect(
        "AlreadyConcluded",
        env.adj.conclude_cooperative,
        env.params,
        final,
        env.sign_both(final),
        env.b.address,
    )
    for i, who in enumerate((env.a, env.b)):
        _expect("AlreadyWithdrawn", env.adj.withdraw, env.params, i, ETH, who.address, who.address)
    assert env.held() == contract - 20 and env.adj.holding(env.cid, ETH) == 0


# ----------------------------------------------------------------- multi-asset


def test_dispute_pays_three_assets_with_htlcs_resolved_as_before(env: Env) -> None:
    """ETH, an ERC-20 and a token that returns nothing (USDT-like); an HTLC revealed in
    time pays its payee, an unrevealed one is refunded after its expiry."""
    usdt = Erc20.deploy_no_return_token(env.w3, env.watcher.address)
    tok = env.token.address
    env.fund_eth((E, E))
    env.fund_token((500, 0))
    env.fund_token((0, 80), token=usdt)
    pre = [secrets.token_bytes(32) for _ in range(2)]
    now = env.ledger.now()
    hs = (
        Htlc(1, 0, tok, 60, hashlib.sha256(pre[0]).digest(), now + 400),  # revealed -> b
        Htlc(2, 1, ETH, E // 4, hashlib.sha256(pre[1]).digest(), now + 400),  # refund -> b
    )
    s = env.state(
        6,
        ((E, 3 * E // 4), (400, 40), (30, 50)),
        assets=(ETH, tok, usdt.address),
        htlcs=hs,
    )
    env.adj.register(env.params, s, env.sign_both(s), env.a.address)
    env.adj.reveal_preimage(pre[0], env.b.address)
    env.ledger.time_travel(now + 401)
    before, contract = env.wallets(), env.held()
    c = env.adj.conclude(env.params, s, env.watcher.address)
    resolved = {
        e.args["htlcId"]: e.args["paidToPayee"] for e in c.events if e.name == "HtlcResolved"
    }
    assert resolved == {1: True, 2: False}
    env.expect_paid(c, {ETH: (E, E), tok: (400, 100), usdt.address: (30, 50)})
    assert env.wallets() == (before[0] + E, before[1] + E)
    assert env.wallets(tok) == (400, 100)
    assert (usdt.balance_of(env.a.address), usdt.balance_of(env.b.address)) == (30, 50)
    assert env.held() == contract - 2 * E
    assert env.held(tok) == 0 == usdt.balance_of(env.adj.address)


@pytest.mark.parametrize("quiet", [False, True], ids=["reverts", "returns-false"])
def test_a_blocked_token_receiver_is_credited_and_the_rest_is_paid(env: Env, quiet: bool) -> None:
    blk = Erc20.deploy_blocklist_token(env.w3, env.watcher.address)
    blk.set_quiet(quiet, env.watcher.address)  # refuse by reverting, or by returning false
    tok = env.token.address
    env.fund_eth((5, 5))
    env.fund_token((0, 20))
    env.fund_token((30, 0), token=blk)
    blk.set_blocked(env.b.address, True, env.watcher.address)
    s = env.state(2, ((4, 6), (5, 15), (10, 20)), assets=(ETH, tok, blk.address))
    r = env.adj.register(env.params, s, env.sign_both(s), env.b.address)
    env.ledger.time_travel(r.event("Registered").args["timeout"])
    c = env.adj.conclude(env.params, s, env.b.address)
    env.expect_paid(
        c,
        {ETH: (4, 6), tok: (5, 15), blk.address: (10, 0)},
        credited={blk.address: (0, 20)},
    )
    assert env.adj.holding(env.cid, blk.address) == 20 == blk.balance_of(env.adj.address)
    assert env.wallets(tok) == (5, 15) and blk.balance_of(env.a.address) == 10
    assert blk.balance_of(env.b.address) == 0
    # the blocked receiver cannot pull to itself either; the credit stays
    _expect(
        "TransferFailed", env.adj.withdraw, env.params, 1, blk.address, env.b.address, env.b.address
    )
    assert env.adj.payout(env.cid, blk.address, 1) == (20, False)
    w = env.adj.withdraw(env.params, 1, blk.address, env.watcher.address, env.b.address)
    assert w.event("Withdrawn").args["amount"] == 20
    assert blk.balance_of(env.watcher.address) == 20 and blk.balance_of(env.adj.address) == 0
    assert env.adj.payout(env.cid, blk.address, 1) == (0, True)
    _expect(
        "AlreadyWithdrawn",
        env.adj.withdraw,
        env.params,
        1,
        blk.address,
        env.b.address,
        env.b.address,
    )


def test_holdings_no_state_accounts_for_stay_locked(env: Env) -> None:
    """A deposit in an asset the state does not list, or a top-up after registration, is
    paid to nobody: neither participant can withdraw it."""
    env.fund_eth((10, 10))
    env.fund_token((0, 7))  # never in any signed state
    s = env.state(3, ((12, 8),))
    r = env.adj.register(env.params, s, env.sign_both(s), env.a.address)
    env.adj.deposit(env.params, 1, ETH, 5, env.b.address)  # a top-up no state accounts for
    env.ledger.time_travel(r.event("Registered").args["timeout"])
    c = env.adj.conclude(env.params, s, env.a.address)
    env.expect_paid(c, {ETH: (12, 8)})
    assert env.adj.holding(env.cid, ETH) == 5
    assert env.adj.holding(env.cid, env.token.address) == 7
    for asset in (ETH, env.token.address):
        for i, who in enumerate((env.a, env.b)):
            _expect(
                "AlreadyWithdrawn", env.adj.withdraw, env.params, i, asset, who.address, who.address
            )
    _expect("AlreadyConcluded", env.adj.deposit, env.params, 0, ETH, 1, env.a.address)


# ----------------------------------------------------- receivers with code (EIP-7702)


def test_a_reverting_eth_receiver_is_credited_and_cannot_block_the_other(
    penv: Env, delegate
) -> None:
    env = penv
    env.fund_eth((6, 4))
    delegate(env.b, REJECT)
    final = env.state(1, ((3, 7),), is_final=True)
    before, contract = env.wallets(), env.held()
    r = env.adj.conclude_cooperative(env.params, final, env.sign_both(final), env.a.address)
    env.expect_paid(r, {ETH: (3, 0)}, credited={ETH: (0, 7)})
    assert env.wallets() == (before[0] + 3 - env.fee(r), before[1])
    assert env.held() == contract - 3 and env.adj.holding(env.cid, ETH) == 7
    # b's own receiver still refuses: the pull reverts and the credit stays
    _expect("TransferFailed", env.adj.withdraw, env.params, 1, ETH, env.b.address, env.b.address)
    _expect("Unauthorized", env.adj.withdraw, env.params, 1, ETH, env.a.address, env.a.address)
    assert env.adj.payout(env.cid, ETH, 1) == (7, False)
    to = env.w3.eth.get_balance(env.watcher.address)
    w = env.adj.withdraw(env.params, 1, ETH, env.watcher.address, env.b.address)
    assert w.event("Withdrawn").args["receiver"] == env.watcher.address
    assert env.w3.eth.get_balance(env.watcher.address) == to + 7
    assert env.held() == contract - 10 and env.adj.holding(env.cid, ETH) == 0
    _expect("AlreadyWithdrawn", env.adj.withdraw, env.params, 1, ETH, env.b.address, env.b.address)


def test_a_gas_burning_receiver_costs_the_concluder_a_bounded_amount(penv: Env, delegate) -> None:
    env = penv
    env.fund_eth((5, 5))
    s = env.state(2, ((1, 9),), htlcs=())
    r = env.adj.register(env.params, s, env.sign_both(s), env.a.address)
    env.ledger.time_travel(r.event("Registered").args["timeout"])
    delegate(env.a, BURN)  # a would rather nobody got paid
    c = env.adj.conclude(env.params, s, env.b.address)
    env.expect_paid(c, {ETH: (0, 9)}, credited={ETH: (1, 0)})
    cap = env.adj.contract.functions.PAYOUT_GAS_ETH().call()
    assert cap == 30_000
    # a plain conclusion, plus at most the forwarded gas and the credit
    assert c.gas_used < 75_000 + cap + 30_000, c.gas_used


@pytest.mark.parametrize("reentry", ["concludeCooperative", "conclude", "withdraw"])
def test_a_receiver_reentering_with_the_channels_own_calls_hits_the_lock(
    penv: Env, delegate, reentry: str
) -> None:
    """When paid, b re-enters with a real call of this very channel (its params, the
    state being concluded and its signatures): the lock refuses it, b's payout is sent
    once, and exactly the channel's holdings leave the contract."""
    env = penv
    env.fund_eth((10, 0))
    encode = env.adj.contract.encode_abi
    p = env.params.to_abi()
    if reentry == "conclude":
        s = env.state(3, ((4, 6),))
        r = env.adj.register(env.params, s, env.sign_both(s), env.a.address)
        env.ledger.time_travel(r.event("Registered").args["timeout"])
        again = encode("conclude", [p, s.to_abi()])

        def outer() -> TxResult:
            return env.adj.conclude(env.params, s, env.watcher.address)

    else:
        final = env.state(3, ((4, 6),), is_final=True)
        sigs = env.sign_both(final)
        if reentry == "concludeCooperative":
            again = encode("concludeCooperative", [p, final.to_abi(), sigs])
        else:  # b pulls its own payout while it is being sent
            again = encode("withdraw", [p, 1, ETH, env.b.address])

        def outer() -> TxResult:
            return env.adj.conclude_cooperative(env.params, final, sigs, env.watcher.address)

    delegate(env.b, REENTER, again)
    before, contract = env.wallets(), env.held()
    r = outer()
    reentered = _wallet_events(env, r, env.b.address, "Reentered")
    assert [(e["ok"], e["selector"]) for e in reentered] == [(False, REENTRANCY)]
    env.expect_paid(r, {ETH: (4, 6)})  # b's receive returned normally: paid once
    assert env.wallets() == (before[0] + 4, before[1] + 6)
    assert env.held() == contract - 10 and env.adj.holding(env.cid, ETH) == 0


def test_a_token_hook_cannot_deposit_twice_into_one_balance_difference(penv: Env, delegate) -> None:
    """A deposit credits the adjudicator's token balance difference across transferFrom.
    With an ERC-777-style token, the depositor's hook runs inside that window: b's hook
    deposits again into the same channel, which without the lock would be counted twice
    (once by itself, once in the outer difference): b would then cash out half as much
    again as it deposited, taken from the other channel's tokens. The lock refuses the
    inner deposit: b gets back exactly what it put in, the other channel's tokens stay."""
    env = penv
    w3, x = env.w3, 1_000
    address = deploy_contract(w3, "HookToken", sender=env.watcher.address).address
    hook = Erc20(w3, address, "HookToken")
    other = env.new_params()  # another channel with the same token: what could be stolen
    env.fund_token((x, 0), params=other, token=hook)
    b = env.b.address
    hook.mint(b, 2 * x, b)
    hook.approve(env.adj.address, 2 * x, b)
    w3.eth.wait_for_transaction_receipt(hook.contract.functions.setHook(True).transact({"from": b}))
    again = env.adj.contract.encode_abi("deposit", [env.params.to_abi(), hook.address, 1, x])
    delegate(env.b, REENTER, again)

    d = env.adj.deposit(env.params, 1, hook.address, x, b)
    held = env.adj.holding(env.cid, hook.address)
    # a agrees (or is b's other key): b takes whatever the channel holds
    final = env.state(1, ((0, held),), assets=(hook.address,), is_final=True)
    c = env.adj.conclude_cooperative(env.params, final, env.sign_both(final), b)
    env.expect_paid(c, {hook.address: (0, held)})
    assert hook.balance_of(b) == 2 * x  # the deposit came back, nothing more
    assert (
        hook.balance_of(env.adj.address)
        == x
        == env.adj.holding(env.adj.channel_id(other), hook.address)
    )
    assert held == x and [e.args["amount"] for e in d.events if e.name == "Deposited"] == [x]
    reentered = _wallet_events(env, d, b, "Reentered")
    assert [(e["ok"], e["selector"]) for e in reentered] == [(False, REENTRANCY)]


def _sweep_gas(env: Env, fn, asset: str, lo: int, step: int) -> tuple[int, TxResult]:
    """Send ``fn`` (a conclusion) from the watcher with gas limits ``lo``, ``lo + step``...
    until one succeeds. Every transaction before it must have failed as a whole (nothing
    concluded, paid or credited), none may credit a payout; return the gas limit that
    succeeded and its result."""
    snap = env.snapshot(assets=(asset,))
    for gas in range(lo, 400_000, step):
        try:
            tx_hash = fn.transact({"from": env.watcher.address, "gas": gas})
        except Exception:  # refused before mining
            assert env.snapshot(assets=(asset,)) == snap
            continue
        receipt = env.w3.eth.wait_for_transaction_receipt(tx_hash)
        events = env.adj.decode_logs(receipt["logs"])
        assert not [e for e in events if e.name == "PayoutCredited"], (gas, events)
        if receipt["status"] == 1:
            assert gas > lo, "the sweep starts too high to test anything"
            return gas, TxResult(bytes(tx_hash), int(receipt["gasUsed"]), 0, 0, tuple(events))
        assert env.snapshot(assets=(asset,)) == snap, gas
    pytest.fail("no gas limit concluded")


@pytest.mark.parametrize("path", ["cooperative", "dispute"])
@pytest.mark.parametrize("kind", ["eth", "token"])
def test_a_stingy_concluder_cannot_force_a_credit(
    penv: Env, delegate, kind: str, path: str
) -> None:
    """Whatever gas limit the concluder picks, the transaction either fails as a whole or
    pays both participants in full: a receiver that needs (nearly) all the gas a payout
    forwards always gets it. The receivers fail cheaply with less (a TestWallet in STINGY
    mode for ETH, StingyGasToken for a token), so a payout starved of gas would leave the
    conclusion enough gas to credit it: without the contract's InsufficientGas check,
    some gas limits of this sweep conclude with the payouts credited."""
    env = penv
    if kind == "eth":
        asset, step = ETH, 2_000  # a forced credit would need a limit in a ~4k-wide band
        for who in (env.a, env.b):
            delegate(who, STINGY)
        env.fund_eth((10, 10))
    else:
        step = 4_000  # bands of over 12k
        token = deploy_contract(env.w3, "StingyGasToken", TOKEN_MIN_GAS, sender=env.a.address)
        stingy = Erc20(env.w3, token.address, "StingyGasToken")
        asset = stingy.address
        env.fund_token((10, 10), token=stingy)
    fns = env.adj.contract.functions
    if path == "cooperative":
        final = env.state(1, ((8, 12),), assets=(asset,), is_final=True)
        fn = fns.concludeCooperative(env.params.to_abi(), final.to_abi(), env.sign_both(final))
    else:
        s = env.state(1, ((8, 12),), assets=(asset,))
        r = env.adj.register(env.params, s, env.sign_both(s), env.a.address)
        env.ledger.time_travel(r.event("Registered").args["timeout"])
        fn = fns.conclude(env.params.to_abi(), s.to_abi())
    before = env.wallets(asset)
    gas, result = _sweep_gas(env, fn, asset, 80_000, step)
    env.expect_paid(result, {asset: (8, 12)})  # no PayoutCredited, nothing to withdraw
    assert env.wallets(asset) == (before[0] + 8, before[1] + 12), gas
    assert env.adj.holding(env.cid, asset) == 0
    if kind == "eth":
        for who, amount in ((env.a, 8), (env.b, 12)):
            received = _wallet_events(env, result, who.address, "Received")
            assert [e["amount"] for e in received] == [amount]


def test_a_state_without_payouts_is_concluded_too(env: Env) -> None:
    """Zero balances send nothing (no call, no event) and leave nothing to withdraw."""
    env.fund_eth((0, 0))
    final = State(env.cid, 1, (ETH,), ((0, 0),), is_final=True)
    r = env.adj.conclude_cooperative(env.params, final, env.sign_both(final), env.a.address)
    env.expect_paid(r, {ETH: (0, 0)})
    assert [e.name for e in r.events] == ["ConcludedCooperatively"]
