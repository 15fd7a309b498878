"""``Channel.restored``: the node's channel record rebuilt from the store without the change
hook of ``__setattr__`` equals one built field by field, gets fresh mutable defaults, and is
tracked like any other once the node adopts it."""

from __future__ import annotations

import pytest

from chenilles_hub.core.model import Asset
from chenilles_hub.node.hub.records import Channel, UndoLog

ETH = Asset("eip155:1", "native")


def fields() -> dict[str, object]:
    machine, backend, account = object(), object(), object()  # opaque here: only carried
    return {
        "params": None,
        "channel_id": b"\x01" * 32,
        "me": 1,
        "machine": machine,
        "backend": backend,
        "account": account,
        "peer": b"\x02" * 32,
        "deposits": {ETH: (5, 7)},
        "next_htlc_seq": 4,
        "status": "active",
        "last_error": "peer offline",
    }


def test_a_restored_channel_equals_one_built_field_by_field() -> None:
    values = fields()
    assert Channel.restored(**values) == Channel(**values)  # type: ignore[arg-type]
    first, second = Channel.restored(**values), Channel.restored(**values)
    first.receipts.append(None)  # type: ignore[arg-type]
    assert second.receipts == [] and second.queue == []  # defaults are not shared


def test_unknown_or_missing_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown \\['colour'\\]"):
        Channel.restored(**fields(), colour="red")
    partial = fields()
    del partial["peer"]
    with pytest.raises(TypeError, match="missing \\['peer'\\]"):
        Channel.restored(**partial)


def test_changes_after_restore_are_tracked_and_undoable() -> None:
    channel = Channel.restored(**fields())
    dirty: set[bytes] = set()
    log = UndoLog()
    channel.dirty_sink, channel.undo_log = dirty, log  # what the node's adopt sets
    assert not dirty  # restoring itself wrote nothing back
    log.begin()
    channel.status = "closing"
    assert dirty == {channel.channel_id}
    log.undo()
    assert channel.status == "active"
