"""Faults and bans (``runtime/bans.py``): what counts, when a ban starts and ends."""

from __future__ import annotations

import pytest

from chenilles_hub.core.errors import InvalidSignature, ProposalConflict, StaleVersion
from chenilles_hub.node.config import PeerPolicyConfig
from chenilles_hub.node.runtime.bans import MAX_TRACKED, Bans, is_fault

pytestmark = [pytest.mark.node, pytest.mark.adversarial]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_races_of_honest_peers_are_not_faults() -> None:
    assert not is_fault(ProposalConflict("both proposed"))
    assert not is_fault(StaleVersion("a duplicate"))
    assert is_fault(InvalidSignature("forged"))
    assert is_fault(ValueError("the node failed on it"))


def test_a_ban_starts_after_max_faults_within_the_window_and_expires() -> None:
    clock = Clock()
    bans = Bans(PeerPolicyConfig(max_faults=3, fault_window=10, ban_seconds=60), clock)
    peer = b"p" * 32
    assert not bans.fault(peer) and not bans.fault(peer)
    clock.now += 11  # the first two fell out of the window
    assert not bans.fault(peer) and not bans.fault(peer)
    assert bans.fault(peer)  # three within ten seconds
    assert bans.banned(peer) and 59 < bans.remaining(peer) <= 60
    clock.now += 61
    assert not bans.banned(peer) and bans.remaining(peer) == 0


def test_made_up_identities_cannot_grow_the_tables_without_bound() -> None:
    bans = Bans(PeerPolicyConfig(max_faults=1, fault_window=10, ban_seconds=60), Clock())
    for i in range(MAX_TRACKED + 50):
        bans.fault(i.to_bytes(32, "big"))
    assert len(bans._until) <= MAX_TRACKED and len(bans._faults) <= MAX_TRACKED
