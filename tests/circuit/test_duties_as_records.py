"""A hub's checkpoints do not grow with the HTLC duties its watcher holds.

The watcher holds a duty per HTLC in flight: a refund for each HTLC we offered (go on-chain
at its expiry if the peer will not fail it) and a claim for each HTLC paid to us whose
preimage we know. They were a tuple inside the node's state, encoded and rewritten whole
after every event and copied whenever one was added or resolved. A peer that takes HTLCs
and holds them, signed, without settling (as anyone can) grew every checkpoint by about
120 bytes per HTLC. Each duty is now a record of its own (``duty/<channel>/<HTLC>``),
written when it is added and deleted when the HTLC is resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from chenilles_hub.core.watcher import ClaimIncoming, HtlcDuty, RefundOutgoing
from chenilles_hub.node.hub import persistence as persistence_module
from chenilles_hub.node.hub.journal import (
    DUTY_PREFIX,
    NODE_STATE_KEY,
    decode_node_state,
    duty_key,
    encode_node_state,
)
from chenilles_hub.node.store.base import SchemaError
from chenilles_hub.node.store.migrations import MIGRATIONS
from chenilles_hub.node.store.sqlite import SQLiteStore

from .hub_line import HubLine as Line
from .world import World

pytestmark = [pytest.mark.circuit]


def as_records(duties: list[HtlcDuty]) -> dict[str, HtlcDuty]:
    return {duty_key(d.channel_id, d.htlc_id): d for d in duties}


def test_duties_are_records_the_state_does_not_grow_and_a_restart_keeps_them(
    world: World, tmp_path: Path
) -> None:
    line = Line(world, tmp_path / "hub.sqlite")
    line.hub.checkpoint()
    idle_state = line.node_state()
    payments = line.held_by_bob(12)
    line.hub.checkpoint()
    assert line.node_state() == idle_state  # not one byte per HTLC held
    held = line.duties()
    assert line.stored_duties() == as_records(held)

    # Dave comes back and settles; Alice went offline first: the hub knows each preimage
    # and owes a claim of its incoming HTLC until Alice settles off-chain.
    world.network.silence(line.alice)
    world.network.revive(line.dave)
    world.network.run()
    claims = [d for d in line.duties() if isinstance(d, ClaimIncoming)]
    assert len(claims) == 12 and all(d.channel_id == line.c1 for d in claims)
    line.hub.checkpoint()
    assert line.stored_duties() == as_records(line.duties())
    assert line.node_state() == idle_state

    # kill -9 and start again from the store: the same duties
    duties = line.duties()
    line.kill_and_restart()
    assert sorted(line.duties(), key=repr) == sorted(duties, key=repr)

    # Alice is back: every HTLC settles, every duty and its record is gone
    world.network.revive(line.alice)
    world.network.run()
    line.hub.checkpoint()
    assert [p.status for p in payments] == ["succeeded"] * 12
    assert line.duties() == [] and line.stored_duties() == {}
    assert line.node_state() == idle_state


def test_a_restarted_hub_still_goes_on_chain_for_the_htlcs_a_peer_holds(
    world: World, tmp_path: Path
) -> None:
    """The duties read back are acted on: Bob holds the hub's HTLCs past their expiry and
    goes silent; the restarted hub forces the channel on-chain, is refunded each one and
    fails them upstream."""
    line = Line(world, tmp_path / "hub.sqlite")
    payments = line.held_by_bob(3)
    world.network.silence(line.bob)
    line.kill_and_restart()
    expiry = max(d.expiry for d in line.duties() if isinstance(d, RefundOutgoing))
    world.advance(expiry - world.now() + 1)
    assert line.hub.counters.get("watcher_RefundOnChain") == 3
    assert line.hub.counters.get("watcher_ForceClose", 0) >= 1
    assert line.hub.channels[line.c2].status == "disputed"
    for _ in range(4):  # the challenge period, the conclusion, its depth
        world.advance(600)
    assert line.hub.channels[line.c2].status == "closed"
    # refunded on-chain, so failed upstream: Alice's payments fail, nobody lost a wei
    assert [p.status for p in payments] == ["failed"] * 3
    line.hub.checkpoint()
    assert line.duties() == [] and line.stored_duties() == {}


def test_a_store_with_duties_in_the_node_state_is_moved_to_records(
    world: World, tmp_path: Path
) -> None:
    """A store written before these records: the duties are in the watcher's state. They
    are read from there, and the next checkpoint writes them as records with the state
    without them (one transaction)."""
    line = Line(world, tmp_path / "hub.sqlite")
    line.held_by_bob(4)
    line.hub.checkpoint()
    duties = line.duties()
    state = decode_node_state(line.node_state())
    old_watcher = msgspec.structs.replace(state.watcher, duties=tuple(duties))
    assert line.hub.store is not None
    line.hub.store.save_checkpoint(
        [],
        {NODE_STATE_KEY: encode_node_state(msgspec.structs.replace(state, watcher=old_watcher))}
        | {key: None for key in line.stored_duties()},
    )
    line.kill_and_restart()
    assert sorted(line.duties(), key=repr) == sorted(duties, key=repr)
    line.hub.checkpoint()
    assert not decode_node_state(line.node_state()).watcher.duties
    assert line.stored_duties() == as_records(duties)


@pytest.mark.parametrize(
    "layout",
    [
        6,  # HTLCs, links and preimages as records: it would pass no preimage upstream
        7,  # duties as records: it would never go on-chain for an HTLC a peer holds
    ],
)
def test_a_program_from_before_a_layout_of_records_refuses_the_store(
    tmp_path: Path, layout: int
) -> None:
    """An older program would open the store without reading these records: the layout's
    migration (it runs no statement) is recorded, so that program refuses the store."""
    SQLiteStore(tmp_path / "node.sqlite").close()
    before = tuple(m for m in MIGRATIONS if m.version < layout)
    with pytest.raises(SchemaError, match="not a prefix"):
        SQLiteStore(tmp_path / "node.sqlite", migrations=before)


def test_a_deletion_whose_write_failed_is_written_by_the_next_checkpoint(
    world: World, tmp_path: Path
) -> None:
    """A driver that goes on after a failed write (the in-process world, the demo, an
    embedder; the server stops): the next checkpoint writes what the failed one held,
    deletions too. A resolved HTLC's duty left in the store would, after a restart, take
    the channel on-chain for an HTLC long settled."""
    line = Line(world, tmp_path / "hub.sqlite")
    line.held_by_bob(2)
    line.hub.checkpoint()
    assert len(line.stored_duties()) == 2
    failed = line.fail_first_write(
        lambda settings: any(k.startswith(DUTY_PREFIX) and v is None for k, v in settings.items())
    )
    with pytest.raises(OSError):
        world.network.revive(line.dave)  # Dave settles: the hub's refund duties are gone
    world.network.run()
    line.hub.checkpoint()
    assert failed
    assert line.duties() == [] and line.stored_duties() == {}


def test_a_checkpoint_that_fails_while_it_is_made_keeps_what_it_took(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint takes the watcher's changes (a duty's deletion among them) before it
    asks the backends for their records; if that fails, what it took is carried into the
    next checkpoint all the same, and the resolved duty does not come back at a restart."""
    line = Line(world, tmp_path / "hub.sqlite")
    line.held_by_bob(2)
    line.hub.checkpoint()
    assert len(line.stored_duties()) == 2
    real = persistence_module._export_record
    failed: list[bool] = []

    def flaky(channel: Any, records: Any) -> None:
        if not failed and len(line.duties()) < 2:  # the event that resolved one of them
            failed.append(True)
            raise OSError("the backend's record export failed, for a moment")
        real(channel, records)

    monkeypatch.setattr(persistence_module, "_export_record", flaky)
    with pytest.raises(OSError):
        world.network.revive(line.dave)  # Dave settles: the hub's refund duties go
    world.network.run()
    line.hub.checkpoint()
    assert failed
    assert line.duties() == [] and line.stored_duties() == {}
    line.kill_and_restart()
    assert line.duties() == []


def test_a_carried_snapshots_channel_is_asked_for_its_record_again(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint carries the snapshot of a channel its event signed but touched no
    other field of; the next one asks that channel's backend for its record again (the
    record of that version: on Bitcoin, what punishes its revoked predecessors)."""
    line = Line(world, tmp_path / "hub.sqlite")
    line.held_by_bob(1)
    hub = line.hub
    hub.checkpoint()
    hub.ctx.pending.snapshots[line.c2] = hub.channels[line.c2].machine.snapshot()
    assert line.c2 not in hub.ctx.pending.channels
    real = persistence_module._export_record
    asked: list[bytes] = []
    failed: list[bool] = []

    def flaky(channel: Any, records: Any) -> None:
        asked.append(channel.channel_id)
        if not failed:
            failed.append(True)
            raise OSError("the backend's record export failed, for a moment")
        real(channel, records)

    monkeypatch.setattr(persistence_module, "_export_record", flaky)
    with pytest.raises(OSError):
        hub.persistence.take_checkpoint()
    asked.clear()
    write = hub.persistence.take_checkpoint()
    assert write is not None
    assert line.c2 in {s.channel_id for s in write[0]}
    assert line.c2 in asked
