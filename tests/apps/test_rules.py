"""The example apps' off-chain rules, alone and through the core's channel machine.

Pure tests (no chain): every honest move is one the on-chain rule accepts
(``check_app_move``), cheats are refused, outcomes are as documented, and two channel
machines play a whole game through the update protocol, where payments are refused and
a close waits for the end of the app.
"""

from __future__ import annotations

import random

import msgspec
import pytest
from chenilles_app_escrow import rules as escrow
from chenilles_app_tictactoe import rules as ttt
from hypothesis import given, settings
from hypothesis import strategies as st

from chenilles_hub.core import (
    AppMove,
    AppRules,
    ChannelMachine,
    Close,
    Transfer,
    UpdateCompleted,
    check_app_move,
)
from chenilles_hub.core.errors import InvalidTransition, NotPermitted
from chenilles_hub.signing import Ed25519Authority
from tests.core.harness import CHANNEL_ID, NOW, Pair, make_keys, make_params

from . import cases

pytestmark = [pytest.mark.apps, pytest.mark.core]

TTT = ttt.TicTacToe()
ESCROW = escrow.EscrowApp()


def test_both_apps_implement_the_full_rule_protocol() -> None:
    assert isinstance(TTT, AppRules) and isinstance(ESCROW, AppRules)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32))
def test_every_honest_tictactoe_move_passes_the_chain_rule(seed: int) -> None:
    rng = random.Random(seed)
    p = cases.params("tictactoe")
    honest = [c for c in cases.ttt_sequence(rng) if c.label == "honest"]
    assert honest
    for c in honest:
        check_app_move(TTT, p, c.before, c.after, c.mover, c.now)
        assert TTT.outcome(p, c.after) == c.after.balances
        assert sum(c.after.balances[0].amounts) == sum(c.before.balances[0].amounts)
    for c in cases.ttt_sequence(random.Random(seed)):
        if c.label not in ("honest",) and c.label.startswith(("stolen", "final", "other", "x ch")):
            assert not TTT.valid_transition(p, c.before, c.after, c.mover, c.now), c.label


def _game(*cells: int, x: int = 0, stake: int = 50) -> tuple:
    p = cases.params("tictactoe")
    s = cases.state(ttt.Game.new(x).encode(), (stake, stake), (7, 3), p.assets)
    TTT.check_initial(p, s)
    game = ttt.Game.new(x)
    for cell in cells:
        s = TTT.apply(p, s, game.to_move(), bytes([cell]))
        game = ttt.Game.decode(s.app_data)
    return p, s


def test_tictactoe_outcomes_reward_the_last_mover_the_winner_or_split_a_draw() -> None:
    p, s = _game()
    assert s.balances[0].amounts == (50, 50) and TTT.turn(p, s) == (0,)
    p, s = _game(4)
    assert s.balances[0].amounts == (100, 0) and TTT.turn(p, s) == (1,)
    p, s = _game(4, 0)
    assert s.balances[0].amounts == (0, 100)
    p, s = _game(0, 3, 1, 4, 2)  # X: top row
    assert s.balances[0].amounts == (100, 0) and TTT.turn(p, s) == ()
    assert TTT.describe(p, s)["winner"] == 0
    p, s = _game(0, 1, 2, 4, 3, 5, 7, 6, 8)  # a draw
    assert s.balances[0].amounts == (50, 50) and TTT.turn(p, s) == ()
    assert TTT.describe(p, s)["draw"]
    p, s = _game(4, x=1)  # participant 1 plays X
    assert s.balances[0].amounts == (0, 100)
    assert s.balances[1].amounts == (7, 3)  # other assets never move


def test_tictactoe_refuses_out_of_turn_occupied_and_after_the_end() -> None:
    p, s = _game(4)
    with pytest.raises(InvalidTransition, match="turn"):
        TTT.apply(p, s, 0, b"\x00")
    with pytest.raises(InvalidTransition, match="empty"):
        TTT.apply(p, s, 1, b"\x04")
    with pytest.raises(InvalidTransition):
        TTT.apply(p, s, 1, b"\x09")
    p, s = _game(0, 3, 1, 4, 2)
    with pytest.raises(InvalidTransition, match="over"):
        TTT.apply(p, s, 1, b"\x05")


def test_tictactoe_opening_needs_equal_stakes_and_an_empty_board() -> None:
    p = cases.params("tictactoe")
    with pytest.raises(InvalidTransition, match="same"):
        TTT.check_initial(p, cases.state(ttt.Game.new().encode(), (5, 6), (0, 0), p.assets))
    _, moved = _game(4)
    with pytest.raises(InvalidTransition, match="empty"):
        TTT.check_initial(p, moved)


def _escrow(buyer: int = 0, amount: int = 40, deadline: int = NOW + 100) -> tuple:
    p = cases.params("escrow")
    terms = escrow.Escrow(
        escrow.LOCKED, buyer, deadline, amount, escrow.sha256(b"r" * 32), escrow.sha256(b"f" * 32)
    )
    first = (100, 10) if buyer == 0 else (10, 100)
    s = cases.state(terms.encode(), first, (1, 2), p.assets)
    ESCROW.check_initial(p, s)
    return p, s


@pytest.mark.parametrize(
    ("move", "mover", "now", "paid"),
    [
        (b"\x01", 0, NOW, True),  # the buyer releases
        (b"\x02", 1, NOW, False),  # the seller refunds
        (b"\x03" + b"r" * 32, 1, NOW + 100, True),  # the seller shows the release ruling in time
        (b"\x03" + b"f" * 32, 0, NOW + 500, False),  # the buyer shows the refund ruling
        (b"\x02", 0, NOW + 101, False),  # the buyer's timeout
    ],
)
def test_escrow_moves(move: bytes, mover: int, now: int, paid: bool) -> None:
    p, s = _escrow()
    after = ESCROW.apply(p, s, mover, move)
    check_app_move(ESCROW, p, s, after, mover, now)
    assert after.balances[0].amounts == ((60, 50) if paid else (100, 10))
    assert ESCROW.turn(p, after) == () and ESCROW.turn(p, s) == (0, 1)


@pytest.mark.parametrize(
    ("move", "mover", "now"),
    [
        (b"\x01", 1, NOW),  # the seller cannot release the buyer's money
        (b"\x02", 0, NOW + 100),  # the buyer cannot refund before the deadline has passed
        (b"\x03" + b"r" * 32, 1, NOW + 101),  # a release ruling shown too late
    ],
)
def test_escrow_refuses_moves_the_rule_does_not_allow(move: bytes, mover: int, now: int) -> None:
    p, s = _escrow()
    after = ESCROW.apply(p, s, mover, move)
    with pytest.raises(InvalidTransition):
        check_app_move(ESCROW, p, s, after, mover, now)


def test_escrow_refuses_a_wrong_secret_and_moves_after_the_end() -> None:
    p, s = _escrow()
    with pytest.raises(InvalidTransition, match="neither"):
        ESCROW.apply(p, s, 1, b"\x03" + b"x" * 32)
    done = ESCROW.apply(p, s, 0, b"\x01")
    with pytest.raises(InvalidTransition, match="not locked"):
        ESCROW.apply(p, done, 0, b"\x02")


def test_json_helpers_build_opening_data_and_moves() -> None:
    assert ttt.initial_data({"x": 1}) == ttt.Game.new(1).encode()
    assert ttt.encode_move({"cell": 8}) == b"\x08"
    for bad in ({"x": 2}, {"y": 0}, {"x": True}):
        with pytest.raises(ValueError):
            ttt.initial_data(bad)
    with pytest.raises(ValueError):
        ttt.encode_move({"cell": 9})
    data = escrow.initial_data(
        {
            "buyer": 1,
            "amount": 5,
            "deadline": NOW,
            "release_hash": "11" * 32,
            "refund_hash": "22" * 32,
        }
    )
    decoded = escrow.Escrow.decode(data)
    assert decoded is not None and (decoded.buyer, decoded.amount) == (1, 5)
    assert escrow.encode_move({"action": "release"}) == b"\x01"
    assert escrow.encode_move({"ruling": "ab" * 32}) == b"\x03" + b"\xab" * 32
    with pytest.raises(ValueError):
        escrow.initial_data({"buyer": 0})
    with pytest.raises(ValueError):
        escrow.encode_move({"ruling": "zz"})


# --- through the core's channel machine --------------------------------------------------------


def _pair(app_data: bytes, first: tuple[int, int]) -> Pair:
    keys = make_keys(7)
    params = make_params(keys, app="tictactoe")
    initial = cases.state(app_data, first, (50, 0), params.assets)
    initial = msgspec.structs.replace(initial, channel_id=CHANNEL_ID, version=0)
    apps = {"tictactoe": TTT}
    machines = [
        ChannelMachine(params, CHANNEL_ID, i, Ed25519Authority(keys[i]), initial, apps=apps)
        for i in (0, 1)
    ]
    pair = Pair.create()
    pair.alice.machine, pair.bob.machine = machines
    pair.act(0, lambda m: m.open())
    pair.deliver_all()
    return pair


def _move(pair: Pair, who: int, cell: int) -> None:
    pair.act(who, lambda m: m.propose((AppMove(bytes([cell])),), NOW))
    pair.deliver_all()


def test_two_machines_play_a_game_to_the_end_and_close() -> None:
    pair = _pair(ttt.Game.new(0).encode(), (500, 500))
    for who, cell in ((0, 4), (1, 0), (0, 2), (1, 6), (0, 3), (1, 5), (0, 1), (1, 7)):
        with pytest.raises(NotPermitted):  # an app channel's balances move only by the app
            pair.side(who).machine.propose((Transfer(cases.POT, 1),), NOW)
        with pytest.raises(NotPermitted, match="not over"):
            pair.side(who).machine.propose((Close(),), NOW)
        with pytest.raises(InvalidTransition, match="turn"):
            pair.side(1 - who).machine.propose((AppMove(bytes([8])),), NOW)
        _move(pair, who, cell)
        assert not pair.alice.errors and not pair.bob.errors
    _move(pair, 0, 8)  # . . . the board is full: a draw
    latest = pair.alice.machine.latest
    assert latest is not None and latest == pair.bob.machine.latest
    assert latest.complete and latest.version == 9
    assert TTT.turn(pair.alice.machine.params, latest.state) == ()
    assert latest.state.balances[0].amounts == (500, 500)
    pair.act(1, lambda m: m.propose((Close(),), NOW))
    pair.deliver_all()
    assert pair.alice.machine.latest.state.final
    assert any(isinstance(e, UpdateCompleted) for e in pair.bob.events)
