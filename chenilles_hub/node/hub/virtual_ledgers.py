"""Which ledger channels a virtual channel stands on, and what they hold: the lookups the
virtual channel flow (:mod:`.virtual`) and its expiry ask at every step. A ledger channel
of the ``virtual`` app funds one virtual channel at a time."""

from __future__ import annotations

from chenilles_app_virtual import rules

from ...core import ChannelError
from ...core.errors import InvalidParams, InvalidTransition, NotPermitted
from ...core.virtual import virtual_channel_id
from .context import NodeContext
from .records import Channel
from .virtual_records import DONE, VirtualChannel

#: Ledger channels of this app can fund a virtual channel.
APP_ID = rules.APP_ID


class VirtualLedgers:
    """Lookups over the node's ledger channels for the virtual channels in ``records``."""

    def __init__(self, ctx: NodeContext, records: dict[bytes, VirtualChannel]) -> None:
        self.ctx = ctx
        self.records = records

    def hub_of(self, v: VirtualChannel) -> bytes:
        if v.terms is not None:
            return v.terms.hub_node_id
        return self.ctx.channels[v.ledger].peer

    def ledger(self, v: VirtualChannel, side: int) -> Channel:
        assert v.terms is not None
        return self.ctx.channels[v.terms.ledgers[side].channel_id]

    def guarantee(self, v: VirtualChannel, side: int) -> rules.Guarantee | None:
        """The guarantee for V that ledger ``side`` holds in its latest state both signed."""
        assert v.terms is not None
        ledger = self.ctx.channels.get(v.terms.ledgers[side].channel_id)
        latest = ledger.machine.latest if ledger is not None else None
        if latest is None:
            return None
        try:  # either layout (a Solana ledger's compact one is read with its balances)
            g = rules.state_guarantee(latest.state)
        except InvalidTransition:
            return None
        return g if g is not None and g.vid == virtual_channel_id(v.terms) else None

    def unfunded(self, v: VirtualChannel) -> bool:
        """An end's ledger neither holds V's guarantee nor has an update on its way."""
        assert v.terms is not None
        if v.terms.ledgers[v.side].channel_id not in self.ctx.channels:
            return True
        return self.guarantee(v, v.side) is None and self.idle_side(v, v.side)

    def idle(self, v: VirtualChannel) -> bool:
        return all(self.idle_side(v, s) for s in (0, 1))

    def idle_ledger(self, v: VirtualChannel) -> bool:
        return self.idle_side(v, v.side)

    def idle_side(self, v: VirtualChannel, side: int) -> bool:
        ledger = self.ledger(v, side)
        return ledger.machine.idle and not ledger.queue and ledger.status == "active"

    def ledger_with(self, peer: bytes, channel_id: bytes) -> Channel:
        channel = self.ctx.channels.get(channel_id)
        if channel is None or channel.peer != peer:
            raise InvalidParams(f"no ledger channel {channel_id.hex()[:16]} with this peer")
        self.check_ledger(channel)
        return channel

    def free_ledger(self, peer: bytes) -> Channel:
        """Our active ``virtual`` ledger channel with ``peer`` that funds nothing yet."""
        for channel in self.ctx.channels.values():
            if channel.peer == peer and channel.params.app == APP_ID:
                try:
                    self.check_ledger(channel)
                except ChannelError:
                    continue
                return channel
        raise InvalidParams(
            f"no active ledger channel of the '{APP_ID}' app with {peer.hex()[:16]} free to fund"
        )

    def not_promised(self, *ledgers: bytes) -> None:
        """A ledger channel funds one virtual channel at a time: one being offered or open
        already holds it (so a peer cannot pile up offers, each a record, on one ledger)."""
        for v in self.records.values():
            if v.terms is None or v.status in (*DONE, "requested"):
                continue
            if {lt.channel_id for lt in v.terms.ledgers} & set(ledgers):
                raise NotPermitted("this ledger channel is promised to another virtual channel")

    def check_ledger(self, channel: Channel) -> None:
        if channel.params.app != APP_ID:
            raise InvalidParams(f"channel {channel.channel_id.hex()[:16]} is no '{APP_ID}' ledger")
        if channel.status != "active":
            raise InvalidParams(f"ledger channel {channel.channel_id.hex()[:16]} is not active")
        if channel.machine.state.app_data or channel.queue or not channel.machine.idle:
            raise InvalidParams(
                f"ledger channel {channel.channel_id.hex()[:16]} funds a virtual channel already"
            )
