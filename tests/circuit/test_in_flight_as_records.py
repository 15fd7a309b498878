"""A hub's work per payment does not grow with what it holds in flight.

The HTLCs, forward links and preimages in flight were one value inside the node's state,
encoded and written whole after every event, and copied before every peer message (to undo
it on failure): a hub holding 1,024 forwards stuck at an offline peer wrote 748 kB per
checkpoint, and a payment through it took three times as long (docs/performance-history.md). A
stranger can hold HTLCs at will. Each is now a record of its own (``htlc/``, ``link/``,
``preimage/``), written when it changes, and a failed message undoes the keys it changed.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from chenilles_hub.node.hub.journal import (
    HTLC_PREFIX,
    LINK_PREFIX,
    NODE_STATE_KEY,
    PREIMAGE_PREFIX,
    decode_node_state,
    encode_node_state,
    htlc_key,
    link_key,
)

from .hub_line import HubLine as Line
from .world import World

pytestmark = [pytest.mark.circuit]


def test_htlcs_in_flight_are_records_and_survive_a_restart(world: World, tmp_path: Path) -> None:
    line = Line(world, tmp_path / "hub.sqlite")
    line.hub.checkpoint()
    idle_state = line.node_state()
    payments = line.stuck_at_carol(20)
    line.hub.checkpoint()
    assert line.node_state() == idle_state  # not one byte per HTLC in flight
    htlcs, links = dict(line.hub.htlcs), dict(line.hub.links_by_out)
    assert len(htlcs) == 40  # each forward: the incoming HTLC and the outgoing one
    assert line.records(HTLC_PREFIX).keys() == {htlc_key(*key) for key in htlcs}
    assert line.records(LINK_PREFIX).keys() == {link_key(*key) for key in links}

    # kill -9 and start again from the store: everything in flight is known again
    line.kill_and_restart()
    assert dict(line.hub.htlcs) == htlcs and dict(line.hub.links_by_out) == links

    # Carol comes back: she settles, the hub passes each preimage upstream
    world.network.revive(line.carol)
    world.network.run()
    assert [p.status for p in payments] == ["succeeded"] * 20
    line.hub.checkpoint()
    for prefix in (HTLC_PREFIX, LINK_PREFIX, PREIMAGE_PREFIX):
        assert line.records(prefix) == {}, f"{prefix} records left behind"
    assert not line.hub.htlcs and not line.hub.links_by_out and not line.hub.preimages
    assert line.node_state() == idle_state


@pytest.mark.parametrize("hold", ["stuck_at_carol", "held_by_bob"])
def test_a_payments_writes_do_not_grow_with_the_htlcs_held_in_flight(
    world: World, tmp_path: Path, hold: str
) -> None:
    """What the hub writes for one payment to Bob, with nothing held, then with 30 forwards
    held (a stranger can hold HTLCs at will): queued for offline Carol, or signed and held
    by Bob (each then also a watcher duty). The same records."""
    line = Line(world, tmp_path / "hub.sqlite")
    one_payment = line.writes_of_one_payment(line.bob)
    one_payment()  # the first payment to Bob writes its records' first versions
    without = one_payment()
    getattr(line, hold)(30)
    with_held = one_payment()
    # The HTLC ids grow by a digit or two in the keys; nothing per HTLC held
    assert with_held <= without + 64, (without, with_held)


def test_a_store_with_htlcs_in_the_node_state_is_moved_to_records(
    world: World, tmp_path: Path
) -> None:
    """A store written before these records: the HTLCs, links and preimages are in the
    node's state. They are read from there, and the next checkpoint writes them as records
    with the state without them (one transaction)."""
    line = Line(world, tmp_path / "hub.sqlite")
    payments = line.stuck_at_carol(5)
    line.hub.checkpoint()
    hub = line.hub
    htlcs, links = dict(hub.htlcs), dict(hub.links_by_out)
    preimage = (b"\x11" * 32, b"\x22" * 32)
    state = decode_node_state(line.node_state())
    old = msgspec.structs.replace(
        state,
        htlcs=tuple((cid, htlc) for (cid, _), htlc in htlcs.items()),
        links=tuple(links.values()),
        preimages=(preimage,),
    )
    assert hub.store is not None
    hub.store.save_checkpoint(
        [],
        {NODE_STATE_KEY: encode_node_state(old)}
        | {key: None for key in line.records(HTLC_PREFIX)}
        | {key: None for key in line.records(LINK_PREFIX)},
    )
    line.kill_and_restart()
    hub = line.hub
    assert dict(hub.htlcs) == htlcs and dict(hub.links_by_out) == links
    assert dict(hub.preimages) == dict([preimage])
    hub.checkpoint()
    moved = decode_node_state(line.node_state())
    assert not moved.htlcs and not moved.links and not moved.preimages
    assert len(line.records(HTLC_PREFIX)) == len(htlcs)
    assert len(line.records(LINK_PREFIX)) == len(links)
    assert line.records(PREIMAGE_PREFIX) == {PREIMAGE_PREFIX + preimage[0].hex(): preimage[1]}
    world.network.revive(line.carol)
    world.network.run()
    assert [p.status for p in payments] == ["succeeded"] * 5


def test_a_write_that_failed_is_made_good_by_the_next_checkpoint(
    world: World, tmp_path: Path
) -> None:
    """A driver that goes on after a failed write (the server stops; the in-process world,
    the demo and an embedder may not): the next checkpoint writes every record in flight,
    whose changes the failed one had taken. Otherwise a forward whose link was lost after
    a restart would never pass its preimage upstream."""
    line = Line(world, tmp_path / "hub.sqlite")
    failed = line.fail_first_write(lambda writes: any(k.startswith(LINK_PREFIX) for k in writes))
    world.network.silence(line.carol)
    line.pay(line.carol, 1234)
    with pytest.raises(OSError):
        world.network.run()
    world.network.run()
    line.hub.checkpoint()
    assert failed
    assert line.records(LINK_PREFIX).keys() == {link_key(*k) for k in line.hub.links_by_out}
    assert line.records(HTLC_PREFIX).keys() == {htlc_key(*k) for k in line.hub.htlcs}
    assert len(line.hub.links_by_out) == 1
