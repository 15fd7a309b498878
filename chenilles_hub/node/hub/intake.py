"""A peer's message, taken whole or not at all: decoded strictly, dispatched to the
collaborator it concerns, and on any failure undone (:class:`~.savepoint.Savepoint`),
logged, counted and answered where the peer waits for an answer. Nothing a peer sends
escapes to the driver, so one peer can never stop the node or the other peers' messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...core import ChannelError, Effect
from ...core.errors import DecodeError, WrongChannel
from ...core.messages import Accept, Ack, Propose, Reestablish, Reject
from ..net import wire
from .records import Channel
from .savepoint import Savepoint

if TYPE_CHECKING:
    from .context import NodeContext
    from .funding import Funding
    from .opening import Opening
    from .payments import Payments
    from .quoting import Quoting
    from .virtual import VirtualChannels

RunEffects = Callable[[Channel, list[Effect]], None]
log = logging.getLogger("chenilles.node")
_OPEN_MESSAGES = (wire.OpenRequest, wire.OpenAccept, wire.OpenRefused, wire.OpenChannel)
_CHANNEL_MESSAGES = (Propose, Accept, Ack, Reject, Reestablish)
_VIRTUAL_MESSAGES = (
    wire.VirtualOpenRequest,
    wire.VirtualOffer,
    wire.VirtualAnswer,
    wire.VirtualFinal,
    wire.VirtualKey,
)
#: Refusals honest peers cause by racing each other: not a channel's error to show.
_RACES = frozenset({"proposal_conflict", "proposal_pending", "stale_version", "unexpected_message"})


def _reason(error: BaseException) -> str:
    """The innermost cause's message, in one line (a ledger's "Insufficient funds" says
    more than the wrappers around it)."""
    while error.__cause__ is not None and str(error.__cause__):
        error = error.__cause__
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


class Intake:
    def __init__(
        self,
        ctx: NodeContext,
        opening: Opening,
        funding: Funding,
        payments: Payments,
        quoting: Quoting,
        run: RunEffects,
    ) -> None:
        self.ctx = ctx
        self.opening = opening
        self.funding = funding
        self.payment_flow = payments
        self.quoting = quoting
        self.run_effects = run
        #: Virtual channels (set by the node): their messages, and V's channel messages.
        self.virtual: VirtualChannels | None = None

    def receive(self, peer: bytes, data: bytes) -> None:
        """One message from ``peer``. It takes effect whole or not at all: whatever handling
        it raises (a refusal, the node's own bug, a chain that failed) is contained here,
        logged, counted and answered where the peer waits for an answer; what the message
        had changed is undone (:class:`~.savepoint.Savepoint`). Nothing escapes to the
        driver, so one peer can never stop the node or the other peers' messages."""
        try:
            message = wire.decode(data)
        except Exception as exc:  # malformed: the driver disconnects the peer
            error = exc if isinstance(exc, DecodeError) else DecodeError(f"malformed: {exc}")
            self._refused(peer, error)
            return
        channel = self._known_channel(peer, message)
        if channel is not None and not self._loaded(channel, message):
            return
        savepoint = Savepoint(
            self.ctx,
            self.opening,
            self.payment_flow,
            self.quoting,
            channel,
            with_payments=not isinstance(message, _OPEN_MESSAGES),
        )
        self.ctx.reanchor = savepoint.reanchor
        try:
            self._dispatch(peer, message)
        except ChannelError as error:
            savepoint.rollback()
            self._refused(peer, error)
            if channel is not None and error.code not in _RACES:
                what = type(message).__name__
                channel.failed(
                    f"refused the peer's {what}: {error.code}: {error}", self.ctx.clock()
                )
            self._answer_refusal(peer, message, channel, error)
        except Exception as error:
            savepoint.rollback()
            if channel is not None:  # ours to tell the operator: a deposit or close that failed
                what = type(message).__name__
                channel.failed(
                    f"handling the peer's {what} failed: {_reason(error)}", self.ctx.clock()
                )
            self.ctx.errors.append(error)
            self.ctx.count("peer_messages_failed")
            log.exception(
                "%s: handling a %s from %s failed; undone",
                self.ctx.name,
                type(message).__name__,
                peer.hex()[:8],
            )
            if isinstance(message, _OPEN_MESSAGES):
                self.opening.refused(peer, message, "the node could not handle this request")
        else:
            savepoint.release()
            if _quiet(message, channel):
                self.ctx.pending.quiet += 1
        finally:
            self.ctx.reanchor = None

    def _loaded(self, channel: Channel, message: wire.NodeMessage) -> bool:
        """Whether the channel's machine can be used. A restarted channel reads, checks
        and decodes its snapshot on first use, which may be here, before the savepoint
        that copies it: one that cannot be read or decoded (the store failed, the bytes
        are corrupt) is the node's failure, not the peer's. Told to the operator on the
        channel, logged and counted; the message changes nothing and counts nothing
        against the peer."""
        try:
            channel.machine.latest  # noqa: B018 (a restored machine's first use)
        except Exception as error:
            channel.failed(
                f"its stored state could not be loaded, the peer's {type(message).__name__} "
                f"was not handled: {_reason(error)}",
                self.ctx.clock(),
            )
            # Not among ``ctx.errors``: a driver counts those against the peer.
            self.ctx.count("peer_messages_failed")
            log.error(
                "%s: channel %s: its stored state could not be loaded: %s",
                self.ctx.name,
                channel.channel_id.hex(),
                _reason(error),
            )
            return False
        return True

    def _refused(self, peer: bytes, error: ChannelError) -> None:
        self.ctx.errors.append(error)
        self.ctx.count("peer_messages_refused")
        log.warning("%s: refused a message from %s: %s", self.ctx.name, peer.hex()[:8], error)

    def _answer_refusal(
        self, peer: bytes, message: wire.NodeMessage, channel: Channel | None, error: ChannelError
    ) -> None:
        """Tell the peer what we refused where it waits for an answer: a proposal gets a
        ``Reject``, a step of the open handshake an ``OpenRefused``."""
        if isinstance(message, _OPEN_MESSAGES):
            self.opening.refused(peer, message, f"{error.code}: {error}")
        elif channel is not None and isinstance(message, _CHANNEL_MESSAGES):
            self.run_effects(channel, channel.machine.rejection(message, error))

    def _known_channel(self, peer: bytes, message: wire.NodeMessage) -> Channel | None:
        """The existing channel with ``peer`` that ``message`` is about, if any."""
        channel_id = getattr(message, "channel_id", None)
        channel = self.ctx.channels.get(channel_id) if channel_id is not None else None
        return channel if channel is not None and channel.peer == peer else None

    def _dispatch(self, peer: bytes, message: wire.NodeMessage) -> None:
        opening = self.opening
        if isinstance(message, wire.OpenRequest):
            opening.on_open_request(peer, message)
        elif isinstance(message, wire.OpenAccept):
            opening.on_open_accept(peer, message)
        elif isinstance(message, wire.OpenRefused):
            opening.on_open_refused(peer, message)
        elif isinstance(message, wire.OpenChannel):
            opening.on_open_channel(peer, message)
        elif isinstance(message, wire.FundingDone):
            self.funding.on_funding_done(self._channel_of(peer, message.channel_id))
        elif isinstance(message, wire.QuoteRequest):
            self.quoting.on_request(peer, message)
        elif isinstance(message, wire.QuoteReply):
            self.quoting.on_reply(peer, message)
        elif self.virtual is not None and (
            isinstance(message, _VIRTUAL_MESSAGES) or self.virtual.owns(message)
        ):
            self.virtual.receive(peer, message)
        elif isinstance(message, _VIRTUAL_MESSAGES):
            raise WrongChannel("this node runs no virtual channels")
        else:
            self._on_channel_message(peer, message)

    def _channel_of(self, peer: bytes, channel_id: bytes) -> Channel:
        channel = self.ctx.channels.get(channel_id)
        if channel is None:
            raise WrongChannel(f"no channel {channel_id.hex()[:16]}")
        if channel.peer != peer:
            raise WrongChannel("message from a node that is not this channel's peer")
        return channel

    def _on_channel_message(
        self, peer: bytes, message: Propose | Accept | Ack | Reject | Reestablish
    ) -> None:
        channel = self._channel_of(peer, message.channel_id)
        self.funding.check_updatable(channel, message)
        if self.virtual is not None and isinstance(message, Propose):
            self.virtual.check_ledger_proposal(channel, message.updates)
        self.run_effects(channel, channel.machine.receive(message, self.ctx.clock()))


def _quiet(message: wire.NodeMessage, channel: Channel | None) -> bool:
    """Whether what ``message`` changed is ours alone, to be synced with the next durable
    write unless what it set off sends or answers something (the node checks that at the
    checkpoint; docs/security.md, "Relaxed writes"): a peer's Ack (its revocation, the
    state now irrevocable), and, where an update is two messages, its Accept of a state
    that is not final (its signature on our proposal: it sends the Accept again on
    reestablish). Version 0's Ack starts the deposits on chain: never quiet; a final
    state's Accept submits the close."""
    if isinstance(message, Ack):
        return message.version > 0
    if isinstance(message, Accept) and channel is not None:
        latest = channel.machine.latest
        return (
            latest is not None
            and latest.state.version == message.version
            and channel.machine.two_step(latest.state)
        )
    return False
