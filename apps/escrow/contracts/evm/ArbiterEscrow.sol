// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Params, State, IApp} from "contracts/evm/Adjudicator.sol";

/// @title Escrow with an arbiter and a timeout: the on-chain rule of the `escrow` app
/// @notice The same rule as chenilles_app_escrow/rules.py (read its docstring). appData,
///         138 bytes, integers big-endian: status u8 | buyer u8 | deadline u64 |
///         amount u256 | releaseHash 32 | refundHash 32 | ruling 32.
///         From LOCKED (0): RELEASED (1, amount of assets[0] buyer -> seller) by the buyer,
///         or by anyone showing sha256(ruling) == releaseHash while block.timestamp <=
///         deadline; REFUNDED (2, balances unchanged) by the seller, by anyone showing
///         sha256(ruling) == refundHash, or by the buyer once block.timestamp > deadline.
///         The adjudicator has already checked channel id, version + 1, the mover's
///         signature, unchanged assets and HTLCs, and per-asset conservation.
contract ArbiterEscrow is IApp {
    uint256 private constant LENGTH = 138;
    uint8 private constant LOCKED = 0;
    uint8 private constant RELEASED = 1;
    uint8 private constant REFUNDED = 2;

    function validTransition(Params calldata, State calldata from, State calldata to, uint8 moverIdx)
        external
        view
        returns (bool)
    {
        bytes calldata a = from.appData;
        bytes calldata b = to.appData;
        if (!_wellFormed(a) || !_wellFormed(b) || to.isFinal || from.balances.length == 0 || moverIdx > 1) {
            return false;
        }
        if (uint8(a[0]) != LOCKED || keccak256(a[1:106]) != keccak256(b[1:106])) return false;
        if (to.balances.length != from.balances.length) return false;
        for (uint256 i = 1; i < from.balances.length; i++) {
            if (to.balances[i][0] != from.balances[i][0] || to.balances[i][1] != from.balances[i][1]) return false;
        }
        uint8 buyer = uint8(a[1]);
        uint256 amount = uint256(bytes32(a[10:42]));
        if (from.balances[0][buyer] < amount) return false;
        uint8 status = uint8(b[0]);
        if (status != RELEASED && status != REFUNDED) return false;
        return _allowed(a, b, moverIdx) && _paid(from, to, buyer, status == RELEASED ? amount : 0);
    }

    /// May `mover` take the escrow `a` to `b`'s status now?
    function _allowed(bytes calldata a, bytes calldata b, uint8 mover) private view returns (bool) {
        uint8 buyer = uint8(a[1]);
        uint256 deadline = uint64(bytes8(a[2:10]));
        bytes32 shown = sha256(b[106:138]);
        if (uint8(b[0]) == RELEASED) {
            return mover == buyer || (shown == bytes32(a[42:74]) && block.timestamp <= deadline);
        }
        return mover == 1 - buyer || shown == bytes32(a[74:106]) || (mover == buyer && block.timestamp > deadline);
    }

    /// Did exactly `paid` of assets[0] move from the buyer to the seller?
    function _paid(State calldata from, State calldata to, uint8 buyer, uint256 paid) private pure returns (bool) {
        uint8 seller = 1 - buyer;
        uint256 fromSeller = from.balances[0][seller];
        uint256 toSeller = to.balances[0][seller];
        return to.balances[0][buyer] == from.balances[0][buyer] - paid && toSeller >= fromSeller
            && toSeller - fromSeller == paid;
    }

    function _wellFormed(bytes calldata d) private pure returns (bool) {
        return d.length == LENGTH && uint8(d[0]) <= REFUNDED && uint8(d[1]) <= 1;
    }
}
