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

from collections.abc import Iterable, Mapping

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


Duty = GuardChannel | ClaimIncoming | RefundOutgoing


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
    """Everything the watcher knows; persisted by the node after every change."""

    duties: tuple[Duty, ...] = ()
    disputes: tuple[tuple[bytes, DisputeStatus], ...] = ()
    fired: tuple[Key, ...] = ()  # actions already taken (refused ones are in ``waits``)
    #: Actions the ledger refused, with the chain time before which they are not retried.
    waits: tuple[tuple[Key, int], ...] = ()


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

    The channels it guards (:class:`GuardChannel`: one per channel, for the channel's whole
    life) are a set apart from ``state``, which holds what is in flight (HTLC duties,
    disputes). A hub holds a guard per channel: kept in ``state``, each of its writes of
    that state carried them all (0.8 MB at 10,000 channels, with every payment). The
    driver persists the guards one by one from :meth:`take_guard_changes`, and undoes a
    failed event's with :meth:`guard_mark` / :meth:`undo_guards`.
    """

    def __init__(self, state: WatcherState | None = None, guarded: Iterable[bytes] = ()) -> None:
        state = state or WatcherState()
        self.guarded: set[bytes] = set(guarded)
        #: (channel id, guarded before) for each change since :meth:`take_guard_changes`.
        self._guard_log: list[tuple[bytes, bool]] = []
        # A state written before guards were kept apart holds them among its duties.
        for duty in state.duties:
            if isinstance(duty, GuardChannel):
                self._guard(duty.channel_id, True)
        if self._guard_log:
            state = msgspec.structs.replace(
                state, duties=tuple(d for d in state.duties if not isinstance(d, GuardChannel))
            )
        self.state = state

    # --- duties ------------------------------------------------------------------------

    def add(self, duty: Duty) -> None:
        if isinstance(duty, GuardChannel):
            self._guard(duty.channel_id, True)
        elif duty not in self.state.duties:
            self.state = msgspec.structs.replace(self.state, duties=(*self.state.duties, duty))

    def _guard(self, channel_id: bytes, on: bool) -> None:
        before = channel_id in self.guarded
        if before == on:
            return
        self._guard_log.append((channel_id, before))
        if on:
            self.guarded.add(channel_id)
        else:
            self.guarded.discard(channel_id)

    def take_guard_changes(self) -> dict[bytes, bool]:
        """The channels whose guard was added (``True``) or dropped (``False``) since the
        last call: what the driver writes with its checkpoint."""
        changes = {channel_id: channel_id in self.guarded for channel_id, _ in self._guard_log}
        self._guard_log.clear()
        return changes

    def guard_mark(self) -> int:
        """Where the guards stand now, for :meth:`undo_guards` (a driver's savepoint)."""
        return len(self._guard_log)

    def undo_guards(self, mark: int) -> None:
        """Put the guards back as they were at ``mark`` (an event that failed)."""
        for channel_id, before in reversed(self._guard_log[mark:]):
            if before:
                self.guarded.add(channel_id)
            else:
                self.guarded.discard(channel_id)
        del self._guard_log[mark:]

    def resolved(self, channel_id: bytes, htlc_id: int) -> None:
        """The HTLC was settled or failed off-chain: nothing left to enforce."""
        remaining = tuple(
            d
            for d in self.state.duties
            if isinstance(d, GuardChannel) or duty_id(d) != (channel_id, htlc_id)
        )

        def keep(key: Key) -> bool:
            return key[0] in ("conclude", "refute") or key[1:] != (channel_id, htlc_id)

        self.state = msgspec.structs.replace(
            self.state,
            duties=remaining,
            fired=tuple(f for f in self.state.fired if keep(f)),
            waits=tuple(w for w in self.state.waits if keep(w[0])),
        )

    def duties_of(self, channel_id: bytes) -> tuple[Duty, ...]:
        guard: tuple[Duty, ...] = (GuardChannel(channel_id),) if channel_id in self.guarded else ()
        return guard + tuple(d for d in self.state.duties if d.channel_id == channel_id)

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

        for duty in self.state.duties:
            if isinstance(duty, GuardChannel):
                continue
            clock = clocks.get(duty.channel_id)
            status = disputes.get(duty.channel_id)
            if clock is None or (status is not None and status.concluded):
                continue
            if isinstance(duty, ClaimIncoming):
                if clock.time >= duty.deadline and due(("claim", *duty_id(duty)), clock):
                    if status is None:
                        actions.append(ForceClose(duty.channel_id, "peer did not settle"))
                    actions.append(ClaimOnChain(duty.channel_id, duty.htlc_id, duty.preimage))
            elif clock.time >= duty.expiry and due(("refund", *duty_id(duty)), clock):
                if status is None:
                    actions.append(ForceClose(duty.channel_id, "peer did not fail"))
                actions.append(RefundOnChain(duty.channel_id, duty.htlc_id))
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
        self._set(
            duties=[d for d in self.state.duties if d.channel_id != channel_id],
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

    def next_wakeup(self) -> int | None:
        """The earliest chain time at which ``tick`` may have something to do."""
        concluded = {c for c, s in self.state.disputes if s.concluded}
        times = [
            d.deadline
            for d in self.state.duties
            if isinstance(d, ClaimIncoming) and d.channel_id not in concluded
        ]
        times += [
            d.expiry
            for d in self.state.duties
            if isinstance(d, RefundOutgoing) and d.channel_id not in concluded
        ]
        times += [s.timeout for _, s in self.state.disputes if not s.concluded]
        return min(times) if times else None

    # --- internals -----------------------------------------------------------------------

    def _set(
        self,
        *,
        duties: Iterable[Duty] | None = None,
        disputes: Mapping[bytes, DisputeStatus] | None = None,
        fired: Iterable[Key] | None = None,
        waits: Mapping[Key, int] | None = None,
    ) -> None:
        """Replace parts of the state, in a canonical order (the state is persisted: the
        same knowledge always encodes to the same bytes)."""
        state = self.state
        if duties is not None:
            state = msgspec.structs.replace(state, duties=tuple(duties))
        if disputes is not None:
            state = msgspec.structs.replace(state, disputes=tuple(disputes.items()))
        if fired is not None:
            state = msgspec.structs.replace(state, fired=tuple(sorted(fired)))
        if waits is not None:
            state = msgspec.structs.replace(state, waits=tuple(sorted(waits.items())))
        self.state = state


def duty_id(duty: ClaimIncoming | RefundOutgoing) -> tuple[bytes, int]:
    return (duty.channel_id, duty.htlc_id)
