// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Params, State, IApp} from "contracts/evm/Adjudicator.sol";

/// @title Tic-tac-toe with stakes: the on-chain rule of the `tictactoe` Chenilles app
/// @notice The same rule as chenilles_app_tictactoe/rules.py (read its docstring for the
///         game and why each state's balances are its outcome). appData, 11 bytes:
///         x u8 (participant playing X, moves first) | moves u8 | board 9 x u8
///         (0 empty, 1 X, 2 O). Only assets[0] (the pot) ever moves.
///         The adjudicator has already checked channel id, version + 1, the mover's
///         signature, unchanged assets and HTLCs, and per-asset conservation.
contract TicTacToe is IApp {
    uint256 private constant LENGTH = 11;

    function validTransition(Params calldata, State calldata from, State calldata to, uint8 moverIdx)
        external
        pure
        returns (bool)
    {
        bytes calldata a = from.appData;
        bytes calldata b = to.appData;
        if (!_wellFormed(a) || !_wellFormed(b) || to.isFinal || from.balances.length == 0) return false;
        uint8 x = uint8(a[0]);
        uint8 moves = uint8(a[1]);
        if (_over(a)) return false;
        if (moverIdx != (moves % 2 == 0 ? x : 1 - x)) return false;
        if (uint8(b[0]) != x || uint8(b[1]) != moves + 1) return false;
        if (!_oneMark(a, b, moverIdx == x ? 1 : 2)) return false;
        if (to.balances.length != from.balances.length) return false;
        for (uint256 i = 1; i < from.balances.length; i++) {
            if (to.balances[i][0] != from.balances[i][0] || to.balances[i][1] != from.balances[i][1]) return false;
        }
        (uint256 p0, uint256 p1) = _split(b, from.balances[0][0] + from.balances[0][1]);
        return to.balances[0][0] == p0 && to.balances[0][1] == p1;
    }

    /// Exactly one cell differs between boards `a` and `b`: empty in `a`, `mark` in `b`.
    function _oneMark(bytes calldata a, bytes calldata b, uint8 mark) private pure returns (bool) {
        uint256 changed;
        uint256 cell;
        for (uint256 i = 2; i < LENGTH; i++) {
            if (a[i] != b[i]) {
                changed++;
                cell = i;
            }
        }
        return changed == 1 && uint8(a[cell]) == 0 && uint8(b[cell]) == mark;
    }

    function _wellFormed(bytes calldata d) private pure returns (bool) {
        if (d.length != LENGTH || uint8(d[0]) > 1 || uint8(d[1]) > 9) return false;
        for (uint256 i = 2; i < LENGTH; i++) {
            if (uint8(d[i]) > 2) return false;
        }
        return true;
    }

    /// 0 if no line of three, else the owning mark (1 X, 2 O); lines in the Python order.
    function _lineMark(bytes calldata d) private pure returns (uint8) {
        uint8[24] memory lines = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 3, 6, 1, 4, 7, 2, 5, 8, 0, 4, 8, 2, 4, 6];
        for (uint256 k = 0; k < 24; k += 3) {
            uint8 c = uint8(d[2 + lines[k]]);
            if (c != 0 && c == uint8(d[2 + lines[k + 1]]) && c == uint8(d[2 + lines[k + 2]])) return c;
        }
        return 0;
    }

    function _over(bytes calldata d) private pure returns (bool) {
        return _lineMark(d) != 0 || uint8(d[1]) == 9;
    }

    /// The pot's split for game `d`: a line's owner takes it; no move or a draw splits it
    /// (participant 0 gets an odd unit); otherwise the player who moved last takes it.
    function _split(bytes calldata d, uint256 pot) private pure returns (uint256, uint256) {
        uint8 x = uint8(d[0]);
        uint8 moves = uint8(d[1]);
        uint8 mark = _lineMark(d);
        if (mark != 0) {
            uint8 winner = mark == 1 ? x : 1 - x;
            return winner == 0 ? (pot, uint256(0)) : (uint256(0), pot);
        }
        if (moves == 0 || moves == 9) return (pot - pot / 2, pot / 2);
        uint8 last = moves % 2 == 0 ? 1 - x : x;
        return last == 0 ? (pot, uint256(0)) : (uint256(0), pot);
    }
}
