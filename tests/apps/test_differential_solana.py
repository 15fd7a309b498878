"""Differential: each app's Python rule and its Solana app program give the same verdict
on random move sequences (honest moves and cheats), run by LiteSVM.

The program is the app plugin's own SBF binary, called with the app ABI exactly as the
adjudicator calls it through CPI on a forced move (``chenilles_app.h``); success is
acceptance, any error a refusal. Balances are u64 on Solana, so amounts stay below 2^63.
The same programs behind the adjudicator are tested in tests/apps/test_forced_moves_solana.py.
"""

from __future__ import annotations

import os
import random

import pytest
from chenilles_solana import program_client as pc
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata

from chenilles_hub import apps

from . import cases

pytestmark = [pytest.mark.apps, pytest.mark.solana]

SEQUENCES = 20
LONG = 10
slow = pytest.mark.skipif(
    not os.environ.get("CHENILLES_SLOW_TESTS"), reason="long variant: CHENILLES_SLOW_TESTS=1"
)


def _verdicts(name: str, sequence, seeds: range) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    svm = LiteSVM()
    program = Pubkey.new_unique()
    code = apps.app(name).onchain_code("Solana")
    assert code
    svm.add_program(program, code)
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**9)
    rule = apps.app(name).rules()
    p = cases.params(name)
    checked = accepted = 0
    for seed in seeds:
        for case in sequence(random.Random(seed)):
            expected = rule.valid_transition(p, case.before, case.after, case.mover, case.now)
            data = pc.encode_app_call(
                case.mover,
                [tuple(b.amounts) for b in case.before.balances],
                [tuple(b.amounts) for b in case.after.balances],
                case.before.app_data,
                case.after.app_data,
                now=case.now,
                from_final=case.before.final,
                to_final=case.after.final,
            )
            tx = Transaction(
                [payer],
                Message([Instruction(program, data, [])], payer.pubkey()),
                svm.latest_blockhash(),
            )
            result = svm.simulate_transaction(tx)
            got = not isinstance(result, FailedTransactionMetadata)
            if not got:
                assert str(pc.APP_INVALID_TRANSITION) in str(result.err()) or "0x100" in str(
                    result.err()
                ), (case.label, result.err())
            assert got == expected, (seed, case.label, case)
            checked += 1
            accepted += expected
    return checked, accepted


def _ttt(rng: random.Random):  # type: ignore[no-untyped-def]
    return cases.ttt_sequence(rng, max_amount=2**63)


def _escrow(rng: random.Random):  # type: ignore[no-untyped-def]
    return cases.escrow_sequence(rng, max_amount=2**63)


def test_tictactoe_python_and_program_agree() -> None:
    checked, accepted = _verdicts("tictactoe", _ttt, range(SEQUENCES))
    assert checked > 400 and 0 < accepted < checked


def test_escrow_python_and_program_agree() -> None:
    checked, accepted = _verdicts("escrow", _escrow, range(SEQUENCES * 3))
    assert checked > 400 and 0 < accepted < checked


@pytest.mark.slow
@slow
@pytest.mark.parametrize("name", ["tictactoe", "escrow"])
def test_long_differential_run(name: str) -> None:
    sequence = _ttt if name == "tictactoe" else _escrow
    per_app = SEQUENCES * LONG * (1 if name == "tictactoe" else 3)
    checked, _ = _verdicts(name, sequence, range(1000, 1000 + per_app))
    assert checked > 4000
