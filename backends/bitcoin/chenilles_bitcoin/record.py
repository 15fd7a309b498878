"""What a participant must remember about a channel beyond its signed states.

Everything the authority learns and the watcher later needs to act alone on-chain: the
peer's revocation secrets (a BOLT 3 shachain store: 49 entries at most, whatever the
number of updates), the HTLC sets of past versions (a revoked commitment's HTLC outputs can
only be recognised and swept with their payment hashes and expiries), the peer's recent
per-commitment points, and the state we put on-chain.

The node persists it next to its channel snapshots, in the same transaction, after every
event that touched the channel (``BitcoinBackend.export_record``). So that this stays cheap
however long the channel lives, the record is kept in *parts* and only the parts that
changed since the last export are handed out:

* ``head``: the shachain store, the peer's recent points, the registered state and the
  final version. Bounded (a few KiB), rewritten on every update.
* ``htlcs/<version>``: every HTLC of that version's commitments, written when the version
  is first signed or verified, and again only if another attempt at the same version
  brings HTLCs it did not hold (a proposal the peer refused, kept signed by it; the losing
  side of two proposals crossing): each of those commitments can be broadcast, and is
  recognised and punished only with its HTLCs. Nothing is ever removed from it, like a
  Lightning node's revocation log.
* ``policy``: the fee policy (feerate, dust limit, fee cap, block interval) the channel was
  opened with, written once. Both sides build every commitment and HTLC transaction from
  it, so it is the channel's for life: an operator who changes the backend's options
  changes them for channels opened afterwards. (A record written before it was kept has
  none: that channel is built with the options of each start, as it was then, and nothing
  is guessed into its record.)
* ``funding``: the funder's signed funding transaction, built before the channel exists
  and written with the channel: a node killed after marking its deposit as sent but before
  it left sends this same transaction again after the restart (the channel id commits to
  its txid, so no other would do).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass, field

import msgspec

from chenilles_hub.core import MAX_HTLCS, ChannelState, Htlc, SignedState
from chenilles_hub.core.errors import ChannelError

from .bolt3 import START_INDEX, RevocationStore, ShachainError, UnknownRevocationSecretError
from .commitments import ChannelPolicy

_KEEP_POINTS = 4
#: Most distinct HTLCs a record keeps for one version, over every attempt at it that was
#: signed or verified. A peer refusing attempt after attempt cannot grow it past this:
#: nothing more is signed or accepted at that version (``RecordFull``), the channel waits
#: and its operator is told why.
MAX_HTLCS_PER_VERSION = 8 * MAX_HTLCS
HEAD = "head"
HTLCS_PREFIX = "htlcs/"
FUNDING = "funding"
POLICY = "policy"


class _Head(msgspec.Struct, frozen=True):
    me: int
    secrets: list[tuple[int, bytes]]
    peer_points: dict[int, bytes]
    registered: SignedState | None
    final_version: int | None


class _Persisted(msgspec.Struct, frozen=True):
    me: int
    secrets: list[tuple[int, bytes]]
    htlcs: dict[int, tuple[Htlc, ...]]
    peer_points: dict[int, bytes]
    registered: SignedState | None
    final_version: int | None
    policy: ChannelPolicy | None = None


_htlcs_decoder = msgspec.msgpack.Decoder(tuple[Htlc, ...])
_head_decoder = msgspec.msgpack.Decoder(_Head)
_policy_decoder = msgspec.msgpack.Decoder(ChannelPolicy)


class RecordError(ValueError):
    """A stored record part that does not decode (a corrupted store, or another program's)."""


class RecordFull(ChannelError):
    """Another attempt at this version would bring the HTLCs remembered for it past
    ``MAX_HTLCS_PER_VERSION``: it is neither signed nor accepted."""

    code = "record_full"


@dataclass
class ChannelRecord:
    me: int
    store: RevocationStore = field(default_factory=RevocationStore)
    htlcs: dict[int, tuple[Htlc, ...]] = field(default_factory=dict)
    peer_points: dict[int, bytes] = field(default_factory=dict)
    registered: SignedState | None = None
    final_version: int | None = None
    #: The funder's signed funding transaction, until the channel is funded (raw bytes).
    funding_tx: bytes | None = None
    #: The fee policy the channel was opened with (``None`` until noted).
    policy: ChannelPolicy | None = None
    #: Parts changed since the last :meth:`export_changes` (a new record: its head).
    dirty: set[str] = field(default_factory=lambda: {HEAD})

    def note_state(self, state: ChannelState) -> None:
        """Remember what is needed to recognise this version's commitments on-chain: called
        before our signature on it leaves, and when we verify the peer's. Its HTLCs join
        those of every other attempt at the same version (``htlcs/<version>``). Raises
        ``RecordFull``, remembering nothing, if that would pass ``MAX_HTLCS_PER_VERSION``."""
        self._add_htlcs(state, bounded=True)
        self._note_final(state)

    def _add_htlcs(self, state: ChannelState, *, bounded: bool) -> None:
        if not state.htlcs:
            return
        known = self.htlcs.get(state.version, ())
        new = tuple(h for h in state.htlcs if h not in known)
        if not new:
            return
        if bounded and len(known) + len(new) > MAX_HTLCS_PER_VERSION:
            raise RecordFull(
                f"version {state.version} has had {len(known)} HTLCs over its attempts; "
                f"{len(new)} more would pass the {MAX_HTLCS_PER_VERSION} remembered per "
                "version: the peer keeps refusing this channel's proposals, close it"
            )
        self.htlcs[state.version] = known + new
        self.dirty.add(f"{HTLCS_PREFIX}{state.version}")

    def _note_final(self, state: ChannelState) -> None:
        if state.final and self.final_version != state.version:
            self.final_version = state.version
            self.dirty.add(HEAD)

    def note_funding_tx(self, raw: bytes) -> None:
        """Keep the funding transaction to (re)send: written with the channel."""
        if self.funding_tx != raw:
            self.funding_tx = raw
            self.dirty.add(FUNDING)

    def note_policy(self, policy: ChannelPolicy) -> None:
        """The channel's fee policy, for life: written with the channel."""
        if self.policy != policy:
            self.policy = policy
            self.dirty.add(POLICY)

    def note_peer_points(self, version: int, point: bytes, next_point: bytes) -> None:
        if self.peer_points.get(version) == point and self.peer_points.get(version + 1) == (
            next_point
        ):
            return
        self.peer_points[version] = point
        self.peer_points[version + 1] = next_point
        for old in sorted(self.peer_points)[:-_KEEP_POINTS]:
            del self.peer_points[old]
        self.dirty.add(HEAD)

    def note_registered(self, signed: SignedState) -> None:
        """The state we put on-chain (its HTLCs identify the commitment's outputs)."""
        self.registered = signed
        self.dirty.add(HEAD)
        self._add_htlcs(signed.state, bounded=False)  # signed or verified: known already
        self._note_final(signed.state)

    def add_revocation(self, version: int, secret: bytes) -> None:
        """Store the peer's secret for ``version``; idempotent; raises ShachainError if bogus."""
        index = START_INDEX - version
        if index > self.store.next_index:  # already received: must be the same secret
            if self.store.get(index) != secret:
                raise ShachainError(f"a different secret for version {version} was received")
            return
        self.store.insert(secret, index)
        self.dirty.add(HEAD)

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

    # --- persisting in parts ------------------------------------------------------------------

    def export_changes(self) -> dict[str, bytes]:
        """The parts changed since the last call (empty if none), and forget they changed:
        the caller writes them in the checkpoint of the event that changed them."""
        parts: dict[str, bytes] = {}
        for name in self.dirty:
            if name == HEAD:
                parts[name] = msgspec.msgpack.encode(
                    _Head(
                        self.me,
                        self.store.to_entries(),
                        self.peer_points,
                        self.registered,
                        self.final_version,
                    )
                )
            elif name == FUNDING:
                parts[name] = self.funding_tx or b""
            elif name == POLICY:
                parts[name] = msgspec.msgpack.encode(self.policy)
            else:
                version = int(name.removeprefix(HTLCS_PREFIX))
                parts[name] = msgspec.msgpack.encode(self.htlcs.get(version, ()))
        self.dirty.clear()
        return parts

    def load_parts(self, parts: Mapping[str, bytes]) -> None:
        """Replace what this record holds with stored parts (a restart). In place: the
        channel's authority already holds this object."""
        try:
            head = _head_decoder.decode(parts[HEAD]) if parts.get(HEAD) else None
            htlcs = {
                int(name.removeprefix(HTLCS_PREFIX)): _htlcs_decoder.decode(data)
                for name, data in parts.items()
                if name.startswith(HTLCS_PREFIX) and data
            }
            funding = parts.get(FUNDING) or None
            policy = _policy_decoder.decode(parts[POLICY]) if parts.get(POLICY) else None
            if policy is not None and (policy.block_interval <= 0 or min(astuple(policy)) < 0):
                raise ValueError(f"a fee policy no channel can have: {policy}")
            store = RevocationStore.from_entries(head.secrets) if head else RevocationStore()
        except (msgspec.DecodeError, ValueError, ShachainError) as exc:
            raise RecordError(f"a stored channel record does not decode: {exc}") from exc
        if head is not None and head.me != self.me:
            raise RecordError(f"the stored record is participant {head.me}'s, not {self.me}'s")
        self.store = store
        self.htlcs = htlcs
        self.peer_points = dict(head.peer_points) if head else {}
        self.registered = head.registered if head else None
        self.final_version = head.final_version if head else None
        self.funding_tx = funding
        self.policy = policy
        self.dirty.clear()

    # --- the whole record as one value (tools, tests) ------------------------------------------

    def export(self) -> bytes:
        return msgspec.msgpack.encode(
            _Persisted(
                self.me,
                self.store.to_entries(),
                self.htlcs,
                self.peer_points,
                self.registered,
                self.final_version,
                self.policy,
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
            policy=p.policy,
            dirty=set(),
        )


__all__ = ["MAX_HTLCS_PER_VERSION", "ChannelRecord", "RecordError", "RecordFull"]
