"""Virtual channels through the node: open through a hub, pay, close (docs/virtual-channels.md).

Three roles, one collaborator. **Alice** asks her hub (``VirtualOpenRequest``) for a
virtual channel V with Bob, funded by her ``virtual``-app ledger channel with the hub.
The **hub** picks its ledger channel with Bob, fixes the terms (``VirtualTerms``: both
ends' keys are their keys in their ledger channels, so the guarantee's FUND check holds)
and offers them to both ends (``VirtualOffer``). Each end checks that the terms name its
own ledger channel, its own key and its node, and answers (``VirtualAnswer``). Once both
accepted, the hub proposes FUND in both ledger channels, then ACTIVATE in both once both
are signed: off-chain app updates of the ledger channels, nothing on-chain.

V runs the ordinary ``ChannelMachine`` between Alice's and Bob's nodes (the core's
channel messages, framed as for any channel, routed here by V's id); its signer is the
``virtual`` app's ``VirtualAuthority`` with the end's ledger key. An end proposes in V only
once its own ledger channel holds V's *active* guarantee. Closing: an end proposes
``Close``; once V's final state is signed by both, each end reports it to the hub
(``VirtualFinal``) and settles its own ledger channel with the two moves UPDATE+SETTLE.

Everything is persisted as one record per virtual channel in the event's checkpoint, so
no V signature leaves before the state it signs is on disk. The breakdown duties live in
:mod:`.virtual_watch`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from chenilles_app_virtual import protocol
from chenilles_app_virtual.authority import VirtualAuthority

from ...circuit.quote import Rate
from ...core import (
    ChannelError,
    ChannelMachine,
    Effect,
    Persist,
    Send,
    Transfer,
    Update,
)
from ...core.errors import InvalidParams, NotPermitted, WrongChannel
from ...core.messages import Accept, Ack, Propose, Reestablish, Reject
from ...core.updates import Close
from ...core.virtual import (
    VirtualTerms,
    check_terms,
    virtual_channel_id,
    virtual_initial,
    virtual_params,
)
from ..net import wire
from ..net.wire import MAX_ANSWER_REASON
from .context import NodeContext
from .records import Channel
from .virtual_guard import check_fund
from .virtual_keys import VirtualKeys, v_private_key
from .virtual_ledgers import VirtualLedgers
from .virtual_records import DONE, VirtualChannel, decode_record, record_key
from .virtual_terms import RateOf, check_final, check_offer, hub_terms, unit_of

VMessage = Propose | Accept | Ack | Reject | Reestablish
#: Shortest life a virtual channel may be opened with (seconds before its deadline): its
#: ends must be able to register their ledger channel and show a state before it.
MIN_LIFETIME = 60
#: Seconds Alice's request waits for the hub's offer before it expires (the default of
#: ``VirtualChannels.request_timeout``, the node's ``virtual_request_timeout`` policy).
REQUEST_TIMEOUT = 120


class VirtualChannels:
    def __init__(
        self,
        ctx: NodeContext,
        queue: Callable[[Channel, Update], None],
        rate_of: RateOf | None = None,
    ) -> None:
        self.ctx = ctx
        self._queue = queue
        #: the hub's conversion rate from V's unit into Bob's ledger's asset
        self.rate_of: RateOf = rate_of or (lambda _in, _out: None)
        self.keys = VirtualKeys(ctx)
        self.request_timeout = REQUEST_TIMEOUT
        #: by request id (the record's key)
        self.records: dict[bytes, VirtualChannel] = {}
        #: the records :meth:`advance` looks at after every event: those not done. The done
        #: ones stay in ``records`` for the operator, and are never looked at again (a hub
        #: keeps every virtual channel it ever served: looking at each one after every
        #: event made an event's cost grow with that history).
        self.live: dict[bytes, VirtualChannel] = {}
        self.ledgers = VirtualLedgers(ctx, self.records)
        #: V's channel id -> request id (ends and hub, once the terms are known)
        self.by_vid: dict[bytes, bytes] = {}
        #: the hub: expired V whose guarantee a ledger may still hold (``_cancel_pending``)
        self.cancelling: set[bytes] = set()

    # --- the operator's requests ------------------------------------------------------------

    def open(
        self,
        hub: bytes,
        peer: bytes,
        split: tuple[int, int],
        lifetime: int,
        grace: int,
        rate: Rate | None = None,
    ) -> bytes:
        """Alice: ask ``hub`` for a virtual channel with ``peer``; returns the request id
        (the channel's handle until its terms, and so its id, are known). ``rate``: the
        conversion into Bob's asset Alice accepts (an offer at another is refused). The
        request expires if the hub has not offered terms within ``request_timeout``."""
        if lifetime < MIN_LIFETIME:
            raise InvalidParams(f"a virtual channel lives at least {MIN_LIFETIME} s")
        if min(split) < 0 or sum(split) <= 0:
            raise InvalidParams("a virtual channel holds something, no negative share")
        ledger = self.ledgers.free_ledger(hub)
        request_id = secrets.token_bytes(32)
        v = VirtualChannel(request_id, "alice", "requested", ledger=ledger.channel_id, peer=peer)
        v.expires_at, v.rate = self.ctx.clock() + self.request_timeout, rate
        self._store(v)
        self.ctx.send(
            hub,
            wire.VirtualOpenRequest(
                request_id,
                ledger.channel_id,
                peer,
                (split[0], split[1]),
                self.ctx.clock() + lifetime,
                grace,
                rate,
            ),
        )
        return request_id

    def expire(self) -> None:
        """Alice: a request the hub has not answered in time fails, with the reason; a
        late offer for it is then refused (``_on_offer``): nothing is locked. The hub: an
        offer not accepted by both ends in time fails too, both ends are told (their
        ledgers are free again), and a late answer is refused (``_on_answer``). So does a
        funding that one end's ledger never signed: the hub then cancels the guarantee
        the other ledger holds (``_cancel_pending``), or its collateral and that end's
        ledger would stay promised to a V that can never open."""
        now = self.ctx.clock()
        for request_id in list(self.cancelling):
            self._cancel_pending(self.records[request_id])
        for v in list(self.live.values()):  # what expires is never done yet
            if not 0 < v.expires_at <= now:
                continue
            if v.role == "alice" and v.status == "requested":
                v.reason = f"expired: the hub sent no offer within {self.request_timeout} s"
            elif v.role == "hub" and v.status in ("offered", "funding") and v.terms is not None:
                if v.status == "funding" and all(self.ledgers.guarantee(v, s) for s in (0, 1)):
                    continue  # both ledgers hold it: activating goes on
                if v.status == "funding":
                    self.cancelling.add(v.request_id)
                what = "accepted by both ends" if v.status == "offered" else "funded in both"
                v.reason = f"expired: not {what} within {self.request_timeout} s"
                for end in v.terms.node_ids:
                    self.ctx.send(end, wire.VirtualAnswer(v.request_id, False, v.reason))
            else:
                continue
            v.status = "expired"
            self.ctx.note(f"virtual {v.request_id.hex()[:8]}: {v.reason}")
            self._store(v)

    def _cancel_pending(self, v: VirtualChannel) -> None:
        """The hub: cancel (SETTLE while pending) a guarantee of an expired V that a ledger
        still holds, once that ledger is idle. An end that does not sign the cancel is
        answered through the chain: the app watcher registers the ledger and forces it."""
        held = [self.ledgers.guarantee(v, side) for side in (0, 1)]
        live = [side for side in (0, 1) if self.ledgers.ledger(v, side).status == "active"]
        if all(held[side] is None and self.ledgers.idle_side(v, side) for side in live):
            self.cancelling.discard(v.request_id)  # nothing held, nothing on its way
        for side, g in enumerate(held):
            if g is not None and not g.active and self.ledgers.idle_side(v, side):
                ledger = self.ledgers.ledger(v, side)
                self._queue(ledger, protocol.cancel(ledger.machine.state))
                self.ctx.note(f"virtual {v.request_id.hex()[:8]}: cancelling its guarantee")

    def pay(self, handle: bytes, amount: int) -> None:
        v = self.get(handle)
        machine = self._usable(v)
        asset = machine.params.assets[0]
        self._run(v, machine.propose((Transfer(asset, amount),), self.ctx.clock()))

    def close(self, handle: bytes) -> None:
        v = self.get(handle)
        machine = self._usable(v)
        self._run(v, machine.propose((Close(),), self.ctx.clock()))

    def get(self, handle: bytes) -> VirtualChannel:
        """By request id or by V's channel id."""
        v = self.records.get(handle) or self.records.get(self.by_vid.get(handle, b""))
        if v is None:
            raise WrongChannel(f"no virtual channel {handle.hex()[:16]}")
        return v

    def describe(self, v: VirtualChannel) -> dict[str, object]:
        """What the operator sees: status, V's balances, and which ledger channels fund it."""
        return v.view(self._peer_of(v) if v.terms or v.peer else None)

    def _peer_of(self, v: VirtualChannel) -> bytes:
        if v.terms is None:
            return v.peer
        if v.role == "hub":
            return v.terms.node_ids[0]
        return v.terms.node_ids[1 - v.side]

    # --- messages from peers ------------------------------------------------------------------

    def owns(self, message: wire.NodeMessage) -> bool:
        channel_id = getattr(message, "channel_id", None)
        return channel_id is not None and channel_id in self.by_vid

    def receive(self, peer: bytes, message: wire.NodeMessage) -> None:
        if isinstance(message, wire.VirtualOpenRequest):
            self._on_request(peer, message)
        elif isinstance(message, wire.VirtualOffer):
            self._on_offer(peer, message)
        elif isinstance(message, wire.VirtualAnswer):
            self._on_answer(peer, message)
        elif isinstance(message, wire.VirtualFinal):
            self._on_final(peer, message)
        elif isinstance(message, wire.VirtualKey):
            self.keys.on_key(peer, message)
        elif isinstance(message, Propose | Accept | Ack | Reject | Reestablish):
            self._on_v_message(peer, message)

    def check_ledger_proposal(self, channel: Channel, updates: tuple[Update, ...]) -> None:
        """Before our machine signs the peer's proposal in a ledger channel: a FUND only of
        an offer we accepted and have not funded, never of a V id used before
        (:mod:`.virtual_guard`); ``NotPermitted`` otherwise."""
        check_fund(self.records.values(), self.by_vid, channel, updates)

    def _on_request(self, peer: bytes, m: wire.VirtualOpenRequest) -> None:
        """The hub: fix the terms from the two ledger channels, offer them to both ends."""
        if m.request_id in self.records:
            raise NotPermitted("this request id is taken")
        try:
            la = self.ledgers.ledger_with(peer, m.ledger)
            lb = self.ledgers.free_ledger(m.peer)
            self.ledgers.not_promised(la.channel_id, lb.channel_id)
            if m.deadline < self.ctx.clock() + MIN_LIFETIME:
                raise InvalidParams(f"a virtual channel lives at least {MIN_LIFETIME} s")
            terms = hub_terms(self.keys, self.rate_of, la, lb, m, peer, self.ctx.node_id)
        except ChannelError as error:
            self.ctx.send(peer, wire.VirtualAnswer(m.request_id, False, _refusal(error)))
            return
        v = VirtualChannel(m.request_id, "hub", "offered", terms=terms)
        v.expires_at = self.ctx.clock() + self.request_timeout
        self.by_vid[virtual_channel_id(terms)] = v.request_id
        self._store(v)
        for end in terms.node_ids:
            self.ctx.send(end, wire.VirtualOffer(m.request_id, terms, unit_of(la)))

    def _on_offer(self, peer: bytes, m: wire.VirtualOffer) -> None:
        """An end: accept terms that name our ledger channel with the sender, our key and
        our node; Alice only the terms of her own request."""
        terms = m.terms
        mine = self.records.get(m.request_id)
        try:
            check_terms(terms)
            if terms.hub_node_id != peer:
                raise InvalidParams("the offer names another hub than its sender")
            if self.ctx.node_id not in terms.node_ids:
                raise InvalidParams("the offer is not for this node")
            side = terms.node_ids.index(self.ctx.node_id)
            if side == 0:
                if mine is not None and mine.role == "alice" and mine.status == "expired":
                    raise NotPermitted("an offer for a request that expired")
                if mine is None or mine.role != "alice" or mine.status != "requested":
                    raise NotPermitted("an offer this node did not ask for")
                if terms.ledgers[0].channel_id != mine.ledger or terms.node_ids[1] != mine.peer:
                    raise InvalidParams("the offer is not what this node asked for")
            elif mine is not None:
                raise NotPermitted("this request id is taken")
            if virtual_channel_id(terms) in self.by_vid:
                raise NotPermitted("this virtual channel id was used before")
            ledger = self.ledgers.ledger_with(peer, terms.ledgers[side].channel_id)
            self.ledgers.not_promised(ledger.channel_id)
            check_offer(self.keys, m, side, ledger, mine.rate if mine is not None else None)
            machine = self._machine(terms, side, ledger)
        except ChannelError as error:
            if mine is not None and mine.role == "alice" and mine.status == "requested":
                mine.status, mine.reason = "refused", f"{error.code}: {error}"
                self._store(mine)
            self.ctx.send(peer, wire.VirtualAnswer(m.request_id, False, _refusal(error)))
            return
        v = mine or VirtualChannel(m.request_id, "bob", "offered")
        v.terms, v.machine, v.status = terms, machine, "offered"
        self.by_vid[virtual_channel_id(terms)] = v.request_id
        self._store(v)
        self.ctx.send(peer, wire.VirtualAnswer(m.request_id, True))

    def _on_answer(self, peer: bytes, m: wire.VirtualAnswer) -> None:
        v = self.records.get(m.request_id)
        if v is None:
            raise WrongChannel("an answer to no virtual channel of ours")
        if v.role != "hub":  # the hub refused our request, or its offer ended (refused, expired)
            if (
                v.status in ("requested", "offered")
                and peer == self.ledgers.hub_of(v)
                and not m.accepted
            ):
                v.reason = m.reason
                if v.terms is None or self.ledgers.unfunded(v):
                    v.status = "refused"
                # else our ledger holds (or signs) V's guarantee: refused once it is gone
                # (the hub cancels it, ``_advance_end``), or it goes on if it was activated
                self._store(v)
            return
        if v.role != "hub" or v.terms is None or v.status != "offered":
            raise NotPermitted("an answer out of turn")
        if peer not in v.terms.node_ids:
            raise NotPermitted("an answer from a node that is no end of this channel")
        side = v.terms.node_ids.index(peer)
        if not m.accepted:
            v.status, v.reason = "refused", m.reason
            self._store(v)
            other = v.terms.node_ids[1 - side]
            self.ctx.send(other, wire.VirtualAnswer(v.request_id, False, m.reason))
            return
        accepted = list(v.accepted)
        accepted[side] = True
        v.accepted = (accepted[0], accepted[1])
        if all(v.accepted):
            v.status = "funding"
            v.expires_at = self.ctx.clock() + self.request_timeout  # both ledgers signed by then
            for s in (0, 1):
                ledger = self.ctx.channels[v.terms.ledgers[s].channel_id]
                self._queue(ledger, protocol.fund(v.terms, s, ledger.machine.state))
        self._store(v)

    def _on_final(self, peer: bytes, m: wire.VirtualFinal) -> None:
        """The hub: an end reports V's final state; checked, then kept."""
        v = self.records.get(m.request_id)
        if v is None or v.role != "hub" or v.terms is None:
            raise WrongChannel("a final state of no virtual channel we fund")
        if peer not in v.terms.node_ids:
            raise NotPermitted("a final state from a node that is no end of this channel")
        check_final(v.terms, m.final)
        v.final = m.final
        self._store(v)

    def _on_v_message(self, peer: bytes, message: VMessage) -> None:
        v = self.get(message.channel_id)
        if v.machine is None or peer != self._peer_of(v):
            raise WrongChannel("a virtual channel message from a node that is not its peer")
        try:
            effects = v.machine.receive(message, self.ctx.clock())
        except ChannelError as error:
            # answered here (the intake answers only ledger channels' proposals)
            self.ctx.errors.append(error)
            self.ctx.count("peer_messages_refused")
            self._run(v, v.machine.rejection(message, error))
            return
        self._run(v, effects)

    # --- progress: called at the end of every event ----------------------------------------

    def advance(self) -> None:
        """Move each virtual channel on from what its ledger channels now hold (fund,
        activate, start V, settle): after every event, so nothing waits for a tick."""
        self.keys.declare()
        for v in list(self.live.values()):
            if v.status in DONE:
                del self.live[v.request_id]
                continue
            if v.terms is None:
                continue
            try:
                if v.role == "hub":
                    self._advance_hub(v)
                else:
                    self._advance_end(v)
            except (ChannelError, KeyError) as error:
                self.ctx.note(f"virtual {v.request_id.hex()[:8]}: cannot go on: {error}")

    def _advance_hub(self, v: VirtualChannel) -> None:
        assert v.terms is not None
        guarantees = [self.ledgers.guarantee(v, s) for s in (0, 1)]
        if v.status == "funding":
            if all(g is not None and not g.active for g in guarantees) and self.ledgers.idle(v):
                for s in (0, 1):
                    ledger = self.ledgers.ledger(v, s)
                    self._queue(ledger, protocol.activate(ledger.machine.state))
            elif all(g is not None and g.active for g in guarantees):
                v.status = "open"
                self._store(v)
        elif v.status in ("open", "closing") and all(g is None for g in guarantees):
            v.status = "closed"
            self._store(v)

    def _advance_end(self, v: VirtualChannel) -> None:
        assert v.terms is not None and v.machine is not None
        g = self.ledgers.guarantee(v, v.side)
        if v.status == "offered" and v.reason and g is None and self.ledgers.idle_ledger(v):
            v.status = "refused"  # the hub gave up and cancelled what our ledger held
            self._store(v)
            return
        if v.status in ("offered", "funding") and g is not None and g.active:
            v.status = "open"
            self._store(v)
            if v.side == 0 and v.machine.latest is None and v.machine.pending is None:
                self._run(v, v.machine.open())
        latest = v.machine.latest
        if v.status == "open" and v.side == 0 and latest is not None and v.machine.idle:
            self._close_before_deadline(v)
            latest = v.machine.latest
        if v.status == "open" and latest is not None and latest.state.final:
            v.status = "closing"
            self._store(v)
        if v.status == "closing" and latest is not None:
            if g is None:
                if self.ledgers.idle_ledger(v):
                    v.status = "closed"
                    self._store(v)
                return
            if not v.settled_sent and self.ledgers.idle_ledger(v):
                ledger = self.ledgers.ledger(v, v.side)
                self.ctx.send(v.terms.hub_node_id, wire.VirtualFinal(v.request_id, latest))
                for move in protocol.settle(ledger.machine.state, latest):
                    self._queue(ledger, move)
                v.settled_sent = True

    def reestablish(self, peer: bytes) -> None:
        """After a reconnect: tell ``peer`` where each virtual channel with it stands (a
        proposal or answer it missed is sent again, as for a ledger channel); our V keys
        for the ledger channels we share with it, too."""
        self.keys.declare(peer)
        for request_id in self.cancelling:  # the hub gave up on it: an end may not know yet
            v = self.records[request_id]
            if v.terms is not None and peer in v.terms.node_ids:
                self.ctx.send(peer, wire.VirtualAnswer(request_id, False, v.reason))
        for v in list(self.live.values()):
            if v.machine is None or v.status in DONE or v.terms is None:
                continue
            if self._peer_of(v) == peer and v.machine.latest is not None:
                try:
                    self._run(v, v.machine.reestablish())
                except ChannelError as error:
                    self.ctx.note(f"virtual {v.request_id.hex()[:8]}: reestablish: {error}")

    def _close_before_deadline(self, v: VirtualChannel) -> None:
        """Alice's node closes V itself two challenge periods before its deadline: past the
        deadline nothing can be shown to the ledgers, and one period before it the ends'
        watchers must go on-chain (``end_duties``); a cooperative close avoids both."""
        assert v.terms is not None and v.machine is not None
        latest = v.machine.latest
        if latest is None or latest.state.final:
            return
        lead = 2 * self.ledgers.ledger(v, v.side).params.challenge_duration
        now = self.ctx.clock()
        if now + lead < v.terms.deadline:
            return
        self.ctx.note(f"virtual {v.request_id.hex()[:8]}: its deadline is near, closing it")
        self._run(v, v.machine.propose((Close(),), now))

    # --- restart ------------------------------------------------------------------------------

    def restore(self) -> None:
        store = self.ctx.store
        if store is None:
            return
        self.keys.restore()
        for raw in store.virtual_records():
            r = decode_record(raw)
            v = VirtualChannel(
                r.request_id,
                r.role,
                r.status,
                terms=r.terms,
                final=r.final,
                accepted=r.accepted,
                reason=r.reason,
                ledger=r.ledger,
                peer=r.peer,
                expires_at=r.expires_at,
                rate=r.rate,
            )
            if r.terms is not None:
                self.by_vid[virtual_channel_id(r.terms)] = r.request_id
                if v.role == "hub" and v.status == "expired":
                    self.cancelling.add(v.request_id)  # dropped at the first tick if nothing held
                if v.role != "hub":
                    ledger = self.ctx.channels.get(r.terms.ledgers[v.side].channel_id)
                    if ledger is None:
                        self.ctx.note(f"virtual {r.request_id.hex()[:8]}: its ledger is gone")
                        continue
                    v.machine = self._machine(r.terms, v.side, ledger)
                    if r.snapshot is not None:
                        v.machine.restore(r.snapshot)
            self.records[v.request_id] = v
            self._track(v)

    # --- internals ----------------------------------------------------------------------------

    def _machine(self, terms: VirtualTerms, side: int, ledger: Channel) -> ChannelMachine:
        return ChannelMachine(
            virtual_params(terms),
            virtual_channel_id(terms),
            side,
            VirtualAuthority(v_private_key(ledger.account)),
            virtual_initial(terms),
        )

    def _run(self, v: VirtualChannel, effects: list[Effect]) -> None:
        """V's effects: a persisted snapshot goes into this event's checkpoint (the record),
        which is written before the outbox, and so any V signature, is released."""
        self._store(v)
        for effect in effects:
            if isinstance(effect, Persist):
                self._store(v)
            elif isinstance(effect, Send):
                self.ctx.send(effect.peer, effect.message)

    def _store(self, v: VirtualChannel) -> None:
        self.records[v.request_id] = v
        self._track(v)
        self.ctx.pending.records[record_key(v.request_id)] = v.encode()

    def _track(self, v: VirtualChannel) -> None:
        if v.status in DONE:
            self.live.pop(v.request_id, None)
        else:
            self.live[v.request_id] = v

    def _usable(self, v: VirtualChannel) -> ChannelMachine:
        if v.machine is None or v.status != "open":
            raise NotPermitted(f"the virtual channel is {v.status}, not open")
        if v.machine.latest is None:
            raise NotPermitted("the virtual channel's opening state is not signed yet")
        if not v.machine.idle:
            raise NotPermitted("an update is on its way: wait for the peer's answer")
        return v.machine


def _refusal(error: ChannelError) -> str:
    """An error as a ``VirtualAnswer``'s reason, cut to what one carries (the error may
    quote a requester's numbers at any length: longer, the answer would not decode)."""
    return f"{error.code}: {error}"[:MAX_ANSWER_REASON]
