// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

interface IGroupToken {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
}

/// @title Chenilles group adjudicator: channels of N members (2 to 16) by unanimity
/// @notice A separate contract from `Adjudicator` on purpose: the two-party adjudicator
///         carries HTLCs, apps and an encoding the two-party backend signs; a group
///         channel carries balances only, and keeping it apart leaves every two-party
///         encoding untouched.
///
///         A channel is fixed by its `GroupParams`; its id is
///         `keccak256(abi.encode(block.chainid, address(this), params))`. A state counts
///         only with the EIP-712 signature of every member (domain "Chenilles Group",
///         version "1"). Dispute: anyone registers a fully signed state; while the
///         challenge period runs anyone may refute it with a fully signed state of a
///         higher version; afterwards anyone concludes, and each member's payout is then
///         withdrawn to that member (by anyone: the money can only go to the member).
///         A final state ends the challenge period at once (cooperative close).
///
///         Money rule, per asset: if the registered state's total equals what was
///         deposited, each member gets its balance; otherwise (version 0 signed before
///         some member funded: the only state honest members sign before funding is
///         complete) each member gets back exactly what it deposited.
contract GroupAdjudicator {
    uint256 public constant MAX_MEMBERS = 16;
    uint256 public constant MAX_ASSETS = 4;
    uint256 internal constant HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant STATE_TYPEHASH =
        keccak256("GroupState(bytes32 channelId,uint64 version,bool isFinal,uint256[] balances)");

    struct GroupParams {
        address[] members; // 2..16, distinct, non-zero
        address[] assets; // 1..4, distinct; address(0) is ETH
        uint64 challengeDuration; // seconds
        bytes32 nonce;
    }

    /// balances[a * members.length + m]: what member m owns of assets[a]
    struct GroupState {
        bytes32 channelId;
        uint64 version;
        bool isFinal;
        uint256[] balances;
    }

    enum Phase {
        OPEN,
        DISPUTE,
        CONCLUDED
    }

    struct Channel {
        Phase phase;
        uint64 version;
        uint64 timeout;
    }

    mapping(bytes32 => Channel) public channels;
    /// deposits and payouts keyed by channel, then asset * MAX_MEMBERS + member
    mapping(bytes32 => mapping(uint256 => uint256)) public deposits;
    mapping(bytes32 => mapping(uint256 => uint256)) public payouts;
    mapping(bytes32 => mapping(uint256 => bool)) public withdrawn;
    mapping(bytes32 => uint256[]) internal registeredBalances;

    error BadParams();
    error WrongChannel();
    error BadState();
    error BadSignature(uint256 member);
    error WrongPhase(Phase phase);
    error StaleVersion(uint64 registered, uint64 offered);
    error ChallengePeriodOver(uint64 timeout);
    error ChallengePeriodActive(uint64 timeout);
    error AlreadyWithdrawn(uint256 member);
    error BadDeposit();
    error TransferFailed(address asset, address to, uint256 amount);

    event Deposited(bytes32 indexed channelId, uint256 asset, uint256 member, uint256 amount);
    event Registered(bytes32 indexed channelId, uint64 version, uint64 timeout);
    event Concluded(bytes32 indexed channelId, uint64 version);
    event Withdrawn(bytes32 indexed channelId, uint256 member, address asset, uint256 amount);

    // ------------------------------------------------------------------ views

    function channelId(GroupParams calldata p) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), p));
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH,
                keccak256("Chenilles Group"),
                keccak256("1"),
                block.chainid,
                address(this)
            )
        );
    }

    function stateDigest(GroupState calldata s) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                STATE_TYPEHASH,
                s.channelId,
                s.version,
                s.isFinal,
                keccak256(abi.encodePacked(s.balances))
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function registered(bytes32 cid) external view returns (uint256[] memory) {
        return registeredBalances[cid];
    }

    // ------------------------------------------------------------------ funding

    /// Deposit `amount` of asset `asset` for member `member` (anyone may fund a member;
    /// the money can only ever go back to that member). Only before any registration.
    function deposit(GroupParams calldata p, uint256 member, uint256 asset, uint256 amount)
        external
        payable
    {
        _checkParams(p);
        bytes32 cid = channelId(p);
        Channel storage ch = channels[cid];
        if (ch.phase != Phase.OPEN) revert WrongPhase(ch.phase);
        if (member >= p.members.length || asset >= p.assets.length || amount == 0) {
            revert BadDeposit();
        }
        address token = p.assets[asset];
        if (token == address(0)) {
            if (msg.value != amount) revert BadDeposit();
        } else {
            if (msg.value != 0) revert BadDeposit();
            uint256 before = IGroupToken(token).balanceOf(address(this));
            if (!_tryCall(token, abi.encodeCall(IGroupToken.transferFrom, (msg.sender, address(this), amount)))) {
                revert TransferFailed(token, address(this), amount);
            }
            if (IGroupToken(token).balanceOf(address(this)) - before != amount) revert BadDeposit();
        }
        deposits[cid][asset * MAX_MEMBERS + member] += amount;
        emit Deposited(cid, asset, member, amount);
    }

    // ------------------------------------------------------------------ dispute

    /// Register a fully signed state (phase OPEN), or replace the registered one by a
    /// newer one while the challenge period runs. A final state ends the period at once.
    function register(GroupParams calldata p, GroupState calldata s, bytes[] calldata sigs)
        external
    {
        bytes32 cid = _verified(p, s, sigs);
        Channel storage ch = channels[cid];
        if (ch.phase == Phase.OPEN) {
            ch.phase = Phase.DISPUTE;
            ch.timeout = uint64(block.timestamp) + p.challengeDuration;
        } else if (ch.phase == Phase.DISPUTE) {
            if (block.timestamp >= ch.timeout) revert ChallengePeriodOver(ch.timeout);
            if (s.version <= ch.version) revert StaleVersion(ch.version, s.version);
        } else {
            revert WrongPhase(ch.phase);
        }
        _record(cid, ch, s);
    }

    /// Answer a registered state with a newer fully signed one (the same rule as a
    /// second `register`, named for the watcher's intent: it fails if nothing is
    /// registered, so a refutation never opens a dispute by mistake).
    function refute(GroupParams calldata p, GroupState calldata s, bytes[] calldata sigs)
        external
    {
        bytes32 cid = _verified(p, s, sigs);
        Channel storage ch = channels[cid];
        if (ch.phase != Phase.DISPUTE) revert WrongPhase(ch.phase);
        if (block.timestamp >= ch.timeout) revert ChallengePeriodOver(ch.timeout);
        if (s.version <= ch.version) revert StaleVersion(ch.version, s.version);
        _record(cid, ch, s);
    }

    /// After the challenge period: fix every member's payout from the registered state.
    function conclude(GroupParams calldata p) external {
        _checkParams(p);
        bytes32 cid = channelId(p);
        Channel storage ch = channels[cid];
        if (ch.phase != Phase.DISPUTE) revert WrongPhase(ch.phase);
        if (block.timestamp < ch.timeout) revert ChallengePeriodActive(ch.timeout);
        ch.phase = Phase.CONCLUDED;
        uint256 n = p.members.length;
        uint256[] storage bal = registeredBalances[cid];
        for (uint256 a = 0; a < p.assets.length; a++) {
            uint256 total;
            uint256 deposited;
            for (uint256 m = 0; m < n; m++) {
                total += bal[a * n + m];
                deposited += deposits[cid][a * MAX_MEMBERS + m];
            }
            for (uint256 m = 0; m < n; m++) {
                uint256 key = a * MAX_MEMBERS + m;
                payouts[cid][key] = total == deposited ? bal[a * n + m] : deposits[cid][key];
            }
        }
        emit Concluded(cid, ch.version);
    }

    /// Pay member `member` everything it is owed, in every asset (anyone may call).
    function withdraw(GroupParams calldata p, uint256 member) external {
        _checkParams(p);
        bytes32 cid = channelId(p);
        Channel storage ch = channels[cid];
        if (ch.phase != Phase.CONCLUDED) revert WrongPhase(ch.phase);
        if (member >= p.members.length) revert BadParams();
        if (withdrawn[cid][member]) revert AlreadyWithdrawn(member);
        withdrawn[cid][member] = true;
        address to = p.members[member];
        for (uint256 a = 0; a < p.assets.length; a++) {
            uint256 amount = payouts[cid][a * MAX_MEMBERS + member];
            if (amount == 0) continue;
            address asset = p.assets[a];
            bool ok = asset == address(0)
                ? _tryCallValue(to, amount)
                : _tryCall(asset, abi.encodeCall(IGroupToken.transfer, (to, amount)));
            if (!ok) revert TransferFailed(asset, to, amount);
            emit Withdrawn(cid, member, asset, amount);
        }
    }

    // ------------------------------------------------------------------ internals

    function _checkParams(GroupParams calldata p) internal pure {
        uint256 n = p.members.length;
        if (n < 2 || n > MAX_MEMBERS || p.assets.length == 0 || p.assets.length > MAX_ASSETS) {
            revert BadParams();
        }
        if (p.challengeDuration == 0) revert BadParams();
        for (uint256 i = 0; i < n; i++) {
            if (p.members[i] == address(0)) revert BadParams();
            for (uint256 j = 0; j < i; j++) {
                if (p.members[i] == p.members[j]) revert BadParams();
            }
        }
        for (uint256 i = 0; i < p.assets.length; i++) {
            for (uint256 j = 0; j < i; j++) {
                if (p.assets[i] == p.assets[j]) revert BadParams();
            }
        }
    }

    /// The channel id, once every member's signature on `s` is checked.
    function _verified(GroupParams calldata p, GroupState calldata s, bytes[] calldata sigs)
        internal
        view
        returns (bytes32 cid)
    {
        _checkParams(p);
        cid = channelId(p);
        if (s.channelId != cid) revert WrongChannel();
        uint256 n = p.members.length;
        if (s.balances.length != n * p.assets.length || sigs.length != n) revert BadState();
        bytes32 digest = stateDigest(s);
        for (uint256 m = 0; m < n; m++) {
            if (_recover(digest, sigs[m]) != p.members[m]) revert BadSignature(m);
        }
    }

    function _record(bytes32 cid, Channel storage ch, GroupState calldata s) internal {
        ch.version = s.version;
        if (s.isFinal) ch.timeout = uint64(block.timestamp);
        registeredBalances[cid] = s.balances;
        emit Registered(cid, s.version, ch.timeout);
    }

    function _recover(bytes32 digest, bytes calldata sig) internal pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := calldataload(sig.offset)
            s := calldataload(add(sig.offset, 32))
            v := byte(0, calldataload(add(sig.offset, 64)))
        }
        if (uint256(s) > HALF_ORDER || uint256(s) == 0 || uint256(r) == 0) return address(0);
        if (v != 27 && v != 28) return address(0);
        return ecrecover(digest, v, r, s);
    }

    /// A token call that succeeds only if it did not revert and returned nothing or true.
    function _tryCall(address token, bytes memory data) internal returns (bool) {
        if (token.code.length == 0) return false;
        (bool ok, bytes memory ret) = token.call(data);
        return ok && (ret.length == 0 || (ret.length == 32 && abi.decode(ret, (bool))));
    }

    function _tryCallValue(address to, uint256 amount) internal returns (bool ok) {
        assembly ("memory-safe") {
            ok := call(gas(), to, amount, 0, 0, 0, 0)
        }
    }
}
