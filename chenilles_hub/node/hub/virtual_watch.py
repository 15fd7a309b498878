"""The watcher's part in virtual channels: the core's breakdown duties, carried out.

At every tick, for each virtual channel this node is an end or the hub of, the ledger
channels are read as the core's ``LedgerView`` (the latest state both signed while a
ledger is active; its dispute on-chain once it is disputed) and the core says what to do
(``end_duties`` for an end, ``hub_duties`` for the hub). A registration goes through
``ChainActions.force_close``; a V state shown, or a heartbeat, is a forced move of the
``virtual`` app through ``AppChannels.move`` (recorded before it is signed and sent, and
forced when its window opens).

The app watcher's idle timeout does not apply: while a guarantee is held the rule's turn
is (0, 1), so neither member is "on its turn" and no dispute starts for silence alone.
"""

from __future__ import annotations

import logging

from chenilles_app_virtual import protocol

from ...backend import LedgerError
from ...core import ChannelError
from ...core.virtual import (
    Duty,
    LedgerView,
    Register,
    ShowVState,
    end_duties,
    hub_duties,
)
from .apps import AppChannels
from .context import NodeContext
from .records import Channel
from .virtual import VirtualChannels
from .virtual_records import VirtualChannel

log = logging.getLogger("chenilles.node")


def margin_of(challenge: int) -> int:
    """How long before a period closes a node acts (a third of the period)."""
    return max(1, challenge // 3)


class VirtualWatch:
    def __init__(self, ctx: NodeContext, virtual: VirtualChannels, apps: AppChannels) -> None:
        self.ctx = ctx
        self.virtual = virtual
        self.apps = apps

    def tick(self) -> None:
        self.virtual.expire()
        for v in list(self.virtual.records.values()):
            if v.terms is None or v.status in ("requested", "offered", "refused", "expired"):
                continue
            try:
                self._watch(v)
            except (ChannelError, LedgerError, KeyError, ValueError) as error:
                self.ctx.note(f"virtual {v.request_id.hex()[:8]}: watch failed: {error}")

    def _watch(self, v: VirtualChannel) -> None:
        terms = v.terms
        assert terms is not None
        now = self.ctx.clock()
        ledgers = [self.ctx.channels.get(lt.channel_id) for lt in terms.ledgers]
        if v.role == "hub":
            if ledgers[0] is None or ledgers[1] is None:
                return
            pair = (ledgers[0], ledgers[1])
            va, vb = self._view(pair[0]), self._view(pair[1])
            if va is None or vb is None:
                return
            seen = (va, vb)
            best = protocol.held_of(v.final) if v.final is not None else None
            for view in seen:
                if view.held is not None and (best is None or view.held.version > best.version):
                    best = view.held
            periods = (pair[0].params.challenge_duration, pair[1].params.challenge_duration)
            duties = hub_duties(terms, seen, best, now, periods, margin_of(min(periods)))
            if not duties and v.final is not None:
                duties = self._unsettled(v, seen, periods, now)
            for duty in duties:
                self._do(pair[duty.side], duty)
            return
        ledger = ledgers[v.side]
        if ledger is None or v.machine is None or v.machine.latest is None:
            return
        own = self._view(ledger)
        if own is None:
            return
        mine = protocol.held_of(v.machine.latest)
        challenge = ledger.params.challenge_duration
        closed = v.status == "closed"
        for duty in end_duties(
            terms, v.side, own, mine, closed, now, challenge, margin_of(challenge)
        ):
            self._do(ledger, duty)

    def _unsettled(
        self,
        v: VirtualChannel,
        views: tuple[LedgerView, LedgerView],
        periods: tuple[int, int],
        now: int,
    ) -> list[Duty]:
        """V's final state is known but a ledger still holds the guarantee, undisputed, as
        the deadline nears (its end signed the close but never settled): the hub registers
        that ledger, and ``hub_duties`` then shows the final state there, so the hub's
        collateral is not locked for as long as the end stays away."""
        assert v.terms is not None
        return [
            Register(side)
            for side, view in enumerate(views)
            if view.phase == "open"
            and view.held is not None
            and now + periods[side] + margin_of(periods[side]) >= v.terms.deadline
        ]

    def _view(self, ledger: Channel) -> LedgerView | None:
        """The ledger channel as the core reads it; ``None`` while it cannot be read."""
        if ledger.status in ("active", "closing"):
            latest = ledger.machine.latest
            if latest is None:
                return None
            return protocol.view("open", 0, latest.state)
        try:
            d = ledger.backend.app_dispute(ledger.params)
        except (LedgerError, ChannelError, ValueError):
            return None
        if d is None:
            return None
        if d.phase == "concluded":
            return protocol.view("concluded", d.conclude_at, d.state)
        if d.phase == "registered":
            return protocol.view("dispute", d.move_from, d.state)
        return protocol.view("forced", d.move_until, d.state)

    def _do(self, ledger: Channel, duty: Duty) -> None:
        cid = ledger.channel_id
        if isinstance(duty, Register):
            if ledger.status not in ("active", "closing"):
                return
            self.ctx.note(f"virtual channel breakdown: registering ledger {cid.hex()[:8]}")
            self.apps.chain_actions.force_close(cid)
            return
        if cid in self.apps.forced:
            return  # a forced move of ours waits for its window already
        d = ledger.backend.app_dispute(ledger.params)
        if d is None:
            return
        if isinstance(duty, ShowVState):
            move = protocol.show(d.state, protocol.vstate_from_held(duty.state))
            what = f"showing V version {duty.state.version}"
        else:
            move = protocol.heartbeat(d.state)
            what = "a heartbeat"
        self.ctx.note(f"virtual channel breakdown: {what} in ledger {cid.hex()[:8]}")
        self.apps.move(cid, move.data)
