"""The two-party update machine: propose -> accept -> ack, sans-IO.

On ledgers where a newer version wins a dispute by itself (``newer_version_wins``: EVM,
Solana) an update after the opening is two messages, propose -> accept: a state both
signed is irrevocable for whoever holds it, and the Ack would carry no revocation. The
opening (version 0, whose Ack starts the deposits) and a final state keep the three.

Events go in (``open``, ``propose``, ``receive``, ``reestablish``), a list of effects comes
out, and nothing else happens: no clock (``now`` is an argument), no sockets, no disk.

Safety rules the machine enforces by the order of the effects it returns:

* a ``Persist`` of a state comes before any ``Send`` that carries our signature on it;
* a revocation of the previous state is only sent after the newer state is persisted;
* a ``Reject`` is binding: the refusal is persisted before it is sent and the refused
  attempt is never signed afterwards, so the proposer may report its updates failed. A
  proposal that cannot be taken *yet* gets a ``Reestablish`` instead of a ``Reject``: the
  proposer keeps it and sends it again with whatever the acceptor was missing.

Every method either returns effects and commits the new machine state, or raises a
:class:`~chenilles_hub.core.errors.ChannelError` and changes nothing: the next state is
built from immutable values and assigned in one step at the very end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from .authority import StateAuthority, newer_version_wins
from .effects import (
    ChannelSnapshot,
    Effect,
    Holdings,
    Irrevocable,
    PendingProposal,
    Persist,
    ProposalRejected,
    ProposalWithdrawn,
    RevocationReceived,
    Send,
    SubmitToLedger,
    UpdateCompleted,
    WakeAt,
    WithdrawnProposal,
    decode_holdings,
    decode_snapshot,
    holdings_of,
)
from .errors import (
    AlreadyRefused,
    ChannelError,
    ChannelNotOpen,
    Diverged,
    InvalidRevocation,
    InvalidSignature,
    MessageTooLarge,
    ProposalConflict,
    ProposalPending,
    ProposalTooLarge,
    StaleVersion,
    StateMismatch,
    UnexpectedMessage,
    WrongChannel,
)
from .invariants import check_rules, check_successor
from .machine_core import (
    EncodedSnapshot,
    LazyCore,
    MachineCore,
    check_new_machine,
    core_from_snapshot,
    decoded,
    nothing_withdrawn,
    read_encoded,
)
from .messages import (
    MAX_UPDATES_PER_PROPOSAL,
    Accept,
    Ack,
    ChannelMessage,
    Propose,
    Reestablish,
    Reject,
    encode_message,
)
from .model import Asset, ChannelParams, ChannelState, SignedState
from .rules import NO_RULES, ChannelRules
from .updates import App, HtlcPolicy, Update, UpdateContext, apply_updates

#: A restored machine's holdings as the store kept them (``encode_holdings``), a function
#: that reads them (called once, when first asked), or ``None``: the store has none.
StoredHoldings = bytes | Callable[[], bytes | None] | None


class ChannelMachine:
    """One participant's view of one channel."""

    #: A restored machine not used yet: its holdings as the store kept them, or a function
    #: that reads them (see :attr:`holdings`); removed at the first use. Kept encoded (200
    #: bytes, not a decoded 700): what reads them caches what it derives.
    _stored_holdings: StoredHoldings

    def __init__(
        self,
        params: ChannelParams,
        channel_id: bytes,
        me: int,
        authority: StateAuthority,
        initial: ChannelState,
        *,
        policy: HtlcPolicy | None = None,
        apps: Mapping[str, App] | None = None,
        rules: ChannelRules = NO_RULES,
    ) -> None:
        check_new_machine(params, channel_id, me, initial)
        self._fields(params, channel_id, me, authority, initial, policy, apps, rules)
        self._core = MachineCore()

    def _fields(
        self,
        params: ChannelParams,
        channel_id: bytes,
        me: int,
        authority: StateAuthority,
        initial: ChannelState,
        policy: HtlcPolicy | None,
        apps: Mapping[str, App] | None,
        rules: ChannelRules,
    ) -> None:
        self.params = params
        self.channel_id = channel_id
        self.me = me
        self.peer_index = 1 - me
        self.peer = params.participants[self.peer_index].node_id
        self.initial = initial
        self._authority = authority
        self._policy = policy or HtlcPolicy()
        self._apps = dict(apps or {})
        #: The backend's dust, reserve and fee rules: a state that breaks them could not be
        #: enforced on-chain, so it is neither proposed nor accepted.
        self._rules = rules
        self._newer_wins = newer_version_wins(authority)
        #: The last successful :meth:`check` (latest state, updates, now, result): a
        #: proposal of exactly what was just checked reuses the result, not a second pass.
        self._checked: tuple[ChannelState, tuple[Update, ...], int, ChannelState] | None = None

    def two_step(self, state: ChannelState) -> bool:
        """Whether the update to ``state`` ends at the Accept (no Ack): on a ledger where a
        newer version wins, for any state but the opening and a final one."""
        return self._newer_wins and state.version > 0 and not state.final

    @classmethod
    def restored(
        cls,
        params: ChannelParams,
        channel_id: bytes,
        me: int,
        authority: StateAuthority,
        initial: ChannelState,
        encoded: EncodedSnapshot,
        *,
        withdrawn: bool | None = None,
        holdings: StoredHoldings = None,
        policy: HtlcPolicy | None = None,
        apps: Mapping[str, App] | None = None,
        rules: ChannelRules = NO_RULES,
    ) -> ChannelMachine:
        """A machine resumed from its encoded snapshot (``encode_snapshot``), or from a
        function that reads it, whose reading, checks (those of the constructor and of
        :meth:`restore`) and decoding wait for its first use: a node restoring 100,000
        channels pays only for those it touches. ``withdrawn``: whether the snapshot holds
        withdrawn proposals, if the caller knows (else found from the bytes, read now). One
        that may hold them is restored at once (the node asks every restored machine for
        them). ``holdings``: the store's :func:`encode_holdings` of the same snapshot (or a
        function that reads it; ``None`` if the store has none), which :attr:`holdings`
        answers until the first use."""
        if withdrawn is None:
            encoded = read_encoded(encoded)
            withdrawn = not nothing_withdrawn(encoded)
        if withdrawn:
            machine = cls(
                params, channel_id, me, authority, initial, policy=policy, apps=apps, rules=rules
            )
            machine.restore(decode_snapshot(read_encoded(encoded)))
            return machine
        machine = cls.__new__(cls)
        machine._fields(params, channel_id, me, authority, initial, policy, apps, rules)
        machine._encoded = encoded
        machine._stored_holdings = holdings
        return machine

    # --- inspection -----------------------------------------------------------------------

    @property
    def latest(self) -> SignedState | None:
        """The newest state both participants signed, or ``None`` before opening."""
        return self._core.latest

    @property
    def state(self) -> ChannelState:
        return self._core.latest.state if self._core.latest else self.initial

    @property
    def holdings(self) -> Holdings:
        """The latest state's amounts per asset. A restored machine not used yet answers
        from the holdings the store kept beside its snapshot, without reading the snapshot
        (they are the same state's: a machine writes its snapshot only once used, and the
        store hands out only holdings of its row's version). Not checked as a first use
        checks the snapshot: for reports and announcements, never for a decision on funds.
        Holdings that do not decode, or not for this channel's assets, are not used (the
        snapshot answers)."""
        if "_encoded" in self.__dict__:
            stored = self.__dict__.get("_stored_holdings")
            if callable(stored):  # read once
                stored = self._stored_holdings = stored()
            if stored is not None:
                try:
                    found = decode_holdings(stored)
                except msgspec.MsgspecError:
                    found = None
                assets = self.params.assets
                if found is not None and tuple(b.asset for b in found.balances) == assets:
                    return found
                self._stored_holdings = None
        return holdings_of(self.state)  # (a first use, if the store had none)

    @property
    def loaded(self) -> bool:
        """Whether the machine holds its state: built, or restored and used since (a
        restored machine reads its snapshot on its first use)."""
        return "_encoded" not in self.__dict__

    @property
    def revision(self) -> object:
        """An object that is replaced whenever the machine's state may have changed (its
        immutable core, swapped on every change; a restored machine not used yet, its
        stored snapshot): what caches of values derived from the state compare, by
        identity, without reading a snapshot."""
        found = self.__dict__.get("_core")
        return found if found is not None else self.__dict__.get("_encoded")

    def free(self, asset: Asset) -> tuple[int, ...]:
        """``state.free(asset)``, and like :attr:`holdings` for a machine not used yet."""
        if "_encoded" in self.__dict__:
            return self.holdings.free(asset)
        return self.state.free(asset)

    @property
    def pending(self) -> PendingProposal | None:
        return self._core.pending

    @property
    def awaiting_ack(self) -> int | None:
        return self._core.awaiting_ack

    @property
    def withdrawn(self) -> tuple[WithdrawnProposal, ...]:
        """Our refused proposals not reported yet: a later version must become irrevocable
        first (propose something, even no update at all)."""
        if "_encoded" in self.__dict__:  # not decoded yet: ``restored`` made sure of none
            return ()
        return self._core.withdrawn

    @property
    def refusals(self) -> int:
        """How many of our proposals of the next version the peer refused."""
        return self._core.attempt

    @property
    def is_open(self) -> bool:
        return self._core.latest is not None

    def snapshot(self) -> ChannelSnapshot:
        c = self._core
        return ChannelSnapshot(
            self.channel_id,
            c.latest,
            c.previous,
            c.pending,
            c.awaiting_ack,
            c.last_reply,
            c.latest_updates,
            c.attempt,
            c.refused,
            c.withdrawn,
        )

    def restore(self, snapshot: ChannelSnapshot) -> None:
        """Resume from a persisted snapshot (after a restart)."""
        if "_encoded" in self.__dict__:  # made by ``restored``: its own checks not run yet
            check_new_machine(self.params, self.channel_id, self.me, self.initial)
        self._core = core_from_snapshot(self, snapshot)
        decoded(self)

    #: A machine made by :meth:`restored` checks and decodes its snapshot on first use.
    _core: MachineCore = LazyCore()  # type: ignore[assignment]
    #: Its encoded snapshot (or the function that reads it) until then.
    _encoded: EncodedSnapshot

    # --- our side ---------------------------------------------------------------------------

    def open(self) -> list[Effect]:
        """Propose the initial state (version 0); funds move on-chain only once it is signed."""
        if self._core.latest is not None:
            raise UnexpectedMessage("the channel is already open")
        check_rules(self.params, self._rules, self.initial)
        return self._propose_state((), self.initial)

    def check(self, updates: tuple[Update, ...], now: int) -> ChannelState:
        """The state ``updates`` would produce if we proposed them now (nothing changes):
        lets a caller with a batch find the update that would be refused."""
        latest = self._core.latest
        if latest is None:
            raise ChannelNotOpen("the initial state is not signed by both participants yet")
        _check_count(updates)
        new = self._successor(latest.state, updates, self.me, now)
        self._checked = (latest.state, updates, now, new)
        return new

    def _successor(
        self, old: ChannelState, updates: tuple[Update, ...], proposer: int, now: int
    ) -> ChannelState:
        """What ``updates`` by ``proposer`` make of ``old``, with every rule checked."""
        new = apply_updates(old, updates, self._context(proposer, now))
        check_successor(self.params, self.channel_id, old, new)
        check_rules(self.params, self._rules, new, old)
        return new

    @property
    def max_htlcs(self) -> int:
        """The most HTLCs a state of this channel may lock (its ledger's rules)."""
        return self._rules.max_htlcs

    @property
    def idle(self) -> bool:
        """No proposal of ours awaits an answer and we owe no ack wait: a proposal may start."""
        return self._core.pending is None and self._core.awaiting_ack is None

    def propose(self, updates: tuple[Update, ...], now: int) -> list[Effect]:
        latest = self._core.latest
        if latest is None:
            raise ChannelNotOpen("the initial state is not signed by both participants yet")
        _check_count(updates)
        checked, self._checked = self._checked, None
        if (
            checked is not None
            and checked[0] is latest.state
            and checked[2] == now
            and checked[1] == updates
        ):
            new = checked[3]  # what check() just derived from the same inputs
        else:
            new = self._successor(latest.state, updates, self.me, now)
        return self._propose_state(updates, new)

    def _propose_state(self, updates: tuple[Update, ...], new: ChannelState) -> list[Effect]:
        core = self._core
        if core.pending is not None:
            raise ProposalPending(f"version {core.pending.signed.state.version} awaits an answer")
        if core.awaiting_ack is not None:
            raise ProposalPending(f"waiting for the peer's ack of version {core.awaiting_ack}")
        signature = self._authority.sign(self.params, new, core.latest)
        message = Propose(self.channel_id, updates, new, signature, core.attempt)
        try:
            encode_message(message)  # the peer decodes within the same limit
        except MessageTooLarge as exc:
            raise ProposalTooLarge(f"this proposal would not fit in a message: {exc}") from None
        signed = SignedState(new, self._signatures(mine=signature))
        return self._commit(
            msgspec.structs.replace(core, pending=PendingProposal(message, signed)),
            [Send(self.peer, message)],
        )

    def force_close(self) -> list[Effect]:
        """Breakdown: put the latest signed state on the ledger and start the dispute."""
        latest = self._core.latest
        if latest is None:
            raise ChannelNotOpen("nothing signed to register")
        return [SubmitToLedger("register", latest)]

    def reestablish(self) -> list[Effect]:
        """After a reconnect or restart: tell the peer what we hold."""
        core = self._core
        return [
            Send(
                self.peer,
                Reestablish(
                    self.channel_id,
                    core.latest.state.version if core.latest else -1,
                    core.pending.signed.state.version if core.pending else None,
                ),
            )
        ]

    @property
    def _next_version(self) -> int:
        latest = self._core.latest
        return latest.state.version + 1 if latest else 0

    # --- the peer's messages ----------------------------------------------------------------

    def receive(self, message: ChannelMessage, now: int) -> list[Effect]:
        if message.channel_id != self.channel_id:
            raise WrongChannel(
                f"message for channel {message.channel_id.hex()}, this is {self.channel_id.hex()}"
            )
        if isinstance(message, Propose):
            return self._on_propose(message, now)
        if isinstance(message, Accept):
            return self._on_accept(message)
        if isinstance(message, Ack):
            return self._on_ack(message)
        if isinstance(message, Reject):
            return self._on_reject(message)
        return self._on_reestablish(message)

    def rejection(self, message: ChannelMessage, error: ChannelError) -> list[Effect]:
        """What to tell the peer when ``receive`` refused ``message``: proposals get a Reject.

        The refusal is binding: for a proposal of the next version it is recorded (and
        persisted, before the Reject leaves) so that no copy of that attempt is ever signed
        later, when the reason may have passed (the clock moved, a conflict resolved). A
        proposal of a version we already hold can never be signed, and a ``deterministic``
        refusal (a forgery, a broken invariant) is repeated for every copy: neither needs a
        record, so such bad input changes nothing.
        """
        if not isinstance(message, Propose) or message.channel_id != self.channel_id:
            return []
        version, attempt = message.state.version, message.attempt
        core = self._core
        recorded = version == self._next_version and not error.deterministic
        if recorded and core.refused is not None and core.refused[0] == version:
            # Every attempt up to the one recorded is refused: said so, the proposer's next
            # attempt comes past them at once, not one round trip per refused attempt.
            attempt = max(attempt, core.refused[1])
        reject = Reject(self.channel_id, version, error.code, str(error)[:500], attempt)
        if not recorded:
            return [Send(self.peer, reject)]
        refused = msgspec.structs.replace(core, refused=(version, attempt))
        return self._commit(refused, [Send(self.peer, reject)])

    def _on_propose(self, msg: Propose, now: int) -> list[Effect]:
        core = self._core
        version = msg.state.version
        latest = core.latest
        if latest is not None and version <= latest.version:
            reply = core.last_reply
            if version == latest.state.version and msg.state == latest.state:
                if isinstance(reply, Accept) and reply.version == version:
                    return [Send(self.peer, reply)]  # a duplicate: answer it again
                return self.reestablish()  # a state we signed is never refused
            raise StaleVersion(f"version {version} is not newer than {latest.state.version}")
        if version != self._next_version or core.awaiting_ack is not None:
            # Not refused, only not yet: we are behind or ahead of the peer (a lost message,
            # a restart), or we still wait for its ack of the version before (its Ack and
            # this proposal crossed a reconnect). Tell it where we are; it sends what we
            # miss (the Ack first) and this proposal again.
            return self.reestablish()
        refused = core.refused
        if refused is not None and refused[0] == version and msg.attempt <= refused[1]:
            raise AlreadyRefused(f"attempt {msg.attempt} at version {version} was refused")
        dropped: list[Effect] = []
        if core.pending is not None:
            if self.me < self.peer_index:
                raise ProposalConflict(f"both proposed version {version}; ours takes precedence")
            ours = core.pending
            won = "the peer's proposal won"
            dropped = [
                ProposalRejected(
                    version, ProposalConflict.code, won, ours.signed.state, _updates(ours)
                )
            ]
        if latest is None:
            if version != 0 or msg.updates or msg.state != self.initial:
                raise StateMismatch("the opening proposal must be exactly the agreed initial state")
            check_rules(self.params, self._rules, self.initial)
        else:
            expected = self._successor(latest.state, msg.updates, self.peer_index, now)
            if expected != msg.state:
                raise StateMismatch("the proposed state is not what its updates produce")
        if not self._authority.verify(
            self.params, msg.state, self.peer_index, msg.signature, latest
        ):
            raise InvalidSignature(f"the peer's signature on version {version} does not verify")
        signature = self._authority.sign(self.params, msg.state, latest)
        revocation = self._authority.revoke(self.params, latest) if latest else None
        signed = SignedState(msg.state, self._signatures(mine=signature, theirs=msg.signature))
        accept = Accept(self.channel_id, version, signature, revocation)
        two_step = self.two_step(msg.state)
        withdrawn, buried = _bury(core.withdrawn, version) if two_step else (core.withdrawn, [])
        new_core = MachineCore(
            latest=signed,
            previous=latest,
            pending=None,
            # Two steps: held signed by both, the state is irrevocable now; no Ack follows.
            awaiting_ack=None if two_step else version,
            last_reply=accept,
            latest_updates=msg.updates,
            withdrawn=withdrawn,
        )
        effects: list[Effect] = [
            *dropped,
            Send(self.peer, accept),
            UpdateCompleted(signed, msg.updates),
        ]
        if two_step:
            effects += [Irrevocable(signed, msg.updates), *buried]
        return self._commit(new_core, effects + self._deadlines(latest, signed))

    def _on_accept(self, msg: Accept) -> list[Effect]:
        core = self._core
        pending = core.pending
        if pending is None or pending.signed.state.version != msg.version:
            reply = core.last_reply
            if isinstance(reply, Ack) and reply.version == msg.version:
                return [Send(self.peer, reply)]  # our ack was lost: send it again
            latest = core.latest
            if latest is not None and msg.version == latest.version and self.two_step(latest.state):
                return []  # a copy of the Accept we took (resent after a reestablish)
            raise UnexpectedMessage(f"no proposal of version {msg.version} is pending")
        state = pending.signed.state
        latest = core.latest
        if not self._authority.verify(self.params, state, self.peer_index, msg.signature, latest):
            raise InvalidSignature(f"the peer's signature on version {msg.version} does not verify")
        effects: list[Effect] = []
        revocation: bytes | None = None
        if latest is not None:
            if not self._authority.verify_revocation(
                self.params, latest, self.peer_index, msg.revocation
            ):
                raise InvalidRevocation(f"the peer did not revoke version {latest.state.version}")
            if msg.revocation is not None:
                effects.append(RevocationReceived(latest.state.version, msg.revocation))
            revocation = self._authority.revoke(self.params, latest)
        signed = SignedState(
            state, self._signatures(mine=pending.signed.signatures[self.me], theirs=msg.signature)
        )
        # Two steps: the peer took the state as irrevocable at its Accept; nothing to send.
        ack = None if self.two_step(state) else Ack(self.channel_id, msg.version, revocation)
        withdrawn, buried = _bury(core.withdrawn, msg.version)
        new_core = MachineCore(
            latest=signed,
            previous=latest,
            pending=None,
            awaiting_ack=None,
            last_reply=ack,
            latest_updates=_updates(pending),
            withdrawn=withdrawn,
        )
        if ack is not None:
            effects.append(Send(self.peer, ack))
        effects += [
            UpdateCompleted(signed, new_core.latest_updates),
            Irrevocable(signed, new_core.latest_updates),
            *buried,
        ]
        if state.final:
            effects.append(SubmitToLedger("conclude_cooperative", signed))
        return self._commit(new_core, effects + self._deadlines(latest, signed))

    def _on_ack(self, msg: Ack) -> list[Effect]:
        core = self._core
        if core.awaiting_ack != msg.version:
            latest_version = core.latest.state.version if core.latest else -1
            if msg.version <= latest_version:
                return []  # a duplicate of an ack already taken
            raise UnexpectedMessage(f"no accepted version {msg.version} awaits an ack")
        effects: list[Effect] = []
        if core.previous is not None:
            if not self._authority.verify_revocation(
                self.params, core.previous, self.peer_index, msg.revocation
            ):
                raise InvalidRevocation(f"the peer did not revoke version {core.previous.version}")
            if msg.revocation is not None:
                effects.append(RevocationReceived(core.previous.version, msg.revocation))
        withdrawn = core.withdrawn
        if core.latest is not None:
            effects.append(Irrevocable(core.latest, core.latest_updates))
            withdrawn, buried = _bury(withdrawn, core.latest.version)
            effects += buried
        return self._commit(
            msgspec.structs.replace(core, awaiting_ack=None, withdrawn=withdrawn), effects
        )

    def _on_reject(self, msg: Reject) -> list[Effect]:
        core = self._core
        pending = core.pending
        if (
            pending is None
            or pending.signed.state.version != msg.version
            or not isinstance(pending.message, Propose)
            or pending.message.attempt > msg.attempt
        ):
            return []  # about a proposal we already dropped: nothing to undo
        # Not reported yet: the peer holds our signature on it, and only a later irrevocable
        # version makes sure no copy of it can be enforced (a cheating peer that refused it
        # could still register it, and a hub that had failed the HTLC upstream would pay).
        withdrawn = core.withdrawn
        if _updates(pending):  # (an empty one has nothing to report; it only buried)
            withdrawn = (*withdrawn, WithdrawnProposal(pending, msg.code, msg.reason))
        dropped = msgspec.structs.replace(
            core, pending=None, attempt=msg.attempt + 1, withdrawn=withdrawn
        )
        return self._commit(dropped, [ProposalWithdrawn(msg.version, msg.code, msg.reason)])

    def _on_reestablish(self, msg: Reestablish) -> list[Effect]:
        core = self._core
        mine = core.latest.state.version if core.latest else -1
        reply = core.last_reply
        effects: list[Effect] = []
        if msg.latest < mine:
            # The peer is behind only when it never saw our Accept of ``mine``: send it
            # again. Any other report of an older version is stale (a Reestablish overtaken
            # by the peer's later messages): the peer signed ``mine`` or its predecessor,
            # persisting it first, so it cannot be further behind.
            if msg.latest == mine - 1 and isinstance(reply, Accept) and reply.version == mine:
                effects.append(Send(self.peer, reply))
                if core.pending is not None:
                    # Two steps: we proposed the next version right after that Accept.
                    effects.append(Send(self.peer, core.pending.message))
        elif msg.latest == mine:
            if isinstance(reply, Ack) and reply.version == mine:
                effects.append(Send(self.peer, reply))
            if core.pending is not None:
                effects.append(Send(self.peer, core.pending.message))
        elif msg.latest == mine + 1:
            if core.pending is None or core.pending.signed.state.version != msg.latest:
                raise Diverged(f"peer holds version {msg.latest} that we never proposed")
            # The peer accepted our proposal; its Accept will be retransmitted.
        else:
            raise Diverged(f"peer is at version {msg.latest}, we are at {mine}")
        return effects

    # --- helpers ----------------------------------------------------------------------------

    def _context(self, proposer: int, now: int) -> UpdateContext:
        return UpdateContext(
            params=self.params,
            proposer=proposer,
            now=now,
            policy=self._policy,
            apps=self._apps,
            native_expiry_ok=self._authority.native_expiry_ok,
        )

    def _signatures(self, *, mine: bytes, theirs: bytes = b"") -> tuple[bytes, ...]:
        sigs = [b"", b""]
        sigs[self.me] = mine
        sigs[self.peer_index] = theirs
        return tuple(sigs)

    def _deadlines(self, before: SignedState | None, after: SignedState) -> list[Effect]:
        known = {h.id for h in before.state.htlcs} if before else set()
        return [
            WakeAt(h.expiry, f"HTLC {h.id} expires") for h in after.state.htlcs if h.id not in known
        ]

    def _commit(self, core: MachineCore, effects: list[Effect]) -> list[Effect]:
        """Swap in the new machine state; persistence goes first, before any send."""
        self._core = core
        return [Persist(self.snapshot()), *effects]


__all__ = ["ChannelMachine", "ChannelSnapshot"]


def _updates(proposal: PendingProposal) -> tuple[Update, ...]:
    message = proposal.message
    return message.updates if isinstance(message, Propose) else ()


def _bury(
    withdrawn: tuple[WithdrawnProposal, ...], irrevocable: int
) -> tuple[tuple[WithdrawnProposal, ...], list[Effect]]:
    """Version ``irrevocable`` can no longer be undone: every withdrawn proposal of an older
    version is dead for good (a newer version wins a dispute; on chains that revoke, the
    peer revoked every commitment of that version). Report those; keep the others."""
    dead = [w for w in withdrawn if w.version < irrevocable]
    alive = tuple(w for w in withdrawn if w.version >= irrevocable)
    return alive, [
        ProposalRejected(w.version, w.code, w.reason, w.proposal.signed.state, _updates(w.proposal))
        for w in dead
    ]


def _check_count(updates: tuple[Update, ...]) -> None:
    if len(updates) > MAX_UPDATES_PER_PROPOSAL:
        raise ProposalTooLarge(
            f"{len(updates)} updates; a proposal carries at most {MAX_UPDATES_PER_PROPOSAL}"
        )
