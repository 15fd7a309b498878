// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Params, State, IApp} from "contracts/evm/Adjudicator.sol";

/// @title A ledger channel that funds a virtual channel (the hub's guarantee)
/// @notice Mirrors apps/virtual/chenilles_app_virtual/rules.py (VirtualLedgerApp.valid_forced);
///         the layout of the app data and who may move what are documented there. Empty app
///         data: no guarantee. Called by the adjudicator on forced moves only.
contract VirtualLedger is IApp {
    uint256 internal constant CORE = 218;
    uint256 internal constant VSTATE = 203;
    uint256 internal constant LENGTH = 430;
    bytes32 internal constant TAG = bytes32("chenilles.virtual.state.v1");

    struct G {
        bytes32 vid;
        uint8 hub;
        uint8 end;
        address key0;
        address key1;
        uint64 deadline;
        uint64 grace;
        uint256 capacity;
        uint256 num;
        uint256 den;
        uint256 base0;
        uint256 base1;
        uint64 version;
        uint256 amount0;
        uint256 amount1;
        bool isFinal;
        uint64 beat;
        bool active;
    }

    function validTransition(Params calldata, State calldata from, State calldata to, uint8 moverIdx)
        external
        view
        returns (bool)
    {
        // other assets are the ledger's, untouched by the app
        if (from.balances.length != to.balances.length) return false;
        for (uint256 i = 1; i < to.balances.length; i++) {
            if (from.balances[i][0] != to.balances[i][0] || from.balances[i][1] != to.balances[i][1]) return false;
        }
        bytes calldata a = from.appData;
        bytes calldata b = to.appData;
        if (b.length == 0) {
            // SETTLE: of a final V state, or the hub's cancel of a pending guarantee
            if (a.length != LENGTH) return false;
            if (!_wellFormed(a)) return false;
            G memory s = _decode(a);
            if (from.balances[0][0] != to.balances[0][0] || from.balances[0][1] != to.balances[0][1]) return false;
            return (s.active && s.isFinal) || (!s.active && moverIdx == s.hub);
        }
        if (b.length != LENGTH || !_wellFormed(b)) return false;
        G memory g1 = _decode(b);
        if (g1.den == 0) return false;
        (uint256 p0, uint256 p1) = _balances(g1);
        if (to.balances[0][0] != p0 || to.balances[0][1] != p1) return false;
        // FUND is never forced: a guarantee enters a ledger only in a state its end signed
        // (a cooperative update). The guarantee names V's id, not the ledger state it was
        // funded in, so a forced FUND would let the hub fund a V that already closed again
        // and show its old final state: the ledger would pay V's outcome twice.
        if (a.length == 0) return false;
        if (a.length != LENGTH) return false;
        if (keccak256(a[0:CORE]) != keccak256(b[0:CORE])) return false;
        G memory g0 = _decode(a);
        uint256 limit = uint256(g0.deadline) + g0.grace;
        if (g0.active != g1.active) {
            // ACTIVATE: by the hub, nothing else changes
            return moverIdx == g0.hub && g1.active && g1.beat == g0.beat
                && keccak256(a[CORE:CORE + VSTATE]) == keccak256(b[CORE:CORE + VSTATE]);
        }
        if (keccak256(a[CORE:CORE + VSTATE]) == keccak256(b[CORE:CORE + VSTATE])) {
            // HEARTBEAT: the hub keeps the dispute open until deadline + grace
            return moverIdx == g0.hub && g1.beat == g0.beat + 1 && block.timestamp < limit;
        }
        // UPDATE (active guarantees only)
        if (!g0.active || g1.beat != g0.beat || g1.amount0 + g1.amount1 != g0.capacity) return false;
        bool inTime;
        if (moverIdx == g0.hub) {
            inTime = block.timestamp < limit && g1.version >= g0.version;
        } else {
            inTime = block.timestamp < g0.deadline && g1.version > g0.version && !g0.isFinal;
        }
        if (!inTime) return false;
        bytes32 digest = keccak256(abi.encode(TAG, g1.vid, g1.version, g1.amount0, g1.amount1, g1.isFinal));
        address s0 = _signer(digest, b, CORE + 73);
        address s1 = _signer(digest, b, CORE + 138);
        return s0 != address(0) && s0 == g1.key0 && s1 != address(0) && s1 == g1.key1;
    }

    /// @dev hub and end are indices, the final and active flags 0 or 1 (as the Python decoder demands)
    function _wellFormed(bytes calldata d) internal pure returns (bool) {
        return uint8(d[32]) <= 1 && uint8(d[33]) <= 1 && uint8(d[290]) <= 1 && uint8(d[429]) <= 1;
    }

    function _balances(G memory g) internal pure returns (uint256 p0, uint256 p1) {
        uint256 total = g.capacity * g.num / g.den;
        uint256 endPay = (g.end == 0 ? g.amount0 : g.amount1) * g.num / g.den;
        uint256 hubPay = total - endPay; // reverts (refused) when the end's share exceeds the total
        if (g.hub == 0) return (g.base0 + hubPay, g.base1 + endPay);
        return (g.base0 + endPay, g.base1 + hubPay);
    }

    function _signer(bytes32 digest, bytes calldata d, uint256 at) internal pure returns (address) {
        bytes32 r = bytes32(d[at:at + 32]);
        bytes32 s = bytes32(d[at + 32:at + 64]);
        uint8 v = uint8(d[at + 64]);
        if (v != 27 && v != 28) return address(0);
        return ecrecover(digest, v, r, s);
    }

    function _u(bytes calldata d, uint256 at, uint256 size) internal pure returns (uint256 x) {
        for (uint256 i = 0; i < size; i++) {
            x = (x << 8) | uint8(d[at + i]);
        }
    }

    function _decode(bytes calldata d) internal pure returns (G memory g) {
        g.vid = bytes32(d[0:32]);
        g.hub = uint8(d[32]);
        g.end = uint8(d[33]);
        g.key0 = address(bytes20(d[34:54]));
        g.key1 = address(bytes20(d[54:74]));
        g.deadline = uint64(_u(d, 74, 8));
        g.grace = uint64(_u(d, 82, 8));
        g.capacity = uint256(bytes32(d[90:122]));
        g.num = _u(d, 122, 16);
        g.den = _u(d, 138, 16);
        g.base0 = uint256(bytes32(d[154:186]));
        g.base1 = uint256(bytes32(d[186:218]));
        g.version = uint64(_u(d, 218, 8));
        g.amount0 = uint256(bytes32(d[226:258]));
        g.amount1 = uint256(bytes32(d[258:290]));
        g.isFinal = d[290] != 0;
        g.beat = uint64(_u(d, 421, 8));
        g.active = d[429] != 0;
    }
}
