"""N-party channels on EVM: the client of ``contracts/evm/GroupAdjudicator.sol`` and the
``GroupAuthority`` the core's group machine signs with.

- ``channel_id = keccak256(abi.encode(chainId, groupAdjudicator, params))``;
- a state is signed as EIP-712 ``GroupState(bytes32 channelId,uint64 version,bool isFinal,
  uint256[] balances)`` in the domain ``{name: "Chenilles Group", version: "1", chainId,
  verifyingContract}``, balances flattened asset-major (``balances[a * n + m]``);
- signatures are 65 bytes ``r || s || v`` with low ``s`` (``eip712.DigestSigner``).

The digest is computed here without RPC and checked against the contract's own
``stateDigest`` in the tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from web3 import Web3

from chenilles_hub.core.group import GroupParams, GroupState

from .adjudicator import (
    Event,
    TxResult,
    _send,
    deploy_contract,
    load_artifact,
    transact,
)
from .eip712 import DigestSigner, keccak, recover_address
from .mapping import asset_address

GROUP_ARTIFACT = "GroupAdjudicator"
MAX_MEMBERS = 16  # GroupAdjudicator.MAX_MEMBERS: deposits and payouts are keyed by it
PARAMS_ABI = "(address[],address[],uint64,bytes32)"

_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_STATE_TYPEHASH = keccak(
    text="GroupState(bytes32 channelId,uint64 version,bool isFinal,uint256[] balances)"
)


class Phase(IntEnum):
    OPEN = 0
    DISPUTE = 1
    CONCLUDED = 2


@dataclass(frozen=True)
class EvmGroupParams:
    members: tuple[str, ...]
    assets: tuple[str, ...]  # address(0) is ETH
    challenge_duration: int
    nonce: bytes

    def to_abi(self) -> tuple[Any, ...]:
        return (
            [to_checksum_address(m) for m in self.members],
            [to_checksum_address(a) for a in self.assets],
            self.challenge_duration,
            self.nonce,
        )


@dataclass(frozen=True)
class EvmGroupState:
    channel_id: bytes
    version: int
    is_final: bool
    balances: tuple[int, ...]  # asset-major: balances[a * n + m]

    def to_abi(self) -> tuple[Any, ...]:
        return (self.channel_id, self.version, self.is_final, list(self.balances))


def to_group_params(params: GroupParams) -> EvmGroupParams:
    """A core group channel's parameters as the contract takes them (members' chain keys
    are their addresses)."""
    return EvmGroupParams(
        tuple(to_checksum_address(m.chain_key) for m in params.members),
        tuple(asset_address(a, params.chain) for a in params.assets),
        params.challenge_duration,
        params.nonce,
    )


def to_group_state(state: GroupState) -> EvmGroupState:
    flat = tuple(amount for entry in state.balances for amount in entry.amounts)
    return EvmGroupState(state.channel_id, state.version, state.final, flat)


def group_channel_id(chain_id: int, adjudicator: str, params: EvmGroupParams) -> bytes:
    return keccak(
        abi_encode(
            ["uint256", "address", PARAMS_ABI],
            [chain_id, to_checksum_address(adjudicator), params.to_abi()],
        )
    )


def group_state_digest(state: EvmGroupState, chain_id: int, adjudicator: str) -> bytes:
    domain = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                _DOMAIN_TYPEHASH,
                keccak(text="Chenilles Group"),
                keccak(text="1"),
                chain_id,
                to_checksum_address(adjudicator),
            ],
        )
    )
    balances = keccak(b"".join(b.to_bytes(32, "big") for b in state.balances))
    struct = keccak(
        abi_encode(
            ["bytes32", "bytes32", "uint64", "bool", "bytes32"],
            [_STATE_TYPEHASH, state.channel_id, state.version, state.is_final, balances],
        )
    )
    return keccak(b"\x19\x01" + domain + struct)


class GroupAdjudicatorClient:
    """Typed access to one deployed ``GroupAdjudicator``; ``sender`` arguments are unlocked
    accounts of the ledger (both embedded ledgers unlock theirs)."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract = w3.eth.contract(
            address=self.address, abi=load_artifact(GROUP_ARTIFACT)["abi"]
        )
        self.chain_id = int(w3.eth.chain_id)
        self._events_by_topic = {
            bytes(Web3.keccak(text=f"{i['name']}({','.join(x['type'] for x in i['inputs'])})")): i[
                "name"
            ]
            for i in self.contract.abi
            if i["type"] == "event"
        }

    @classmethod
    def deploy(cls, w3: Web3, sender: str) -> GroupAdjudicatorClient:
        return cls(w3, deploy_contract(w3, GROUP_ARTIFACT, sender=sender).address)

    # ---- off-chain

    def channel_id(self, params: EvmGroupParams) -> bytes:
        return group_channel_id(self.chain_id, self.address, params)

    def digest(self, state: EvmGroupState) -> bytes:
        return group_state_digest(state, self.chain_id, self.address)

    def sign(self, state: EvmGroupState, private_key: bytes) -> bytes:
        return DigestSigner(private_key).sign(self.digest(state))

    # ---- transactions

    def _transact(self, fn: Any, sender: str, value: int = 0) -> TxResult:
        return transact(self.w3, self.address, fn, sender, value, self.decode_logs)

    def deposit(
        self, params: EvmGroupParams, member: int, asset: int, amount: int, sender: str
    ) -> TxResult:
        """ETH is sent as value; an ERC-20 needs the sender's approval first."""
        fn = self.contract.functions.deposit(params.to_abi(), member, asset, amount)
        native = int(params.assets[asset], 16) == 0
        return self._transact(fn, sender, value=amount if native else 0)

    def register(
        self, params: EvmGroupParams, state: EvmGroupState, sigs: Sequence[bytes], sender: str
    ) -> TxResult:
        fn = self.contract.functions.register(params.to_abi(), state.to_abi(), list(sigs))
        return self._transact(fn, sender)

    def refute(
        self, params: EvmGroupParams, state: EvmGroupState, sigs: Sequence[bytes], sender: str
    ) -> TxResult:
        fn = self.contract.functions.refute(params.to_abi(), state.to_abi(), list(sigs))
        return self._transact(fn, sender)

    def conclude(self, params: EvmGroupParams, sender: str) -> TxResult:
        return self._transact(self.contract.functions.conclude(params.to_abi()), sender)

    def withdraw(self, params: EvmGroupParams, member: int, sender: str) -> TxResult:
        return self._transact(self.contract.functions.withdraw(params.to_abi(), member), sender)

    def decode_logs(self, logs: Iterable[Mapping[str, Any]]) -> list[Event]:
        out = []
        for log in logs:
            if to_checksum_address(log["address"]) != self.address or not log["topics"]:
                continue
            name = self._events_by_topic.get(bytes(log["topics"][0]))
            if name is None:
                continue
            ev = getattr(self.contract.events, name)().process_log(log)
            args = {k: bytes(v) if isinstance(v, bytes) else v for k, v in ev["args"].items()}
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

    # ---- reads

    def _call(self, fn: Any) -> Any:
        return _send(self.w3, lambda: fn.call())

    def phase(self, cid: bytes) -> tuple[Phase, int, int]:
        """(phase, registered version, timeout)."""
        phase, version, timeout = self._call(self.contract.functions.channels(cid))
        return Phase(phase), int(version), int(timeout)

    def payout(self, cid: bytes, asset: int, member: int) -> int:
        return int(self._call(self.contract.functions.payouts(cid, asset * MAX_MEMBERS + member)))

    def contract_digest(self, state: EvmGroupState) -> bytes:
        return bytes(self._call(self.contract.functions.stateDigest(state.to_abi())))

    def contract_channel_id(self, params: EvmGroupParams) -> bytes:
        return bytes(self._call(self.contract.functions.channelId(params.to_abi())))


class EvmGroupAuthority:
    """The core's ``GroupAuthority`` for a group channel on one ``GroupAdjudicator``."""

    def __init__(
        self, client: GroupAdjudicatorClient, params: GroupParams, private_key: bytes | None
    ) -> None:
        self._client = client
        self._members = [bytes.fromhex(m.chain_key.removeprefix("0x")) for m in params.members]
        self._signer = DigestSigner(private_key) if private_key is not None else None

    def sign(self, state: GroupState) -> bytes:
        if self._signer is None:
            raise ValueError("this authority only verifies")
        return self._signer.sign(self._client.digest(to_group_state(state)))

    def verify(self, state: GroupState, member: int, signature: bytes) -> bool:
        if not 0 <= member < len(self._members):
            return False
        got = recover_address(self._client.digest(to_group_state(state)), signature)
        return got is not None and got == self._members[member]
