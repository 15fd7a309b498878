"""The one wire message of the N-party update protocol, and its strict, bounded codec.

Every message is the sender's whole knowledge of the channel above what all have signed:
its latest fully signed state, every proposal it knows of a newer version with every
signature it has seen on it, and the refusals it knows. Merging knowledge is a union, so a
message may be lost, duplicated, delayed or reordered: the next one (or ``resend``) carries
everything again, and members converge once messages flow. This is the reason for one
state-carrying message instead of the two-party Propose/Accept/Ack exchange: with N members
the pairwise exchanges would each need their own retransmission rules.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ..messages import BoundedCodec
from ..model import Bytes32, ShortText, Version
from .model import MAX_MEMBERS, GroupState, SignedGroupState

Member = Annotated[int, msgspec.Meta(ge=0, lt=MAX_MEMBERS)]
Signature = Annotated[bytes, msgspec.Meta(max_length=128)]
#: Proposals one message may carry: with conflicts, a few versions of up to N proposers.
MAX_PROPOSALS = 2 * MAX_MEMBERS
MAX_GROUP_MESSAGE_BYTES = 512 * 1024


class Ballot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A proposed state, built on the fully signed state of version ``base`` by member
    ``proposer``, with the signatures seen on it (one slot per member, ``b""`` missing)."""

    base: Version
    proposer: Member
    state: GroupState
    signatures: Annotated[tuple[Signature, ...], msgspec.Meta(min_length=2, max_length=MAX_MEMBERS)]


class Refusal(msgspec.Struct, frozen=True, forbid_unknown_fields=True, order=True):
    """Member ``member`` will never sign anything at ``version`` (its policy said no)."""

    member: Member
    version: Version
    proposer: Member
    reason: ShortText


class GroupSync(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="group_sync"):
    channel_id: Bytes32
    sender: Member
    latest: SignedGroupState
    proposals: Annotated[tuple[Ballot, ...], msgspec.Meta(max_length=MAX_PROPOSALS)] = ()
    refusals: Annotated[tuple[Refusal, ...], msgspec.Meta(max_length=MAX_PROPOSALS)] = ()


_codec: BoundedCodec[GroupSync] = BoundedCodec(
    GroupSync, "group channel message", MAX_GROUP_MESSAGE_BYTES
)
encode_group_message = _codec.encode
decode_group_message = _codec.decode
