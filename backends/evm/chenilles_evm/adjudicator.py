"""Low-level typed client of the Chenilles EVM adjudicator (``contracts/evm/Adjudicator.sol``).

Loads the committed build artifacts (``contracts/evm/build/*.json``, made by
``scripts/build_evm_contracts.mjs``); never compiles at run time.

Every state-changing call returns a :class:`TxResult` (gas used, block, decoded
events). Every rejection, whether it comes from eth-tester (``TransactionFailed``)
or from a JSON-RPC node such as anvil (``ContractLogicError``), is raised as one
:class:`ContractReverted` carrying the custom error's name and decoded arguments.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from pathlib import Path
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import BlockIdentifier, TxParams

from .eip712 import ETH, Htlc, Params, State, channel_id, sign_state, state_digest

try:  # eth-tester is optional at import time (a real node needs only web3)
    from eth_tester.exceptions import TransactionFailed as _EthTesterFailed
except ImportError:  # pragma: no cover

    class _EthTesterFailed(Exception):  # type: ignore[no-redef]
        pass


ARTIFACTS_DIR = Path(
    os.environ.get(
        "CHENILLES_EVM_ARTIFACTS",
        Path(__file__).resolve().parents[3] / "contracts" / "evm" / "build",
    )
)

__all__ = [
    "ARTIFACTS_DIR",
    "ETH",
    "AdjudicatorClient",
    "ContractReverted",
    "DisputeInfo",
    "Erc20",
    "Event",
    "Htlc",
    "Params",
    "Phase",
    "State",
    "TxResult",
    "decode_revert",
    "delegate_code",
    "deploy_contract",
    "load_artifact",
]


# ---------------------------------------------------------------------- artifacts


@cache
def load_artifact(name: str) -> Mapping[str, Any]:
    """The JSON artifact of contract ``name`` (abi, bytecode, compiler version)."""
    path = ARTIFACTS_DIR / f"{name}.json"
    with path.open() as f:
        return cast(Mapping[str, Any], json.load(f))


def deploy_contract(w3: Web3, name: str, *args: Any, sender: str) -> Contract:
    """Deploy artifact ``name`` from ``sender`` (an unlocked account); return the bound contract."""
    art = load_artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    tx = _send(w3, lambda: factory.constructor(*args).transact({"from": sender}))
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    if receipt["status"] != 1:
        raise ContractReverted("DeploymentFailed", ())
    return cast(Contract, w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"]))


# ------------------------------------------------------------------------ reverts


class ContractReverted(Exception):
    """A call or transaction reverted; ``error_name`` is the custom error (or
    ``Error`` for ``require`` strings, ``Panic`` for panics, ``Unknown``)."""

    def __init__(self, error_name: str, args: Sequence[Any], data: bytes = b"") -> None:
        self.error_name = error_name
        self.args_ = tuple(args)
        self.data = bytes(data)
        super().__init__(f"{error_name}{self.args_!r}")

    @property
    def error_args(self) -> tuple[Any, ...]:
        return self.args_


_BUILTIN_ERRORS = {
    function_signature_to_4byte_selector("Error(string)"): ("Error", ["string"]),
    function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ["uint256"]),
}


def _abi_type(inp: Mapping[str, Any]) -> str:
    t = str(inp["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + t[len("tuple") :]
    return t


@cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    table = dict(_BUILTIN_ERRORS)
    for path in sorted(ARTIFACTS_DIR.glob("*.json")):
        for item in load_artifact(path.stem)["abi"]:
            if item["type"] == "error":
                types = [_abi_type(i) for i in item["inputs"]]
                sel = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
                table[sel] = (item["name"], types)
    return table


def decode_revert(data: bytes) -> ContractReverted:
    """Decode revert data (selector + ABI arguments) with every known contract's errors."""
    data = bytes(data)
    if len(data) < 4:
        return ContractReverted("Unknown", (), data)
    entry = _error_table().get(data[:4])
    if entry is None:
        return ContractReverted("Unknown", (data[:4].hex(),), data)
    name, types = entry
    try:
        args = abi_decode(types, data[4:])
    except Exception:
        return ContractReverted(name, (), data)
    return ContractReverted(
        name, tuple(bytes(a) if isinstance(a, (bytes, HexBytes)) else a for a in args), data
    )


def _revert_data(exc: BaseException) -> bytes | None:
    """Revert bytes from eth-tester's ``TransactionFailed`` or web3's ``ContractLogicError``."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
        return b""
    if isinstance(exc, _EthTesterFailed):
        msg = exc.args[0] if exc.args else b""
        if isinstance(msg, (bytes, bytearray)):
            return bytes(msg)
        if isinstance(msg, str):
            prefix = "execution reverted: "
            body = msg[len(prefix) :] if msg.startswith(prefix) else msg
            if body.startswith(("b'", 'b"')):
                try:
                    return bytes(ast.literal_eval(body))
                except (ValueError, SyntaxError):
                    return b""
            if body.startswith("0x"):
                try:
                    return bytes.fromhex(body[2:])
                except ValueError:
                    return b""
            # a plain revert string already decoded by eth-tester
            from eth_abi.abi import encode as abi_encode

            return function_signature_to_4byte_selector("Error(string)") + abi_encode(
                ["string"], [body]
            )
        return b""
    return None


def _send(w3: Web3, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and turn any revert into :class:`ContractReverted`."""
    try:
        return fn()
    except (ContractLogicError, _EthTesterFailed) as exc:
        data = _revert_data(exc)
        raise decode_revert(data or b"") from exc


# ------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Event:
    name: str
    args: Mapping[str, Any]
    block_number: int
    tx_hash: bytes
    log_index: int


@dataclass(frozen=True)
class TxResult:
    tx_hash: bytes
    gas_used: int
    block_number: int
    timestamp: int
    events: tuple[Event, ...]

    def event(self, name: str) -> Event:
        for e in self.events:
            if e.name == name:
                return e
        raise KeyError(name)


class Phase(IntEnum):
    NONE = 0
    DISPUTE = 1  # registered; refutable until timeout
    FORCEEXEC = 2  # app channel forced moves; next move until timeout
    CONCLUDED = 3


@dataclass(frozen=True)
class DisputeInfo:
    timeout: int
    version: int
    phase: Phase
    state_hash: bytes


# -------------------------------------------------------------------------- client


def _plain(v: Any) -> Any:
    if isinstance(v, (HexBytes, bytearray)):
        return bytes(v)
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return tuple(_plain(x) for x in v)
    return v


def _state_from_event(v: Any) -> State:
    if isinstance(v, Mapping):
        v = list(v.values())
    v = list(v)
    htlcs = []
    for h in v[4]:
        if isinstance(h, Mapping):
            h = list(h.values())
        htlcs.append(h)
    v[4] = htlcs
    return State.from_abi(v)


def transact(
    w3: Web3,
    address: str,
    fn: Any,
    sender: str,
    value: int,
    decode_logs: Callable[[Any], Iterable[Event]],
) -> TxResult:
    """Send ``fn`` (a bound contract function of the contract at ``address``) from
    ``sender``, wait for its receipt and describe it; a transaction mined but failed (the
    state changed since the estimate) is replayed as a call for its revert reason."""
    tx: dict[str, Any] = {"from": sender}
    if value:
        tx["value"] = value
    tx_hash = _send(w3, lambda: fn.transact(tx))
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        call = {
            "from": sender,
            "to": address,
            "data": fn._encode_transaction_data(),
            "value": value,
        }
        _send(w3, lambda: w3.eth.call(cast(TxParams, call), receipt["blockNumber"] - 1))
        raise ContractReverted("Unknown", ())
    block = w3.eth.get_block(receipt["blockNumber"])
    return TxResult(
        tx_hash=bytes(tx_hash),
        gas_used=int(receipt["gasUsed"]),
        block_number=int(receipt["blockNumber"]),
        timestamp=int(block["timestamp"]),
        events=tuple(decode_logs(receipt["logs"])),
    )


class AdjudicatorClient:
    """Typed access to one deployed adjudicator. ``sender`` arguments are
    unlocked accounts of the node (both embedded ledgers unlock theirs)."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract = w3.eth.contract(
            address=self.address, abi=load_artifact("Adjudicator")["abi"]
        )
        self.chain_id = int(w3.eth.chain_id)
        self._events_by_topic: dict[bytes, str] = {}
        for item in self.contract.abi:
            if item["type"] == "event":
                sig = f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
                self._events_by_topic[bytes(Web3.keccak(text=sig))] = item["name"]

    @classmethod
    def deploy(cls, w3: Web3, sender: str) -> AdjudicatorClient:
        return cls(w3, deploy_contract(w3, "Adjudicator", sender=sender).address)

    # ---- off-chain helpers (no RPC)

    def channel_id(self, params: Params) -> bytes:
        return channel_id(self.chain_id, self.address, params)

    def digest(self, state: State) -> bytes:
        return state_digest(state, self.chain_id, self.address)

    def sign(self, state: State, private_key: bytes) -> bytes:
        return sign_state(state, private_key, self.chain_id, self.address)

    # ---- transactions

    def _transact(self, fn: Any, sender: str, value: int = 0) -> TxResult:
        return transact(self.w3, self.address, fn, sender, value, self.decode_logs)

    def deposit(
        self, params: Params, participant_index: int, asset: str, amount: int, sender: str
    ) -> TxResult:
        """Fund the channel. ETH: ``asset == ETH`` and ``amount`` is sent as value.
        ERC-20: ``sender`` must have approved the adjudicator for ``amount``."""
        fn = self.contract.functions.deposit(
            params.to_abi(), to_checksum_address(asset), participant_index, amount
        )
        return self._transact(fn, sender, value=amount if int(asset, 16) == 0 else 0)

    def register(
        self, params: Params, state: State, sigs: Sequence[bytes], sender: str
    ) -> TxResult:
        """Register ``state`` (signed by both) or refute with a strictly newer one."""
        return self._transact(
            self.contract.functions.register(params.to_abi(), state.to_abi(), list(sigs)), sender
        )

    refute = register

    def progress(
        self,
        params: Params,
        from_state: State,
        to_state: State,
        mover_idx: int,
        sig: bytes,
        sender: str,
    ) -> TxResult:
        """App forced move ``from_state -> to_state`` signed by participant ``mover_idx``."""
        fn = self.contract.functions.progress(
            params.to_abi(), from_state.to_abi(), to_state.to_abi(), mover_idx, sig
        )
        return self._transact(fn, sender)

    def conclude(self, params: Params, state: State, sender: str) -> TxResult:
        """Conclude a dispute; ``state`` is the registered (or last progressed) state."""
        return self._transact(
            self.contract.functions.conclude(params.to_abi(), state.to_abi()), sender
        )

    def conclude_cooperative(
        self, params: Params, state: State, sigs: Sequence[bytes], sender: str
    ) -> TxResult:
        fn = self.contract.functions.concludeCooperative(
            params.to_abi(), state.to_abi(), list(sigs)
        )
        return self._transact(fn, sender)

    def withdraw(
        self, params: Params, participant_index: int, asset: str, receiver: str, sender: str
    ) -> TxResult:
        fn = self.contract.functions.withdraw(
            params.to_abi(),
            participant_index,
            to_checksum_address(asset),
            to_checksum_address(receiver),
        )
        return self._transact(fn, sender)

    def reveal_preimage(self, preimage: bytes, sender: str) -> TxResult:
        return self._transact(self.contract.functions.revealPreimage(bytes(preimage)), sender)

    # ---- reads

    def _call(self, fn: Any) -> Any:
        return _send(self.w3, lambda: fn.call())

    def dispute(self, cid: bytes) -> DisputeInfo:
        t, v, p, h = self._call(self.contract.functions.disputeOf(cid))
        return DisputeInfo(int(t), int(v), Phase(p), bytes(h))

    def holding(self, cid: bytes, asset: str) -> int:
        """What the adjudicator holds for the channel in ``asset``; after conclusion, the
        credited payouts not yet withdrawn plus whatever no state accounted for."""
        return int(self._call(self.contract.functions.holdingOf(cid, to_checksum_address(asset))))

    def payout(self, cid: bytes, asset: str, participant_index: int) -> tuple[int, bool]:
        """(credited amount still to withdraw, nothing left to withdraw). A conclusion pays
        both participants at once: only a payout it could not send stays to withdraw.
        ``(0, False)`` before conclusion."""
        a, w = self._call(
            self.contract.functions.payoutOf(cid, to_checksum_address(asset), participant_index)
        )
        return int(a), bool(w)

    def revealed_at(self, payment_hash: bytes) -> int:
        """Block timestamp of the first on-chain reveal, 0 if none."""
        return int(self._call(self.contract.functions.revealedAt(payment_hash)))

    def contract_channel_id(self, params: Params) -> bytes:
        return bytes(self._call(self.contract.functions.channelId(params.to_abi())))

    def contract_digest(self, state: State) -> bytes:
        return bytes(self._call(self.contract.functions.hashState(state.to_abi())))

    # ---- events

    def decode_logs(self, logs: Iterable[Mapping[str, Any]]) -> list[Event]:
        out = []
        for log in logs:
            if to_checksum_address(log["address"]) != self.address or not log["topics"]:
                continue
            name = self._events_by_topic.get(bytes(log["topics"][0]))
            if name is None:
                continue
            ev = getattr(self.contract.events, name)().process_log(log)
            args = {k: _plain(v) for k, v in ev["args"].items()}
            if name == "Progressed":
                args["state"] = _state_from_event(ev["args"]["state"])
            out.append(
                Event(
                    name,
                    args,
                    int(log["blockNumber"]),
                    bytes(log["transactionHash"]),
                    int(log["logIndex"]),
                )
            )
        return out

    def events(self, from_block: int = 0, to_block: BlockIdentifier = "latest") -> list[Event]:
        """All adjudicator events in a block range (for watchers)."""
        logs = self.w3.eth.get_logs(
            {"address": self.address, "fromBlock": from_block, "toBlock": to_block}
        )
        return self.decode_logs(logs)


class Erc20:
    """Minimal ERC-20 access (the test tokens add ``mint``)."""

    def __init__(self, w3: Web3, address: str, artifact: str = "TestToken") -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact(artifact)["abi"])

    @classmethod
    def deploy_test_token(
        cls, w3: Web3, sender: str, name: str = "Test", symbol: str = "TST"
    ) -> Erc20:
        return cls(w3, deploy_contract(w3, "TestToken", name, symbol, sender=sender).address)

    @classmethod
    def deploy_no_return_token(cls, w3: Web3, sender: str) -> Erc20:
        return cls(w3, deploy_contract(w3, "NoReturnToken", sender=sender).address, "NoReturnToken")

    @classmethod
    def deploy_blocklist_token(cls, w3: Web3, sender: str) -> Erc20:
        """A test token whose transfers to a blocked address revert (``set_blocked``)."""
        address = deploy_contract(w3, "BlocklistToken", sender=sender).address
        return cls(w3, address, "BlocklistToken")

    def set_blocked(self, who: str, blocked: bool, sender: str) -> int:
        fn = self.contract.functions.setBlocked(to_checksum_address(who), blocked)
        return self._tx(fn, sender)

    def set_quiet(self, quiet: bool, sender: str) -> int:
        """BlocklistToken: ``transfer`` to a blocked address returns false, not reverts."""
        return self._tx(self.contract.functions.setQuiet(quiet), sender)

    def _tx(self, fn: Any, sender: str) -> int:
        h = _send(self.w3, lambda: fn.transact({"from": sender}))
        r = self.w3.eth.wait_for_transaction_receipt(h)
        if r["status"] != 1:
            raise ContractReverted("Unknown", ())
        return int(r["gasUsed"])

    def mint(self, to: str, amount: int, sender: str) -> int:
        return self._tx(self.contract.functions.mint(to_checksum_address(to), amount), sender)

    def approve(self, spender: str, amount: int, sender: str) -> int:
        return self._tx(
            self.contract.functions.approve(to_checksum_address(spender), amount), sender
        )

    def balance_of(self, who: str) -> int:
        return int(
            _send(
                self.w3, lambda: self.contract.functions.balanceOf(to_checksum_address(who)).call()
            )
        )


# -------------------------------------------------------------- EIP-7702 (test ledgers)


def delegate_code(w3: Web3, account: LocalAccount, delegate: str, data: bytes | str = b"") -> int:
    """Make ``account`` (a key-holding EOA) run ``delegate``'s code (EIP-7702, Prague and
    later) with one type-4 transaction to itself carrying ``data`` (e.g. a configuration
    call, which then runs as the delegate with ``msg.sender == account``); return its gas.
    ``delegate = ETH`` removes the delegation. Tests use it to give a channel participant,
    who must still sign with its key, a receiver that rejects or burns gas."""
    chain_id = int(w3.eth.chain_id)
    nonce = int(w3.eth.get_transaction_count(account.address))
    auth = account.sign_authorization(
        {"chainId": chain_id, "address": to_checksum_address(delegate), "nonce": nonce + 1}
    )
    base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tx: dict[str, Any] = {
        "type": 4,
        "chainId": chain_id,
        "nonce": nonce,
        "to": account.address,
        "value": 0,
        "gas": 200_000,
        "maxFeePerGas": 2 * base + 10**9,
        "maxPriorityFeePerGas": 10**9,
        "data": HexBytes(data),
        "authorizationList": [auth],
    }
    signed = account.sign_transaction(tx)
    try:
        tx_hash = _send(w3, lambda: w3.eth.send_raw_transaction(signed.raw_transaction))
    except (Web3Exception, ValueError) as exc:  # a ledger before Prague refuses type 4
        raise ContractReverted("DelegationRefused", (str(exc),)) from exc
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        raise ContractReverted("DelegationFailed", ())
    return int(receipt["gasUsed"])
