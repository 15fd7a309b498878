"""Random move sequences of the example apps, as (before, after, mover, now) cases.

Each sequence starts from a valid opening state and walks legal moves; at every step it
also proposes candidates a cheater would try (the wrong player, an occupied cell, a
wrong payout, a changed term, a forged ruling, a final flag, garbage app data, moves
before or after a deadline). The Python rule's verdict on each is what every chain's
on-chain rule must answer too (tests/apps/test_differential_*.py).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
from chenilles_app_escrow import rules as escrow
from chenilles_app_tictactoe import rules as ttt

from chenilles_hub.core import (
    Asset,
    AssetBalances,
    ChannelParams,
    ChannelState,
    Participant,
)

CHAIN = "test:apps"
POT = Asset(CHAIN, "native")
OTHER = Asset(CHAIN, "token")
CHANNEL_ID = hashlib.sha256(b"app channel").digest()


def params(app: str, chain: str = CHAIN, assets: tuple[Asset, ...] = (POT, OTHER)) -> ChannelParams:
    return ChannelParams(
        chain=chain,
        participants=(Participant("a", b"\x01" * 32), Participant("b", b"\x02" * 32)),
        assets=assets,
        challenge_duration=100,
        nonce=b"\x00" * 32,
        app=app,
    )


@dataclass(frozen=True)
class Case:
    before: ChannelState
    after: ChannelState
    mover: int
    now: int
    label: str


def _balances(state: ChannelState, first: tuple[int, int]) -> ChannelState:
    rows = list(state.balances)
    rows[0] = AssetBalances(rows[0].asset, first)
    return msgspec.structs.replace(state, balances=tuple(rows))


def _other(state: ChannelState, rng: random.Random) -> ChannelState:
    rows = list(state.balances)
    a, b = rows[1].amounts
    delta = rng.randint(1, 5)
    rows[1] = AssetBalances(rows[1].asset, (a + delta, b - delta) if b >= delta else (a, b + 1))
    return msgspec.structs.replace(state, balances=tuple(rows))


def state(
    app_data: bytes, first: tuple[int, int], other: tuple[int, int], assets: tuple[Asset, ...]
) -> ChannelState:
    rows = (AssetBalances(assets[0], first),)
    if len(assets) > 1:
        rows += (AssetBalances(assets[1], other),)
    return ChannelState(channel_id=CHANNEL_ID, version=1, balances=rows, app_data=app_data)


def representable(sequence: Iterator[Case]) -> Iterator[Case]:
    """Only cases every chain can encode (a cheat that subtracts from zero is left out)."""
    for case in sequence:
        amounts = [x for st in (case.before, case.after) for b in st.balances for x in b.amounts]
        if min(amounts, default=0) >= 0:
            yield case


# --- tic-tac-toe ----------------------------------------------------------------------------


def ttt_sequence(
    rng: random.Random, assets: tuple[Asset, ...] = (POT, OTHER), max_amount: int = 10**18
) -> Iterator[Case]:
    """One random game, with cheats proposed at every step."""
    return representable(_ttt_sequence(rng, assets, max_amount))


def _ttt_sequence(
    rng: random.Random, assets: tuple[Asset, ...] = (POT, OTHER), max_amount: int = 10**18
) -> Iterator[Case]:
    """One random game, with cheats proposed at every step."""
    rule = ttt.TicTacToe()
    p = params("tictactoe", assets[0].chain, assets)
    stake = rng.randint(1, max_amount // 2)
    other = (rng.randint(0, 1000), rng.randint(0, 1000))
    current = state(ttt.Game.new(rng.randint(0, 1)).encode(), (stake, stake), other, assets)
    now = 1_700_000_000
    for _ in range(10):
        game = ttt.Game.decode(current.app_data)
        assert game is not None
        empty = [i for i in range(9) if game.board[i] == ttt.EMPTY]
        player = game.to_move()
        for cell in rng.sample(range(9), 3):  # any cell by any player (the rule decides)
            for mover in (0, 1):
                mark = ttt.CROSS if mover == game.x else ttt.NOUGHT
                board = tuple(mark if i == cell else c for i, c in enumerate(game.board))
                moved = ttt.Game(game.x, game.moves + 1, board)
                pot = sum(current.balances[0].amounts)
                honest = _balances(
                    msgspec.structs.replace(current, app_data=moved.encode()), ttt.split(moved, pot)
                )
                yield Case(current, honest, mover, now, f"cell {cell} by {mover}")
        if player is None or not empty:
            yield Case(current, current, 0, now, "move after the end")
            return
        cell = rng.choice(empty)
        honest = rule.apply(p, current, player, bytes([cell]))
        yield Case(current, honest, player, now, "honest")
        board = bytes(honest.app_data)
        cheats = [
            ("stolen pot", _balances(honest, _shift(honest.balances[0].amounts))),
            ("final flag", msgspec.structs.replace(honest, final=True)),
            ("other asset moved", _other(honest, rng)),
            (
                "x changed",
                msgspec.structs.replace(honest, app_data=bytes([1 - board[0]]) + board[1:]),
            ),
            (
                "moves skipped",
                msgspec.structs.replace(
                    honest, app_data=board[:1] + bytes([board[1] + 1]) + board[2:]
                ),
            ),
            ("two marks", msgspec.structs.replace(honest, app_data=_extra_mark(board, rng))),
            (
                "garbage",
                msgspec.structs.replace(
                    honest, app_data=rng.randbytes(rng.choice((0, 10, 11, 12)))
                ),
            ),
            (
                "bad cell value",
                msgspec.structs.replace(
                    honest, app_data=board[: 2 + cell] + b"\x03" + board[3 + cell :]
                ),
            ),
        ]
        for label, cheat in cheats:
            yield Case(current, cheat, player, now, label)
        yield Case(current, honest, 1 - player, now, "out of turn")
        current = honest


def _shift(amounts: tuple[int, ...]) -> tuple[int, int]:
    """One unit moved from one side to the other: never the outcome the rule computes."""
    a, b = amounts
    return (a - 1, b + 1) if a > 0 else (a + 1, b - 1)


def _extra_mark(board: bytes, rng: random.Random) -> bytes:
    cells = [i for i in range(9) if board[2 + i] == 0]
    if not cells:
        return board
    i = rng.choice(cells)
    return board[: 2 + i] + bytes([rng.choice((1, 2))]) + board[3 + i :]


# --- escrow ---------------------------------------------------------------------------------


def escrow_sequence(
    rng: random.Random,
    assets: tuple[Asset, ...] = (POT, OTHER),
    max_amount: int = 10**18,
    now: int = 1_700_000_000,
) -> Iterator[Case]:
    """One escrow with random terms and a deadline just before, at or after ``now``; see
    :func:`_escrow_sequence`."""
    return representable(_escrow_sequence(rng, assets, max_amount, now))


def _escrow_sequence(
    rng: random.Random,
    assets: tuple[Asset, ...],
    max_amount: int,
    now: int,
) -> Iterator[Case]:
    """One escrow with random terms and a deadline just before, at or after ``now`` (the
    chain time every case is judged at); every move kind by each party, with right and
    wrong rulings, honest and cheating payouts."""
    secrets = {
        "release": rng.randbytes(32),
        "refund": rng.randbytes(32),
        "wrong": rng.randbytes(32),
    }
    buyer = rng.randint(0, 1)
    amount = rng.randint(0, max_amount // 4)
    first = [0, 0]
    first[buyer] = amount + rng.randint(0, max_amount // 4)
    first[1 - buyer] = rng.randint(0, max_amount // 4)
    if rng.random() < 0.1:
        first[buyer] = max(0, amount - 1)  # an escrow the buyer cannot cover
    deadline = now + rng.choice((-100, -1, 0, 1, 100))
    locked = escrow.Escrow(
        escrow.LOCKED,
        buyer,
        deadline,
        amount,
        escrow.sha256(secrets["release"]),
        escrow.sha256(secrets["refund"]),
    )
    other = (rng.randint(0, 1000), rng.randint(0, 1000))
    before = state(locked.encode(), (first[0], first[1]), other, assets)
    seller = 1 - buyer
    for status in (escrow.RELEASED, escrow.REFUNDED, escrow.LOCKED):
        for ruling in ("none", "release", "refund", "wrong"):
            secret = bytes(32) if ruling == "none" else secrets[ruling]
            after_escrow = escrow.Escrow(**{**locked.__dict__, "status": status, "ruling": secret})
            paid = amount if status == escrow.RELEASED else 0
            honest_first = list(first)
            honest_first[buyer] -= paid
            honest_first[seller] += paid
            honest = _balances(
                msgspec.structs.replace(before, app_data=after_escrow.encode()),
                (honest_first[0], honest_first[1]),
            )
            for mover in (0, 1):
                label = f"{status}/{ruling} by {mover} at deadline{now - deadline:+}"
                yield Case(before, honest, mover, now, label)
            mover = rng.randint(0, 1)
            if status == escrow.RELEASED:
                yield Case(
                    before, _balances(honest, (first[0], first[1])), mover, now, "released, unpaid"
                )
                wrong = list(honest_first)
                wrong[seller] += 1
                wrong[buyer] -= 1 if wrong[buyer] else 0
                yield Case(
                    before, _balances(honest, (wrong[0], wrong[1])), mover, now, "paid wrong"
                )
            yield Case(before, msgspec.structs.replace(honest, final=True), mover, now, "final")
            yield Case(before, _other(honest, rng), mover, now, "other asset")
            data = bytearray(honest.app_data)
            data[rng.choice((1, 5, 20, 50, 80))] ^= 1  # a changed term
            yield Case(
                before,
                msgspec.structs.replace(honest, app_data=bytes(data)),
                mover,
                now,
                "term changed",
            )
    # from a state that is no longer locked, nothing may follow
    done = msgspec.structs.replace(
        before, app_data=escrow.Escrow(**{**locked.__dict__, "status": escrow.REFUNDED}).encode()
    )
    yield Case(done, done, seller, deadline, "after the end")
    yield Case(
        before,
        msgspec.structs.replace(before, app_data=rng.randbytes(138)),
        buyer,
        deadline,
        "garbage",
    )
