"""Differential: the guarantee's Python rule (compact layout) and its Solana program give the
same verdict on random forced moves, honest and cheating, run by LiteSVM.

The program is the app plugin's own SBF binary (apps/virtual/contracts/solana), called with
the app ABI exactly as the adjudicator calls it through CPI on a forced move
(``chenilles_app.h``); success is acceptance, any error a refusal. Cases as in
test_virtual_differential.py (EVM), in u64: every kind of move by either participant, at
times around the deadline and the grace, from honest or mutated states (a bit flipped in
the signatures, the amounts, the core; versions older, equal, newer; final flags; rates and
totals at the edge of u64; balances that do not cover the guarantee).

The program is held to ``VirtualLedgerApp.valid_forced``: it refuses every forced FUND, as
the EVM contract does (docs/virtual-channels.md), while ``valid_transition`` accepts the
hub's FUND, which the protocol only ever makes as a cooperative update the end signs (the
test checks both halves). About 250
cases in about 2 s; ``CHENILLES_SLOW_TESTS=1`` runs ten times as many.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
import pytest
from chenilles_app_virtual import compact, protocol, rules
from chenilles_solana import program_client as pc
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata

from chenilles_hub import apps
from chenilles_hub.core import Asset, AssetBalances, ChannelParams, ChannelState
from chenilles_hub.core.errors import InvalidTransition
from chenilles_hub.core.virtual import VirtualTerms, virtual_channel_id

from . import cases

pytestmark = [pytest.mark.groups, pytest.mark.solana, pytest.mark.adversarial]

SEEDS = 10
ASSET = Asset("solana:localnet", "native")
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


def _sign(t: VirtualTerms, version: int, amounts: tuple[int, int], final: bool) -> rules.VState:
    digest = rules.state_digest(virtual_channel_id(t), version, amounts, final)
    sigs = (
        rules.sign_digest(cases.ALICE_KEY, digest),
        rules.sign_digest(cases.BOB_KEY, digest),
    )
    return rules.VState(version, amounts, final, sigs)


def _flip(data: bytes, rng: random.Random, lo: int, hi: int) -> bytes:
    b = bytearray(data)
    b[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
    return bytes(b)


def _next(before: ChannelState, data: bytes, honest_balances: bool = True) -> ChannelState:
    """``before`` with app data ``data`` and, if honest, the balances its move implies."""
    after = msgspec.structs.replace(before, app_data=data, version=before.version + 1)
    if not honest_balances or not before.app_data or not data:
        return after
    g0 = rules.state_guarantee(before)
    assert g0 is not None
    try:
        bal = rules.parse_compact(data, g0.base).balances()
    except InvalidTransition:
        return after
    if max(bal) > compact.MAX_U64:
        return after
    return msgspec.structs.replace(after, balances=(AssetBalances(ASSET, bal),))


def sequence(rng: random.Random, now: int) -> Iterator[Case]:
    big = rng.random() < 0.3
    split = (rng.randrange(1, 2**61), rng.randrange(0, 2**61)) if big else (300, 200)
    rate = (rng.randrange(1, 2**32), rng.randrange(1, 2**32)) if big else (1, 1)
    if big and rng.random() < 0.5:  # totals around u64's edge
        rate = (rng.choice([1, 2, 3, 4, 7]), 1)
    deadline = now + rng.choice([500, 1, 0, -50, -1000])
    t = msgspec.structs.replace(cases.terms(split, rate), deadline=deadline, grace=200)
    side = rng.randrange(2)
    hub = t.ledgers[side].hub_index
    lt = t.ledgers[side]
    locked = t.capacity * lt.num // lt.den
    if locked > compact.MAX_U64 - 20:
        locked = compact.MAX_U64 - 20  # the guarantee cannot be funded: every move refused
    empty = ChannelState(
        channel_id=b"A" * 32, version=3, balances=(AssetBalances(ASSET, (locked + 7, locked + 11)),)
    )
    try:
        g = protocol.guarantee_for(t, side, empty)
        g.encode()
    except Exception:
        return
    funded = _next(empty, g.encode())
    yield Case("fund", empty, funded, hub, now)
    yield Case("fund by end", empty, funded, 1 - hub, now)
    foreign = rules.Guarantee(**{**g.__dict__, "keys": (g.keys[1], g.keys[0])})
    yield Case("fund foreign key", empty, _next(empty, foreign.encode()), hub, now)
    # activation by either, a cancel of the pending guarantee, a show while pending
    yield Case("activate", funded, _next(funded, rules.activate(g).encode()), rng.randrange(2), now)
    back = msgspec.structs.replace(funded, app_data=b"", version=funded.version + 1)
    yield Case("cancel", funded, back, rng.randrange(2), now)
    pending_show = rules.with_vstate(g, _sign(t, 5, split, False)).encode()
    yield Case("show pending", funded, _next(funded, pending_show), rng.randrange(2), now)
    active = rules.activate(g)
    held = rules.with_vstate(active, _sign(t, 4, split, False))
    start = _next(funded, held.encode())
    if start.balances != funded.balances:
        start = msgspec.structs.replace(start, balances=funded.balances)
    for _ in range(14):
        version = rng.choice([3, 4, 4, 5, 9])
        a = rng.randrange(0, t.capacity + 1)
        v = _sign(t, version, (a, t.capacity - a), rng.random() < 0.3)
        nxt = rules.with_vstate(held, v).encode()
        mutation = rng.random()
        label = "show"
        if mutation < 0.15:
            nxt, label = _flip(nxt, rng, 123, 251), "forged"
        elif mutation < 0.25:
            nxt, label = _flip(nxt, rng, 106, 123), "amounts"
        elif mutation < 0.32:
            nxt, label = _flip(nxt, rng, 0, compact.CORE_LENGTH), "core"
        elif mutation < 0.36:
            nxt, label = nxt[:-1], "short"
        after = _next(start, nxt, honest_balances=rng.random() < 0.9)
        yield Case(label, start, after, rng.randrange(2), now)
    yield Case("beat", start, _next(start, rules.heartbeat(held).encode()), hub, now)
    yield Case("beat end", start, _next(start, rules.heartbeat(held).encode()), 1 - hub, now)
    jump = rules.heartbeat(rules.heartbeat(held)).encode()
    yield Case("beat jump", start, _next(start, jump), hub, now)
    final = _next(start, rules.with_vstate(active, _sign(t, 6, split, True)).encode())
    settled = msgspec.structs.replace(final, app_data=b"", version=final.version + 1)
    yield Case("settle", final, settled, rng.randrange(2), now)
    yield Case("settle early", start, msgspec.structs.replace(start, app_data=b""), hub, now)
    moved = msgspec.structs.replace(
        settled, balances=(AssetBalances(ASSET, (locked + 6, locked + 12)),)
    )
    yield Case("settle moves money", final, moved, hub, now)


def _params() -> ChannelParams:
    p = cases.ledger_params(cases.ALICE_KEY, 1)
    return msgspec.structs.replace(p, chain=ASSET.chain, assets=(ASSET,))


def _verdicts(seeds: range) -> tuple[int, int]:
    svm = LiteSVM()
    program = Pubkey.new_unique()
    code = apps.app(rules.APP_ID).onchain_code("Solana")
    assert code
    svm.add_program(program, code)
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**9)
    p = _params()
    # the ends' declared V keys (their Solana keys are ed25519): Alice's where she is the
    # end (index 0 of these params), Bob's where the end is index 1
    app = rules.VirtualLedgerApp(
        {
            p.participants[0].chain_key: rules.address_of(cases.ALICE_KEY),
            p.participants[1].chain_key: rules.address_of(cases.BOB_KEY),
        }
    )
    now = cases.NOW
    checked = accepted = funds = 0
    for seed in seeds:
        for case in sequence(random.Random(seed), now):
            expected = app.valid_forced(p, case.before, case.after, case.mover, case.now)
            if rules.is_fund(case.before, case.after):
                # never forced; the hub's (only) is valid off-chain, as a cooperative update
                assert not expected
                fine = app.valid_transition(p, case.before, case.after, case.mover, case.now)
                assert not fine or case.label == "fund", case.label
                funds += fine
            data = pc.encode_app_call(
                case.mover,
                [tuple(b.amounts) for b in case.before.balances],
                [tuple(b.amounts) for b in case.after.balances],
                case.before.app_data,
                case.after.app_data,
                now=case.now,
            )
            tx = Transaction(
                [payer],
                Message([Instruction(program, data, [])], payer.pubkey()),
                svm.latest_blockhash(),
            )
            result = svm.simulate_transaction(tx)
            got = not isinstance(result, FailedTransactionMetadata)
            if not got:
                assert "Custom(256)" in str(result.err()), (case.label, result.err())
            assert got == expected, (seed, case.label, case.mover, case.now)
            checked += 1
            accepted += expected
    assert funds > 0  # the hub's FUND passes the Python rule (the cooperative check)
    return checked, accepted


def test_python_and_solana_program_agree() -> None:
    checked, accepted = _verdicts(range(SEEDS))
    assert checked > 150 and accepted > 30 and accepted < checked


def test_the_compact_layout_fits_and_round_trips() -> None:
    t = cases.terms()
    empty = ChannelState(
        channel_id=b"B" * 32, version=1, balances=(AssetBalances(ASSET, (1000, 1000)),)
    )
    g = rules.with_vstate(
        rules.activate(protocol.guarantee_for(t, 1, empty)), _sign(t, 7, (100, 400), True)
    )
    data = g.encode()
    assert len(data) == compact.LENGTH == 256
    state = msgspec.structs.replace(
        empty, app_data=data, balances=(AssetBalances(ASSET, g.balances()),)
    )
    assert rules.state_guarantee(state) == g
    assert g.signed_by_both()


def test_a_solana_fund_needs_the_ends_declared_v_key() -> None:
    """Off-chain, a FUND in a Solana ledger is valid only with the V key the end declared:
    without a declaration, with another key declared, or in the EVM layout, it is refused
    (the end's machine would not sign it); terms the layout cannot hold do not fund."""
    t = cases.terms()
    p = _params()  # the end (Alice) is participant 0, the hub 1
    empty = ChannelState(
        channel_id=b"A" * 32, version=1, balances=(AssetBalances(ASSET, (1000, 1000)),)
    )
    g = protocol.guarantee_for(t, 0, empty)
    after = _next(empty, g.encode())
    alice = rules.address_of(cases.ALICE_KEY)
    end = p.participants[0].chain_key
    assert rules.VirtualLedgerApp({end: alice}).valid_transition(p, empty, after, 1, cases.NOW)
    for declared in ({}, {end: rules.address_of(cases.MALLORY_KEY)}):
        app = rules.VirtualLedgerApp(declared)
        assert not app.valid_transition(p, empty, after, 1, cases.NOW)
    wide = _next(empty, dataclasses.replace(g, compact=False).encode())
    assert not rules.VirtualLedgerApp({end: alice}).valid_transition(p, empty, wide, 1, cases.NOW)
    late = msgspec.structs.replace(t, deadline=2**32)
    with pytest.raises(ValueError, match="u32"):
        protocol.fund(late, 0, empty)


@pytest.mark.slow
@slow
def test_long_differential_run() -> None:
    checked, _ = _verdicts(range(1000, 1000 + 10 * SEEDS))
    assert checked > 1500
