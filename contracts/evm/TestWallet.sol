// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title EIP-7702 delegate for tests: an account that signs with its own key (a
///        channel participant) and runs this code when it receives ETH. Tests only.
/// @notice The account configures itself with a transaction to its own address.
///         Modes: ACCEPT takes the ETH (and logs it), REJECT reverts, BURN spins
///         until its gas runs out, STINGY takes the ETH (and logs it) only with at
///         least STINGY_GAS left and reverts cheaply otherwise (a receiver that needs
///         nearly all of a payout's gas: a payout starved of gas would leave its
///         caller enough to credit it), REENTER makes the call set by
///         `configureReentry` on `target` and logs whether that worked and the
///         selector of its revert. REENTER also runs from `tokensToSend`, the hook
///         that HookToken calls on a sender before it moves the sender's tokens.
contract TestWallet {
    uint8 public constant ACCEPT = 0;
    uint8 public constant REJECT = 1;
    uint8 public constant BURN = 2;
    uint8 public constant REENTER = 3;
    uint8 public constant STINGY = 4;
    /// A 30,000-gas ETH payout (plus the 2,300 stipend) leaves about 30,100 gas at
    /// STINGY's check; a receiver given less than 29,000 there reverts.
    uint256 public constant STINGY_GAS = 29_000;

    uint8 public mode;
    address public target;
    /// REENTER: the calldata to send to `target`, kept as the code of a data contract
    /// (after a leading STOP): reading it word by word from storage would cost more
    /// than the 30,000 gas an ETH payout forwards.
    address public reentryData;

    /// set while a re-entry runs: the re-entered contract may pay or pull from this
    /// account again, which then only takes the ETH (no second re-entry)
    bool private transient _reentering;

    event Received(uint256 amount);
    event Reentered(bool ok, bytes4 selector);

    function configure(uint8 mode_, address target_) external {
        require(msg.sender == address(this), "self only");
        mode = mode_;
        target = target_;
    }

    /// REENTER: when paid (or hooked by HookToken), call `target_` with `call_`.
    function configureReentry(address target_, bytes calldata call_) external {
        require(msg.sender == address(this), "self only");
        mode = REENTER;
        target = target_;
        // init code: copy what follows these 12 bytes (STOP, then call_) and return
        // it as the new contract's code
        bytes memory init =
            abi.encodePacked(hex"61", uint16(call_.length + 1), hex"80600c6000396000f3", hex"00", call_);
        address data;
        assembly ("memory-safe") {
            data := create(0, add(init, 0x20), mload(init))
        }
        require(data != address(0), "store failed");
        reentryData = data;
    }

    receive() external payable {
        uint8 m = mode;
        if (m == STINGY && gasleft() < STINGY_GAS) revert("stingy");
        if (m == REJECT) revert("rejected");
        if (m == BURN) {
            uint256 i;
            while (true) {
                i++;
            }
        }
        if (m == REENTER && !_reentering) {
            _reenter();
            return;
        }
        emit Received(msg.value);
    }

    /// ERC-777-style sender hook (HookToken): runs before the tokens move.
    function tokensToSend(address, address, address, uint256) external {
        if (mode == REENTER && !_reentering) _reenter();
    }

    function _reenter() internal {
        _reentering = true;
        bytes memory code = reentryData.code;
        address t = target;
        bool ok;
        bytes4 selector;
        assembly ("memory-safe") {
            let n := mload(code)
            if n { n := sub(n, 1) }
            ok := call(gas(), t, 0, add(code, 0x21), n, 0, 0)
            if gt(returndatasize(), 3) {
                returndatacopy(0, 0, 4)
                selector := and(mload(0), shl(224, 0xffffffff))
            }
        }
        _reentering = false;
        emit Reentered(ok, selector);
    }
}
