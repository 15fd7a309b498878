"""The N-party machine's vocabulary: the operations a member proposes, the snapshot it
persists, the effects it returns, and ``apply_ops`` (operations onto a state). Pure data
and one pure function, apart from ``machine.py`` so that module keeps to the protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec

from ..errors import ChannelError, InsufficientBalance, InvalidParams, UnexpectedMessage
from ..model import Amount, Asset
from .messages import Ballot, GroupSync, Refusal
from .model import GroupBalances, GroupParams, GroupState, SignedGroupState


class GroupTransfer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="transfer"):
    """Move ``amount`` of ``asset`` from the proposing member to member ``to``."""

    asset: Asset
    to: Annotated[int, msgspec.Meta(ge=0)]
    amount: Amount


class GroupClose(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="close"):
    """Make the state final (cooperative close: it pays out as soon as it is registered)."""


GroupOp = GroupTransfer | GroupClose


class GroupSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything a member must keep across a crash; persisted before anything is sent."""

    params: GroupParams
    channel_id: bytes
    me: int
    latest: SignedGroupState
    voted: int
    proposals: tuple[Ballot, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    queue: tuple[GroupOp, ...] = ()
    in_flight: tuple[GroupOp, ...] = ()
    #: this member's proposals above ``latest`` that may still complete (newest last), and
    #: how many of ``in_flight``'s operations each carries (a retry carries at least as many)
    mine: tuple[GroupState, ...] = ()
    carried: tuple[int, ...] = ()
    #: whether ``latest`` is settled: this member signed no proposal that builds on an older
    #: state and skips it (only such a proposal, completed, could undo it)
    settled: bool = True
    #: ``latest`` holds the first ``applied`` operations of ``in_flight``, since this
    #: member's try of version ``applied_at`` completed (not yet settled)
    applied: int = 0
    applied_at: int = -1


@dataclass(frozen=True)
class GroupPersist:
    snapshot: GroupSnapshot


@dataclass(frozen=True)
class GroupSend:
    to: int
    message: GroupSync


@dataclass(frozen=True)
class StateCompleted:
    """A newer state is fully signed (``own``: it carries this member's proposal).

    ``settled``: no later state can undo it, because this member signed no proposal that
    skips it (and never will). Only when a member equivocated can a state complete
    unsettled; a payee should count what the latest *settled* state gives it."""

    signed: SignedGroupState
    own: bool
    settled: bool = True


@dataclass(frozen=True)
class ProposalFailed:
    ops: tuple[GroupOp, ...]
    reason: str


GroupEffect = GroupPersist | GroupSend | StateCompleted | ProposalFailed


def apply_ops(
    base: GroupState, me: int, n: int, ops: tuple[GroupOp, ...]
) -> tuple[GroupState, tuple[GroupOp, ...], list[ProposalFailed]]:
    """``ops`` by member ``me`` onto ``base`` (version unchanged): the new state, the
    operations applied, and a failure for each that cannot be."""
    amounts = {b.asset: list(b.amounts) for b in base.balances}
    final, applied, failed = False, [], []
    for op in ops:
        try:
            if final:
                raise UnexpectedMessage("nothing may follow a close")
            if isinstance(op, GroupClose):
                final = True
            else:
                if op.asset not in amounts:
                    raise InvalidParams(f"{op.asset} is not an asset of this channel")
                if not 0 <= op.to < n or op.to == me or op.amount <= 0:
                    raise InvalidParams("a transfer goes to another member, amount > 0")
                if amounts[op.asset][me] < op.amount:
                    raise InsufficientBalance(
                        f"member {me} holds {amounts[op.asset][me]} of {op.asset}, "
                        f"cannot send {op.amount}"
                    )
                amounts[op.asset][me] -= op.amount
                amounts[op.asset][op.to] += op.amount
            applied.append(op)
        except ChannelError as exc:
            failed.append(ProposalFailed((op,), f"{exc.code}: {exc}"))
    balances = tuple(GroupBalances(b.asset, tuple(amounts[b.asset])) for b in base.balances)
    return GroupState(base.channel_id, base.version, balances, final), tuple(applied), failed
