"""Faults and bans: how many refused messages a peer may send before it is shown the door.

A message the node refuses costs it a little work (decoding, checking a signature, a look
at the chain's backend); a peer that sends them over and over is either broken or hostile,
and either way must not keep a share of the node. Each refusal counts as a *fault* of the
peer, except the refusals honest peers cause by racing each other (both proposed at once,
a message that crossed a reconnection): those are the protocol working. ``max_faults``
faults within ``fault_window`` seconds disconnect the peer and ban it for ``ban_seconds``:
its handshakes are refused and it is not dialled until the ban expires.

Memory stays bounded whatever the number of identities a stranger makes up (an identity
costs nothing): both tables keep at most ``MAX_TRACKED`` peers, the oldest dropped first.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from chenilles_hub.core.errors import ChannelError

from ..config import PeerPolicyConfig

#: Refusal codes honest peers cause in normal operation (races, retransmissions).
BENIGN_CODES = frozenset(
    {"proposal_conflict", "unexpected_message", "stale_version", "proposal_pending", "diverged"}
)
#: Peers whose faults or bans are remembered at once.
MAX_TRACKED = 10_000


def is_fault(error: Exception) -> bool:
    """Whether refusing this error counts against the peer."""
    return not isinstance(error, ChannelError) or error.code not in BENIGN_CODES


class Bans:
    def __init__(
        self, policy: PeerPolicyConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._faults: dict[bytes, deque[float]] = {}
        self._until: dict[bytes, float] = {}

    def banned(self, peer: bytes) -> bool:
        until = self._until.get(peer)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._until[peer]
        return False

    def remaining(self, peer: bytes) -> float:
        """Seconds left of ``peer``'s ban (0 if it is not banned)."""
        return max(0.0, self._until.get(peer, 0.0) - self._clock()) if self.banned(peer) else 0.0

    def fault(self, peer: bytes) -> bool:
        """Count one fault of ``peer``; ``True`` if that bans it (from now on)."""
        now = self._clock()
        faults = self._faults.pop(peer, None) or deque()
        self._faults[peer] = faults  # newest last: the oldest are dropped first
        faults.append(now)
        while faults and faults[0] < now - self.policy.fault_window:
            faults.popleft()
        _trim(self._faults)
        if len(faults) < self.policy.max_faults:
            return False
        del self._faults[peer]
        self._until.pop(peer, None)
        self._until[peer] = now + self.policy.ban_seconds
        _trim(self._until)
        return True


def _trim(table: dict[bytes, Any]) -> None:
    while len(table) > MAX_TRACKED:
        del table[next(iter(table))]
