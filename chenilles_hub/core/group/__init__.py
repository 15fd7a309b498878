"""N-party channels ("groups" of 2 to ``MAX_MEMBERS`` members agreeing by unanimity).

Beside the two-party model (``core/model.py``, ``core/channel.py``), not in place of it: the
two-party path carries HTLCs, revocations and apps whose on-chain encodings the existing
contracts verify; an N-party channel here carries balances only (transfers and a final state)
and is enforced by its own on-chain code (``contracts/evm/GroupAdjudicator.sol``,
``contracts/solana/chenilles_group.c``). See docs/architecture.md, "N-party channels".
"""

from .effects import (
    GroupClose,
    GroupEffect,
    GroupOp,
    GroupPersist,
    GroupSend,
    GroupSnapshot,
    GroupTransfer,
    ProposalFailed,
    StateCompleted,
    apply_ops,
)
from .machine import GroupMachine
from .messages import Ballot, GroupSync, decode_group_message, encode_group_message
from .model import (
    MAX_MEMBERS,
    GroupBalances,
    GroupParams,
    GroupState,
    SignedGroupState,
    group_initial_state,
)
from .rules import (
    GroupAuthority,
    GroupPolicy,
    check_group_params,
    check_group_state,
    check_group_successor,
    no_loss_policy,
)

__all__ = [
    "MAX_MEMBERS",
    "Ballot",
    "GroupAuthority",
    "GroupBalances",
    "GroupClose",
    "GroupEffect",
    "GroupMachine",
    "GroupOp",
    "GroupParams",
    "GroupPersist",
    "GroupPolicy",
    "GroupSend",
    "GroupSnapshot",
    "GroupState",
    "GroupSync",
    "GroupTransfer",
    "ProposalFailed",
    "SignedGroupState",
    "StateCompleted",
    "apply_ops",
    "check_group_params",
    "check_group_state",
    "check_group_successor",
    "decode_group_message",
    "encode_group_message",
    "group_initial_state",
    "no_loss_policy",
]
