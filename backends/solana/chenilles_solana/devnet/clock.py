"""Slots that advance with wall time, their unix times, and their blockhashes.

A real cluster makes a block every ~400 ms and its Clock sysvar's ``unix_timestamp`` tracks
wall time. The devnet does the same without producing anything: the current slot is a pure
function of the wall clock (``slot = start_slot + (now - start) // slot_ms``), so it keeps
moving while nobody sends a transaction, and it jumps ahead over the time the server was
down (the chain's time is the world's time, as the hub's deadlines assume).

Changing ``--slot-ms`` across restarts starts a new *segment* at the slot reached so far;
the segments are in the journal, so the time of every past slot stays what it was.

``chenilles devnet advance`` moves the chain's clock ahead of the wall clock (a challenge
period need not be waited out): a *warp* starts a segment as many slots ahead as the seconds
skipped, whose unix times carry the skip (``skew_ms``) from then on. A real cluster has no
such thing; it is the devnet's stand-in for waiting.

Blockhashes are ``sha256(seed | slot)``: nothing to store, the same after a restart, and
each slot has its own, so a blockhash's age in slots is known and it expires after
``MAX_PROCESSING_AGE`` (150) slots as on Solana.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from solders.hash import Hash

#: Slots a blockhash stays usable for (solana_clock::MAX_PROCESSING_AGE).
MAX_PROCESSING_AGE = 150
#: Preflight simulations leave room for forwarding to the leader
#: (solana_clock::MAX_TRANSACTION_FORWARDING_DELAY), as Solana's RPC does.
MAX_TRANSACTION_FORWARDING_DELAY = 6


@dataclass(frozen=True)
class Segment:
    """From ``start_ms`` (wall clock, ms) on, slot ``start_slot`` and one slot per ``slot_ms``;
    the chain's unix time runs ``skew_ms`` ahead of the wall clock (the warps so far)."""

    start_slot: int
    start_ms: int
    slot_ms: int
    skew_ms: int = 0


class SlotClock:
    """The slot at a wall-clock instant, and the unix time of a slot."""

    def __init__(self, segments: list[Segment]) -> None:
        if not segments:
            raise ValueError("a slot clock needs at least its genesis segment")
        for seg in segments:
            if seg.slot_ms <= 0:
                raise ValueError(f"slot time must be positive, not {seg.slot_ms} ms")
        self.segments = list(segments)
        self._floor = 0  # never report a slot below one already reported (wall clock steps)

    @property
    def slot_ms(self) -> int:
        return self.segments[-1].slot_ms

    def slot_at(self, now_ms: int) -> int:
        seg = self.segments[-1]
        slot = seg.start_slot + max(0, now_ms - seg.start_ms) // seg.slot_ms
        self._floor = max(self._floor, slot)
        return self._floor

    def raise_floor(self, slot: int) -> None:
        """After a replay: the chain never goes back below a slot that holds a transaction."""
        self._floor = max(self._floor, slot)

    def unix_time(self, slot: int) -> int:
        """Seconds since the epoch at the start of ``slot`` (the Clock sysvar's value)."""
        seg = self.segments[0]
        for candidate in self.segments:
            if candidate.start_slot <= slot:
                seg = candidate
        return (seg.start_ms + seg.skew_ms + (slot - seg.start_slot) * seg.slot_ms) // 1000

    def restart(self, now_ms: int, slot_ms: int) -> Segment | None:
        """A new segment if the slot time changed (the caller journals it), else None."""
        if slot_ms <= 0:
            raise ValueError(f"slot time must be positive, not {slot_ms} ms")
        if slot_ms == self.slot_ms:
            return None
        seg = Segment(self.slot_at(now_ms) + 1, now_ms, slot_ms, self.segments[-1].skew_ms)
        self.segments.append(seg)
        return seg

    def warp(self, now_ms: int, seconds: int) -> Segment:
        """Jump ``seconds`` ahead: the slots those seconds hold, and their unix time. The caller
        journals the new segment, so a restart replays the jump."""
        if seconds <= 0:
            raise ValueError(f"the clock only moves forward, not by {seconds} s")
        last = self.segments[-1]
        skipped = -(-seconds * 1000 // last.slot_ms)  # ceil: at least the time asked for
        seg = Segment(
            self.slot_at(now_ms) + skipped, now_ms, last.slot_ms, last.skew_ms + seconds * 1000
        )
        self.segments.append(seg)
        self._floor = max(self._floor, seg.start_slot)
        return seg


class Blockhashes:
    """One blockhash per slot, derived from the datadir's secret-free random seed."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self._cache: dict[int, Hash] = {}
        self._slots: dict[Hash, int] = {}

    def of(self, slot: int) -> Hash:
        self._prune()
        return self._hash(slot)

    def _hash(self, slot: int) -> Hash:
        h = self._cache.get(slot)
        if h is None:
            h = Hash(hashlib.sha256(self.seed + slot.to_bytes(8, "little")).digest())
            self._cache[slot] = h
            self._slots[h] = slot
        return h

    def _prune(self) -> None:
        if len(self._cache) > 4 * MAX_PROCESSING_AGE:  # only recent slots are looked up
            self._cache.clear()
            self._slots.clear()

    def age(self, blockhash: Hash, current: int, max_age: int = MAX_PROCESSING_AGE) -> int | None:
        """How many slots old ``blockhash`` is, if it is one of the last ``max_age + 1``."""
        self._prune()
        for recent in range(current, max(-1, current - max_age - 1), -1):
            self._hash(recent)
        slot = self._slots.get(blockhash)
        if slot is None or not current - max_age <= slot <= current:
            return None
        return current - slot
