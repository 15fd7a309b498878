// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Chenilles channel types (file level, shared by the adjudicator and the apps)
/// @notice A channel is fixed by its `Params`; its id is
///         `keccak256(abi.encode(block.chainid, address(adjudicator), params))`,
///         so a signed state can never be replayed on another chain, on another
///         deployment or in another channel.
struct Params {
    address[] participants; // exactly 2, distinct, non-zero
    uint64 challengeDuration; // seconds
    bytes32 nonce; // makes several channels between the same peers distinct
    address app; // address(0): payments and HTLCs only; else an IApp
}

/// @notice A hash-time-locked conditional payment from `payer` to `1 - payer`.
///         It pays the payee iff sha256(preimage) == paymentHash was revealed on
///         this contract at a block timestamp <= expiry; otherwise it refunds the
///         payer once block.timestamp > expiry.
struct Htlc {
    uint64 id;
    uint8 payer;
    address asset;
    uint256 amount;
    bytes32 paymentHash;
    uint64 expiry; // block timestamp, unix seconds
}

/// @notice balances[i][p] is the amount of assets[i] owned by participant p.
struct State {
    bytes32 channelId;
    uint64 version;
    address[] assets; // address(0) is ETH
    uint256[][] balances;
    Htlc[] htlcs;
    bytes appData;
    bool isFinal;
}

/// @notice A two-party application ("generalized state channel"). The adjudicator
///         calls it (staticcall) for every forced move during a dispute.
interface IApp {
    /// @return true iff `to` is a valid move by participant `moverIdx` from `from`.
    ///         The adjudicator has already checked channel id, version + 1, the
    ///         mover's signature, unchanged assets and HTLCs, and conservation.
    function validTransition(Params calldata params, State calldata from, State calldata to, uint8 moverIdx)
        external
        view
        returns (bool);
}

/// @title Chenilles adjudicator for two-party state channels (ETH and ERC-20)
/// @notice One deployment holds the assets of many channels.
///
/// Life cycle of a channel (id = channelId(params)):
///  1. `deposit` funds it (ETH with msg.value, ERC-20 via transferFrom; the amount
///     actually received is credited, so fee-on-transfer tokens are safe).
///  2. Happy path: `concludeCooperative` with a final state signed by both
///     participants, no locked HTLCs, and per-asset sums equal to the holdings.
///     It pays both participants in the same transaction.
///  3. Dispute: `register` a state signed by both; during the challenge period
///     anyone may `register` a strictly newer one (a refutation), which restarts
///     the period. For app channels, once the period is over, `progress` accepts
///     forced moves (signed by the mover alone, validated by `IApp`), each opening
///     a new period of `challengeDuration` for the next move, during which a state
///     signed by both of at least the forced version may also be registered (the
///     dispute then starts over from it).
///     `conclude(params, state)` with the registered state, once the last period
///     is over, resolves every HTLC (revealed in time -> payee; expired -> payer;
///     otherwise it reverts with HtlcNotResolvable) and pays both participants.
///  4. Payouts: a conclusion sends each participant its share of every asset to
///     its participant address (ETH by a call forwarding at most PAYOUT_GAS_ETH,
///     ERC-20 by `transfer` with at most PAYOUT_GAS_TOKEN), logged as `Withdrawn`.
///     A payout that fails (a receiver that reverts or needs more gas, a token
///     that refuses the transfer) is credited instead (`PayoutCredited`) and the
///     other payouts go on: one participant can never block the other's. A
///     credited payout is pulled with `withdraw` (only by that participant, to
///     any receiver, with all the gas it brings), once; `withdraw` of anything
///     else is AlreadyWithdrawn.
///
/// Storage keeps only the hash of the registered state (callers pass the state
/// back; watchers get forced-move states from the `Progressed` event).
///
/// Conservation: for every asset, sum(balances) + sum(locked HTLCs) must equal
/// the holdings for a cooperative close, and must not exceed them for a dispute
/// (a state that is not fully funded is never enforced). Holdings above the
/// registered state's total (an on-chain top-up that no signed state accounts
/// for yet, or an asset the state does not list) stay locked in the channel:
/// agree on the state that credits a top-up before depositing it.
///
/// Signatures: 65-byte (r, s, v) ECDSA over the EIP-712 digest of `State`,
/// domain {name "Chenilles", version "1", chainId, verifyingContract}; s must be
/// in the lower half order, v in {27, 28}, the recovered address non-zero.
///
/// Bounds: at most MAX_ASSETS assets and MAX_HTLCS HTLCs per state. Every
/// function that transfers (deposit, the conclusions, withdraw) runs under one
/// transient-storage reentrancy lock and makes its external calls after its
/// effects, but for two writes that must follow a call: a token deposit credits
/// what the transfer delivered, and a failed payout is credited.
contract Adjudicator {
    // ---------------------------------------------------------------- constants
    uint256 public constant MAX_ASSETS = 8;
    uint256 public constant MAX_HTLCS = 32;
    /// Gas a payout forwards: an account without code needs none; a contract (or
    /// EIP-7702 delegated) receiver that needs more is credited instead.
    uint256 public constant PAYOUT_GAS_ETH = 30_000;
    uint256 public constant PAYOUT_GAS_TOKEN = 100_000;
    /// Gas kept besides the forwarded amount when checking that a payout gets all
    /// of it: the call's own cost (cold account, value transfer, new account).
    uint256 private constant PAYOUT_CALL_OVERHEAD = 40_000;
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    bytes32 public constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant HTLC_TYPEHASH = keccak256(
        "Htlc(uint64 id,uint8 payer,address asset,uint256 amount,bytes32 paymentHash,uint64 expiry)"
    );
    bytes32 public constant STATE_TYPEHASH = keccak256(
        "State(bytes32 channelId,uint64 version,address[] assets,uint256[][] balances,Htlc[] htlcs,bytes appData,bool isFinal)"
        "Htlc(uint64 id,uint8 payer,address asset,uint256 amount,bytes32 paymentHash,uint64 expiry)"
    );

    uint8 internal constant PHASE_NONE = 0;
    uint8 internal constant PHASE_DISPUTE = 1; // registered, refutable until timeout
    uint8 internal constant PHASE_FORCEEXEC = 2; // app moves, each until timeout
    uint8 internal constant PHASE_CONCLUDED = 3;

    // ------------------------------------------------------------------ storage
    struct Dispute {
        uint64 timeout;
        uint64 version;
        uint8 phase;
        /// The channel's ETH holdings, in the slot every operation reads anyway (all
        /// the ETH there is fits in 87 bits); tokens' are in `_holdings`.
        uint120 ethHeld;
        bytes32 stateHash; // keccak256(abi.encode(state)) of the registered state
    }

    mapping(bytes32 => Dispute) internal _disputes;
    /// The channel's holdings of a token (ETH: `Dispute.ethHeld`). A conclusion pays
    /// the holdings out and leaves only what no state accounts for (locked for good).
    mapping(bytes32 => mapping(address => uint256)) internal _holdings;
    /// After conclusion: payouts that could not be sent, per asset and
    /// participant, until `withdraw` pulls them.
    mapping(bytes32 => mapping(address => uint256[2])) internal _credits;
    /// sha256(preimage) => block timestamp of the first reveal
    mapping(bytes32 => uint64) public revealedAt;

    /// The reentrancy lock (a full word: no read-modify-write of a packed slot).
    uint256 private transient _locked;

    // ------------------------------------------------------------------- events
    event Deposited(
        bytes32 indexed channelId, address indexed asset, uint8 participant, uint256 amount, uint256 holdings
    );
    event Registered(bytes32 indexed channelId, uint64 version, uint64 timeout);
    event Progressed(bytes32 indexed channelId, uint64 version, uint64 timeout, uint8 mover, State state);
    event HtlcResolved(bytes32 indexed channelId, uint64 htlcId, bytes32 paymentHash, bool paidToPayee);
    event Concluded(bytes32 indexed channelId, uint64 version);
    event ConcludedCooperatively(bytes32 indexed channelId, uint64 version);
    event Withdrawn(
        bytes32 indexed channelId, address indexed asset, uint8 participant, address receiver, uint256 amount
    );
    event PayoutCredited(bytes32 indexed channelId, address indexed asset, uint8 participant, uint256 amount);
    event PreimageRevealed(bytes32 indexed paymentHash, bytes32 preimage, uint64 time);

    // ------------------------------------------------------------------- errors
    error InvalidParams();
    error InvalidParticipant(uint256 index);
    error InvalidState();
    error TooManyAssets(uint256 count);
    error TooManyHtlcs(uint256 count);
    error DuplicateAsset(address asset);
    error UnknownHtlcAsset(uint64 htlcId, address asset);
    error InvalidSignature(uint256 index);
    error WrongChannel(bytes32 expected, bytes32 got);
    error StaleVersion(uint64 registered, uint64 got);
    error NonConserving(address asset, uint256 required, uint256 holdings);
    error NotFinal();
    error StateIsFinal();
    error HtlcsLocked(uint256 count);
    error NotRegistered();
    error StateMismatch();
    error ChallengePeriodActive(uint64 timeout);
    error ChallengePeriodOver(uint64 timeout);
    error NoApp();
    error InvalidTransition();
    error AlreadyConcluded();
    error NotConcluded();
    error AlreadyWithdrawn(uint8 participant, address asset);
    error Unauthorized(address caller);
    error HtlcNotResolvable(uint64 htlcId);
    error InvalidPreimageLength(uint256 length);
    error InvalidAmount();
    error TransferFailed(address asset);
    error Reentrancy();
    error InsufficientGas();

    modifier nonReentrant() {
        if (_locked != 0) revert Reentrancy();
        _locked = 1;
        _;
        _locked = 0;
    }

    // ================================================================== funding

    /// @notice Credit `amount` of `asset` to channel `params` (participant index is
    ///         recorded in the event for the off-chain funding protocol).
    function deposit(Params calldata params, address asset, uint8 participantIndex, uint256 amount)
        external
        payable
        nonReentrant
    {
        bytes32 cid = _checkedChannelId(params);
        if (participantIndex > 1) revert InvalidParticipant(participantIndex);
        Dispute storage d = _disputes[cid];
        if (d.phase == PHASE_CONCLUDED) revert AlreadyConcluded();
        uint256 received;
        if (asset == address(0)) {
            if (msg.value != amount || amount == 0) revert InvalidAmount();
            received = amount;
        } else {
            if (msg.value != 0 || amount == 0) revert InvalidAmount();
            // interaction before effect is unavoidable to measure what arrived;
            // the reentrancy lock covers it.
            uint256 before = _balanceOf(asset);
            _callToken(asset, abi.encodeWithSelector(0x23b872dd, msg.sender, address(this), amount));
            received = _balanceOf(asset) - before;
            if (received == 0) revert InvalidAmount();
        }
        uint256 held = _heldOf(cid, d, asset) + received;
        if (asset == address(0) && held > type(uint120).max) revert InvalidAmount();
        _setHeld(cid, d, asset, held);
        emit Deposited(cid, asset, participantIndex, received, held);
    }

    // ========================================================== cooperative close

    /// @notice Close with a final state signed by both (no HTLCs, sums equal to the
    ///         holdings), even during a dispute if it is not older than the
    ///         registered state, and pay both participants.
    function concludeCooperative(Params calldata params, State calldata state, bytes[2] calldata sigs)
        external
        nonReentrant
    {
        bytes32 cid = _checkedChannelId(params);
        _checkState(cid, state);
        if (!state.isFinal) revert NotFinal();
        if (state.htlcs.length != 0) revert HtlcsLocked(state.htlcs.length);
        Dispute storage d = _disputes[cid];
        uint8 phase = d.phase;
        if (phase == PHASE_CONCLUDED) revert AlreadyConcluded();
        if (phase != PHASE_NONE && state.version < d.version) revert StaleVersion(d.version, state.version);
        _checkSignatures(params, state, sigs);
        uint256 n = state.assets.length;
        for (uint256 i = 0; i < n; i++) {
            address a = state.assets[i];
            uint256 total = state.balances[i][0] + state.balances[i][1];
            uint256 held = _heldOf(cid, d, a);
            if (total != held) revert NonConserving(a, total, held);
            if (held != 0) _setHeld(cid, d, a, 0); // the payouts below own the funds
        }
        d.phase = PHASE_CONCLUDED;
        d.version = state.version;
        d.timeout = uint64(block.timestamp);
        if (phase != PHASE_NONE) d.stateHash = bytes32(0);
        emit ConcludedCooperatively(cid, state.version);
        address p0 = params.participants[0];
        address p1 = params.participants[1];
        for (uint256 i = 0; i < n; i++) {
            address a = state.assets[i];
            _payOut(cid, a, 0, p0, state.balances[i][0]);
            _payOut(cid, a, 1, p1, state.balances[i][1]);
        }
    }

    // ================================================================= disputes

    /// @notice Register a state signed by both participants, or refute the
    ///         registered one with a strictly newer state while the period runs.
    function register(Params calldata params, State calldata state, bytes[2] calldata sigs) external {
        bytes32 cid = _checkedChannelId(params);
        _checkState(cid, state);
        Dispute storage d = _disputes[cid];
        uint8 phase = d.phase;
        if (phase == PHASE_CONCLUDED) revert AlreadyConcluded();
        if (phase != PHASE_NONE) {
            if (block.timestamp >= d.timeout) revert ChallengePeriodOver(d.timeout);
            // In a dispute a strictly newer state refutes the registered one. After a
            // forced move (signed by its mover alone) a state both signed of at least its
            // version does: a move forced on a stale state cannot stand against what both
            // signed, and the dispute starts over from it.
            bool stale = phase == PHASE_DISPUTE ? state.version <= d.version : state.version < d.version;
            if (stale) revert StaleVersion(d.version, state.version);
        }
        _checkSignatures(params, state, sigs);
        _checkFunded(cid, d, state);
        uint64 timeout = uint64(block.timestamp) + params.challengeDuration;
        d.timeout = timeout;
        d.version = state.version;
        d.phase = PHASE_DISPUTE;
        d.stateHash = keccak256(abi.encode(state));
        emit Registered(cid, state.version, timeout);
    }

    /// @notice A forced move in an app channel, after the refutation period.
    function progress(
        Params calldata params,
        State calldata from,
        State calldata to,
        uint8 moverIdx,
        bytes calldata sig
    ) external {
        bytes32 cid = _checkedChannelId(params);
        if (params.app == address(0)) revert NoApp();
        Dispute storage d = _disputes[cid];
        uint8 phase = d.phase;
        if (phase == PHASE_NONE) revert NotRegistered();
        if (phase == PHASE_CONCLUDED) revert AlreadyConcluded();
        if (keccak256(abi.encode(from)) != d.stateHash) revert StateMismatch();
        uint64 timeout = d.timeout;
        if (phase == PHASE_DISPUTE) {
            if (block.timestamp < timeout) revert ChallengePeriodActive(timeout);
            if (block.timestamp >= uint256(timeout) + params.challengeDuration) {
                revert ChallengePeriodOver(timeout + params.challengeDuration);
            }
        } else if (block.timestamp >= timeout) {
            revert ChallengePeriodOver(timeout);
        }
        if (from.isFinal) revert StateIsFinal();
        _checkState(cid, to);
        if (to.version != from.version + 1) revert StaleVersion(from.version, to.version);
        if (moverIdx > 1) revert InvalidParticipant(moverIdx);
        if (_recover(hashState(to), sig) != params.participants[moverIdx]) revert InvalidSignature(moverIdx);
        if (keccak256(abi.encode(from.assets)) != keccak256(abi.encode(to.assets))) revert InvalidTransition();
        if (keccak256(abi.encode(from.htlcs)) != keccak256(abi.encode(to.htlcs))) revert InvalidTransition();
        for (uint256 i = 0; i < to.assets.length; i++) {
            uint256 before = from.balances[i][0] + from.balances[i][1];
            uint256 afterwards = to.balances[i][0] + to.balances[i][1];
            if (before != afterwards) revert NonConserving(to.assets[i], afterwards, before);
        }
        if (!IApp(params.app).validTransition(params, from, to, moverIdx)) revert InvalidTransition();
        uint64 newTimeout = to.isFinal ? uint64(block.timestamp) : uint64(block.timestamp) + params.challengeDuration;
        d.timeout = newTimeout;
        d.version = to.version;
        d.phase = PHASE_FORCEEXEC;
        d.stateHash = keccak256(abi.encode(to));
        emit Progressed(cid, to.version, newTimeout, moverIdx, to);
    }

    /// @notice Conclude a dispute with the registered `state` once it can no
    ///         longer change, resolving its HTLCs, and pay both participants.
    function conclude(Params calldata params, State calldata state) external nonReentrant {
        bytes32 cid = _checkedChannelId(params);
        Dispute storage d = _disputes[cid];
        uint8 phase = d.phase;
        if (phase == PHASE_NONE) revert NotRegistered();
        if (phase == PHASE_CONCLUDED) revert AlreadyConcluded();
        if (keccak256(abi.encode(state)) != d.stateHash) revert StateMismatch();
        uint256 end = d.timeout;
        if (phase == PHASE_DISPUTE && params.app != address(0) && !state.isFinal) end += params.challengeDuration;
        if (block.timestamp < end) revert ChallengePeriodActive(uint64(end));

        uint256 n = state.assets.length;
        uint256[2][] memory pay = new uint256[2][](n);
        for (uint256 i = 0; i < n; i++) {
            pay[i][0] = state.balances[i][0];
            pay[i][1] = state.balances[i][1];
        }
        for (uint256 k = 0; k < state.htlcs.length; k++) {
            Htlc calldata h = state.htlcs[k];
            uint64 t = revealedAt[h.paymentHash];
            bool toPayee;
            if (t != 0 && t <= h.expiry) toPayee = true;
            else if (block.timestamp > h.expiry) toPayee = false;
            else revert HtlcNotResolvable(h.id);
            uint256 i = _assetIndex(state.assets, h.asset);
            pay[i][toPayee ? 1 - h.payer : h.payer] += h.amount;
            emit HtlcResolved(cid, h.id, h.paymentHash, toPayee);
        }
        for (uint256 i = 0; i < n; i++) {
            address a = state.assets[i];
            // the payouts below own the funds; a surplus over the state's total stays
            // locked (registration checked that the holdings cover the total, and
            // holdings only grow until conclusion)
            _setHeld(cid, d, a, _heldOf(cid, d, a) - (pay[i][0] + pay[i][1]));
        }
        d.phase = PHASE_CONCLUDED;
        d.stateHash = bytes32(0);
        emit Concluded(cid, state.version);
        address p0 = params.participants[0];
        address p1 = params.participants[1];
        for (uint256 i = 0; i < n; i++) {
            address a = state.assets[i];
            _payOut(cid, a, 0, p0, pay[i][0]);
            _payOut(cid, a, 1, p1, pay[i][1]);
        }
    }

    // ================================================================= payouts

    /// @notice Pull participant `participantIndex`'s credited payout of `asset` (one
    ///         the conclusion could not send) to `receiver`. Only that participant
    ///         may call it; once paid, or if nothing was credited, AlreadyWithdrawn.
    function withdraw(Params calldata params, uint8 participantIndex, address asset, address payable receiver)
        external
        nonReentrant
    {
        bytes32 cid = _checkedChannelId(params);
        if (participantIndex > 1) revert InvalidParticipant(participantIndex);
        if (msg.sender != params.participants[participantIndex]) revert Unauthorized(msg.sender);
        if (_disputes[cid].phase != PHASE_CONCLUDED) revert NotConcluded();
        uint256[2] storage credit = _credits[cid][asset];
        uint256 amount = credit[participantIndex];
        if (amount == 0) revert AlreadyWithdrawn(participantIndex, asset);
        credit[participantIndex] = 0;
        emit Withdrawn(cid, asset, participantIndex, receiver, amount);
        if (asset == address(0)) {
            bool ok;
            assembly ("memory-safe") {
                ok := call(gas(), receiver, amount, 0, 0, 0, 0)
            }
            if (!ok) revert TransferFailed(asset);
        } else {
            _callToken(asset, abi.encodeWithSelector(0xa9059cbb, receiver, amount));
        }
    }

    // ================================================================ preimages

    /// @notice Record sha256(preimage) as revealed now (the first reveal wins).
    function revealPreimage(bytes calldata preimage) external {
        if (preimage.length != 32) revert InvalidPreimageLength(preimage.length);
        bytes32 h = sha256(preimage);
        if (revealedAt[h] == 0) {
            revealedAt[h] = uint64(block.timestamp);
            emit PreimageRevealed(h, bytes32(preimage), uint64(block.timestamp));
        }
    }

    // ================================================================== views

    function channelId(Params calldata params) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), params));
    }

    /// @return timeout, version, phase (0 none, 1 dispute, 2 forced execution, 3 concluded), stateHash
    function disputeOf(bytes32 cid) external view returns (uint64, uint64, uint8, bytes32) {
        Dispute storage d = _disputes[cid];
        return (d.timeout, d.version, d.phase, d.stateHash);
    }

    /// @return what the contract holds for the channel in `asset` (after
    ///         conclusion: the credited payouts not yet withdrawn, plus what
    ///         no state accounted for, which stays locked)
    function holdingOf(bytes32 cid, address asset) external view returns (uint256) {
        Dispute storage d = _disputes[cid];
        uint256 held = _heldOf(cid, d, asset);
        if (d.phase != PHASE_CONCLUDED) return held;
        uint256[2] storage credit = _credits[cid][asset];
        return held + credit[0] + credit[1];
    }

    /// @return amount still to withdraw, and whether nothing is left to withdraw
    ///         after conclusion (paid out, withdrawn already, or never owed)
    function payoutOf(bytes32 cid, address asset, uint8 participantIndex) public view returns (uint256, bool) {
        if (_disputes[cid].phase != PHASE_CONCLUDED) return (0, false);
        uint256 amount = _credits[cid][asset][participantIndex];
        return (amount, amount == 0);
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("Chenilles"), keccak256("1"), block.chainid, address(this))
        );
    }

    /// @notice The EIP-712 digest that both participants sign.
    function hashState(State calldata s) public view returns (bytes32) {
        bytes32[] memory hs = new bytes32[](s.htlcs.length);
        for (uint256 k = 0; k < s.htlcs.length; k++) {
            Htlc calldata h = s.htlcs[k];
            hs[k] = keccak256(abi.encode(HTLC_TYPEHASH, h.id, h.payer, h.asset, h.amount, h.paymentHash, h.expiry));
        }
        bytes32[] memory bs = new bytes32[](s.balances.length);
        for (uint256 i = 0; i < s.balances.length; i++) {
            bs[i] = keccak256(abi.encodePacked(s.balances[i]));
        }
        bytes32 structHash = keccak256(
            abi.encode(
                STATE_TYPEHASH,
                s.channelId,
                s.version,
                keccak256(abi.encodePacked(s.assets)),
                keccak256(abi.encodePacked(bs)),
                keccak256(abi.encodePacked(hs)),
                keccak256(s.appData),
                s.isFinal
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    // ================================================================ internal

    /// The channel id of two-party `params` after checking them; the same value as
    /// `channelId(params)`, hashed from a hand-laid `abi.encode` (the generic
    /// encoder of a calldata struct costs about 1k gas more).
    function _checkedChannelId(Params calldata params) internal view returns (bytes32 id) {
        if (params.participants.length != 2) revert InvalidParams();
        address p0 = params.participants[0];
        address p1 = params.participants[1];
        uint64 duration = params.challengeDuration;
        if (p0 == address(0) || p1 == address(0) || p0 == p1 || duration == 0) revert InvalidParams();
        bytes32 nonce = params.nonce;
        address app = params.app;
        assembly ("memory-safe") {
            // abi.encode(block.chainid, address(this), params): two static words, the
            // offset of the params tuple (0x60), then the tuple: offset of its
            // participants array (0x80), challengeDuration, nonce, app, the array
            let m := mload(0x40)
            mstore(m, chainid())
            mstore(add(m, 0x20), address())
            mstore(add(m, 0x40), 0x60)
            mstore(add(m, 0x60), 0x80)
            mstore(add(m, 0x80), duration)
            mstore(add(m, 0xa0), nonce)
            mstore(add(m, 0xc0), app)
            mstore(add(m, 0xe0), 2)
            mstore(add(m, 0x100), p0)
            mstore(add(m, 0x120), p1)
            id := keccak256(m, 0x140)
        }
    }

    function _checkState(bytes32 cid, State calldata s) internal pure {
        if (s.channelId != cid) revert WrongChannel(cid, s.channelId);
        uint256 n = s.assets.length;
        if (n > MAX_ASSETS) revert TooManyAssets(n);
        if (s.htlcs.length > MAX_HTLCS) revert TooManyHtlcs(s.htlcs.length);
        if (s.balances.length != n) revert InvalidState();
        for (uint256 i = 0; i < n; i++) {
            if (s.balances[i].length != 2) revert InvalidState();
            for (uint256 j = 0; j < i; j++) {
                if (s.assets[j] == s.assets[i]) revert DuplicateAsset(s.assets[i]);
            }
        }
        for (uint256 k = 0; k < s.htlcs.length; k++) {
            if (s.htlcs[k].payer > 1) revert InvalidState();
            address a = s.htlcs[k].asset;
            bool known;
            for (uint256 i = 0; i < n; i++) {
                if (s.assets[i] == a) known = true;
            }
            if (!known) revert UnknownHtlcAsset(s.htlcs[k].id, a);
        }
    }

    function _assetIndex(address[] calldata assets, address asset) internal pure returns (uint256) {
        for (uint256 i = 0; i < assets.length; i++) {
            if (assets[i] == asset) return i;
        }
        revert InvalidState(); // unreachable for a checked state
    }

    function _heldOf(bytes32 cid, Dispute storage d, address asset) internal view returns (uint256) {
        return asset == address(0) ? d.ethHeld : _holdings[cid][asset];
    }

    /// `amount` fits: a deposit checks it, a conclusion only lowers the holdings.
    function _setHeld(bytes32 cid, Dispute storage d, address asset, uint256 amount) internal {
        if (asset == address(0)) d.ethHeld = uint120(amount);
        else _holdings[cid][asset] = amount;
    }

    /// Every asset's total (balances + locked HTLCs) must be covered by the holdings.
    function _checkFunded(bytes32 cid, Dispute storage d, State calldata s) internal view {
        uint256 n = s.assets.length;
        uint256[] memory total = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            total[i] = s.balances[i][0] + s.balances[i][1];
        }
        for (uint256 k = 0; k < s.htlcs.length; k++) {
            total[_assetIndex(s.assets, s.htlcs[k].asset)] += s.htlcs[k].amount;
        }
        for (uint256 i = 0; i < n; i++) {
            uint256 held = _heldOf(cid, d, s.assets[i]);
            if (total[i] > held) revert NonConserving(s.assets[i], total[i], held);
        }
    }

    function _checkSignatures(Params calldata params, State calldata s, bytes[2] calldata sigs) internal view {
        bytes32 digest = hashState(s);
        if (_recover(digest, sigs[0]) != params.participants[0]) revert InvalidSignature(0);
        if (_recover(digest, sigs[1]) != params.participants[1]) revert InvalidSignature(1);
    }

    /// Strict ECDSA recovery: 65 bytes, low s, v in {27, 28}; address(0) on any failure.
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

    /// Send participant `p` (at `to`) `amount` of `asset` from a concluded channel;
    /// credit it for `withdraw` if the transfer fails. The caller must provide the
    /// gas a payout may forward (else InsufficientGas, never a forced credit).
    /// Return data is never copied (a receiver cannot make the payer pay for it).
    function _payOut(bytes32 cid, address asset, uint8 p, address to, uint256 amount) internal {
        if (amount == 0) return;
        bool ok;
        if (asset == address(0)) {
            if (gasleft() < PAYOUT_GAS_ETH + PAYOUT_GAS_ETH / 63 + PAYOUT_CALL_OVERHEAD) revert InsufficientGas();
            assembly ("memory-safe") {
                ok := call(PAYOUT_GAS_ETH, to, amount, 0, 0, 0, 0)
            }
        } else {
            if (gasleft() < PAYOUT_GAS_TOKEN + PAYOUT_GAS_TOKEN / 63 + PAYOUT_CALL_OVERHEAD) {
                revert InsufficientGas();
            }
            ok = _tryTransfer(asset, to, amount);
        }
        if (ok) {
            emit Withdrawn(cid, asset, p, to, amount);
        } else {
            _credits[cid][asset][p] += amount;
            emit PayoutCredited(cid, asset, p, amount);
        }
    }

    /// `token.transfer(to, amount)` with PAYOUT_GAS_TOKEN gas; true iff it did not
    /// revert and returned true (32 bytes, == 1) or, from an account with code,
    /// nothing (USDT-like tokens): the rule `_callToken` applies.
    function _tryTransfer(address token, address to, uint256 amount) internal returns (bool ok) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, shl(224, 0xa9059cbb))
            mstore(add(m, 0x04), to)
            mstore(add(m, 0x24), amount)
            mstore(0, 0)
            ok := call(PAYOUT_GAS_TOKEN, token, 0, m, 0x44, 0, 0x20)
            switch returndatasize()
            case 0 { ok := and(ok, gt(extcodesize(token), 0)) }
            default { ok := and(ok, and(gt(returndatasize(), 0x1f), eq(mload(0), 1))) }
        }
    }

    function _balanceOf(address token) internal view returns (uint256) {
        (bool ok, bytes memory ret) = token.staticcall(abi.encodeWithSelector(0x70a08231, address(this)));
        if (!ok || ret.length < 32) revert TransferFailed(token);
        return abi.decode(ret, (uint256));
    }

    /// Call an ERC-20 function that should "return true"; accepts tokens that
    /// return nothing (USDT-like), rejects accounts without code.
    function _callToken(address token, bytes memory data) internal {
        if (token.code.length == 0) revert TransferFailed(token);
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok) revert TransferFailed(token);
        if (ret.length != 0) {
            if (ret.length < 32 || abi.decode(ret, (uint256)) != 1) revert TransferFailed(token);
        }
    }
}
