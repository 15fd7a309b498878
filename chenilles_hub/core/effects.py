"""What the sans-IO machines ask their shell (the node) to do, in order.

The node must carry effects out in the order given: a ``Persist`` always comes before the
``Send`` that carries a signature on that state, and a revocation is only sent after the
newer state's ``Persist``. That ordering is the rule that keeps funds safe across crashes,
and the machine's tests check it.
"""

from __future__ import annotations

import msgspec

from .messages import ChannelMessage
from .model import Bytes32, ChannelState, SignedState
from .updates import Update


class Send(msgspec.Struct, frozen=True):
    peer: Bytes32
    message: ChannelMessage


class Persist(msgspec.Struct, frozen=True):
    """Write the channel's snapshot durably (synchronous, before anything that follows)."""

    snapshot: ChannelSnapshot


class SubmitToLedger(msgspec.Struct, frozen=True):
    """Ask the channel's backend to act on-chain: ``action`` is a ledger operation name."""

    action: str
    signed: SignedState


class WakeAt(msgspec.Struct, frozen=True):
    """Call the machine's ``tick`` again at unix time ``at`` (an HTLC deadline)."""

    at: int
    reason: str


class UpdateCompleted(msgspec.Struct, frozen=True):
    """Both sides hold the new state with both signatures (and, proposer side, revoked old)."""

    signed: SignedState


class Irrevocable(msgspec.Struct, frozen=True):
    """``signed`` can no longer be undone: both sides hold it and both revoked its
    predecessor. Only now may a hub act on its HTLCs (forward an incoming one)."""

    signed: SignedState
    updates: tuple[Update, ...]


class ProposalRejected(msgspec.Struct, frozen=True):
    """Our proposal ``state`` is dead for good: the peer refused it (a binding ``Reject``:
    it persisted that it will never sign it) or signed another state of that version (its
    proposal won a conflict). Its updates may now be reported failed, or proposed again."""

    version: int
    code: str
    reason: str
    state: ChannelState | None = None


class RevocationReceived(msgspec.Struct, frozen=True):
    """The peer gave up ``version``: the backend's watcher keeps this to punish its use."""

    version: int
    revocation: bytes


class ChannelSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything needed to resume a channel machine after a restart.

    ``previous`` is the state before ``latest`` (its revocation may still be owed or due);
    ``last_reply`` is our last Accept or Ack, kept so it can be sent again when the peer
    missed it. ``attempt`` is the number our next proposal of version ``latest + 1``
    carries; ``refused`` is ``(version, attempt)``: the peer's proposals of that version up
    to that attempt were refused and stay refused (a ``Reject`` is binding, so it survives
    a restart).
    """

    channel_id: Bytes32
    latest: SignedState | None
    previous: SignedState | None
    pending: PendingProposal | None
    awaiting_ack: int | None
    last_reply: ChannelMessage | None
    latest_updates: tuple[Update, ...] = ()
    attempt: int = 0
    refused: tuple[int, int] | None = None


class PendingProposal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Our own proposal, signed by us, not yet accepted."""

    message: ChannelMessage
    signed: SignedState


Effect = (
    Send
    | Persist
    | SubmitToLedger
    | WakeAt
    | UpdateCompleted
    | Irrevocable
    | ProposalRejected
    | RevocationReceived
)


_snapshot_decoder = msgspec.json.Decoder(ChannelSnapshot)


def encode_snapshot(snapshot: ChannelSnapshot) -> bytes:
    return msgspec.json.encode(snapshot)


def decode_snapshot(data: bytes) -> ChannelSnapshot:
    return _snapshot_decoder.decode(data)
