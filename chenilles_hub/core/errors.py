"""Every way the core can refuse something.

Each rejection is its own class so callers (the node, tests, a peer reading a ``Reject``
message) can tell *what* was wrong without parsing prose. Every core operation that raises
one of these leaves the channel exactly as it was: the machines compute the next state on a
copy and only commit it once every check has passed.
"""

from __future__ import annotations


class ChannelError(Exception):
    """Base of all core rejections. ``code`` is stable and travels in ``Reject`` messages.

    ``deterministic``: the refusal depends only on the message and the latest signed state
    (a forged signature, a malformed or non-conserving state, a broken reserve), so every
    copy of the message is refused again at this version and the machine need not remember
    it. Any other refusal of a proposal may pass (the clock moves, our own proposal is
    dropped) and is remembered, because a ``Reject`` is binding.
    """

    code = "channel_error"
    deterministic = False


# --- decoding -------------------------------------------------------------------------------


class DecodeError(ChannelError):
    code = "malformed"


class MessageTooLarge(DecodeError):
    code = "too_large"


# --- addressing and ordering ----------------------------------------------------------------


class WrongChannel(ChannelError):
    code = "wrong_channel"


class StaleVersion(ChannelError):
    code = "stale_version"


class UnexpectedMessage(ChannelError):
    """A well-formed message that the protocol does not allow at this point."""

    code = "unexpected_message"


class ProposalPending(ChannelError):
    """One update at a time: a second proposal would fork the version sequence."""

    code = "proposal_pending"


class ProposalTooLarge(ChannelError):
    """More updates than one proposal may carry, or a proposal that would not encode within
    the message limit: the peer's decoder would refuse it, and a refused proposal that was
    persisted would be retransmitted forever. Propose fewer at once."""

    code = "proposal_too_large"


class ProposalConflict(ChannelError):
    """Both sides proposed the same version; the lower participant index wins."""

    code = "proposal_conflict"


class ChannelFinal(ChannelError):
    code = "channel_final"


class ChannelNotOpen(ChannelError):
    code = "channel_not_open"


class AlreadyRefused(ChannelError):
    """A copy of a proposal this side already refused: a refusal is binding, so the same
    attempt is refused again whatever may have changed since (the clock, our balances)."""

    code = "already_refused"


class Diverged(ChannelError):
    """The peer claims a history this side cannot reconcile: only the ledger can decide now."""

    code = "diverged"


# --- signatures -----------------------------------------------------------------------------


class InvalidSignature(ChannelError):
    code = "invalid_signature"
    deterministic = True


class InvalidRevocation(ChannelError):
    code = "invalid_revocation"


# --- money and invariants -------------------------------------------------------------------


class InvariantViolation(ChannelError):
    """A state that breaks one of the rules every state must keep."""

    code = "invariant"
    deterministic = True


class NonConserving(InvariantViolation):
    code = "non_conserving"


class NegativeAmount(InvariantViolation):
    code = "negative_amount"


class AmountOutOfRange(InvariantViolation):
    code = "amount_out_of_range"


class UnknownAsset(InvariantViolation):
    code = "unknown_asset"


class InsufficientBalance(ChannelError):
    code = "insufficient_balance"


class BelowReserve(InsufficientBalance):
    """A participant's balance would fall below the channel reserve (BOLT 2): once it holds
    the reserve it must keep it, so that an enforcement transaction always has an output
    and publishing an old state always costs the cheater something."""

    code = "channel_reserve"
    deterministic = True


class FeeUnaffordable(InsufficientBalance):
    """The participant who pays the enforcement transaction's fee could not pay it."""

    code = "commitment_fee"
    deterministic = True


class UnmineableState(InvariantViolation):
    """The state's enforcement transaction could not be mined: every amount would go to
    fees, dust or trimmed HTLCs, leaving it without any output."""

    code = "unmineable"


class StateMismatch(ChannelError):
    """The state a peer signed is not what its declared updates produce."""

    code = "state_mismatch"
    deterministic = True


class NotPermitted(ChannelError):
    """An update that would move the acceptor's money without its say-so."""

    code = "not_permitted"


class InvalidParams(ChannelError):
    code = "invalid_params"


# --- HTLCs ----------------------------------------------------------------------------------


class HtlcError(ChannelError):
    code = "htlc"


class UnknownHtlc(HtlcError):
    code = "unknown_htlc"


class DuplicateHtlc(HtlcError):
    code = "duplicate_htlc"


class ForeignHtlcId(HtlcError):
    """An HTLC id that is not its payer's to use: participant p of n offers only ids equal
    to p modulo n, so that one side's ids never clash with the other's (a node keeps each
    HTLC, its forward link and its watcher duty by channel and id)"""

    code = "foreign_htlc_id"


class TooManyHtlcs(HtlcError):
    code = "too_many_htlcs"


class DustExposure(HtlcError):
    """The HTLCs too small for an output of their own (their value goes to fees if the
    enforcement transaction is mined) would add up to more than the node's cap."""

    code = "dust_exposure"


class BadPreimage(HtlcError):
    code = "bad_preimage"


class UnsafeTimelock(HtlcError):
    """An expiry too close (no time to enforce on-chain) or too far (capital locked too long)."""

    code = "unsafe_timelock"


class HtlcNotExpired(HtlcError):
    code = "htlc_not_expired"


# --- apps -----------------------------------------------------------------------------------


class InvalidTransition(ChannelError):
    """An app rejected the transition of its app data."""

    code = "invalid_transition"


class UnknownApp(ChannelError):
    code = "unknown_app"


# --- routing (multi-hop, cross-chain, cross-asset circuits) --------------------------------


class RoutingError(ChannelError):
    """A route or a forward that a hop must refuse; the subclass says which rule it breaks."""

    code = "routing"


class NoRoute(RoutingError):
    code = "no_route"


class InvalidRoute(RoutingError):
    """A route that is not a circuit at all: empty, broken, looping, or for another payment."""

    code = "invalid_route"


class InsufficientCapacity(RoutingError):
    code = "insufficient_capacity"


class InsufficientFee(RoutingError):
    """The incoming HTLC does not cover the outgoing amount plus the forwarding node's fee."""

    code = "insufficient_fee"


class WrongAsset(RoutingError):
    """Hop assets do not connect: an HTLC in another asset than its channel, or a change of
    asset at a node that quotes no (unexpired) rate for that pair."""

    code = "wrong_asset"


class RateExpired(WrongAsset):
    code = "rate_expired"


class NoTimeModel(RoutingError):
    """A channel on a chain whose clock we cannot reason about cannot carry a timelock."""

    code = "no_time_model"


class TimelockDeltaViolation(RoutingError, UnsafeTimelock):
    """The upstream expiry leaves the forwarding node too little time to enforce upstream."""

    code = "timelock_delta"


class LockTooLong(RoutingError, UnsafeTimelock):
    """The payer's HTLC would lock funds for longer than the caller accepts."""

    code = "lock_too_long"


class RouteTooLong(RoutingError):
    code = "route_too_long"
