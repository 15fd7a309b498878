"""A direct transfer is written once, in the signed state that carries it.

A channel's record (``channel/<id>``: its queue, status, funding flags) used to be written
twice for every transfer under load: once when the transfer joined the channel's queue (a
proposal was in flight), once when it was proposed. Nothing needs the first write: a
direct transfer is no debt of the node's until a signed state carries it, and its caller
is answered only then. Settles, fails, HTLC offers and closes stay written from the moment
they are queued: a restart must not lose a preimage's settle or a forward's refund.

What a restart does with a transfer still queued is the other half: it is dropped, with
the request that asked for it (which was never answered), and never paid behind its
caller's back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from chenilles_hub.core import AddHtlc, Transfer
from chenilles_hub.node.hub.journal import (
    CHANNEL_PREFIX,
    ChannelMeta,
    decode_record,
    encode_record,
)

from .hub_line import HubLine as Line
from .hub_line import SaveCheckpoint
from .world import World

pytestmark = [pytest.mark.circuit]


def _written_queue(line: Line, channel_id: bytes) -> tuple[object, ...]:
    raw = line.records(CHANNEL_PREFIX)[CHANNEL_PREFIX + channel_id.hex()]
    return decode_record(raw, ChannelMeta).queue


def _record_writes(line: Line) -> list[tuple[int, set[str]]]:
    """From now on, each of the hub's writes as (snapshots, the keys of its records)."""
    writes: list[tuple[int, set[str]]] = []

    def recording(inner: SaveCheckpoint) -> SaveCheckpoint:
        def save(snapshots: Any, settings: dict[str, bytes | None], **kw: Any) -> None:
            writes.append((len(snapshots), set(settings)))
            inner(snapshots, settings, **kw)

        return save

    line.wrap_writes(recording)
    return writes


def _silent_carol_with_a_proposal_in_flight(line: Line) -> None:
    """Carol goes silent after the hub proposed a transfer to her: what the hub queues on
    that channel next waits behind the unanswered proposal."""
    line.world.network.silence(line.carol)
    line.hub.pay_direct(line.c3, line.eth, 5)
    line.world.network.run()
    assert not line.hub.channels[line.c3].machine.idle


def test_a_queued_transfer_costs_no_write_of_its_channel_record(
    world: World, tmp_path: Path
) -> None:
    line = Line(world, tmp_path / "hub.sqlite")
    _silent_carol_with_a_proposal_in_flight(line)
    line.hub.checkpoint()
    writes = _record_writes(line)
    record = CHANNEL_PREFIX + line.c3.hex()
    line.hub.pay_direct(line.c3, line.eth, 7)
    line.hub.checkpoint()
    assert [type(u) for u in line.hub.channels[line.c3].queue] == [Transfer]
    assert not any(record in keys for _, keys in writes), "a queued transfer wrote its channel"

    # An HTLC offer queued behind it is written at once, without the transfer.
    line.pay(line.carol)
    world.network.run()
    line.hub.checkpoint()
    assert any(record in keys for _, keys in writes)
    assert [type(u) for u in _written_queue(line, line.c3)] == [AddHtlc]

    # Once proposed, the offer leaves the written queue too.
    world.network.revive(line.carol)
    world.network.run()
    line.hub.checkpoint()
    assert not line.hub.channels[line.c3].queue
    assert _written_queue(line, line.c3) == ()


def test_a_transfer_received_writes_its_snapshot_and_no_channel_record(
    world: World, tmp_path: Path
) -> None:
    """The receiving side's channel record does not change with a peer's transfer (it
    was written with every state: an unused field was reset each time)."""
    line = Line(world, tmp_path / "hub.sqlite")
    line.hub.checkpoint()
    writes = _record_writes(line)
    for amount in (1, 2, 3):
        line.alice.pay_direct(line.c1, line.eth, amount)
        world.network.run()
        line.hub.checkpoint()
    assert line.hub.channels[line.c1].machine.state.free(line.eth)[1] == 6
    assert sum(n for n, _ in writes) >= 3  # the states were written
    assert not any(CHANNEL_PREFIX + line.c1.hex() in keys for _, keys in writes)


def test_a_restart_drops_a_queued_transfer_and_keeps_a_queued_forward(
    world: World, tmp_path: Path
) -> None:
    line = Line(world, tmp_path / "hub.sqlite")
    _silent_carol_with_a_proposal_in_flight(line)
    line.hub.pay_direct(line.c3, line.eth, 7)  # queued: never proposed before the crash
    payment = line.pay(line.carol, 1000)  # its forward queued behind the transfer
    world.network.run()
    line.hub.checkpoint()
    carol_before = line.carol.channels[line.c3].machine.state.free(line.eth)

    line.kill_and_restart()
    assert [type(u) for u in line.hub.channels[line.c3].queue] == [AddHtlc]
    world.network.revive(line.carol)
    world.network.run()

    assert payment.status == "succeeded"
    carol_after = line.carol.channels[line.c3].machine.state.free(line.eth)
    # Carol got the transfer proposed before the crash (5) and the payment (1000), not the
    # transfer that was only queued (7).
    assert carol_after[1] - carol_before[1] == 5 + 1000


def test_a_transfer_queued_in_a_record_of_the_old_format_is_paid_once(
    world: World, tmp_path: Path
) -> None:
    """A store written before this change may hold a transfer in a channel's queue. The
    restarted node proposes it as the old one would have, and writes the record again
    without it: another restart does not find it and pay it a second time."""
    line = Line(world, tmp_path / "hub.sqlite")
    _silent_carol_with_a_proposal_in_flight(line)
    line.hub.checkpoint()
    assert line.hub.store is not None
    key = CHANNEL_PREFIX + line.c3.hex()
    meta = decode_record(line.records(CHANNEL_PREFIX)[key], ChannelMeta)
    old = msgspec.structs.replace(meta, queue=(Transfer(line.eth, 7),))
    line.hub.store.set_setting(key, encode_record(old))  # as the old format wrote it

    def carol_got() -> int:
        return line.carol.channels[line.c3].machine.state.free(line.eth)[1]

    line.kill_and_restart()
    world.network.revive(line.carol)
    world.network.run()
    line.hub.checkpoint()
    assert carol_got() == 5 + 7

    line.kill_and_restart()
    world.network.revive(line.carol)
    world.network.run()
    line.hub.checkpoint()
    assert carol_got() == 5 + 7, "a restart paid the old record's transfer again"


def test_a_record_written_with_the_old_in_flight_field_still_reads() -> None:
    """Records written before the unused ``in_flight`` field was dropped carry it."""
    old = (
        b'{"channel_id":"eA==","deposits":[],"queue":[],"in_flight":[],"next_htlc_seq":3,'
        b'"funded_by_me":true,"funded_by_peer":false,"status":"active"}'
    )
    meta = decode_record(old, ChannelMeta)
    assert meta.next_htlc_seq == 3 and meta.status == "active" and meta.queue == ()
