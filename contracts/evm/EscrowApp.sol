// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Params, State, IApp} from "./Adjudicator.sol";

/// @title Two-party escrow app for Chenilles channels
/// @notice appData = abi.encode(uint8 status, uint8 buyer, uint64 deadline, uint256 amount).
///         The escrowed `amount` of assets[0] stays in the buyer's balance while LOCKED.
///         Moves from LOCKED (0), each ending the game (`isFinal`):
///           - RELEASED (1) by the buyer at any time: `amount` goes buyer -> seller;
///           - REFUNDED (2) by the seller at any time, or by the buyer once
///             block.timestamp > deadline: balances unchanged.
///         buyer, deadline and amount never change. The Python mirror is
///         chenilles_evm.escrow_app.valid_transition.
contract EscrowApp is IApp {
    uint8 public constant LOCKED = 0;
    uint8 public constant RELEASED = 1;
    uint8 public constant REFUNDED = 2;

    function validTransition(Params calldata, State calldata from, State calldata to, uint8 moverIdx)
        external
        view
        returns (bool)
    {
        if (from.appData.length != 128 || to.appData.length != 128) return false;
        (uint8 s0, uint8 buyer, uint64 deadline, uint256 amount) =
            abi.decode(from.appData, (uint8, uint8, uint64, uint256));
        (uint8 s1, uint8 buyer1, uint64 deadline1, uint256 amount1) =
            abi.decode(to.appData, (uint8, uint8, uint64, uint256));
        if (buyer > 1 || moverIdx > 1) return false;
        if (s0 != LOCKED || buyer1 != buyer || deadline1 != deadline || amount1 != amount) return false;
        if (!to.isFinal || from.assets.length == 0) return false;
        uint8 seller = 1 - buyer;
        uint256 buyerBal = from.balances[0][buyer];
        if (buyerBal < amount) return false;
        // assets other than assets[0] never move
        for (uint256 i = 1; i < from.assets.length; i++) {
            if (to.balances[i][0] != from.balances[i][0] || to.balances[i][1] != from.balances[i][1]) return false;
        }
        if (s1 == RELEASED) {
            return moverIdx == buyer && to.balances[0][buyer] == buyerBal - amount
                && to.balances[0][seller] == from.balances[0][seller] + amount;
        }
        if (s1 == REFUNDED) {
            bool allowed = moverIdx == seller || block.timestamp > deadline;
            return allowed && to.balances[0][0] == from.balances[0][0] && to.balances[0][1] == from.balances[0][1];
        }
        return false;
    }
}
