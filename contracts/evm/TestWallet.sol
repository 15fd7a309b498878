// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Params} from "./Adjudicator.sol";

/// @title EIP-7702 delegate for tests: an account that signs with its own key (a
///        channel participant) and runs this code when it receives ETH. Tests only.
/// @notice The account configures itself with a transaction to its own address.
///         Modes: ACCEPT takes the ETH (and logs it), REJECT reverts, BURN spins
///         until its gas runs out, REENTER calls `withdraw` on `target` and logs
///         whether that worked and the selector of its revert.
contract TestWallet {
    uint8 public constant ACCEPT = 0;
    uint8 public constant REJECT = 1;
    uint8 public constant BURN = 2;
    uint8 public constant REENTER = 3;

    uint8 public mode;
    address public target;

    event Received(uint256 amount);
    event Reentered(bool ok, bytes4 selector);

    function configure(uint8 mode_, address target_) external {
        require(msg.sender == address(this), "self only");
        mode = mode_;
        target = target_;
    }

    receive() external payable {
        uint8 m = mode;
        if (m == REJECT) revert("rejected");
        if (m == BURN) {
            uint256 i;
            while (true) {
                i++;
            }
        }
        if (m == REENTER) {
            Params memory none;
            (bool ok, bytes memory ret) = target.call(
                abi.encodeWithSignature(
                    "withdraw((address[],uint64,bytes32,address),uint8,address,address)",
                    none,
                    uint8(0),
                    address(0),
                    address(this)
                )
            );
            emit Reentered(ok, ret.length >= 4 ? bytes4(ret) : bytes4(0));
            return;
        }
        emit Received(msg.value);
    }
}
