"""Wire messages of the update protocol and their strict, size-limited codec.

The flow is the same on every chain (docs/design.md, section 3):

    proposer                         acceptor
       | -- Propose(updates, state, sig) -> |   acceptor persists, then signs
       | <- Accept(sig, revocation of v-1) -- |
       | -- Ack(revocation of v-1) ---------> |   proposer persists before revoking

``Reestablish`` is sent after a reconnect or restart; it tells the peer what this side holds
so both can retransmit what the other missed. ``Reject`` tells a proposer why its proposal
was refused, so it can drop it instead of waiting.

A ``Reject`` is binding: its sender has persisted that it will never sign that attempt, so
the proposer may report the proposal's updates failed. A proposal that cannot be taken *yet*
(the acceptor still waits for the proposer's ack of the previous version, or the two sides
disagree on where they are) is answered with a ``Reestablish`` instead, and the proposer
keeps it pending. Proposals at one version are numbered (``attempt``) so that a refusal of
one never applies to the proposer's next try at the same version.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

import msgspec

from .errors import ChannelError, DecodeError, MessageTooLarge
from .model import Bytes32, ChannelState, Version
from .updates import Update

#: Hard cap on one encoded message. A full state (8 assets, 32 HTLCs) with a Bitcoin
#: signature bundle is ~25 KiB in JSON; anything larger is hostile or broken.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_UPDATES_PER_PROPOSAL = 64
#: Proposals of one version a proposer may try (each refused one takes a number).
MAX_ATTEMPT = 2**31 - 1
Attempt = Annotated[int, msgspec.Meta(ge=0, le=MAX_ATTEMPT)]
M = TypeVar("M")
Bundle = Annotated[bytes, msgspec.Meta(min_length=1, max_length=16 * 1024)]


class Propose(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="propose"):
    """``attempt`` numbers the proposer's tries at ``state.version``: 0 first, one more
    after each refusal (not signed: it only names the try a ``Reject`` answers)."""

    channel_id: Bytes32
    updates: Annotated[tuple[Update, ...], msgspec.Meta(max_length=MAX_UPDATES_PER_PROPOSAL)]
    state: ChannelState
    signature: Bundle
    attempt: Attempt = 0


class Accept(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="accept"):
    channel_id: Bytes32
    version: Version
    signature: Bundle
    revocation: Bundle | None = None


class Ack(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="ack"):
    channel_id: Bytes32
    version: Version
    revocation: Bundle | None = None


class Reject(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="reject"):
    """The proposal ``(version, attempt)`` is refused for good (see the module docstring),
    and with it every earlier attempt at that version: a proposer whose pending attempt is
    at most ``attempt`` drops it and proposes again with ``attempt + 1``."""

    channel_id: Bytes32
    version: Version
    code: Annotated[str, msgspec.Meta(max_length=64)]
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    attempt: Attempt = 0


class Reestablish(
    msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag="reestablish"
):
    """``latest`` is the newest fully signed version held (-1: none yet)."""

    channel_id: Bytes32
    latest: Annotated[int, msgspec.Meta(ge=-1, le=2**63 - 1)]
    pending: Version | None = None


ChannelMessage = Propose | Accept | Ack | Reject | Reestablish


class BoundedCodec(Generic[M]):
    """Canonical JSON with a hard size limit on both sides and a strict typed decoder: one
    codec for every message family that crosses a process boundary."""

    def __init__(self, kind: Any, what: str, limit: int = MAX_MESSAGE_BYTES) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder: msgspec.json.Decoder[M] = msgspec.json.Decoder(kind)
        self._what = what
        self._limit = limit

    def encode(self, message: M) -> bytes:
        data = self._encoder.encode(message)
        if len(data) > self._limit:
            raise MessageTooLarge(f"{self._what} is {len(data)} bytes, limit {self._limit}")
        return data

    def decode(self, data: bytes) -> M:
        """Strict: unknown fields, wrong types, floats for amounts, bad lengths are refused."""
        if len(data) > self._limit:
            raise MessageTooLarge(f"{self._what} is {len(data)} bytes, limit {self._limit}")
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter
            raise DecodeError(f"malformed {self._what}: {exc}") from None  # on bad UTF-8
        except ChannelError as exc:  # a struct's own check (__post_init__) refused a field
            raise DecodeError(f"malformed {self._what}: {exc}") from None


_codec: BoundedCodec[ChannelMessage] = BoundedCodec(ChannelMessage, "channel message")
encode_message = _codec.encode
decode_message = _codec.decode


_state_encoder = msgspec.json.Encoder()


def canonical_state_bytes(state: ChannelState) -> bytes:
    """The canonical encoding of a state, for backends that sign a generic digest."""
    return _state_encoder.encode(state)
