"""The operator's consent to channels a peer asks for: what we deposit, for how long, and
how many half-open requests we keep.

An open request from a peer is a request to lock *our* funds: the deposit it asks us to
make stays in the channel until it closes, and the challenge duration is how long a
dispute may keep it there. Nothing of that happens without the operator's policy, and the
defaults are safe: we deposit nothing into a channel a peer opens (it funds the channel
alone, which is what a hub accepting new users wants), challenge durations are bounded,
and pending requests are few, short-lived and freed when their peer disconnects.

A refusal answers ``OpenRefused`` with a specific reason, so the opener's operator sees
why (``GET /v1/channels/opening/{temp_id}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ...core import Asset

#: Ten minutes: the least time a watcher must have to answer a stale state on any chain we
#: run (a few blocks at Bitcoin's pace), whoever asks for less.
DEFAULT_MIN_CHALLENGE = 600
#: Two weeks, the longest BOLT 2's to_self_delay commonly accepted: longer and a peer can
#: keep our funds locked for a long time with one stale registration.
DEFAULT_MAX_CHALLENGE = 14 * 86400


@dataclass(frozen=True)
class OpenPolicy:
    #: Accept channels peers open at all (``False``: every request is refused).
    accept: bool = True
    #: The most we deposit, per asset, into one channel a peer opens (base units). An asset
    #: missing here: nothing (the opener funds the channel alone).
    max_remote_deposit: Mapping[Asset, int] = field(default_factory=dict)
    min_challenge: int = DEFAULT_MIN_CHALLENGE
    max_challenge: int = DEFAULT_MAX_CHALLENGE
    #: Open requests of one peer we keep while the handshake completes.
    max_pending_per_peer: int = 2
    #: Open requests of all peers together.
    max_pending: int = 64
    #: Seconds an open request may wait for the opener's ``OpenChannel``.
    pending_timeout: int = 120

    def deposit_limit(self, asset: Asset) -> int:
        return self.max_remote_deposit.get(asset, 0)

    def refusal(self, deposits: Mapping[Asset, tuple[int, int]], challenge: int) -> str | None:
        """Why this policy refuses a channel where we deposit ``deposits[a][0]`` of each
        asset, with this challenge duration; ``None`` if it consents."""
        if not self.accept:
            return "policy: this node does not accept channels opened by peers"
        if not self.min_challenge <= challenge <= self.max_challenge:
            return (
                f"policy: challenge duration {challenge} s is outside "
                f"{self.min_challenge}..{self.max_challenge} s"
            )
        for asset, (ours, _theirs) in deposits.items():
            limit = self.deposit_limit(asset)
            if ours > limit:
                return f"policy: a deposit of {ours} {asset} from us exceeds our limit {limit}"
        return None
