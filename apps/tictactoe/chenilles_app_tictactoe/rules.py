"""Tic-tac-toe with stakes: the off-chain rule, mirrored by TicTacToe.sol and tictactoe.c.

Both players stake the same amount of the channel's first asset; the channel's free
balances of that asset are the pot. App data, 11 bytes::

    x u8 (the participant playing X, who moves first) | moves u8 | board 9 x u8
    (cells 0..8 row by row: 0 empty, 1 X, 2 O)

A move (``AppMove.data``) is one byte, the cell. The outcome of a state (its free
balances of the first asset; other assets never move) is what the channel pays if it
ends there, which is what makes the dispute path fair:

- no move yet, or a draw: the pot split evenly (participant 0 gets an odd unit);
- a line of three: its owner takes the pot;
- otherwise the player who moved last takes the pot. So a player who stops answering
  on their turn loses once the turn times out on-chain; to avoid that, they must move.

A move is valid iff the game is not over, the mover is the one whose turn it is, exactly
one empty cell gets the mover's mark, ``moves`` goes up by one, ``x`` is unchanged, the
state is not final, and the balances are the outcome computed from the pot before the
move. The same checks, in the same order of meaning, are in the contract and the
program; ``tests/apps`` holds them to the same verdicts on random sequences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from chenilles_hub.core import AssetBalances, ChannelParams, ChannelState
from chenilles_hub.core.errors import InvalidTransition

APP_ID = "tictactoe"
DATA_LENGTH = 11
EMPTY, CROSS, NOUGHT = 0, 1, 2
LINES = (
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
)


@dataclass(frozen=True)
class Game:
    x: int
    moves: int
    board: tuple[int, ...]

    @classmethod
    def new(cls, x: int = 0) -> Game:
        if x not in (0, 1):
            raise ValueError("x is participant 0 or 1")
        return cls(x, 0, (EMPTY,) * 9)

    def encode(self) -> bytes:
        return bytes([self.x, self.moves, *self.board])

    @classmethod
    def decode(cls, data: bytes) -> Game | None:
        """``None`` for anything but a well-formed game (the chains refuse those too)."""
        if len(data) != DATA_LENGTH or data[0] > 1 or data[1] > 9:
            return None
        board = tuple(data[2:])
        if any(c > NOUGHT for c in board):
            return None
        return cls(data[0], data[1], board)

    def player_of(self, mark: int) -> int:
        return self.x if mark == CROSS else 1 - self.x

    def winner(self) -> int | None:
        """The participant owning a line of three, if any."""
        for a, b, c in LINES:
            if self.board[a] != EMPTY and self.board[a] == self.board[b] == self.board[c]:
                return self.player_of(self.board[a])
        return None

    @property
    def over(self) -> bool:
        return self.winner() is not None or self.moves == 9

    def to_move(self) -> int | None:
        if self.over:
            return None
        return self.x if self.moves % 2 == 0 else 1 - self.x

    def play(self, mover: int, cell: int) -> Game:
        if self.over:
            raise InvalidTransition("the game is over")
        if mover != self.to_move():
            raise InvalidTransition(f"it is participant {self.to_move()}'s turn, not {mover}'s")
        if not 0 <= cell <= 8 or self.board[cell] != EMPTY:
            raise InvalidTransition(f"cell {cell} is not an empty cell (0..8)")
        mark = CROSS if mover == self.x else NOUGHT
        board = tuple(mark if i == cell else c for i, c in enumerate(self.board))
        return Game(self.x, self.moves + 1, board)


def split(game: Game, pot: int) -> tuple[int, int]:
    """The first asset's free balances the game assigns to a pot."""
    winner = game.winner()
    if winner is not None:
        return (pot, 0) if winner == 0 else (0, pot)
    if game.moves == 0 or game.moves == 9:
        return (pot - pot // 2, pot // 2)
    last = 1 - game.x if game.moves % 2 == 0 else game.x  # who made move number `moves`
    return (pot, 0) if last == 0 else (0, pot)


def _with_first(state: ChannelState, amounts: tuple[int, int]) -> tuple[AssetBalances, ...]:
    first, *rest = state.balances
    return (AssetBalances(first.asset, amounts), *rest)


class TicTacToe:
    """The rule as the core's :class:`~chenilles_hub.core.AppRules`."""

    app_id = APP_ID

    def apply(
        self, params: ChannelParams, state: ChannelState, mover: int, data: bytes
    ) -> ChannelState:
        game = Game.decode(state.app_data)
        if game is None:
            raise InvalidTransition("not a tic-tac-toe state")
        if len(data) != 1:
            raise InvalidTransition("a move is one byte: the cell 0..8")
        after = game.play(mover, data[0])
        pot = sum(state.balances[0].amounts)
        return msgspec.structs.replace(
            state, app_data=after.encode(), balances=_with_first(state, split(after, pot))
        )

    def valid_transition(
        self,
        params: ChannelParams,
        before: ChannelState,
        after: ChannelState,
        mover: int,
        now: int,
    ) -> bool:
        g0, g1 = Game.decode(before.app_data), Game.decode(after.app_data)
        if g0 is None or g1 is None or after.final or not before.balances:
            return False
        if g0.over or mover != g0.to_move():
            return False
        if g1.x != g0.x or g1.moves != g0.moves + 1:
            return False
        changed = [i for i in range(9) if g0.board[i] != g1.board[i]]
        mark = CROSS if mover == g0.x else NOUGHT
        if len(changed) != 1 or g0.board[changed[0]] != EMPTY or g1.board[changed[0]] != mark:
            return False
        if len(after.balances) != len(before.balances) or after.balances[1:] != before.balances[1:]:
            return False
        pot = sum(before.balances[0].amounts)
        return tuple(after.balances[0].amounts) == split(g1, pot)

    def turn(self, params: ChannelParams, state: ChannelState) -> tuple[int, ...]:
        game = Game.decode(state.app_data)
        player = None if game is None else game.to_move()
        return () if player is None else (player,)

    def outcome(self, params: ChannelParams, state: ChannelState) -> tuple[AssetBalances, ...]:
        game = Game.decode(state.app_data)
        if game is None or not state.balances:
            return state.balances
        return _with_first(state, split(game, sum(state.balances[0].amounts)))

    def check_initial(self, params: ChannelParams, state: ChannelState) -> None:
        game = Game.decode(state.app_data)
        if game is None or game.moves != 0:
            raise InvalidTransition("a tic-tac-toe channel opens on an empty board")
        if not state.balances:
            raise InvalidTransition("a tic-tac-toe channel needs an asset to stake")
        a, b = state.balances[0].amounts
        if a != b or a == 0:
            raise InvalidTransition(
                f"both players stake the same non-zero amount of {state.balances[0].asset}, "
                f"not {a} and {b}"
            )

    def describe(self, params: ChannelParams, state: ChannelState) -> dict[str, Any]:
        game = Game.decode(state.app_data)
        if game is None:
            return {"error": "not a tic-tac-toe state"}
        marks = ".XO"
        rows = ["".join(marks[c] for c in game.board[r : r + 3]) for r in (0, 3, 6)]
        winner = game.winner()
        return {
            "x": game.x,
            "o": 1 - game.x,
            "moves": game.moves,
            "board": rows,
            "winner": winner,
            "draw": winner is None and game.moves == 9,
            "to_move": game.to_move(),
        }


def initial_data(options: Mapping[str, Any]) -> bytes:
    """``{"x": 0 | 1}``: who plays X and moves first (default participant 0)."""
    unknown = set(options) - {"x"}
    if unknown:
        raise ValueError(f"unknown tic-tac-toe option(s) {sorted(unknown)}; known: x")
    x = options.get("x", 0)
    if x not in (0, 1) or isinstance(x, bool):
        raise ValueError("x is participant 0 or 1")
    return Game.new(x).encode()


def encode_move(options: Mapping[str, Any]) -> bytes:
    """``{"cell": 0..8}`` (row by row from the top left)."""
    cell = options.get("cell")
    if set(options) != {"cell"} or not isinstance(cell, int) or isinstance(cell, bool):
        raise ValueError('a tic-tac-toe move is {"cell": 0..8}')
    if not 0 <= cell <= 8:
        raise ValueError("cell is 0..8")
    return bytes([cell])
