"""App channels (generalized state): opening checks, moves, and the watcher's part in an
app's dispute.

Off-chain an app channel is a channel whose updates are app moves (the core runs the app's
rule on each). On-chain, its dispute has forced moves (``ChainBackend.force_move``), and
this collaborator is what makes a node safe in one:

- a forced move on a state older than what both signed is answered with that state: the
  base watcher refutes a strictly older version; here, a forced move of the same version
  as our latest but another content (a take-back) is answered the same way;
- a move of ours the peer does not countersign within ``answer_timeout`` is forced: we
  register the last state both signed and, once the refutation period is over, force the
  move we proposed (its one signature is the forced move's bundle);
- a peer that does not move on its turn within ``answer_timeout`` gets the dispute
  started; if it stays silent on-chain too, its turn times out and the channel concludes
  on the app's outcome (the watcher's conclusion is moved to when the ledger allows it);
- an operator's move during a dispute is forced on-chain when its window opens (it is
  recorded in the store before its signature leaves the process).
"""

from __future__ import annotations

import msgspec

from ...backend import AppDispute, ChainEvent, LedgerError, Progressed, Registered
from ...core import (
    AppMove,
    AppRules,
    ChannelState,
    SignedState,
    check_app_move,
)
from ...core.errors import ChannelError, NotPermitted
from ...core.watcher import ConcludeAndWithdraw
from .chain_actions import ChainActions
from .context import NodeContext
from .proposals import Proposals
from .records import Channel

#: Seconds the peer may take to answer our move, or to make its own on its turn, before
#: the node starts the dispute on-chain.
ANSWER_TIMEOUT = 600
#: Store key prefix of a forced move of ours not yet seen on-chain.
FORCED_PREFIX = "app/forced/"


class AppChannels:
    """The node's app channels (see the module docstring): driven by the operator's
    ``move``, by chain events and by ``tick``; it acts on-chain only through the backend's
    ``force_move`` / ``challenge`` and ``ChainActions.force_close``."""

    def __init__(self, ctx: NodeContext, proposals: Proposals, chain_actions: ChainActions) -> None:
        self.ctx = ctx
        self.proposals = proposals
        self.chain_actions = chain_actions
        self.answer_timeout = ANSWER_TIMEOUT
        #: our move's proposal time, or when the latest state put the peer on its turn
        self._since: dict[bytes, tuple[int, int]] = {}  # channel -> (version, time)
        #: our forced moves not yet on-chain, by channel
        self.forced: dict[bytes, SignedState] = {}

    # --- the operator's requests --------------------------------------------------------

    def rules_of(self, channel: Channel) -> AppRules:
        rules = self.ctx.apps.get(channel.params.app)
        if not channel.params.app or not isinstance(rules, AppRules):
            raise NotPermitted(f"channel {channel.channel_id.hex()[:8]} runs no installed app")
        return rules

    def move(self, channel_id: bytes, data: bytes) -> None:
        """Our move: proposed to the peer in an active channel, forced on-chain during a
        dispute. Refused at once (``ChannelError``) if the app refuses it."""
        channel = self.ctx.channels[channel_id]
        rules = self.rules_of(channel)
        now = self.ctx.clock()
        if channel.status == "active":
            if channel.queue or not channel.machine.idle:
                raise NotPermitted("a move is already on its way: wait for the peer's answer")
            channel.machine.check((AppMove(data),), now)
            self.proposals.queue(channel, AppMove(data))
            return
        if channel.status != "disputed":
            raise NotPermitted(f"the channel is {channel.status}: no move can be made")
        try:
            dispute = channel.backend.app_dispute(channel.params)
        except LedgerError as error:
            raise NotPermitted(f"the dispute cannot be read on-chain now: {error}") from None
        if dispute is None or dispute.phase == "concluded":
            raise NotPermitted("no dispute on-chain to move in")
        before = dispute.state
        after = rules.apply(channel.params, before, channel.me, data)
        check_app_move(rules, channel.params, before, after, channel.me, now)
        after = msgspec.structs.replace(after, version=before.version + 1)
        self._force_later(channel, after)
        self._try_force(channel, dispute)

    def status(self, channel: Channel) -> dict[str, object]:
        """The app as the channel and the chain see it, for the operator."""
        rules = self.rules_of(channel)
        params, state = channel.params, channel.machine.state
        turn = rules.turn(params, state)
        view: dict[str, object] = {
            "app": params.app,
            "version": state.version,
            "state": rules.describe(params, state),
            "app_data": bytes(state.app_data).hex(),
            "turn": list(turn),
            "my_turn": channel.me in turn,
            "over": not turn,
            "onchain": None,
        }
        if channel.status in ("disputed", "closed"):
            try:
                dispute = channel.backend.app_dispute(params)
            except (LedgerError, ChannelError, ValueError):
                dispute = None
            if dispute is not None:
                on_turn = rules.turn(params, dispute.state)
                view["onchain"] = {
                    "phase": dispute.phase,
                    "version": dispute.state.version,
                    "state": rules.describe(params, dispute.state),
                    "turn": list(on_turn),
                    "my_turn": channel.me in on_turn and dispute.phase != "concluded",
                    "move_from": dispute.move_from,
                    "move_until": dispute.move_until,
                    "conclude_at": dispute.conclude_at,
                    "forced_move_pending": channel.channel_id in self.forced,
                }
        return view

    # --- the watcher's part ---------------------------------------------------------------

    def on_chain_events(self, chain: str, events: list[ChainEvent]) -> None:
        for event in events:
            if not isinstance(event, Registered | Progressed):
                continue
            channel = self.ctx.channels.get(event.channel_id)
            if channel is None or not channel.params.app or channel.params.chain != chain:
                continue
            if isinstance(event, Progressed):
                self.ctx.note(
                    f"{chain}: participant {event.mover} forced version {event.version} of "
                    f"{channel.channel_id.hex()[:8]}"
                )
            self._on_dispute(channel)

    def tick(self) -> None:
        now = self.ctx.clock()
        for channel_id in list(self.ctx.app_channels):
            channel = self.ctx.channels[channel_id]
            if channel.params.app not in self.ctx.apps:
                continue
            if channel.status == "active":
                self._watch_peer(channel, now)
            elif channel.status == "disputed":
                self._on_dispute(channel)

    def restore(self) -> None:
        """After a restart: forced moves of ours recorded but maybe not on-chain yet."""
        store = self.ctx.store
        if store is None:
            return
        for channel in self.ctx.channels.values():
            if not channel.params.app:
                continue
            raw = store.get_setting(FORCED_PREFIX + channel.channel_id.hex())
            if raw:
                self.forced[channel.channel_id] = msgspec.json.decode(raw, type=SignedState)

    # --- internals -------------------------------------------------------------------------

    def _watch_peer(self, channel: Channel, now: int) -> None:
        """Start the dispute when the peer leaves our move unanswered, or its own turn
        unplayed, for longer than ``answer_timeout``."""
        latest = channel.machine.latest
        if latest is None or not latest.complete:
            return
        rules = self.ctx.apps.get(channel.params.app)
        waiting = not channel.machine.idle or (
            isinstance(rules, AppRules)
            and rules.turn(channel.params, latest.state) == (1 - channel.me,)
        )
        if not waiting:
            self._since.pop(channel.channel_id, None)
            return
        version, since = self._since.get(channel.channel_id, (latest.version, now))
        if version != latest.version:
            version, since = latest.version, now
        self._since[channel.channel_id] = (version, since)
        if now - since < self.answer_timeout:
            return
        pending = channel.machine.snapshot().pending
        if pending is not None:
            # our move is forced once the registration's refutation period is over
            self._force_later(channel, pending.signed.state)
        self.ctx.note(
            f"peer silent for {now - since}s in app channel {channel.channel_id.hex()[:8]}: "
            "registering the latest state"
        )
        try:
            self.ctx.durable_or_note()  # the state it registers, before it is on-chain
            self.chain_actions.force_close(channel.channel_id)
        except LedgerError as error:
            self.ctx.note(f"register failed: {error}")
        self._since.pop(channel.channel_id, None)

    def _force_later(self, channel: Channel, state: ChannelState) -> None:
        """Sign our forced move and record it before its signature can leave."""
        authority = channel.backend.authority(channel.params, channel.account, channel.me)
        signature = authority.sign(channel.params, state, None)
        sigs = [b"", b""]
        sigs[channel.me] = signature
        signed = SignedState(state, (sigs[0], sigs[1]))
        self.forced[channel.channel_id] = signed
        if self.ctx.store is not None:
            key = FORCED_PREFIX + channel.channel_id.hex()
            self.ctx.store.set_setting(key, msgspec.json.encode(signed))

    def _on_dispute(self, channel: Channel) -> None:
        try:
            dispute = channel.backend.app_dispute(channel.params)
        except (LedgerError, ChannelError, ValueError) as error:
            self.ctx.note(f"app dispute of {channel.channel_id.hex()[:8]} unreadable: {error}")
            return
        if dispute is None or dispute.phase == "concluded":
            return
        if channel.status in ("active", "closing"):
            channel.status = "disputed"
        latest = channel.machine.latest
        now = self.ctx.clock()
        if (
            latest is not None
            and latest.complete
            and dispute.phase == "forced"
            and latest.version == dispute.state.version
            and latest.state != dispute.state
            and now < dispute.refute_until
        ):
            # a forced move of the version we hold signed by both, but another move (a
            # take-back): what both signed replaces it (the base watcher answers older ones)
            try:
                self.ctx.durable_or_note()
                channel.add_receipt(
                    channel.backend.challenge(channel.params, latest, channel.account)
                )
                self.ctx.note(
                    f"answered a forced move on {channel.channel_id.hex()[:8]} with version "
                    f"{latest.version} signed by both"
                )
            except LedgerError as error:
                self.ctx.note(f"answering the forced move failed: {error}")
            return
        # the ledger concludes an app state only once its turn's period is over
        status = self.ctx.watcher.dispute(channel.channel_id)
        if status is not None and not status.concluded and status.timeout < dispute.conclude_at:
            self.ctx.watcher.retry_later(
                ConcludeAndWithdraw(channel.channel_id), dispute.conclude_at
            )
        self._try_force(channel, dispute)

    def _try_force(self, channel: Channel, dispute: AppDispute) -> None:
        signed = self.forced.get(channel.channel_id)
        if signed is None:
            return
        if signed.state.version <= dispute.state.version or dispute.phase == "concluded":
            self._forget(channel)  # on-chain already, or overtaken
            return
        if signed.state.version != dispute.state.version + 1:
            self._forget(channel)
            return
        now = self.ctx.clock()
        if not dispute.move_from <= now < dispute.move_until:
            return
        try:
            self.ctx.durable_or_note()
            receipt = channel.backend.force_move(
                channel.params, signed, channel.me, channel.account
            )
        except LedgerError as error:
            self.ctx.note(f"forced move on {channel.channel_id.hex()[:8]} refused: {error}")
            if "PERIOD_ACTIVE" not in error.reason.upper().replace("PERIODACTIVE", "PERIOD_ACTIVE"):
                self._forget(channel)  # refused for good (a clock skew only delays it)
            return
        channel.add_receipt(receipt)
        self.ctx.note(f"forced our move (version {signed.state.version}) on-chain")
        self._forget(channel)

    def _forget(self, channel: Channel) -> None:
        self.forced.pop(channel.channel_id, None)
        if self.ctx.store is not None:
            key = FORCED_PREFIX + channel.channel_id.hex()
            if self.ctx.store.get_setting(key) is not None:
                self.ctx.store.set_setting(key, b"")
