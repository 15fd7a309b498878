"""The watcher's duties, as data, and the pure logic that turns chain events and the
passing of each chain's time into on-chain actions.

A hub is safe only if it acts on-chain in time when a peer goes silent or cheats:

* a peer registers a stale state -> answer with our latest (refute / punish);
* we know the preimage of an incoming HTLC but the peer will not settle it off-chain ->
  before its expiry, register the latest state and claim the HTLC on-chain;
* an outgoing HTLC is past its expiry and the peer will not fail it off-chain -> register
  and let the ledger refund it;
* a preimage shows up on any chain -> settle the matching upstream HTLC.

Time is each chain's own: deadlines (a dispute's timeout, an HTLC's expiry) are judged by
the clock of the chain that will judge the transaction, as its backend reports it
(:class:`ChainClock`: the time the *next* block will carry, and the tip's height), never by
the node's wall clock. ``tick`` takes one clock per channel, so a hub with channels on
several chains acts on each as soon as that chain has reached the deadline, and an action
the ledger refused is tried again on the chain's next block (``retry_later``), not after a
fixed delay.

The chain may reorganize: a conclusion counts as final only once it is ``depth`` blocks
deep (the duties of a concluded channel are kept, idle, until then), and ``on_reorged``
re-arms every action of a channel whose on-chain history was rewritten, so a refutation or
a conclusion that a reorg took away is sent again.

Duties are plain msgspec values so the node can persist them and resume after a restart;
this module never touches a ledger itself (sans-IO: events in, actions out).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

import msgspec

from .model import Bytes32


class GuardChannel(msgspec.Struct, frozen=True, tag="guard"):
    """Refute any registration of a version older than ours, for the channel's whole life."""

    channel_id: Bytes32


class ClaimIncoming(msgspec.Struct, frozen=True, tag="claim_incoming"):
    """We are the payee of this HTLC and know its preimage: claim on-chain by ``deadline``
    (the HTLC's expiry minus the time the chain needs to confirm the claim)."""

    channel_id: Bytes32
    htlc_id: int
    preimage: Bytes32
    deadline: int


class RefundOutgoing(msgspec.Struct, frozen=True, tag="refund_outgoing"):
    """We are the payer: if the HTLC is still locked at ``expiry``, go on-chain for a refund."""

    channel_id: Bytes32
    htlc_id: int
    expiry: int


HtlcDuty = ClaimIncoming | RefundOutgoing
Duty = GuardChannel | HtlcDuty
#: (channel id, HTLC id): an HTLC duty's key (a channel's HTLC ids are unique).
DutyKey = tuple[bytes, int]


class ChainClock(msgspec.Struct, frozen=True):
    """One chain's clock, as its backend reports it.

    ``time``: unix seconds as the chain will judge a transaction sent now (the timestamp,
    height-clock time or Clock sysvar time of the block that would include it). ``height``:
    the tip's height (block number, slot), ``-1`` while unknown."""

    time: int
    height: int = -1


# --- actions ------------------------------------------------------------------------------


class Refute(msgspec.Struct, frozen=True):
    channel_id: bytes
    registered_version: int


class ForceClose(msgspec.Struct, frozen=True):
    channel_id: bytes
    reason: str


class ClaimOnChain(msgspec.Struct, frozen=True):
    channel_id: bytes
    htlc_id: int
    preimage: bytes


class RefundOnChain(msgspec.Struct, frozen=True):
    channel_id: bytes
    htlc_id: int


class ConcludeAndWithdraw(msgspec.Struct, frozen=True):
    channel_id: bytes


class PreimageLearned(msgspec.Struct, frozen=True):
    payment_hash: bytes
    preimage: bytes


Action = Refute | ForceClose | ClaimOnChain | RefundOnChain | ConcludeAndWithdraw | PreimageLearned

#: (kind, channel, version or HTLC id): what ``fired`` and ``waits`` are keyed by.
Key = tuple[str, bytes, int]


class DisputeStatus(msgspec.Struct, frozen=True):
    """What the chain says of a channel: the registered ``version`` and the chain time
    ``timeout`` its challenge period ends at (``version`` -1: concluded without a
    registration, a cooperative close). ``stale``: the registered version is older than
    ours, and ``refuted_height`` the chain height at which we last answered it (the answer
    is sent again on every later block until the chain reports it: a refutation lost in a
    reorg, even one the node never saw, is never the last word). ``final_height``: the
    chain height from which the conclusion is final."""

    version: int
    timeout: int
    concluded: bool = False
    stale: bool = False
    final_height: int | None = None
    refuted_height: int | None = None


class WatcherState(msgspec.Struct, frozen=True):
    """What the watcher knows of the chains (disputes, actions taken and refused): small,
    bounded by the channels in dispute, persisted by the node with every change.

    ``duties``: read from states written before the guards and the HTLC duties were kept
    apart (:class:`Watcher`); always empty now."""

    duties: tuple[Duty, ...] = ()
    disputes: tuple[tuple[bytes, DisputeStatus], ...] = ()
    fired: tuple[Key, ...] = ()  # actions already taken (refused ones are in ``waits``)
    #: Actions the ledger refused, with the chain time before which they are not retried.
    waits: tuple[tuple[Key, int], ...] = ()


class WatcherChanges(NamedTuple):
    """What changed since the driver last asked: per guarded channel, guarded or not; per
    HTLC duty, the duty now or ``None`` (gone). What a checkpoint writes as records."""

    guards: dict[bytes, bool]
    duties: dict[DutyKey, HtlcDuty | None]


def action_key(action: Action, disputes: Mapping[bytes, DisputeStatus]) -> Key | None:
    """The key an action is fired under (``None``: taken at once, never retried)."""
    if isinstance(action, Refute):
        return ("refute", action.channel_id, action.registered_version)
    if isinstance(action, ConcludeAndWithdraw):
        status = disputes.get(action.channel_id)
        if status is None:
            return None
        return ("final" if status.concluded else "conclude", action.channel_id, status.version)
    if isinstance(action, ClaimOnChain):
        return ("claim", action.channel_id, action.htlc_id)
    if isinstance(action, RefundOnChain):
        return ("refund", action.channel_id, action.htlc_id)
    return None


class Watcher:
    """Pure: every method returns the actions to take and updates ``state``.

    Two kinds of duty are kept apart from ``state`` (the disputes and actions, small):

    * the channels it guards (:class:`GuardChannel`: one per channel, for the channel's
      whole life), a set;
    * the HTLC duties (:class:`RefundOutgoing` per HTLC we offered, :class:`ClaimIncoming`
      per HTLC paid to us whose preimage we know), by channel and HTLC id.

    A hub holds a guard per channel and a duty per HTLC in flight, and anyone can make it
    hold thousands of HTLCs (pay through it and never settle): kept in ``state``, every
    write of that state carried them all (0.8 MB at 10,000 channels), and each added or
    resolved HTLC copied them. The driver persists guards and duties one by one from
    :meth:`take_changes`, and undoes a failed event's with :meth:`mark` / :meth:`undo`.
    """

    def __init__(
        self,
        state: WatcherState | None = None,
        guarded: Iterable[bytes] = (),
        duties: Iterable[HtlcDuty] = (),
    ) -> None:
        state = state or WatcherState()
        self.guarded: set[bytes] = set(guarded)
        #: channel id -> HTLC id -> duty.
        self._duties: dict[bytes, dict[int, HtlcDuty]] = {}
        #: channel id -> a moment no later than any of its HTLC duties' (``moment``): a
        #: tick skips a channel whose clock is before it, so a hub's tick costs its
        #: channels with duties, not its duties (32 per channel). Lowered with every duty
        #: added or put back; raised to the true earliest only when the channel is visited.
        self._earliest: dict[bytes, int] = {}
        for duty in duties:
            self._duties.setdefault(duty.channel_id, {})[duty.htlc_id] = duty
            self._lower(duty)
        #: One entry per change since :meth:`take_changes`, with what it replaced:
        #: (channel id, None, guarded before) or (channel id, HTLC id, duty before).
        self._log: list[tuple[bytes, int | None, bool | HtlcDuty | None]] = []
        # A state written before guards and duties were kept apart holds them among its
        # duties: moved out, and handed to the next checkpoint as changes.
        for old in state.duties:
            self.add(old)
        if state.duties:
            state = msgspec.structs.replace(state, duties=())
        self.state = state

    # --- duties ------------------------------------------------------------------------

    def add(self, duty: Duty) -> None:
        if isinstance(duty, GuardChannel):
            self._guard(duty.channel_id, True)
        else:
            self._put(duty.channel_id, duty.htlc_id, duty)

    def _guard(self, channel_id: bytes, on: bool) -> None:
        before = channel_id in self.guarded
        if before == on:
            return
        self._log.append((channel_id, None, before))
        if on:
            self.guarded.add(channel_id)
        else:
            self.guarded.discard(channel_id)

    def _put(self, channel_id: bytes, htlc_id: int, duty: HtlcDuty | None) -> None:
        """Set (``None``: drop) the duty of one HTLC, logged with the one it replaces."""
        of_channel = self._duties.get(channel_id)
        before = of_channel.get(htlc_id) if of_channel is not None else None
        if before == duty:
            return
        self._log.append((channel_id, htlc_id, before))
        if duty is not None:
            if of_channel is None:
                of_channel = self._duties[channel_id] = {}
            of_channel[htlc_id] = duty
            self._lower(duty)
        else:
            assert of_channel is not None
            del of_channel[htlc_id]
            if not of_channel:
                del self._duties[channel_id]
                del self._earliest[channel_id]

    def _lower(self, duty: HtlcDuty) -> None:
        """Keep ``_earliest`` of ``duty``'s channel no later than ``duty``'s moment."""
        at, channel_id = moment(duty), duty.channel_id
        if at < self._earliest.get(channel_id, at + 1):
            self._earliest[channel_id] = at

    def take_changes(self) -> WatcherChanges:
        """The guards and HTLC duties that changed since the last call, as they are now:
        what the driver writes with its checkpoint."""
        changes = WatcherChanges({}, {})
        for channel_id, htlc_id, _ in self._log:
            if htlc_id is None:
                changes.guards[channel_id] = channel_id in self.guarded
            else:
                changes.duties[(channel_id, htlc_id)] = self._duties.get(channel_id, {}).get(
                    htlc_id
                )
        self._log.clear()
        return changes

    def mark(self) -> int:
        """Where guards and duties stand now, for :meth:`undo` (a driver's savepoint)."""
        return len(self._log)

    def undo(self, mark: int) -> None:
        """Put guards and duties back as they were at ``mark`` (an event that failed). A
        mark is good until the next :meth:`take_changes` (a savepoint never spans one)."""
        assert mark <= len(self._log), "a mark from before the last take_changes"
        for channel_id, htlc_id, before in reversed(self._log[mark:]):
            if htlc_id is None:
                (self.guarded.add if before else self.guarded.discard)(channel_id)
                continue
            assert not isinstance(before, bool)
            if before is not None:
                self._duties.setdefault(channel_id, {})[htlc_id] = before
                self._lower(before)
            else:
                of_channel = self._duties[channel_id]
                del of_channel[htlc_id]
                if not of_channel:
                    del self._duties[channel_id]
                    del self._earliest[channel_id]
        del self._log[mark:]

    def htlc_duties(self) -> Iterator[HtlcDuty]:
        """Every HTLC duty, channel by channel."""
        for of_channel in self._duties.values():
            yield from of_channel.values()

    def channels_with_duties(self) -> Iterable[bytes]:
        """The channels with at least one HTLC duty (whose chain's clock the node needs)."""
        return self._duties.keys()

    def resolved(self, channel_id: bytes, htlc_id: int) -> None:
        """The HTLC was settled or failed off-chain: nothing left to enforce."""
        self._put(channel_id, htlc_id, None)

        def mine(key: Key) -> bool:
            return key[0] in ("claim", "refund") and key[1:] == (channel_id, htlc_id)

        # Actions are taken on-chain, rarely: most HTLCs are resolved with none.
        if any(mine(f) for f in self.state.fired) or any(mine(w[0]) for w in self.state.waits):
            self.state = msgspec.structs.replace(
                self.state,
                fired=tuple(f for f in self.state.fired if not mine(f)),
                waits=tuple(w for w in self.state.waits if not mine(w[0])),
            )

    def duties_of(self, channel_id: bytes) -> tuple[Duty, ...]:
        guard: tuple[Duty, ...] = (GuardChannel(channel_id),) if channel_id in self.guarded else ()
        return guard + tuple(self._duties.get(channel_id, {}).values())

    def dispute(self, channel_id: bytes) -> DisputeStatus | None:
        return dict(self.state.disputes).get(channel_id)

    # --- events ------------------------------------------------------------------------

    def on_registered(
        self,
        channel_id: bytes,
        version: int,
        timeout: int,
        our_latest: int | None,
        height: int = -1,
    ) -> list[Action]:
        """A state of ``channel_id`` was registered on-chain (reported again after a reorg
        if it is still there); ``height``: the chain's tip as far as the node knows. A
        stale one is refuted at once, and again on each later block of the chain while it
        stays the registered one (see :meth:`tick`)."""
        stale = channel_id in self.guarded and our_latest is not None and version < our_latest
        disputes = dict(self.state.disputes)
        before = disputes.get(channel_id)
        answered = (
            before is not None
            and before.version == version
            and before.stale
            and before.refuted_height is not None
        )
        status = DisputeStatus(version, timeout, stale=stale)
        actions: list[Action] = []
        if answered:
            assert before is not None
            status = msgspec.structs.replace(status, refuted_height=before.refuted_height)
        elif stale:
            status = msgspec.structs.replace(status, refuted_height=height)
            actions.append(Refute(channel_id, version))
        disputes[channel_id] = status
        self._set(disputes=disputes)
        return actions

    def on_concluded(self, channel_id: bytes, final_height: int) -> None:
        """The chain concluded the channel (its dispute, or a cooperative close). Its
        duties stay, idle, until the chain's height reaches ``final_height`` (the
        conclusion is then ``depth`` blocks deep): a reorg before that re-arms them."""
        disputes = dict(self.state.disputes)
        status = disputes.get(channel_id) or DisputeStatus(-1, 0)
        disputes[channel_id] = msgspec.structs.replace(
            status, concluded=True, stale=False, final_height=final_height
        )
        # a new conclusion gets its own check at depth
        fired = {f for f in self.state.fired if f[:2] != ("final", channel_id)}
        self._set(disputes=disputes, fired=fired)

    def on_reorged(self, channel_ids: Iterable[bytes]) -> list[bytes]:
        """The chain of these channels reorganized: every action taken for them may be gone.
        Their fired and waiting actions are forgotten (so each is taken again if still due),
        and a conclusion that is not final yet is undone: ``tick`` concludes again (a
        cooperative close is sent again) unless the chain reports the conclusion anew. The
        chain then reports what its new branch holds. Returns the channels whose
        conclusion was undone."""
        wanted = set(channel_ids)
        disputes = dict(self.state.disputes)
        undone: list[bytes] = []
        for channel_id in wanted & set(disputes):
            status = disputes[channel_id]
            if status.concluded:
                undone.append(channel_id)
            disputes[channel_id] = msgspec.structs.replace(
                status, concluded=False, final_height=None, refuted_height=None
            )
        self._set(
            disputes=disputes,
            fired={f for f in self.state.fired if f[1] not in wanted},
            waits={k: t for k, t in self.state.waits if k[1] not in wanted},
        )
        return undone

    def on_preimage(self, payment_hash: bytes, preimage: bytes) -> list[Action]:
        return [PreimageLearned(payment_hash, preimage)]

    def tick(self, clocks: Mapping[bytes, ChainClock]) -> list[Action]:
        """Time passed on the chains: act on every duty whose moment has come on its own
        chain's clock (``clocks``: per channel; a channel without one is not acted on,
        its chain's time being unknown), once. A conclusion that reached its depth is
        checked once more (``ConcludeAndWithdraw`` again: a backend sends nothing when the
        chain has the conclusion, and the node then retires the channel): ours
        may have been replaced before the node ever saw its block."""
        actions: list[Action] = []
        fired = set(self.state.fired)
        waits = dict(self.state.waits)
        disputes = dict(self.state.disputes)

        def due(key: Key, clock: ChainClock) -> bool:
            if key in fired or clock.time < waits.get(key, clock.time):
                return False
            fired.add(key)
            waits.pop(key, None)
            return True

        earliest = self._earliest
        for channel_id, of_channel in self._duties.items():
            clock = clocks.get(channel_id)
            if clock is None or clock.time < earliest[channel_id]:
                continue  # its chain's time is unknown, or none of its moments has come
            status = disputes.get(channel_id)
            if status is not None and status.concluded:
                continue
            first = None
            for duty in of_channel.values():
                at = moment(duty)
                first = at if first is None or at < first else first
                if clock.time < at:
                    continue
                if isinstance(duty, ClaimIncoming):
                    if due(("claim", *duty_id(duty)), clock):
                        if status is None:
                            actions.append(ForceClose(channel_id, "peer did not settle"))
                        actions.append(ClaimOnChain(channel_id, duty.htlc_id, duty.preimage))
                elif due(("refund", *duty_id(duty)), clock):
                    if status is None:
                        actions.append(ForceClose(channel_id, "peer did not fail"))
                    actions.append(RefundOnChain(channel_id, duty.htlc_id))
            assert first is not None  # a channel is in ``_duties`` only with a duty
            earliest[channel_id] = first
        for channel_id, status in disputes.items():
            clock = clocks.get(channel_id)
            if clock is None:
                continue
            if status.concluded:
                deep = status.final_height is not None and clock.height >= status.final_height
                if deep and due(("final", channel_id, status.version), clock):
                    actions.append(ConcludeAndWithdraw(channel_id))
                continue
            if clock.time < status.timeout:
                if status.stale and self._refute_due(status, clock, waits, channel_id):
                    disputes[channel_id] = msgspec.structs.replace(
                        status, refuted_height=clock.height
                    )
                    actions.append(Refute(channel_id, status.version))
            elif due(("conclude", channel_id, status.version), clock):
                actions.append(ConcludeAndWithdraw(channel_id))
        self._set(disputes=disputes, fired=fired, waits=waits)
        return actions

    def retire(self, channel_id: bytes) -> None:
        """The chain's conclusion of the channel is final (deep enough, and still there when
        checked): forget everything kept for it, so what is persisted stays bounded by
        what is live."""
        self._guard(channel_id, False)
        for htlc_id in list(self._duties.get(channel_id, ())):
            self._put(channel_id, htlc_id, None)
        self._set(
            disputes={c: s for c, s in self.state.disputes if c != channel_id},
            fired={f for f in self.state.fired if f[1] != channel_id},
            waits={k: t for k, t in self.state.waits if k[1] != channel_id},
        )

    @staticmethod
    def _refute_due(
        status: DisputeStatus, clock: ChainClock, waits: dict[Key, int], channel_id: bytes
    ) -> bool:
        """A stale registration is answered on each block after the one we last answered
        it in, until the chain reports the newer state (a backend's ``challenge`` sends
        nothing when the chain already has it)."""
        key: Key = ("refute", channel_id, status.version)
        if clock.time < waits.get(key, clock.time):
            return False
        if status.refuted_height is not None and clock.height <= status.refuted_height:
            return False
        waits.pop(key, None)
        return True

    def retry_later(self, action: Action, not_before: int) -> None:
        """The ledger refused ``action`` for now (the challenge period is not over in the
        block it was judged in, an HTLC neither revealed nor expired, the chain was
        unreachable): take it again once its chain's clock reaches ``not_before`` (the
        next block), if it is still due then."""
        key = action_key(action, dict(self.state.disputes))
        if key is None:
            return
        waits = dict(self.state.waits)
        waits[key] = not_before
        self._set(fired={f for f in self.state.fired if f != key}, waits=waits)

    # --- internals -----------------------------------------------------------------------

    def _set(
        self,
        *,
        disputes: Mapping[bytes, DisputeStatus] | None = None,
        fired: Iterable[Key] | None = None,
        waits: Mapping[Key, int] | None = None,
    ) -> None:
        """Replace parts of the state, in a canonical order (the state is persisted: the
        same knowledge always encodes to the same bytes)."""
        state = self.state
        if disputes is not None:
            state = msgspec.structs.replace(state, disputes=tuple(disputes.items()))
        if fired is not None:
            state = msgspec.structs.replace(state, fired=tuple(sorted(fired)))
        if waits is not None:
            state = msgspec.structs.replace(state, waits=tuple(sorted(waits.items())))
        self.state = state


def duty_id(duty: ClaimIncoming | RefundOutgoing) -> tuple[bytes, int]:
    return (duty.channel_id, duty.htlc_id)


def moment(duty: HtlcDuty) -> int:
    """When ``duty`` is to be acted on, in its chain's time: a claim's deadline, a
    refund's expiry."""
    return duty.deadline if isinstance(duty, ClaimIncoming) else duty.expiry
