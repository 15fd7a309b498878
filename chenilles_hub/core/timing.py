"""How chains keep time, and how much time a hub needs to enforce a claim on each.

The core speaks absolute unix seconds; each backend describes its chain with a
:class:`TimeModel` and converts expiries to its native unit (height, timestamp, slot).
Routing uses these models to compute the expiry delta every forwarding hop must keep.
"""

from __future__ import annotations

import msgspec

from .errors import InvalidParams

_DAY = 86_400
_YEAR = 365 * _DAY


class TimeModel(msgspec.Struct, frozen=True):
    """One chain's clock, seen by someone who must get a transaction in before a deadline.

    Durations are seconds, but ``block_interval_ms`` (Solana slots are sub-second).
    ``timelock_horizon`` is how far ahead the chain's own timelocks can be trusted to fire
    near the intended unix time (height-based locks drift with hash rate).
    """

    block_interval_ms: int
    finality_depth: int
    inclusion_delay: int
    timelock_horizon: int
    safety_margin: int = 600

    def __post_init__(self) -> None:
        # A peer announces its chains' models: bounds keep every delta a routing index
        # computes an int64 and never negative. msgspec runs this when decoding too (a
        # refusal there is a DecodeError, see BoundedCodec): one check for every source.
        if not (
            1 <= self.block_interval_ms <= _DAY * 1000
            and 0 <= self.finality_depth <= 1_000_000
            and 0 <= self.inclusion_delay <= _YEAR
            and 0 <= self.timelock_horizon <= 100 * _YEAR
            and 0 <= self.safety_margin <= _YEAR
        ):
            raise InvalidParams(f"time model out of range: {self!r}")

    def finality_time(self) -> int:
        return (self.finality_depth * self.block_interval_ms + 999) // 1000

    def enforcement_time(self, challenge_duration: int) -> int:
        """Seconds to enforce a claim on this chain against a silent or lying peer: get the
        dispute transaction included and final, sit out the challenge period, get the
        resolving transaction included and final, plus the margin."""
        return (
            2 * (self.inclusion_delay + self.finality_time())
            + challenge_duration
            + self.safety_margin
        )
