"""A group of N members running ``GroupMachine`` over an in-memory wire the test controls.

Signatures are real ed25519 (PyNaCl) over the canonical JSON of the state: the protocol
tests are about the update protocol, not a chain's encoding (the chains' own encodings are
exercised in test_group_evm.py and test_group_solana.py).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from chenilles_hub.core.group import (
    GroupAuthority,
    GroupEffect,
    GroupMachine,
    GroupOp,
    GroupParams,
    GroupPersist,
    GroupSend,
    GroupSnapshot,
    GroupState,
    GroupSync,
    GroupTransfer,
    ProposalFailed,
    SignedGroupState,
    StateCompleted,
    group_initial_state,
)
from chenilles_hub.core.model import Asset, Participant

ETH = Asset("eip155:1", "native")
TOKEN = Asset("eip155:1", "0x" + "11" * 20)


class NaclAuthority:
    """Signs as one member; verifies any member's signature."""

    def __init__(self, me: int, keys: list[SigningKey]) -> None:
        self._key = keys[me]
        self._public = [VerifyKey(bytes(k.verify_key)) for k in keys]

    def sign(self, state: GroupState) -> bytes:
        return self._key.sign(msgspec.json.encode(state)).signature

    def verify(self, state: GroupState, member: int, signature: bytes) -> bool:
        try:
            self._public[member].verify(msgspec.json.encode(state), signature)
        except (BadSignatureError, ValueError):
            return False
        return True


def make_params(n: int) -> tuple[GroupParams, list[SigningKey]]:
    keys = [SigningKey(hashlib.sha256(b"member %d" % i).digest()) for i in range(n)]
    members = tuple(
        Participant(bytes(k.verify_key).hex(), hashlib.sha256(b"node %d" % i).digest())
        for i, k in enumerate(keys)
    )
    return GroupParams("eip155:1", members, (ETH, TOKEN), 3600, b"\x07" * 32), keys


@dataclass
class Group:
    """N machines, the messages in flight, and everything each member observed."""

    params: GroupParams
    auths: list[GroupAuthority]
    machines: list[GroupMachine]
    persisted: list[GroupSnapshot]
    initial: GroupState
    wire: list[tuple[int, int, GroupSync]] = field(default_factory=list)
    completed: list[list[SignedGroupState]] = field(default_factory=list)
    failed: Counter[tuple[int, GroupOp]] = field(default_factory=Counter)
    proposed: Counter[tuple[int, GroupOp]] = field(default_factory=Counter)
    silent: set[int] = field(default_factory=set)
    #: (member, version) of every state a member saw completed unsettled
    unsettled: list[tuple[int, int]] = field(default_factory=list)
    #: members that sign every proposal they see, whatever they signed before at its version
    equivocating: set[int] = field(default_factory=set)

    @classmethod
    def open(cls, n: int, deposit: int = 1000) -> Group:
        params, keys = make_params(n)
        cid = hashlib.sha256(b"group channel").digest()
        auths = [NaclAuthority(i, keys) for i in range(n)]
        return cls.build(params, cid, {a: (deposit,) * n for a in params.assets}, auths)

    @classmethod
    def build(
        cls,
        params: GroupParams,
        cid: bytes,
        deposits: dict[Asset, tuple[int, ...]],
        auths: list[GroupAuthority],
    ) -> Group:
        """Every member signs version 0 (the deposits), then each starts its machine."""
        initial = group_initial_state(cid, params.assets, deposits)
        signed = SignedGroupState(initial, tuple(a.sign(initial) for a in auths))
        machines = [
            GroupMachine.create(params, cid, i, signed, auths[i]) for i in range(params.size)
        ]
        return cls(
            params,
            auths,
            machines,
            [m.snapshot for m in machines],
            initial,
            completed=[[] for _ in range(params.size)],
        )

    @property
    def n(self) -> int:
        return len(self.machines)

    def _effects(self, member: int, effects: list[GroupEffect]) -> None:
        for effect in effects:
            if isinstance(effect, GroupPersist):
                self.persisted[member] = effect.snapshot
            elif isinstance(effect, GroupSend):
                if member not in self.silent:
                    message = effect.message
                    if member in self.equivocating:
                        message = self._equivocate(member, message)
                    self.wire.append((member, effect.to, message))
            elif isinstance(effect, StateCompleted):
                self.completed[member].append(effect.signed)
                if not effect.settled:
                    self.unsettled.append((member, effect.signed.version))
            elif isinstance(effect, ProposalFailed):
                for op in effect.ops:
                    self.failed[(member, op)] += 1

    def _equivocate(self, member: int, message: GroupSync) -> GroupSync:
        """The cheater's message: its signature added to every proposal it knows."""
        ballots = []
        for ballot in message.proposals:
            sigs = list(ballot.signatures)
            sigs[member] = self.auths[member].sign(ballot.state)
            ballots.append(msgspec.structs.replace(ballot, signatures=tuple(sigs)))
        return msgspec.structs.replace(message, proposals=tuple(ballots))

    def propose(self, member: int, ops: tuple[GroupOp, ...]) -> None:
        if member in self.silent or self.machines[member].latest.state.final:
            return
        for op in ops:
            self.proposed[(member, op)] += 1
        self._effects(member, self.machines[member].propose(ops))

    def deliver(self, index: int) -> None:
        _sender, to, message = self.wire.pop(index)
        if to in self.silent:
            return
        self._effects(to, self.machines[to].receive(message))

    def resend(self, member: int) -> None:
        if member not in self.silent:
            self._effects(member, self.machines[member].resend())

    def crash(self, member: int) -> None:
        """The member's process dies and restarts from what it last persisted."""
        machine = self.machines[member]
        self.machines[member] = GroupMachine(self.persisted[member], self.auths[member])
        assert machine.snapshot == self.persisted[member]

    def heal(self, rounds: int = 60) -> None:
        """Deliver everything, every member resending, until nothing changes."""
        for _ in range(rounds):
            before = [m.snapshot for m in self.machines]
            for member in range(self.n):
                self.resend(member)
            while self.wire:
                self.deliver(0)
            if [m.snapshot for m in self.machines] == before:
                return
        raise AssertionError("the group did not settle")

    def honest(self) -> list[int]:
        return [i for i in range(self.n) if i not in self.silent | self.equivocating]

    def transfer(self, member: int, to: int, amount: int, asset: Asset = ETH) -> None:
        self.propose(member, (GroupTransfer(asset, to, amount),))
