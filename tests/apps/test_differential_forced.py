"""Differential through the adjudicator: random forced moves on real channels, on EVM
(eth-tester) and Solana (LiteSVM). For each, the ledger's verdict (the adjudicator's
checks plus the app's on-chain rule, called as in production) must be the Python rule's,
and an accepted move must pay, at conclusion, exactly the outcome the Python rule gives.
The app rules alone are compared on thousands of cases in test_differential_{evm,solana}.
"""

from __future__ import annotations

import random

import msgspec
import pytest
from chenilles_app_escrow import rules as escrow
from chenilles_app_tictactoe import rules as ttt

from chenilles_hub.backend import ChainBackend, LedgerError
from chenilles_hub.core import AssetBalances, ChannelState

from .onchain import DURATION, STAKE, AppChannel

pytestmark = [pytest.mark.apps]

SEQUENCES = 3


def _ttt_candidates(rng: random.Random, state: ChannelState) -> list[tuple[int, ChannelState]]:
    game = ttt.Game.decode(state.app_data)
    assert game is not None
    pot = sum(state.balances[0].amounts)
    out = []
    for _ in range(5):
        mover, cell = rng.randint(0, 1), rng.randrange(9)
        mark = ttt.CROSS if mover == game.x else ttt.NOUGHT
        board = tuple(mark if i == cell else c for i, c in enumerate(game.board))
        moved = ttt.Game(game.x, game.moves + 1, board)
        amounts = ttt.split(moved, pot)
        if rng.random() < 0.2:  # a payout the rule does not give
            amounts = (amounts[1], amounts[0])
        after = msgspec.structs.replace(
            state,
            version=state.version + 1,
            app_data=moved.encode(),
            balances=(AssetBalances(state.balances[0].asset, amounts),),
            final=rng.random() < 0.1,
        )
        out.append((mover, after))
    return out


def _escrow_candidates(rng: random.Random, state: ChannelState) -> list[tuple[int, ChannelState]]:
    e = escrow.Escrow.decode(state.app_data)
    assert e is not None
    out = []
    for _ in range(5):
        status = rng.choice((escrow.RELEASED, escrow.REFUNDED))
        ruling = rng.choice((bytes(32), b"R" * 32, b"F" * 32, b"W" * 32))
        paid = e.amount if status == escrow.RELEASED else 0
        if rng.random() < 0.2:
            paid = e.amount - paid  # the wrong payout
        a = list(state.balances[0].amounts)
        a[e.buyer] -= paid
        a[e.seller] += paid
        after = msgspec.structs.replace(
            state,
            version=state.version + 1,
            app_data=escrow.Escrow(**{**e.__dict__, "status": status, "ruling": ruling}).encode(),
            balances=(AssetBalances(state.balances[0].asset, (a[0], a[1])),),
        )
        out.append((rng.randint(0, 1), after))
    return out


def _run(backend: ChainBackend, ch: AppChannel, base: ChannelState, candidates) -> int:  # type: ignore[no-untyped-def]
    ch.register(base)
    backend.advance_time(DURATION + 1)
    assert ch.params is not None
    rule = ch.rules
    accepted = None
    for mover, after in candidates:
        now = backend.now()
        expected = rule.valid_transition(ch.params, base, after, mover, now)
        try:
            ch.force(mover, after)
            got = True
        except LedgerError:
            got = False
        # a block's time may run one second past `now` (EVM): only the escrow's deadline
        # is time-dependent, and the sequences keep it away from the current time
        assert got == expected, (mover, after)
        if got:
            accepted = after
            break
    backend.advance_time(DURATION + 1)
    ch.conclude_and_withdraw()
    paid = (accepted or base).balances[0].amounts
    assert ch.gained() == paid
    return 1 if accepted is not None else 0


def test_tictactoe_forced_moves_agree_with_python(backend: ChainBackend) -> None:
    accepted = 0
    for seed in range(SEQUENCES):
        rng = random.Random(seed)
        ch = AppChannel.open(backend, "tictactoe", (STAKE, STAKE), ttt.Game.new(0).encode())
        states = [ch.initial()]
        for _ in range(rng.randint(0, 6)):
            game = ttt.Game.decode(states[-1].app_data)
            assert game is not None and game.to_move() is not None
            free = [i for i in range(9) if game.board[i] == 0]
            states.append(ch.move(states[-1], game.to_move(), bytes([rng.choice(free)])))
        accepted += _run(backend, ch, states[-1], _ttt_candidates(rng, states[-1]))
    assert accepted >= 1


def test_escrow_forced_moves_agree_with_python(backend: ChainBackend) -> None:
    accepted = 0
    for seed in range(SEQUENCES):
        rng = random.Random(seed)
        deadline = backend.now() + rng.choice((-1000, 1000 + 3 * DURATION))
        terms = escrow.Escrow(
            escrow.LOCKED,
            rng.randint(0, 1),
            max(deadline, 1),
            rng.randint(1, 500),
            escrow.sha256(b"R" * 32),
            escrow.sha256(b"F" * 32),
        )
        deposits = (1000, 1000)
        ch = AppChannel.open(backend, "escrow", deposits, terms.encode())
        accepted += _run(backend, ch, ch.initial(), _escrow_candidates(rng, ch.initial()))
    assert accepted >= 1
