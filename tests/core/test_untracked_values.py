"""The core's values are left out of Python's cycle collector (msgspec ``gc=False``).

A hub holds some 17 of them per used channel (states, signed states, HTLCs, balances, the
machine's core, the last updates): 1.7 million objects for 100,000 channels, which every
full collection walked, a pause of 0.73 s on the node's thread (and more collections while
they were decoded). Untracked, they cost the collector nothing. That is safe only while
none of them can be part of a reference cycle, which is what these tests hold: each such
type is frozen and holds only scalars, tuples and other such types, so no value can ever
refer back to one that holds it. A mutable or open-ended field (a list, a dict, ``Any``)
added to one of them later fails here, before it can leak.
"""

from __future__ import annotations

import gc
import inspect

import msgspec
import msgspec.inspect as mi
import pytest

from chenilles_hub.core import effects, machine_core, messages, model, updates
from chenilles_hub.core.routing import model as routing_model

_MODULES = (model, machine_core, updates, messages, effects, routing_model)

#: Types a value of an untracked struct may hold: immutable, and holding nothing.
_LEAVES = (
    mi.IntType,
    mi.StrType,
    mi.BytesType,
    mi.BoolType,
    mi.NoneType,
    mi.LiteralType,
    mi.FloatType,
)


def _untracked_types() -> list[type[msgspec.Struct]]:
    found = []
    for module in _MODULES:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            ours = issubclass(cls, msgspec.Struct) and cls.__module__ == module.__name__
            if ours and not cls.__struct_config__.gc:
                found.append(cls)
    return found


def _acyclic(t: mi.Type, path: str) -> None:
    """Raise unless a value of type ``t`` can hold nothing that could refer back."""
    if isinstance(t, _LEAVES):
        return
    if isinstance(t, (mi.VarTupleType,)):
        _acyclic(t.item_type, path + "[]")
        return
    if isinstance(t, mi.TupleType):
        for i, item in enumerate(t.item_types):
            _acyclic(item, f"{path}[{i}]")
        return
    if isinstance(t, mi.UnionType):
        for member in t.types:
            _acyclic(member, path)
        return
    if isinstance(t, mi.StructType):
        config = t.cls.__struct_config__
        assert config.frozen and not config.gc, (
            f"{path}: {t.cls.__name__} must be frozen and untracked too (gc=False)"
        )
        return
    raise AssertionError(f"{path}: {t!r} may hold a reference cycle; keep gc on for its struct")


def test_the_channel_values_a_hub_holds_per_channel_are_untracked() -> None:
    names = {cls.__name__ for cls in _untracked_types()}
    assert {
        "Asset",
        "AssetBalances",
        "Htlc",
        "ChannelState",
        "SignedState",
        "MachineCore",
        "AddHtlc",
        "Accept",
        "Propose",
        "ChannelSnapshot",
        "Holdings",
        "ChannelEdge",
    } <= names


@pytest.mark.parametrize("cls", _untracked_types(), ids=lambda c: c.__name__)
def test_an_untracked_value_is_frozen_and_holds_nothing_that_could_refer_back(
    cls: type[msgspec.Struct],
) -> None:
    assert cls.__struct_config__.frozen, f"{cls.__name__}: a mutable struct could form a cycle"
    for field in mi.type_info(cls).fields:  # type: ignore[attr-defined]
        _acyclic(field.type, f"{cls.__name__}.{field.name}")


class _Listed(msgspec.Struct, frozen=True, gc=False):
    items: list[int]


class _Open(msgspec.Struct, frozen=True, gc=False):
    anything: object


class _Tracked(msgspec.Struct, frozen=True):
    value: int


class _HoldsTracked(msgspec.Struct, frozen=True, gc=False):
    inner: tuple[_Tracked, ...]


@pytest.mark.parametrize("cls", [_Listed, _Open, _HoldsTracked], ids=lambda c: c.__name__)
def test_the_check_refuses_a_field_that_could_close_a_cycle(cls: type[msgspec.Struct]) -> None:
    with pytest.raises(AssertionError):
        for field in mi.type_info(cls).fields:  # type: ignore[attr-defined]
            _acyclic(field.type, f"{cls.__name__}.{field.name}")


def test_a_decoded_state_costs_the_collector_nothing() -> None:
    asset = model.Asset("eip155:1", "native")
    htlc = model.Htlc(0, 0, asset, 5, b"\x01" * 32, 1_700_000_000, 100)
    state = model.ChannelState(b"\x02" * 32, 3, (model.AssetBalances(asset, (10, 20)),), (htlc,))
    signed = model.SignedState(state, (b"a", b"b"))
    decoded = msgspec.json.decode(msgspec.json.encode(signed), type=model.SignedState)
    assert decoded == signed
    for value in (decoded, decoded.state, decoded.state.htlcs[0], decoded.state.balances[0]):
        assert not gc.is_tracked(value)
