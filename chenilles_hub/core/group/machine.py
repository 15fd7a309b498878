"""The N-party update protocol as a sans-IO machine: unanimity with a deterministic
conflict rule.

Each member runs one ``GroupMachine``. Inputs: ``propose(ops)`` (the operator's transfers
or close), ``receive(message)``, ``resend()``. Outputs: effects (persist this snapshot,
send this message, a state became fully signed, a proposal failed). No I/O, no clock.

The rules, and why they are safe and live:

* **Unanimity.** A state counts only when every member signed it; the machine adopts a
  newer fully signed state (from any message) only after verifying all N signatures.
* **One signature per version.** A member signs or refuses at most one state per version,
  and never a version at or below one it already voted on (``voted``, persisted before its
  signature leaves). So at most one state per version can ever be fully signed, whatever a
  cheating minority signs: the honest members' signatures are unique per version.
* **Conflict rule (lowest member index wins).** Two members may propose different states
  at the same version at once. Each proposer has signed its own and will sign nothing else
  at that version, so neither can complete: the version is abandoned by everyone who sees
  both. The one with the lowest member index among that version's proposers proposes its
  operations again at the next version, and the others wait until that proposal completes
  or is refused, then try theirs again. Every member decides this from the same knowledge,
  so the outcome does not depend on message order. A proposal built on a state older than
  the latest is not waited for (whoever holds the latest never signs it).
* **Tries.** A proposer keeps each try that may still complete (``mine``, with how many of
  its operations each carries): a member that signs two states of one version can make a
  try that lost a conflict complete after all, and its operations must then count once.
* **Settled.** Such a member can also get a state fully signed and then a higher one built
  on the state before it, if every honest member signed the later proposal before
  learning of the earlier completion. A member knows whether that can still happen to a
  state (it signed a proposal that skips it) and says so (``StateCompleted.settled``); if
  it happens to its own state, its operations are proposed again.
* **Refusal.** A member whose policy refuses a proposal persists and announces a
  ``Refusal``; the proposer reports its operations failed (``ProposalFailed``).
* **Convergence.** Messages carry the sender's whole knowledge (``messages.py``); merging
  is a union, so over a lossy, reordering wire ``resend`` suffices for every honest member
  to reach the same latest fully signed state.

A silent member stops progress (unanimity needs it); a cheating one can at most publish an
old state on chain, which the contracts let anyone refute with a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from ..errors import (
    ChannelError,
    InvalidParams,
    InvalidSignature,
    NonConserving,
    UnexpectedMessage,
    WrongChannel,
)
from .effects import (
    GroupEffect,
    GroupOp,
    GroupPersist,
    GroupSend,
    GroupSnapshot,
    ProposalFailed,
    StateCompleted,
    apply_ops,
)
from .messages import MAX_PROPOSALS, Ballot, GroupSync, Refusal
from .model import GroupParams, GroupState, SignedGroupState
from .rules import (
    GroupAuthority,
    GroupPolicy,
    check_group_params,
    check_group_state,
    check_group_successor,
    no_loss_policy,
)

Key = tuple[int, int, int, bytes]


def _key(ballot: Ballot) -> Key:
    """A proposal is its version, proposer, base and state: the same state offered by two
    members, or on two bases, is two proposals (a conflict), since each member's policy
    judges a proposal by who makes it and what it builds on."""
    state = ballot.state
    return state.version, ballot.proposer, ballot.base, msgspec.json.encode(state)


@dataclass
class _Work:
    """The mutable scratch copy one call works on; becomes the new snapshot at the end."""

    snap: GroupSnapshot
    proposals: dict[Key, Ballot] = field(default_factory=dict)
    refusals: set[Refusal] = field(default_factory=set)
    notes: list[GroupEffect] = field(default_factory=list)

    def freeze(self) -> GroupSnapshot:
        ballots = sorted(self.proposals.values(), key=lambda b: (b.state.version, b.proposer))
        return msgspec.structs.replace(
            self.snap,
            proposals=tuple(ballots[:MAX_PROPOSALS]),
            refusals=tuple(sorted(self.refusals)[:MAX_PROPOSALS]),
        )


class GroupMachine:
    """One member's view of an N-party channel (sans-IO; see the module docstring)."""

    def __init__(
        self,
        snapshot: GroupSnapshot,
        authority: GroupAuthority,
        policy: GroupPolicy = no_loss_policy,
        max_members: int | None = None,
    ) -> None:
        params = snapshot.params
        check_group_params(params, max_members or len(params.members))
        if not 0 <= snapshot.me < params.size:
            raise InvalidParams(f"member index {snapshot.me} out of range")
        self._snap = snapshot
        self._auth = authority
        self._policy = policy

    @classmethod
    def create(
        cls,
        params: GroupParams,
        channel_id: bytes,
        me: int,
        initial: SignedGroupState,
        authority: GroupAuthority,
        policy: GroupPolicy = no_loss_policy,
    ) -> GroupMachine:
        """Start from the fully signed opening state (version 0, signed before funding)."""
        snap = GroupSnapshot(params, channel_id, me, initial, voted=initial.version)
        machine = cls(snap, authority, policy)
        machine._check_complete(initial)
        return machine

    # ------------------------------------------------------------------ inspection

    @property
    def snapshot(self) -> GroupSnapshot:
        return self._snap

    @property
    def latest(self) -> SignedGroupState:
        return self._snap.latest

    @property
    def idle(self) -> bool:
        """Nothing of this member's waits to be proposed or signed: operations the latest
        state holds unsettled wait only for a later state, and a try that can complete only
        if a member equivocates waits for nothing this member can do."""
        snap, work = self._snap, self._work()
        waiting = any(self._live(work, b) for b in work.proposals.values() if b.state in snap.mine)
        held = snap.latest.state.final and not snap.settled  # see ``_propose``
        return not snap.queue and (len(snap.in_flight) == snap.applied or held) and not waiting

    # ------------------------------------------------------------------ inputs

    def propose(self, ops: tuple[GroupOp, ...]) -> list[GroupEffect]:
        """Queue this member's operations; they are proposed as soon as the rules allow."""
        if self._snap.latest.state.final:
            raise UnexpectedMessage("the channel is final: nothing can be proposed")
        work = self._work()
        work.snap = msgspec.structs.replace(work.snap, queue=work.snap.queue + tuple(ops))
        return self._finish(work)

    def receive(self, message: GroupSync) -> list[GroupEffect]:
        """Merge a peer's knowledge. Raises a ``ChannelError`` and changes nothing if the
        message is not well formed or carries a bad signature."""
        work = self._work()
        self._merge(work, message)
        return self._finish(work)

    def resend(self) -> list[GroupEffect]:
        """This member's knowledge for every other member (after a reconnect, or on a timer
        while something is pending)."""
        return self._sends(self._snap)

    # ------------------------------------------------------------------ internals

    def _work(self) -> _Work:
        snap = self._snap
        return _Work(
            snap,
            {_key(b): b for b in snap.proposals},
            set(snap.refusals),
        )

    def _sends(self, snap: GroupSnapshot) -> list[GroupEffect]:
        message = GroupSync(snap.channel_id, snap.me, snap.latest, snap.proposals, snap.refusals)
        return [GroupSend(k, message) for k in range(snap.params.size) if k != snap.me]

    def _finish(self, work: _Work) -> list[GroupEffect]:
        for _ in range(4 * MAX_PROPOSALS):
            if not self._step(work):
                break
        new = work.freeze()
        if new == self._snap:
            return []
        self._snap = new
        return [GroupPersist(new), *work.notes, *self._sends(new)]

    def _verify(self, state: GroupState, member: int, signature: bytes) -> None:
        if not self._auth.verify(state, member, signature):
            raise InvalidSignature(
                f"member {member}'s signature on version {state.version} does not verify"
            )

    def _check_complete(self, signed: SignedGroupState) -> None:
        params = self._snap.params
        if len(signed.signatures) != params.size or not signed.complete:
            raise InvalidSignature("a fully signed state needs every member's signature")
        check_group_state(params, self._snap.channel_id, signed.state)
        for member, signature in enumerate(signed.signatures):
            self._verify(signed.state, member, signature)

    def _merge(self, work: _Work, message: GroupSync) -> None:
        snap, params = work.snap, work.snap.params
        if message.channel_id != snap.channel_id:
            raise WrongChannel("message for another channel")
        if not 0 <= message.sender < params.size or message.sender == snap.me:
            raise UnexpectedMessage(f"sender index {message.sender} is not another member")
        if message.latest.version > snap.latest.version:
            self._check_complete(message.latest)
            pairs = zip(snap.latest.state.balances, message.latest.state.balances, strict=True)
            for old, new in pairs:
                if sum(old.amounts) != sum(new.amounts):
                    raise NonConserving(f"{new.asset}: a fully signed state changes the total")
            self._adopt(work, message.latest)
        floor = work.snap.latest.version
        for ballot in message.proposals:
            self._merge_ballot(work, ballot, floor)
        for refusal in message.refusals:
            if refusal.member != message.sender:
                continue  # only a member's own refusal counts (a relay could invent one)
            if refusal.proposer >= params.size:
                raise UnexpectedMessage("refusal names no member")
            if refusal.version > floor:
                work.refusals.add(refusal)

    def _merge_ballot(self, work: _Work, ballot: Ballot, floor: int) -> None:
        params, state = work.snap.params, ballot.state
        if state.version <= floor:
            return
        if ballot.proposer >= params.size or len(ballot.signatures) != params.size:
            raise UnexpectedMessage("a proposal must name a member and have one slot per member")
        if ballot.base >= state.version:
            raise UnexpectedMessage("a proposal must build on an older version")
        check_group_state(params, work.snap.channel_id, state)
        if not ballot.signatures[ballot.proposer]:
            raise InvalidSignature("a proposal must carry its proposer's signature")
        key = _key(ballot)
        known = work.proposals.get(key)
        sigs = list(known.signatures) if known else [b""] * params.size
        for member, signature in enumerate(ballot.signatures):
            if not signature or signature == sigs[member]:
                continue
            self._verify(state, member, signature)
            sigs[member] = signature
        work.proposals[key] = Ballot(ballot.base, ballot.proposer, state, tuple(sigs))

    def _at(self, work: _Work, version: int) -> list[Ballot]:
        return [b for key, b in work.proposals.items() if key[0] == version]

    def _step(self, work: _Work) -> bool:
        """One round of: completion, my proposal's fate, voting, proposing."""
        return (
            self._complete(work)
            or self._track_mine(work)
            or self._vote(work)
            or self._propose(work)
        )

    def _adopt(self, work: _Work, signed: SignedGroupState, base: int | None = None) -> None:
        """Make ``signed`` (newer, fully signed, checked) the latest state; ``base``: the
        version it builds on, if known (else from a proposal of it this member signed).
        Tracks which of this member's operations the new latest state holds."""
        snap, me, version = work.snap, work.snap.me, signed.version
        if base is None:
            bases = [
                b.base
                for b in self._at(work, version)
                if b.state == signed.state and b.signatures[me]
            ]
            base = bases[0] if bases else None
        settled = not any(
            b.signatures[me] and b.base < version < b.state.version for b in work.proposals.values()
        )
        applied, applied_at = snap.applied, snap.applied_at
        own = False
        for state, count in zip(snap.mine, snap.carried, strict=True):
            if state == signed.state:
                own, applied, applied_at = True, count, version
        if not own and applied and base is not None and base < applied_at:
            applied, applied_at = 0, -1  # the state holding them was skipped: undone
        alive = [
            (s, c) for s, c in zip(snap.mine, snap.carried, strict=True) if s.version > version
        ]
        in_flight = snap.in_flight
        if settled and applied:  # confirmed: nothing can undo them any more
            in_flight = in_flight[applied:]
            alive = [(s, c - applied) for s, c in alive]
            applied, applied_at = 0, -1
        work.snap = msgspec.structs.replace(
            snap,
            latest=signed,
            settled=settled,
            applied=applied,
            applied_at=applied_at,
            in_flight=in_flight,
            mine=tuple(s for s, _ in alive),
            carried=tuple(c for _, c in alive),
        )
        work.notes.append(StateCompleted(signed, own, settled))

    def _complete(self, work: _Work) -> bool:
        done = [b for b in work.proposals.values() if b.signatures and all(b.signatures)]
        if done:
            best = max(done, key=lambda b: b.state.version)
            self._adopt(work, SignedGroupState(best.state, best.signatures), best.base)
        floor = work.snap.latest.version
        stale = [k for k in work.proposals if k[0] <= floor]
        stale_refusals = {r for r in work.refusals if r.version <= floor}
        for k in stale:
            del work.proposals[k]
        work.refusals -= stale_refusals
        return bool(done)

    def _track_mine(self, work: _Work) -> bool:
        """Fail this member's operations its newest try carried when a member refused it
        (and no other try of it may still complete)."""
        snap = work.snap
        if not snap.mine:
            return False
        newest = snap.mine[-1]
        refused = [
            r for r in work.refusals if r.version == newest.version and r.proposer == snap.me
        ]
        if not refused:
            return False
        mine, carried = snap.mine[:-1], snap.carried[:-1]
        keep = max([snap.applied, *carried])
        reason = f"member {refused[0].member} refused: {refused[0].reason}"
        if len(snap.in_flight) > keep:
            work.notes.append(ProposalFailed(snap.in_flight[keep:], reason))
        work.snap = msgspec.structs.replace(
            snap, mine=mine, carried=carried, in_flight=snap.in_flight[:keep]
        )
        return True

    def _live(self, work: _Work, ballot: Ballot) -> bool:
        """Can ``ballot`` still complete? Not if another state was proposed at its version,
        a member refused it, or it builds on a state older than the latest (a member who
        holds the latest never signs it)."""
        version = ballot.state.version
        return (
            ballot.base == work.snap.latest.version
            and len(self._at(work, version)) == 1
            and not any(r.version == version for r in work.refusals)
        )

    def _vote(self, work: _Work) -> bool:
        snap = work.snap
        versions = sorted({k[0] for k in work.proposals if k[0] > snap.voted})
        for version in versions:
            ballots = self._at(work, version)
            if len(ballots) != 1:
                continue  # a conflict: nobody can complete this version
            ballot = ballots[0]
            if ballot.base != snap.latest.version:
                continue  # built on a state this member has not (yet) seen fully signed
            reason: str | None
            try:
                check_group_successor(snap.params, snap.channel_id, snap.latest.state, ballot.state)
                reason = self._policy(snap.me, ballot.proposer, snap.latest.state, ballot.state)
            except ChannelError as exc:
                reason = f"{exc.code}: {exc}"
            if reason is not None:
                work.refusals.add(Refusal(snap.me, version, ballot.proposer, reason[:96]))
            else:
                sigs = list(ballot.signatures)
                sigs[snap.me] = self._auth.sign(ballot.state)
                work.proposals[_key(ballot)] = msgspec.structs.replace(
                    ballot, signatures=tuple(sigs)
                )
            work.snap = msgspec.structs.replace(snap, voted=version)
            return True
        return False

    def _may_propose(self, work: _Work) -> bool:
        snap = work.snap
        if not (snap.queue or len(snap.in_flight) > snap.applied) or snap.latest.state.final:
            return False
        if any(self._live(work, b) for b in work.proposals.values()):
            return False  # a live proposal (this member's included): let it finish first
        versions = {k[0] for k in work.proposals}
        if versions:
            top = max(versions)
            ballots = self._at(work, top)
            losers = {r.proposer for r in work.refusals if r.version == top}
            contenders = [
                b.proposer
                for b in ballots
                if b.proposer not in losers and b.base == snap.latest.version
            ]
            if len(ballots) > 1 and contenders and min(contenders) < snap.me:
                return False  # lowest member index wins the conflict: it proposes next
        return True

    def _propose(self, work: _Work) -> bool:
        snap = work.snap
        pending = snap.in_flight[snap.applied :]
        if snap.latest.state.final:
            # nothing follows a final state; operations a try carries fail only once the
            # final state is settled (an equivocation could still complete that try)
            closed = snap.queue + (pending if snap.settled else ())
            if not closed:
                return False
            work.notes.append(ProposalFailed(closed, "channel_final: the channel closed"))
            work.snap = msgspec.structs.replace(
                snap,
                queue=(),
                in_flight=snap.in_flight[: snap.applied] if snap.settled else snap.in_flight,
                mine=() if snap.settled else snap.mine,
                carried=() if snap.settled else snap.carried,
            )
            return True
        if not self._may_propose(work):
            return False
        # the latest state holds in_flight[:applied]; a try adds the rest and the queue
        state, applied, failed = apply_ops(
            snap.latest.state, snap.me, snap.params.size, pending + snap.queue
        )
        work.notes.extend(failed)
        mine, carried = snap.mine, snap.carried
        if applied[: len(pending)] != pending:
            mine, carried = (), ()  # a retried operation failed: older tries are not tracked
        if not applied:
            work.snap = msgspec.structs.replace(
                snap, queue=(), in_flight=snap.in_flight[: snap.applied]
            )
            return True
        in_flight = snap.in_flight[: snap.applied] + applied
        top = max([snap.latest.version, snap.voted, *(k[0] for k in work.proposals)])
        state = msgspec.structs.replace(state, version=top + 1)
        check_group_successor(snap.params, snap.channel_id, snap.latest.state, state)
        sigs = [b""] * snap.params.size
        sigs[snap.me] = self._auth.sign(state)
        ballot = Ballot(snap.latest.version, snap.me, state, tuple(sigs))
        work.proposals[_key(ballot)] = ballot
        work.snap = msgspec.structs.replace(
            snap,
            queue=(),
            in_flight=in_flight,
            mine=(*mine, state),
            carried=(*carried, len(in_flight)),
            voted=top + 1,
        )
        return True
