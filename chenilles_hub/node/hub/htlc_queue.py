"""HTLCs that wait for a slot: a channel holds at most ``MAX_HTLCS`` locked HTLCs at once
(fewer on some ledgers: ``ChannelMachine.max_htlcs``), so under load an HTLC beyond that
waits in the channel's queue until a settle or fail frees a slot, instead of failing with
``too_many_htlcs``.

The wait is bounded twice: per channel, at most ``MAX_WAITING_HTLCS`` HTLC offers may wait
(the next is refused at once with ``channel_busy``, and nothing is locked for it); per
payment, by the payer's deadline (``pay`` ``timeout``, carried to every forwarder in the
onion): an offer still waiting then is dropped and failed back, so the money it would lock
is free again within the payer's bound. An offer also waits while the channel's peer is
offline (nothing can be signed with it), under the same two bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ...core import AddHtlc, Htlc, Update
from ...core.errors import HtlcError
from .records import Channel

#: HTLC offers that may wait for a slot per channel; past it a new one is ``channel_busy``.
MAX_WAITING_HTLCS = 512
#: Why an offer that waited past its payer's deadline failed.
EXPIRED_REASON = "payment_timeout: no HTLC slot or peer before the payer's deadline"


class ChannelBusy(HtlcError):
    """The channel's HTLC slots are taken and its waiting line is full."""

    code = "channel_busy"


def waiting_offers(channel: Channel) -> int:
    return sum(1 for update in channel.queue if isinstance(update, AddHtlc))


def check_room(channel: Channel, limit: int | None = None) -> None:
    """Raise ``ChannelBusy`` unless one more HTLC offer may wait on ``channel``."""
    waiting = waiting_offers(channel)
    if waiting >= (MAX_WAITING_HTLCS if limit is None else limit):
        raise ChannelBusy(
            f"channel {channel.channel_id.hex()[:16]} is busy: its "
            f"{channel.machine.max_htlcs} HTLC slots are taken and {waiting} more HTLCs "
            "wait for one; try again shortly"
        )


def take_batch(
    channel: Channel, queue: Sequence[Update], size: int
) -> tuple[list[Update], list[Update]]:
    """Split ``queue`` into what goes into the next proposal (at most ``size`` updates, HTLC
    offers only as far as free slots allow) and what keeps waiting, both in queue order.
    Settles and fails are never held behind waiting offers: they are what frees slots."""
    free = channel.machine.max_htlcs - len(channel.machine.state.htlcs)
    batch: list[Update] = []
    held: list[Update] = []
    for update in queue:
        if len(batch) >= size:
            held.append(update)
        elif isinstance(update, AddHtlc):
            if free > 0:
                free -= 1
                batch.append(update)
            else:
                held.append(update)
        else:
            batch.append(update)
    return batch, held


def take_expired(
    channel: Channel, deadline_of: Callable[[Channel, Htlc], int], now: int
) -> list[AddHtlc]:
    """Remove from ``channel``'s queue the HTLC offers whose deadline (0: none) has passed,
    and return them (the caller fails them back)."""
    expired = [
        u
        for u in channel.queue
        if isinstance(u, AddHtlc) and 0 < deadline_of(channel, u.htlc) <= now
    ]
    if expired:
        gone = {id(u) for u in expired}
        channel.queue = [u for u in channel.queue if id(u) not in gone]
    return expired
