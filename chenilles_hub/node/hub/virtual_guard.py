"""What an end's node refuses to sign in its ledger channel: a FUND it did not agree to.

A guarantee enters a ledger channel only by a FUND both members sign (the chain refuses a
forced FUND, ``VirtualLedgerApp.valid_forced``), so the end's signature is the last line.
The guarantee names V's id, not the ledger state it was funded in: were the end to sign a
FUND of a V that already closed, the hub could show V's old final state (which both ends
signed) again and the ledger would pay V's outcome a second time. The rule cannot tell;
the end's records can. So an end signs a FUND only if it is, byte for byte, the FUND of
the offer it accepted for this ledger channel and has not funded yet (status
``offered``), and no other record of it, whatever its status, carries the same V id.
Records are persisted and never deleted, so this holds across restarts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from chenilles_app_virtual import protocol, rules

from ...core import AppMove, Update
from ...core.errors import InvalidTransition, NotPermitted
from ...core.virtual import virtual_channel_id
from .records import Channel
from .virtual_records import VirtualChannel


def is_fund(update: Update) -> bool:
    return isinstance(update, AppMove) and update.data[:1] == bytes([rules.FUND])


def check_fund(
    records: Collection[VirtualChannel],
    by_vid: Mapping[bytes, bytes],
    channel: Channel,
    updates: tuple[Update, ...],
) -> None:
    """Raises :class:`NotPermitted` if ``updates``, proposed by the peer in our ledger
    channel ``channel``, carry a FUND this node did not agree to (see the module
    docstring); nothing if they carry none."""
    if channel.params.app != rules.APP_ID or not any(is_fund(u) for u in updates):
        return
    if len(updates) != 1:
        raise NotPermitted("a FUND comes alone in its proposal: not signed")
    first = updates[0]
    data = first.data if isinstance(first, AppMove) else b""
    for v in records:
        if v.role == "hub" or v.status != "offered" or v.terms is None:
            continue
        if v.terms.ledgers[v.side].channel_id != channel.channel_id:
            continue
        try:
            expected = protocol.fund(v.terms, v.side, channel.machine.state).data
        except (InvalidTransition, ValueError):
            continue
        vid = virtual_channel_id(v.terms)
        if data == expected and by_vid.get(vid) == v.request_id and _unique(records, vid):
            return
    raise NotPermitted(
        "a FUND that is not the one of a virtual channel this node accepted and has not "
        "funded yet (a V id used before, or terms never offered): not signed"
    )


def _unique(records: Collection[VirtualChannel], vid: bytes) -> bool:
    """Whether one record only carries V id ``vid``."""
    return sum(r.terms is not None and virtual_channel_id(r.terms) == vid for r in records) == 1
