"""Differential: the guarantee's Python rule and VirtualLedger.sol give the same verdict on
random forced moves, honest and cheating, on a real EVM (eth-tester, py-evm).

The contract is the app plugin's own code, called as the adjudicator calls it on a forced
move (``validTransition`` by ``eth_call`` at the chain time the Python rule is given); a
revert counts as a refusal. The rule compared is ``VirtualLedgerApp.valid_forced``: a FUND
is never forced, while the hub's FUND is valid off-chain, as the cooperative update its
end signs (both halves checked). Cases: every kind of move (fund, show, heartbeat,
settle) by either participant, at times around the deadline and the grace, from states
that are honest or mutated (a byte flipped in the signatures, the amounts, the core, the
counter; versions older, equal, newer; final flags; rates and splits at the edges of
uint256).
About 220 cases, 10-30 s; ``CHENILLES_SLOW_TESTS=1`` runs ten times as many.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
import pytest
from chenilles_app_virtual import protocol, rules
from chenilles_evm.adjudicator import load_artifact
from chenilles_evm.eip712 import Params
from chenilles_evm.ledgers import Ledger, ethtester_ledger
from chenilles_evm.mapping import caip2, to_state
from eth_tester.exceptions import TransactionFailed

from chenilles_hub import apps
from chenilles_hub.core import Asset, AssetBalances, ChannelParams, ChannelState
from chenilles_hub.core.virtual import VirtualTerms, virtual_channel_id

from . import cases

pytestmark = [pytest.mark.groups, pytest.mark.evm, pytest.mark.adversarial]

SEEDS = 10
slow = pytest.mark.skipif(
    not os.environ.get("CHENILLES_SLOW_TESTS"), reason="long variant: CHENILLES_SLOW_TESTS=1"
)


@dataclass(frozen=True)
class Case:
    label: str
    before: ChannelState
    after: ChannelState
    mover: int
    now: int


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return ethtester_ledger()


def _sign(t: VirtualTerms, version: int, amounts: tuple[int, int], final: bool) -> rules.VState:
    digest = rules.state_digest(virtual_channel_id(t), version, amounts, final)
    sigs = (
        rules.sign_digest(cases.ALICE_KEY, digest),
        rules.sign_digest(cases.BOB_KEY, digest),
    )
    return rules.VState(version, amounts, final, sigs)


def _flip(data: bytes, rng: random.Random, lo: int = 0, hi: int | None = None) -> bytes:
    b = bytearray(data)
    i = rng.randrange(lo, hi if hi is not None else len(b))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _after(before: ChannelState, data: bytes, honest_balances: bool = True) -> ChannelState:
    """``before`` with app data ``data`` and (if it decodes) the balances it implies."""
    after = msgspec.structs.replace(before, app_data=data, version=before.version + 1)
    if honest_balances:
        g = rules.decode_or_none(data)
        if g is not None and rules.fits(g):
            after = msgspec.structs.replace(
                after, balances=(AssetBalances(before.balances[0].asset, g.balances()),)
            )
    return after


def sequence(rng: random.Random, asset: Asset, chain_now: int) -> Iterator[Case]:
    big = rng.random() < 0.3
    split = (rng.randrange(1, 2**120), rng.randrange(0, 2**120)) if big else (300, 200)
    rate = (rng.randrange(1, 2**64), rng.randrange(1, 2**64)) if big else (1, 1)
    # where the chain's clock stands: before the deadline, on it, in the grace, after it
    deadline = chain_now + rng.choice([500, 1, 0, -50, -1000])
    t = msgspec.structs.replace(cases.terms(split, rate), deadline=deadline, grace=200)
    side = rng.randrange(2)
    hub = t.ledgers[side].hub_index
    lt = t.ledgers[side]
    locked = t.capacity * lt.num // lt.den
    empty = ChannelState(
        channel_id=b"A" * 32,
        version=3,
        balances=(AssetBalances(asset, (locked + 7, locked + 11)),),
    )
    g = protocol.guarantee_for(t, side, empty)
    funded = _after(empty, g.encode())
    # funding: by the hub (ok), by the end, with a foreign end key, with a stolen balance
    yield Case("fund", empty, funded, hub, chain_now)
    yield Case("fund by end", empty, funded, 1 - hub, chain_now)
    foreign = rules.Guarantee(**{**g.__dict__, "keys": (g.keys[1], g.keys[0])})
    yield Case("fund foreign key", empty, _after(empty, foreign.encode()), hub, chain_now)
    steal = msgspec.structs.replace(
        funded, balances=(AssetBalances(asset, (locked + 8, locked + 10)),)
    )
    yield Case("fund moves money", empty, steal, hub, chain_now)
    # shows: newer, equal, older, final, forged, wrong sums, by either, at any time
    # activation by the hub (ok) or the end; a cancel of the pending guarantee
    yield Case(
        "activate", funded, _after(funded, rules.activate(g).encode()), rng.randrange(2), chain_now
    )
    back = msgspec.structs.replace(funded, app_data=b"", version=funded.version + 1)
    yield Case("cancel", funded, back, rng.randrange(2), chain_now)
    active = rules.activate(g)
    pending_show = rules.with_vstate(g, _sign(t, 5, split, False)).encode()
    yield Case("show pending", funded, _after(funded, pending_show), rng.randrange(2), chain_now)
    held = rules.with_vstate(active, _sign(t, 4, split, False))
    start = _after(funded, held.encode())
    for _ in range(12):
        version = rng.choice([3, 4, 4, 5, 9])
        a = rng.randrange(0, t.capacity + 1)
        amounts = (a, t.capacity - a)
        v = _sign(t, version, amounts, rng.random() < 0.3)
        nxt = rules.with_vstate(held, v).encode()
        mutation = rng.random()
        label = "show"
        if mutation < 0.15:
            nxt, label = _flip(nxt, rng, rules.CORE_LENGTH + 73, rules.CORE_LENGTH + 203), "forged"
        elif mutation < 0.25:
            nxt, label = _flip(nxt, rng, rules.CORE_LENGTH, rules.CORE_LENGTH + 73), "amounts"
        elif mutation < 0.32:
            nxt, label = _flip(nxt, rng, 0, rules.CORE_LENGTH), "core"
        elif mutation < 0.36:
            nxt, label = nxt[:-1], "short"
        after = _after(start, nxt, honest_balances=rng.random() < 0.9)
        yield Case(label, start, after, rng.randrange(2), chain_now)
    # heartbeats, by either, in and out of time; a counter that jumps
    yield Case("beat", start, _after(start, rules.heartbeat(held).encode()), hub, chain_now)
    yield Case("beat end", start, _after(start, rules.heartbeat(held).encode()), 1 - hub, chain_now)
    jump = rules.heartbeat(rules.heartbeat(held)).encode()
    yield Case("beat jump", start, _after(start, jump), hub, chain_now)
    # settle: from a final state (ok), from a non-final one, with money moved
    final = _after(funded, rules.with_vstate(active, _sign(t, 6, split, True)).encode())
    settled = msgspec.structs.replace(final, app_data=b"", version=final.version + 1)
    yield Case("settle", final, settled, rng.randrange(2), chain_now)
    yield Case("settle early", start, msgspec.structs.replace(start, app_data=b""), hub, chain_now)
    moved = msgspec.structs.replace(
        settled, balances=(AssetBalances(asset, (locked + 6, locked + 12)),)
    )
    yield Case("settle moves money", final, moved, hub, chain_now)


def _params(chain: str, asset: Asset) -> ChannelParams:
    p = cases.ledger_params(cases.ALICE_KEY, 1)
    return msgspec.structs.replace(p, chain=chain, assets=(asset,))


def _verdicts(ledger: Ledger, seeds: range) -> tuple[int, int]:
    w3 = ledger.w3
    abi = load_artifact("IApp")["abi"]
    code = apps.app(rules.APP_ID).onchain_code("EVM")
    assert code
    tx = (
        w3.eth.contract(abi=abi, bytecode=code)
        .constructor()
        .transact({"from": ledger.accounts[0].address})
    )
    contract = w3.eth.contract(
        address=w3.eth.wait_for_transaction_receipt(tx)["contractAddress"], abi=abi
    )
    chain = caip2(int(w3.eth.chain_id))
    asset = Asset(chain, "native")
    app = rules.VirtualLedgerApp()
    tester = ledger.tester  # type: ignore[attr-defined]
    checked = accepted = funds = 0
    for seed in seeds:
        rng = random.Random(seed)
        side_params: dict[int, ChannelParams] = {}
        for case in sequence(rng, asset, ledger.now()):
            # the ledger channel's participants: the end's address where the end sits
            g = rules.decode_or_none(case.after.app_data) or rules.decode_or_none(
                case.before.app_data
            )
            hub = g.hub if g is not None else 1
            end_key = cases.ALICE_KEY if (g is None or g.end == 0) else cases.BOB_KEY
            p = side_params.setdefault(
                hub * 2 + (end_key == cases.BOB_KEY),
                msgspec.structs.replace(
                    cases.ledger_params(end_key, hub), chain=chain, assets=(asset,)
                ),
            )
            expected = app.valid_forced(p, case.before, case.after, case.mover, case.now)
            if rules.is_fund(case.before, case.after):
                # never forced; the hub's (only) is valid off-chain, as a cooperative update
                assert not expected
                fine = app.valid_transition(p, case.before, case.after, case.mover, case.now)
                assert not fine or case.label == "fund", case.label
                funds += fine
            onchain = Params(
                tuple(x.chain_key for x in p.participants), 100, b"\x00" * 32, contract.address
            )
            data = contract.functions.validTransition(
                onchain.to_abi(),
                to_state(p, case.before).to_abi(),
                to_state(p, case.after).to_abi(),
                case.mover,
            )._encode_transaction_data()
            call = {"to": contract.address, "data": data, "from": ledger.accounts[0].address}
            try:
                out = tester.call(call, "latest")
                got = int(out, 16) == 1 if isinstance(out, str) else int.from_bytes(out) == 1
            except TransactionFailed:
                got = False
            assert got == expected, (seed, case.label, case.mover, case.now)
            checked += 1
            accepted += expected
    assert funds > 0  # the hub's FUND passes the end's check (what its machine signs)
    return checked, accepted


def test_python_and_solidity_agree(ledger: Ledger) -> None:
    checked, accepted = _verdicts(ledger, range(SEEDS))
    assert checked > 100 and 0 < accepted < checked


@pytest.mark.slow
@slow
def test_long_differential_run(ledger: Ledger) -> None:
    checked, _ = _verdicts(ledger, range(1000, 1000 + 10 * SEEDS))
    assert checked > 1000
