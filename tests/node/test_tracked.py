"""The tracked tables behave as dicts, know which keys changed, undo a failed event's writes
exactly, and keep the HTLCs' payment-hash index in step through all of it."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chenilles_hub.core import Asset, Htlc
from chenilles_hub.node.hub.tracked import HtlcTable, TrackedDict

ETH = Asset("eip155:1", "native")
KEYS = st.tuples(st.sampled_from([b"a", b"b"]), st.integers(0, 5))
HASHES = st.sampled_from([b"\x01" * 32, b"\x02" * 32, b"\x03" * 32])


def htlc(key: tuple[bytes, int], payment_hash: bytes) -> Htlc:
    return Htlc(key[1], 0, ETH, 1, payment_hash, 10, 10)


OPS = st.one_of(
    st.tuples(st.just("set"), KEYS, HASHES),
    st.tuples(st.just("del"), KEYS, HASHES),
    st.tuples(st.just("pop"), KEYS, HASHES),
    st.tuples(st.just("setdefault"), KEYS, HASHES),
    st.tuples(st.just("update"), KEYS, HASHES),
    st.tuples(st.just("popitem"), KEYS, HASHES),
    st.tuples(st.just("clear"), KEYS, HASHES),
)


def apply(table: Any, op: tuple[str, Any, bytes]) -> None:
    kind, key, payment_hash = op
    value = htlc(key, payment_hash)
    if kind == "set":
        table[key] = value
    elif kind == "del":
        if key in table:
            del table[key]
        else:
            with pytest.raises(KeyError):
                del table[key]
    elif kind == "pop":
        table.pop(key, None)
    elif kind == "setdefault":
        table.setdefault(key, value)
    elif kind == "update":
        table.update({key: value})
    elif kind == "popitem":
        if table:
            table.popitem()
    elif kind == "clear":
        table.clear()


def index_of(table: HtlcTable) -> dict[bytes, set[tuple[bytes, int]]]:
    return {h: set(table.keys_of(h)) for h in {v.payment_hash for v in table.values()}}


def expected_index(model: dict[tuple[bytes, int], Htlc]) -> dict[bytes, set[tuple[bytes, int]]]:
    found: dict[bytes, set[tuple[bytes, int]]] = {}
    for key, value in model.items():
        found.setdefault(value.payment_hash, set()).add(key)
    return found


@settings(max_examples=300, deadline=None)
@given(before=st.lists(OPS, max_size=12), event=st.lists(OPS, max_size=12), keep=st.booleans())
def test_an_event_is_kept_or_undone_whole_and_the_index_follows(
    before: list[Any], event: list[Any], keep: bool
) -> None:
    table, model = HtlcTable(), {}
    for op in before:
        apply(table, op)
        apply(model, op)
    assert dict(table) == model and index_of(table) == expected_index(model)
    table.take_changed()
    saved = dict(table)
    table.begin()
    for op in event:
        apply(table, op)
        apply(model, op)
    assert dict(table) == model and index_of(table) == expected_index(model)
    if keep:
        table.end()
    else:
        table.rollback()
        model = saved
    assert dict(table) == model
    assert index_of(table) == expected_index(model)
    for payment_hash in (b"\x01" * 32, b"\x02" * 32, b"\x03" * 32):
        assert table.holds(payment_hash) == (payment_hash in expected_index(model))
    # every key whose value differs from before the event is among the changed ones
    differs = {k for k in saved.keys() | model.keys() if saved.get(k) != model.get(k)}
    assert differs <= table.take_changed()
    assert table.take_changed() == set()


def test_built_from_items_nothing_is_changed_until_marked() -> None:
    table: TrackedDict[str, int] = TrackedDict([("a", 1), ("b", 2)])
    assert table == {"a": 1, "b": 2} and table.take_changed() == set()
    table.mark_all_changed()
    assert table.take_changed() == {"a", "b"}


def test_a_dict_still() -> None:
    table: TrackedDict[str, int] = TrackedDict()
    table |= {"a": 1}
    assert table.pop("a") == 1 and table.pop("a", 5) == 5
    with pytest.raises(KeyError):
        table.pop("a")
    with pytest.raises(KeyError):
        table.popitem()
    assert isinstance(table, dict) and table.take_changed() == {"a"}


def test_a_copy_is_a_new_table_with_nothing_changed() -> None:
    table = HtlcTable({(b"a", 1): htlc((b"a", 1), b"\x01" * 32)})
    table[(b"b", 2)] = htlc((b"b", 2), b"\x01" * 32)
    for twin in (copy.copy(table), pickle.loads(pickle.dumps(table))):
        assert type(twin) is HtlcTable and twin == table
        assert twin.keys_of(b"\x01" * 32) == table.keys_of(b"\x01" * 32)
        assert twin.take_changed() == set()
        twin.pop((b"a", 1))
        assert (b"a", 1) in table  # nothing shared
    assert table.take_changed() == {(b"b", 2)}


def test_a_table_nothing_persists_remembers_no_change() -> None:
    table: TrackedDict[int, str] = TrackedDict(track_changes=False)
    table.begin()
    for i in range(100):
        table[i] = "x"
        del table[i]
    table[7] = "kept"
    table.rollback()
    assert table == {} and table.take_changed() == set()
