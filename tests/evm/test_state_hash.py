"""``StateHasher`` (the authority's digest, constant parts hashed once per channel) equals
the composed ``state_digest(to_state(...))``, which ``test_adjudicator_eip712`` checks
against the contract: for any core state, and refusing what ``to_state`` refuses."""

from __future__ import annotations

import pytest
from chenilles_evm.eip712 import state_digest
from chenilles_evm.mapping import to_state
from chenilles_evm.state_hash import StateHasher
from hypothesis import given, settings
from hypothesis import strategies as st

from chenilles_hub.core import Asset, AssetBalances, ChannelParams, ChannelState, Htlc, Participant

pytestmark = pytest.mark.evm

CHAIN = "eip155:31337"
ADJUDICATOR = "0x" + "5c" * 20
TOKENS = (
    Asset(CHAIN, "native"),
    Asset(CHAIN, "0x" + "ab" * 20),
    Asset(CHAIN, "0x" + "CD" * 20),  # not checksummed: the digest takes the address bytes
)
_u256 = st.integers(0, 2**256 - 1)
_u64 = st.integers(0, 2**64 - 1)
_b32 = st.binary(min_size=32, max_size=32)


def _params(assets: tuple[Asset, ...]) -> ChannelParams:
    return ChannelParams(
        chain=CHAIN,
        participants=(
            Participant("0x" + "11" * 20, b"\x01" * 32),
            Participant("0x" + "22" * 20, b"\x02" * 32),
        ),
        assets=assets,
        challenge_duration=600,
        nonce=b"\x03" * 32,
    )


@st.composite
def _channel_states(draw: st.DrawFn) -> tuple[ChannelParams, ChannelState]:
    assets = tuple(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=3, unique=True)))
    htlc = st.builds(
        Htlc,
        id=_u64,
        payer=st.integers(0, 1),
        asset=st.sampled_from(assets),
        amount=_u256,
        payment_hash=_b32,
        expiry=st.integers(0, 2**40),
        native_expiry=_u64,
    )
    state = ChannelState(
        channel_id=draw(_b32),
        version=draw(_u64),
        balances=tuple(AssetBalances(a, (draw(_u256), draw(_u256))) for a in assets),
        htlcs=tuple(draw(st.lists(htlc, max_size=3))),
        app_data=draw(st.one_of(st.just(b""), st.binary(max_size=64))),
        final=draw(st.booleans()),
    )
    return _params(assets), state


@settings(max_examples=300, deadline=None)
@given(channel=_channel_states(), chain_id=st.integers(1, 2**64))
def test_the_hasher_gives_the_composed_digest(
    channel: tuple[ChannelParams, ChannelState], chain_id: int
) -> None:
    params, state = channel
    hasher = StateHasher(params, chain_id, ADJUDICATOR)
    expected = state_digest(to_state(params, state), chain_id, ADJUDICATOR)
    assert hasher.digest(state) == expected
    assert hasher.digest(state) == expected  # kept parts do not drift between states


def _state(assets: tuple[Asset, ...], **changes: object) -> ChannelState:
    fields: dict[str, object] = {
        "channel_id": b"\x07" * 32,
        "version": 1,
        "balances": tuple(AssetBalances(a, (1, 2)) for a in assets),
    }
    fields.update(changes)
    return ChannelState(**fields)  # type: ignore[arg-type]


def _htlc(**changes: object) -> Htlc:
    fields: dict[str, object] = {
        "id": 0,
        "payer": 0,
        "asset": TOKENS[0],
        "amount": 5,
        "payment_hash": b"\x09" * 32,
        "expiry": 1_700_000_000,
        "native_expiry": 1_699_999_940,
    }
    fields.update(changes)
    return Htlc(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "state",
    [
        _state(TOKENS[:1], version=2**64),
        _state(TOKENS[:1], htlcs=(_htlc(id=2**64),)),
        _state(TOKENS[:1], htlcs=(_htlc(native_expiry=2**64),)),
    ],
)
def test_what_the_contract_cannot_hold_is_refused_as_to_state_refuses_it(
    state: ChannelState,
) -> None:
    params = _params(TOKENS[:1])
    with pytest.raises(ValueError):
        to_state(params, state)
    with pytest.raises(ValueError):
        StateHasher(params, 31337, ADJUDICATOR).digest(state)


def test_an_asset_of_another_chain_in_the_params_is_refused() -> None:
    params = _params((Asset("eip155:1", "native"),))
    with pytest.raises(ValueError):
        StateHasher(params, 31337, ADJUDICATOR)
