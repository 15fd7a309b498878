"""What the sans-IO machines ask their shell (the node) to do, in order.

The node must carry effects out in the order given: a ``Persist`` always comes before the
``Send`` that carries a signature on that state, and a revocation is only sent after the
newer state's ``Persist``. That ordering is the rule that keeps funds safe across crashes,
and the machine's tests check it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from .messages import ChannelMessage
from .model import MAX_ASSETS, Amount, Asset, AssetBalances, Bytes32, ChannelState, SignedState
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
    """Both sides hold the new state with both signatures (and, proposer side, revoked old).
    ``updates`` are the ones that produced it: a preimage shown in one is known from now
    on, before the state is irrevocable."""

    signed: SignedState
    updates: tuple[Update, ...] = ()


class Irrevocable(msgspec.Struct, frozen=True):
    """``signed`` can no longer be undone: both sides hold it and both revoked its
    predecessor. Only now may a hub act on its HTLCs (forward an incoming one)."""

    signed: SignedState
    updates: tuple[Update, ...]


class ProposalRejected(msgspec.Struct, frozen=True):
    """Our proposal ``state`` is dead for good, its ``updates`` may be reported failed (or
    proposed again, ``proposal_conflict``): the peer signed another state of that version
    (its proposal won a conflict), or it refused ours (a binding ``Reject``) and a later
    version is irrevocable, so that no copy of ours can be enforced any more."""

    version: int
    code: str
    reason: str
    state: ChannelState | None = None
    updates: tuple[Update, ...] = ()


class ProposalWithdrawn(msgspec.Struct, frozen=True):
    """The peer refused our proposal of ``version`` for good (a binding ``Reject``): nothing
    of ours is in flight any more. It still carries our signature, so a cheating peer could
    enforce it until a later version is irrevocable: only then is it reported
    (``ProposalRejected``). The node proposes what it has queued, or nothing, to get there."""

    version: int
    code: str
    reason: str


class RevocationReceived(msgspec.Struct, frozen=True):
    """The peer gave up ``version``: the backend's watcher keeps this to punish its use."""

    version: int
    revocation: bytes


class ChannelSnapshot(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """Everything needed to resume a channel machine after a restart.

    ``previous`` is the state before ``latest`` (its revocation may still be owed or due);
    ``last_reply`` is our last Accept or Ack, kept so it can be sent again when the peer
    missed it. ``attempt`` is the number our next proposal of version ``latest + 1``
    carries; ``refused`` is ``(version, attempt)``: the peer's proposals of that version up
    to that attempt were refused and stay refused (a ``Reject`` is binding, so it survives
    a restart). ``withdrawn``: our proposals the peer refused, not reported yet.
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
    withdrawn: tuple[WithdrawnProposal, ...] = ()


class PendingProposal(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """Our own proposal, signed by us, not yet accepted."""

    message: ChannelMessage
    signed: SignedState


class WithdrawnProposal(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """Our proposal the peer refused for good, kept until a later version is irrevocable
    (see ``ProposalWithdrawn``)."""

    proposal: PendingProposal
    code: str
    reason: str

    @property
    def version(self) -> int:
        return self.proposal.signed.state.version


Effect = (
    Send
    | Persist
    | SubmitToLedger
    | WakeAt
    | UpdateCompleted
    | Irrevocable
    | ProposalRejected
    | ProposalWithdrawn
    | RevocationReceived
)


_snapshot_decoder = msgspec.json.Decoder(ChannelSnapshot)


def encode_snapshot(snapshot: ChannelSnapshot) -> bytes:
    return msgspec.json.encode(snapshot)


def decode_snapshot(data: bytes) -> ChannelSnapshot:
    return _snapshot_decoder.decode(data)


class Holdings(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, array_like=True):
    """What a state holds per asset, without the rest of it: its version, each asset's
    free balances (one per participant, as in the state) and the total its HTLCs lock.

    A node's announcements and reports (capacities, balances, locked totals) need no more
    than this. A store keeps it beside each snapshot (:func:`encode_holdings`), so that a
    restored machine answers them before its snapshot is read, checked and decoded: a hub
    of 100,000 channels announced its capacities 13-15 s after a restart, decoding every
    snapshot on the node's thread. Encoded as an array, the version first: a store checks
    it against its row's version without decoding (:func:`holdings_match`)."""

    version: int
    balances: Annotated[tuple[AssetBalances, ...], msgspec.Meta(max_length=MAX_ASSETS)]
    locked: Annotated[tuple[tuple[Asset, Amount], ...], msgspec.Meta(max_length=MAX_ASSETS)] = ()

    def free(self, asset: Asset) -> tuple[int, ...]:
        for entry in self.balances:
            if entry.asset == asset:
                return entry.amounts
        raise KeyError(asset)


def holdings_of(state: ChannelState) -> Holdings:
    if not state.htlcs:  # most states (written with every snapshot: kept short)
        return Holdings(state.version, state.balances)
    locked: dict[Asset, int] = {}
    for htlc in state.htlcs:
        locked[htlc.asset] = locked.get(htlc.asset, 0) + htlc.amount
    return Holdings(state.version, state.balances, tuple(sorted(locked.items())))


def encode_holdings(snapshot: ChannelSnapshot) -> bytes | None:
    """The holdings of ``snapshot``'s latest signed state; ``None`` before the channel
    opened (nothing signed: such a machine reads its snapshot when asked)."""
    if snapshot.latest is None:
        return None
    return msgspec.json.encode(holdings_of(snapshot.latest.state))


def holdings_match(encoded: bytes, version: int) -> bool:
    """Whether encoded holdings are those of ``version`` (the snapshot's beside them): a
    program that did not know of them rewrote the snapshot and left them behind."""
    return encoded.startswith(b"[%d," % version)


_holdings_decoder = msgspec.json.Decoder(Holdings)


def decode_holdings(data: bytes) -> Holdings:
    return _holdings_decoder.decode(data)
