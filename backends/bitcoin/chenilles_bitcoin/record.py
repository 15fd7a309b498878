"""What a participant must remember about a channel beyond its signed states.

Everything the authority learns and the watcher later needs to act alone on-chain: the
peer's revocation secrets (a BOLT 3 shachain store: 49 entries at most, whatever the
number of updates), the HTLC sets of past versions (a revoked commitment's HTLC outputs can
only be recognised and swept with their payment hashes and expiries), the peer's recent
per-commitment points, and the state we put on-chain. ``export``/``restore`` let the node
persist it next to its channel snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from chenilles_hub.core import ChannelState, Htlc, SignedState

from .bolt3 import START_INDEX, RevocationStore, ShachainError, UnknownRevocationSecretError

_KEEP_POINTS = 4


class _Persisted(msgspec.Struct, frozen=True):
    me: int
    secrets: list[tuple[int, bytes]]
    htlcs: dict[int, tuple[Htlc, ...]]
    peer_points: dict[int, bytes]
    registered: SignedState | None
    final_version: int | None


@dataclass
class ChannelRecord:
    me: int
    store: RevocationStore = field(default_factory=RevocationStore)
    htlcs: dict[int, tuple[Htlc, ...]] = field(default_factory=dict)
    peer_points: dict[int, bytes] = field(default_factory=dict)
    registered: SignedState | None = None
    final_version: int | None = None

    def note_state(self, state: ChannelState) -> None:
        """Remember what is needed to recognise this version's commitments on-chain."""
        if state.htlcs:
            self.htlcs[state.version] = state.htlcs
        if state.final:
            self.final_version = state.version

    def note_peer_points(self, version: int, point: bytes, next_point: bytes) -> None:
        self.peer_points[version] = point
        self.peer_points[version + 1] = next_point
        for old in sorted(self.peer_points)[:-_KEEP_POINTS]:
            del self.peer_points[old]

    def add_revocation(self, version: int, secret: bytes) -> None:
        """Store the peer's secret for ``version``; idempotent; raises ShachainError if bogus."""
        index = START_INDEX - version
        if index > self.store.next_index:  # already received: must be the same secret
            if self.store.get(index) != secret:
                raise ShachainError(f"a different secret for version {version} was received")
            return
        self.store.insert(secret, index)

    def revocation_secret(self, version: int) -> bytes | None:
        try:
            return self.store.get_commitment_secret(version)
        except UnknownRevocationSecretError:
            return None

    def known_payment_hashes(self) -> set[bytes]:
        hashes = {h.payment_hash for hs in self.htlcs.values() for h in hs}
        if self.registered is not None:
            hashes |= {h.payment_hash for h in self.registered.state.htlcs}
        return hashes

    def export(self) -> bytes:
        return msgspec.msgpack.encode(
            _Persisted(
                self.me,
                self.store.to_entries(),
                self.htlcs,
                self.peer_points,
                self.registered,
                self.final_version,
            )
        )

    @classmethod
    def restore(cls, data: bytes) -> ChannelRecord:
        p = msgspec.msgpack.decode(data, type=_Persisted)
        return cls(
            p.me,
            RevocationStore.from_entries(p.secrets),
            dict(p.htlcs),
            dict(p.peer_points),
            p.registered,
            p.final_version,
        )


__all__ = ["ChannelRecord"]
