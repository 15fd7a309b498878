"""What a node keeps per virtual channel, and how it is written (a checkpoint record that
the store puts in its ``virtual_channels`` table, migration 2).

A virtual channel's record is written with the checkpoint of the event that changed it,
so V's machine snapshot (every V state this node signed) is on disk before the outbox
carrying its signature is released: the same rule as for ledger channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import msgspec

from ...circuit.quote import Rate
from ...core import ChannelMachine, ChannelSnapshot, SignedState
from ...core.virtual import VirtualTerms, virtual_channel_id
from ..store.base import VIRTUAL_PREFIX

Role = Literal["alice", "bob", "hub"]
#: requested (Alice asked her hub), offered (terms known, not accepted by both ends yet),
#: funding (the hub funds the guarantees), open (usable), closing (final state signed,
#: settling in the ledgers), closed (no guarantee left), refused (never opened), expired
#: (Alice's request got no offer in time: never opened, a late offer is refused).
Status = Literal[
    "requested", "offered", "funding", "open", "closing", "closed", "refused", "expired"
]
#: Statuses nothing moves on from.
DONE = ("closed", "refused", "expired")


class VirtualRecordV1(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The persisted form of :class:`VirtualChannel`."""

    request_id: bytes
    role: Role
    status: Status
    terms: VirtualTerms | None = None
    snapshot: ChannelSnapshot | None = None
    #: the hub: V's final state, as an end reported it (shown to a ledger that stalls)
    final: SignedState | None = None
    #: the hub: which ends accepted the offer
    accepted: tuple[bool, bool] = (False, False)
    reason: str = ""
    #: Alice, before the offer: her ledger channel and Bob's node id
    ledger: bytes = b""
    peer: bytes = b""
    #: Alice, while requested: when the request expires (0: never, a record of before)
    expires_at: int = 0
    #: Alice: the rate into Bob's asset her request named, if any
    rate: Rate | None = None


@dataclass
class VirtualChannel:
    """One virtual channel as this node sees it: as an end (Alice or Bob, with V's machine)
    or as the hub (no machine: the hub is not a member of V)."""

    request_id: bytes
    role: Role
    status: Status
    terms: VirtualTerms | None = None
    machine: ChannelMachine | None = None
    final: SignedState | None = None
    accepted: tuple[bool, bool] = (False, False)
    reason: str = ""
    ledger: bytes = b""
    peer: bytes = b""
    expires_at: int = 0
    rate: Rate | None = None
    #: the end's ledger channel has been seen holding this channel's active guarantee
    settled_sent: bool = field(default=False, compare=False)

    @property
    def side(self) -> int:
        """V's index of this node (0: Alice, 1: Bob); the hub has none."""
        return {"alice": 0, "bob": 1}.get(self.role, -1)

    def view(self, peer: bytes | None) -> dict[str, object]:
        """What the operator sees: status, V's balances, and which ledger channels fund it."""
        terms, machine = self.terms, self.machine
        latest = machine.latest if machine is not None else None
        return {
            "request_id": self.request_id.hex(),
            "virtual_channel_id": virtual_channel_id(terms).hex() if terms else None,
            "role": self.role,
            "status": self.status,
            "reason": self.reason,
            "funded_by": [ledger.channel_id.hex() for ledger in terms.ledgers] if terms else [],
            "hub": terms.hub_node_id.hex() if terms else None,
            "peer": peer.hex() if peer is not None else None,
            "split": list(terms.split) if terms else None,
            "balances": list(latest.state.balances[0].amounts) if latest else None,
            "version": latest.state.version if latest else None,
            "deadline": terms.deadline if terms else None,
            "final_known": self.final is not None,
            "last_error": self.reason if self.status in ("refused", "expired") else "",
        }

    def encode(self) -> bytes:
        return msgspec.json.encode(
            VirtualRecordV1(
                request_id=self.request_id,
                role=self.role,
                status=self.status,
                terms=self.terms,
                snapshot=self.machine.snapshot() if self.machine is not None else None,
                final=self.final,
                accepted=self.accepted,
                reason=self.reason,
                ledger=self.ledger,
                peer=self.peer,
                expires_at=self.expires_at,
                rate=self.rate,
            )
        )


def decode_record(data: bytes) -> VirtualRecordV1:
    return msgspec.json.decode(data, type=VirtualRecordV1)


def record_key(request_id: bytes) -> str:
    return VIRTUAL_PREFIX + request_id.hex()
