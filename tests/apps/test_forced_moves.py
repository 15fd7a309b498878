"""Forced moves through the backend protocol, on EVM (eth-tester) and Solana (LiteSVM).

Tic-tac-toe at every step of a game: a silent party's turn times out and the channel
concludes on the app's outcome; a party that stops countersigning is overtaken by a
forced move; a cheating party (an invalid move, a move out of turn, a stale state, a
forged signature, a move outside its window) is refused and changes nothing. The escrow:
the arbiter's ruling and the timeout enforced on-chain. Balances are exact: each
participant receives what the app's outcome says, to the wei and the lamport.
"""

from __future__ import annotations

import pytest
from chenilles_app_escrow import rules as escrow
from chenilles_app_tictactoe import rules as ttt

from chenilles_hub.backend import ChainBackend, LedgerError, Progressed, Registered
from chenilles_hub.core import AssetBalances

from .onchain import DURATION, STAKE, AppChannel

pytestmark = [pytest.mark.apps, pytest.mark.adversarial]

#: X (participant 0) wins on the diagonal 0-4-8 with the 9th and last move
GAME = [(0, 0), (1, 1), (0, 2), (1, 3), (0, 4), (1, 5), (0, 7), (1, 6), (0, 8)]


def ttt_channel(backend: ChainBackend) -> AppChannel:
    return AppChannel.open(backend, "tictactoe", (STAKE, STAKE), ttt.Game.new(0).encode())


def moves(upto: int) -> list[tuple[int, bytes]]:
    return [(who, bytes([cell])) for who, cell in GAME[:upto]]


def expect(error: str, fn, *args) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LedgerError) as e:
        fn(*args)
    assert error in e.value.reason, e.value.reason


@pytest.mark.parametrize("step", [0, 1, 4, 7])
def test_a_silent_player_loses_on_its_turn(backend: ChainBackend, step: int) -> None:
    """Both played ``step`` moves off-chain; the player to move goes silent. The other
    registers the latest state; nobody moves; the channel concludes on its outcome: the
    pot to the last mover (split when no move was made)."""
    ch = ttt_channel(backend)
    states = ch.play(moves(step))
    latest = states[-1]
    ch.register(latest)
    expect(
        "ChallengePeriodActive" if _evm(backend) else "CHALLENGE_PERIOD_ACTIVE",
        ch.conclude_and_withdraw,
    )
    backend.advance_time(DURATION + 1)
    # the refutation period is over, but the silent player still has one period to move
    expect(
        "ChallengePeriodActive" if _evm(backend) else "CHALLENGE_PERIOD_ACTIVE",
        ch.conclude_and_withdraw,
    )
    backend.advance_time(DURATION + 1)
    ch.conclude_and_withdraw()
    expected = latest.balances[0].amounts
    assert ch.gained() == expected
    assert expected == (
        (STAKE, STAKE) if step == 0 else ((2 * STAKE, 0) if step % 2 == 1 else (0, 2 * STAKE))
    )


@pytest.mark.parametrize("step", [1, 4, 8])
def test_a_move_the_peer_will_not_countersign_is_forced(backend: ChainBackend, step: int) -> None:
    """The player to move proposes its move; the peer stops answering. The mover registers
    the last state both signed, forces its move once the period is over, and wins when the
    peer stays silent (at step 8 the forced move wins the game outright)."""
    ch = ttt_channel(backend)
    states = ch.play(moves(step))
    mover, cell = GAME[step]
    nxt = ch.move(states[-1], mover, bytes([cell]))
    ch.register(states[-1])
    expect(
        "ChallengePeriodActive" if _evm(backend) else "CHALLENGE_PERIOD_ACTIVE",
        ch.force,
        mover,
        nxt,
    )
    backend.advance_time(DURATION + 1)
    ch.force(mover, nxt)
    d = ch.dispute()
    assert d is not None and d.phase == "forced" and d.state.version == nxt.version
    assert d.state.app_data == nxt.app_data and d.state.balances == nxt.balances
    backend.advance_time(DURATION + 1)
    ch.conclude_and_withdraw()
    assert ch.gained() == nxt.balances[0].amounts
    assert ch.gained()[mover] == 2 * STAKE


def test_forced_moves_alternate_until_the_game_ends(backend: ChainBackend) -> None:
    """Both stop cooperating off-chain after two moves and play the rest on-chain, each
    forced move answering the last within its period; the winner takes the pot."""
    ch = ttt_channel(backend)
    states = ch.play(moves(2))
    ch.register(states[-1])
    backend.advance_time(DURATION + 1)
    state = states[-1]
    for who, cell in GAME[2:]:
        state = ch.move(state, who, bytes([cell]))
        ch.force(who, state)
        backend.advance_time(DURATION // 2)
    game = ttt.Game.decode(state.app_data)
    assert game is not None and game.winner() == 0
    expect(
        "ChallengePeriodActive" if _evm(backend) else "CHALLENGE_PERIOD_ACTIVE",
        ch.conclude_and_withdraw,
    )
    backend.advance_time(DURATION)
    ch.conclude_and_withdraw()
    assert ch.gained() == (2 * STAKE, 0)


@pytest.mark.parametrize("step", [0, 3, 6])
def test_cheating_moves_are_refused_and_change_nothing(backend: ChainBackend, step: int) -> None:
    ch = ttt_channel(backend)
    states = ch.play(moves(step))
    ch.register(states[-1])
    backend.advance_time(DURATION + 1)
    base = states[-1]
    game = ttt.Game.decode(base.app_data)
    assert game is not None
    mover = game.to_move()
    assert mover is not None
    other = 1 - mover
    honest = ch.move(base, mover, bytes([GAME[step][1]]))
    refused = "InvalidTransition" if _evm(backend) else "INVALID_TRANSITION"
    # out of turn: the other player marks a free cell (with its own signature)
    free = next(i for i in range(9) if game.board[i] == 0 and i != GAME[step][1])
    board = list(game.board)
    board[free] = ttt.CROSS if other == game.x else ttt.NOUGHT
    out_of_turn = _with_app(base, ttt.Game(game.x, game.moves + 1, tuple(board)), other, 2 * STAKE)
    expect(refused, ch.force, other, out_of_turn)
    # an invalid move: the pot taken without the right outcome (a payout the app refuses)
    greedy = _with_balances(honest, (0, 2 * STAKE) if mover == 0 else (2 * STAKE, 0))
    expect(refused, ch.force, mover, greedy)
    # an occupied cell
    if step:
        taken = next(i for i in range(9) if game.board[i] != 0)
        board = list(game.board)
        board[taken] = ttt.CROSS if mover == game.x else ttt.NOUGHT
        expect(
            refused,
            ch.force,
            mover,
            _with_app(base, ttt.Game(game.x, game.moves + 1, tuple(board)), mover, 2 * STAKE),
        )
    # a forged move: the other participant's signature on the mover's honest move
    expect("InvalidSignature" if _evm(backend) else "ED25519", ch.force, mover, honest, other)
    # a move that skips a version
    import msgspec

    expect(
        "StaleVersion" if _evm(backend) else "STALE_VERSION",
        ch.force,
        mover,
        msgspec.structs.replace(honest, version=honest.version + 1),
    )
    d = ch.dispute()
    assert d is not None and d.phase == "registered" and d.state == base
    # the honest move still goes through, and the channel pays its outcome
    ch.force(mover, honest)
    backend.advance_time(DURATION + 1)
    ch.conclude_and_withdraw()
    assert ch.gained() == honest.balances[0].amounts


def test_a_move_after_its_window_is_refused(backend: ChainBackend) -> None:
    ch = ttt_channel(backend)
    states = ch.play(moves(3))
    ch.register(states[-1])
    backend.advance_time(2 * DURATION + 1)
    nxt = ch.move(states[-1], GAME[3][0], bytes([GAME[3][1]]))
    expect(
        "ChallengePeriodOver" if _evm(backend) else "CHALLENGE_PERIOD_OVER",
        ch.force,
        GAME[3][0],
        nxt,
    )
    ch.conclude_and_withdraw()
    assert ch.gained() == states[-1].balances[0].amounts == (2 * STAKE, 0)


def test_a_stale_registration_is_refuted_with_the_latest_state(backend: ChainBackend) -> None:
    """O registers an old state in which O had moved last (O wins if X stays silent); X
    refutes with the latest state both signed, in which X moved last."""
    ch = ttt_channel(backend)
    states = ch.play(moves(5))  # X moved last (X wins if O is silent)
    ch.register(states[2])  # O's move last: stale
    ch.challenge(states[5])
    expect("StaleVersion" if _evm(backend) else "STALE_VERSION", ch.challenge, states[4])
    backend.advance_time(2 * DURATION + 2)
    ch.conclude_and_withdraw()
    assert ch.gained() == (2 * STAKE, 0)


def test_a_move_forced_on_a_stale_state_is_answered_with_the_latest(backend: ChainBackend) -> None:
    """The attack: O registers an old state while X is offline, lets the refutation period
    pass and forces a move of its own from it (a different game than the one both signed).
    X comes back during the forced move's period holding a later state both signed: the
    ledger must let X answer with it, and the channel then pays the signed game's
    outcome, not the one O forced."""
    ch = ttt_channel(backend)
    states = ch.play(moves(5))  # v5: X moved last, O to move
    stale = states[1]  # v1: X moved, O to move
    o_move = ch.move(stale, 1, b"\x08")  # O's alternative second move
    ch.register(stale)
    backend.advance_time(DURATION + 1)
    ch.force(1, o_move)  # O now "leads" (v2', O moved last)
    ch.challenge(states[5])  # X answers with what both signed (v5)
    d = ch.dispute()
    assert d is not None and d.state == states[5] and d.phase == "registered"
    # O cannot take the forced line back over, nor force from its own stale move
    expect("StaleVersion" if _evm(backend) else "STALE_VERSION", ch.challenge, states[4])
    backend.advance_time(2 * DURATION + 2)
    ch.conclude_and_withdraw()
    assert ch.gained() == (2 * STAKE, 0)


def test_forced_moves_are_reported_as_chain_events(backend: ChainBackend) -> None:
    ch = ttt_channel(backend)
    backend.poll_events()
    states = ch.play(moves(2))
    ch.register(states[-1])
    backend.advance_time(DURATION + 1)
    nxt = ch.move(states[-1], 0, bytes([GAME[2][1]]))
    ch.force(0, nxt)
    events = [e for e in backend.poll_events() if getattr(e, "channel_id", None) == ch.channel_id]
    progressed = [e for e in events if isinstance(e, Progressed)]
    assert [e.version for e in events if isinstance(e, Registered)] == [2, 3]
    assert len(progressed) == 1
    p = progressed[0]
    assert (p.version, p.mover, p.app_data, p.final) == (3, 0, nxt.app_data, False)
    assert p.balances == (AssetBalances(ch.native, nxt.balances[0].amounts),)
    d = ch.dispute()
    assert d is not None and d.move_until == p.timeout == d.conclude_at


# --- escrow ---------------------------------------------------------------------------------


def escrow_channel(backend: ChainBackend, deadline: int) -> AppChannel:
    terms = escrow.Escrow(
        escrow.LOCKED, 0, deadline, 400, escrow.sha256(b"R" * 32), escrow.sha256(b"F" * 32)
    )
    return AppChannel.open(backend, "escrow", (1000, 0), terms.encode())


def test_escrow_seller_enforces_the_arbiters_release_when_the_buyer_is_silent(
    backend: ChainBackend,
) -> None:
    ch = escrow_channel(backend, backend.now() + 10 * DURATION)
    v0 = ch.initial()
    ch.register(v0)
    backend.advance_time(DURATION + 1)
    release = ch.move(v0, 1, b"\x03" + b"R" * 32)
    ch.force(1, release)
    backend.advance_time(DURATION + 1)
    ch.conclude_and_withdraw()
    assert ch.gained() == (600, 400)


def test_escrow_release_ruling_too_late_is_refused_and_the_buyer_refunds(
    backend: ChainBackend,
) -> None:
    ch = escrow_channel(backend, backend.now() + DURATION // 2)
    v0 = ch.initial()
    ch.register(v0)
    backend.advance_time(DURATION + 1)  # past the escrow's deadline
    release = ch.move(v0, 1, b"\x03" + b"R" * 32, now=0)  # built as if in time
    expect("InvalidTransition" if _evm(backend) else "INVALID_TRANSITION", ch.force, 1, release)
    expect(
        "InvalidTransition" if _evm(backend) else "INVALID_TRANSITION",
        ch.force,
        1,
        ch.move(v0, 0, b"\x01"),
    )  # the seller cannot sign the buyer's release
    refund = ch.move(v0, 0, b"\x02")  # the buyer's timeout
    ch.force(0, refund)
    backend.advance_time(DURATION + 1)
    ch.conclude_and_withdraw()
    assert ch.gained() == (1000, 0)


def _evm(backend: ChainBackend) -> bool:
    return backend.info.family == "EVM"


def _with_balances(state, amounts):  # type: ignore[no-untyped-def]
    import msgspec

    return msgspec.structs.replace(
        state, balances=(AssetBalances(state.balances[0].asset, amounts),)
    )


def _with_app(base, game: ttt.Game, winner: int, pot: int):  # type: ignore[no-untyped-def]
    """``base`` moved to ``game`` with the outcome the rule would compute, version + 1."""
    import msgspec

    amounts = ttt.split(game, pot)
    return msgspec.structs.replace(
        base,
        version=base.version + 1,
        app_data=game.encode(),
        balances=(AssetBalances(base.balances[0].asset, amounts),),
    )
