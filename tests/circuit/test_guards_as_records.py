"""A hub's checkpoints do not grow with its channels.

The watcher guards every channel for its whole life (it refutes any registration older
than our latest state). Those guards were duties inside the node's state, which the node
rewrites with every payment: a hub with 10,000 channels wrote 0.8 MB with each, and encoded
it after every event. Each guard is now a record of its own (``guard/<channel>``), written
when the channel is created and deleted once the chain's conclusion is final.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.node.hub.journal import (
    GUARD_PREFIX,
    NODE_STATE_KEY,
    decode_node_state,
    encode_node_state,
)
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.store.base import SchemaError
from chenilles_hub.node.store.migrations import MIGRATIONS
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World

pytestmark = [pytest.mark.circuit]

ETH = 10**18


def store_of(node: Node) -> Any:
    assert node.store is not None
    return node.store


def guards_stored(node: Node) -> set[bytes]:
    return {
        bytes.fromhex(key.removeprefix(GUARD_PREFIX))
        for key, value in store_of(node).settings_with_prefix(GUARD_PREFIX)
        if value
    }


def node_state(node: Node) -> bytes:
    return bytes(store_of(node).get_setting(NODE_STATE_KEY) or b"")


def test_a_hubs_state_does_not_grow_with_its_channels_and_its_guards_survive_restarts(
    tmp_path: Any,
) -> None:
    backend = embedded_backend()
    try:
        world = World({backend.chain: backend}, backend)
        eth, _ = backend.assets()
        hub = world.node("hub", [backend.chain], store=SQLiteStore(tmp_path / "hub.sqlite"))
        peers = [world.node(f"peer{i}", [backend.chain]) for i in range(5)]
        first = world.open(peers[0], hub, backend.chain, {eth: (ETH, 0)})
        hub.checkpoint()
        one_channel = len(node_state(hub))
        channels = {first} | {
            world.open(peer, hub, backend.chain, {eth: (ETH, 0)}) for peer in peers[1:]
        }
        hub.checkpoint()
        assert len(node_state(hub)) == one_channel  # in flight only: no per-channel guard
        assert guards_stored(hub) == channels == hub.ctx.watcher.guarded

        # restart: every channel is guarded again
        store_of(hub).close()
        world.network.silence(hub)
        hub = world.restart(hub, SQLiteStore(tmp_path / "hub.sqlite"))
        assert hub.ctx.watcher.guarded == channels

        # a store written before guards were records: they are among the watcher's duties
        state = decode_node_state(node_state(hub))
        duties = tuple({"type": "guard", "channel_id": c} for c in sorted(channels))
        old_watcher = msgspec.convert(
            {"duties": duties}, type=type(state.watcher), from_attributes=False
        )
        old = msgspec.structs.replace(state, watcher=old_watcher)
        store_of(hub).save_checkpoint(
            [],
            {NODE_STATE_KEY: encode_node_state(old)}
            | {GUARD_PREFIX + c.hex(): None for c in channels},
        )
        assert guards_stored(hub) == set()
        store_of(hub).close()
        world.network.silence(hub)
        hub = world.restart(hub, SQLiteStore(tmp_path / "hub.sqlite"))
        assert hub.ctx.watcher.guarded == channels
        hub.checkpoint()
        assert guards_stored(hub) == channels
        assert not decode_node_state(node_state(hub)).watcher.duties
    finally:
        backend.close()


def test_a_program_from_before_guard_records_refuses_the_store(tmp_path: Any) -> None:
    """It would open the store without reading the guards and stop refuting stale
    registrations: migration 3 marks the layout, so it refuses the store instead."""
    SQLiteStore(tmp_path / "node.sqlite").close()
    before = tuple(m for m in MIGRATIONS if m.version < 3)
    with pytest.raises(SchemaError, match="not a prefix"):
        SQLiteStore(tmp_path / "node.sqlite", migrations=before)
    older = tmp_path / "older.sqlite"
    SQLiteStore(older, migrations=before).close()  # a store the older program wrote
    store = SQLiteStore(older)  # upgraded in place (through 3, and whatever came since)
    assert store.schema_version() == MIGRATIONS[-1].version >= 3
    store.close()
