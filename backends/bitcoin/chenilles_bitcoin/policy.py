"""A Bitcoin channel's fee policy, and how the opener's travels to the acceptor.

Both sides build every commitment, HTLC-success/timeout and closing transaction from the
policy (there is no ``update_fee``), so they must hold the same one, for the channel's
whole life. Each node's options give its own; until the thirty-second session each side
used its own, so two nodes whose options differed could not open a channel together (the
first state did not check on the other side, and the error said only "invalid
signature"). As in BOLT 2's ``open_channel``, the opener, who funds the channel and pays
its commitment fees, now proposes the channel's policy: the participant key it sends
carries it after its keys, ``"<funding>:<point0>:<tag>:<feerate>:<dust>:<max fee>:<block
interval>"``. The key is part of the params, so the policy is committed to by the channel
id and both sides read the same one from it. The acceptor consents only to a policy it can
live with (:func:`terms_refusal`), before it answers the request.

A key of three parts (written by a node before this change) carries no policy: its channel
is built with each side's options, as it was then.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

from .bolt3 import InvalidKeyError

BLOCK_INTERVAL = 600
#: BOLT 2: ``dust_limit_satoshis`` below 354 sat makes outputs nodes will not relay.
MIN_DUST_LIMIT = 354
#: The acceptor takes an opener's feerate up to this many times its own (more would trim
#: to dust every HTLC it could route through the channel, with no ``update_fee`` to undo it).
MAX_FEERATE_MULTIPLE = 10
#: Upper bounds of the fields a participant key carries: what keeps a key within
#: ``Participant.chain_key``'s 200 characters (166 for the keys, 32 digits, 4 colons).
POLICY_BOUNDS = (9_999_999, 9_999_999, 999_999_999, 99_999)
#: A node's default cap on what a channel's HTLCs without an output may add up to
#: (Core Lightning's and Eclair's ``max-dust-htlc-exposure`` default).
DUST_EXPOSURE_SAT = 50_000
KEY_PARTS = 3
POLICY_PARTS = len(POLICY_BOUNDS)


@dataclass(frozen=True)
class ChannelPolicy:
    """What both sides build the transactions they sign with. A channel keeps the policy
    it was opened with for life (the opener's, from its participant key, also kept in the
    record's ``policy`` part): a node's options apply to channels opened after they changed.

    ``block_interval`` is the network's expected seconds per block: 600 on Bitcoin's real
    networks; a devnet that mines every few seconds says so, so that unix times (HTLC
    expiries, challenge durations) become the heights that are reached at those times."""

    feerate_per_kw: int = 1000
    dust_limit_sat: int = 546
    max_fee_sat: int = 50_000
    block_interval: int = BLOCK_INTERVAL

    def check(self) -> None:
        """Raise ``ValueError`` for a policy no node may configure: a field that is not an
        integer (``2500.0`` in a TOML file would travel as ``2500.0`` and no peer would read
        it), a zero block interval, a negative field, or one too large for a participant key
        to carry."""
        if any(type(value) is not int for value in astuple(self)):
            raise ValueError(f"a fee policy is whole numbers (sat/kw, sat, s): {self}")
        if self.block_interval <= 0 or min(astuple(self)) < 0:
            raise ValueError(f"a fee policy no channel can have: {self}")
        for field, bound in zip(fields(self), POLICY_BOUNDS, strict=True):
            value = getattr(self, field.name)
            if value > bound:
                raise ValueError(
                    f"{field.name} = {value} is above {bound}, the most a channel takes"
                )


def with_policy(keys: str, policy: ChannelPolicy) -> str:
    """A participant key (``keys``, its three parts) that carries ``policy``."""
    return ":".join([keys, *(str(value) for value in astuple(policy))])


def policy_in_key(chain_key: str) -> ChannelPolicy | None:
    """The policy a participant key carries; ``None`` for a key of three parts. Raises
    :class:`InvalidKeyError` for fields that are not small decimal integers."""
    parts = chain_key.split(":")
    if len(parts) == KEY_PARTS:
        return None
    values = parts[KEY_PARTS:]
    if len(values) != POLICY_PARTS or not all(_decimal(value) for value in values):
        raise InvalidKeyError(
            "a Bitcoin participant key's fee policy is feerate:dust:max fee:block interval, "
            "in decimal"
        )
    policy = ChannelPolicy(*(int(value) for value in values))
    try:
        policy.check()
    except ValueError as exc:
        raise InvalidKeyError(str(exc)) from exc
    return policy


def _decimal(text: str) -> bool:
    """Digits only, no sign, no leading zero: one spelling per number, so a key's text is
    a function of its policy."""
    return 0 < len(text) <= 9 and text.isascii() and text.isdigit() and text == str(int(text))


def terms_refusal(offered: ChannelPolicy, ours: ChannelPolicy) -> str | None:
    """Why an acceptor configured with ``ours`` does not take a channel on the opener's
    ``offered`` policy, or ``None``. The opener pays the commitment fees, so a feerate above
    ours costs us nothing until it trims our HTLCs away; one below ours may leave a
    commitment unmined while its deadlines pass; a dust limit above ours leaves HTLCs we
    would route unenforceable; the block interval is the network's, not a channel's."""
    if offered.block_interval != ours.block_interval:
        return (
            f"the opener counts {offered.block_interval} s a block, this node "
            f"{ours.block_interval} s: the two nodes are configured for different networks "
            "(option block_interval)"
        )
    if offered.feerate_per_kw < ours.feerate_per_kw:
        return (
            f"the opener's feerate {offered.feerate_per_kw} sat/kw is below this node's "
            f"{ours.feerate_per_kw} sat/kw, and a channel keeps its feerate for life: open "
            f"at {ours.feerate_per_kw} sat/kw or more (option feerate_per_kw)"
        )
    highest = ours.feerate_per_kw * MAX_FEERATE_MULTIPLE
    if offered.feerate_per_kw > highest:
        return (
            f"the opener's feerate {offered.feerate_per_kw} sat/kw is above {highest} sat/kw, "
            f"{MAX_FEERATE_MULTIPLE} times this node's: HTLCs would be trimmed to dust "
            "(option feerate_per_kw)"
        )
    lowest = min(MIN_DUST_LIMIT, ours.dust_limit_sat)
    if not lowest <= offered.dust_limit_sat <= ours.dust_limit_sat:
        return (
            f"the opener's dust limit {offered.dust_limit_sat} sat is outside "
            f"{lowest}-{ours.dust_limit_sat} sat (up to this node's): below, outputs do not "
            "relay; above, HTLCs this node routes would not be enforceable on-chain "
            "(option dust_limit_sat)"
        )
    return None


__all__ = [
    "BLOCK_INTERVAL",
    "DUST_EXPOSURE_SAT",
    "MAX_FEERATE_MULTIPLE",
    "MIN_DUST_LIMIT",
    "ChannelPolicy",
    "policy_in_key",
    "terms_refusal",
    "with_policy",
]
