// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Minimal ERC-20 for tests (anyone may mint). Not for production.
contract TestToken {
    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(string memory name_, string memory symbol_) {
        name = name_;
        symbol = symbol_;
    }

    function mint(address to, uint256 value) external {
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transfer(address to, uint256 value) external virtual returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 a = allowance[from][msg.sender];
        if (a != type(uint256).max) allowance[from][msg.sender] = a - value;
        _move(from, to, value);
        return true;
    }

    function _move(address from, address to, uint256 value) internal virtual {
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}

/// @title TestToken whose transfers to a blocked address revert (like a USDC
///        blacklist), or with `quiet` return false (like some early tokens); for
///        payout tests only.
contract BlocklistToken is TestToken {
    mapping(address => bool) public blocked;
    bool public quiet;

    constructor() TestToken("Blocklist", "BLK") {}

    function setBlocked(address who, bool value) external {
        blocked[who] = value;
    }

    function setQuiet(bool value) external {
        quiet = value;
    }

    function transfer(address to, uint256 value) external override returns (bool) {
        if (quiet && blocked[to]) return false;
        _move(msg.sender, to, value);
        return true;
    }

    function _move(address from, address to, uint256 value) internal override {
        require(!blocked[to], "blocked");
        super._move(from, to, value);
    }
}

/// @title USDT-like token whose transfer/transferFrom return nothing (tests only).
contract NoReturnToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 value) external {
        balanceOf[to] += value;
    }

    function approve(address spender, uint256 value) external {
        allowance[msg.sender][spender] = value;
    }

    function transfer(address to, uint256 value) external {
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
    }

    function transferFrom(address from, address to, uint256 value) external {
        allowance[from][msg.sender] -= value;
        balanceOf[from] -= value;
        balanceOf[to] += value;
    }
}

/// @title TestToken whose `transfer` reverts when it gets less than `minGas` (a token
///        that needs more gas than a plain ERC-20, and fails cheaply without it);
///        `transferFrom` (deposits) is unaffected. For payout tests only.
contract StingyGasToken is TestToken {
    uint256 public immutable minGas;

    constructor(uint256 minGas_) TestToken("Stingy", "STG") {
        minGas = minGas_;
    }

    function transfer(address to, uint256 value) external override returns (bool) {
        require(gasleft() >= minGas, "stingy");
        _move(msg.sender, to, value);
        return true;
    }
}

/// @notice The sender hook HookToken calls (ERC-777 `tokensToSend`, without ERC-1820).
interface ITokensSender {
    function tokensToSend(address operator, address from, address to, uint256 amount) external;
}

/// @title TestToken that, like an ERC-777 token, calls the `tokensToSend` hook of a
///        sender that registered one (`setHook`) before it moves the sender's tokens,
///        in `transfer` and `transferFrom`. For reentrancy tests only.
contract HookToken is TestToken {
    mapping(address => bool) public hooked;

    constructor() TestToken("Hook", "HOOK") {}

    function setHook(bool on) external {
        hooked[msg.sender] = on;
    }

    function _move(address from, address to, uint256 value) internal override {
        if (hooked[from]) ITokensSender(from).tokensToSend(msg.sender, from, to, value);
        super._move(from, to, value);
    }
}
