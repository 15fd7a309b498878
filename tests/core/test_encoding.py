"""Wire encoding: canonical, strict, bounded."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chenilles_hub.core import (
    MAX_MESSAGE_BYTES,
    Accept,
    Ack,
    AddHtlc,
    AssetBalances,
    ChannelState,
    Htlc,
    Propose,
    Reestablish,
    Reject,
    SettleHtlc,
    Transfer,
    decode_message,
    decode_snapshot,
    encode_message,
    encode_snapshot,
)
from chenilles_hub.core.errors import DecodeError, MessageTooLarge

from .harness import CHANNEL_ID, ETH, TOKEN, opened

pytestmark = pytest.mark.core

STATE = ChannelState(
    channel_id=CHANNEL_ID,
    version=7,
    balances=(AssetBalances(ETH, (10**30, 5)), AssetBalances(TOKEN, (0, 1))),
    htlcs=(Htlc(3, 0, ETH, 2**200, hashlib.sha256(b"x").digest(), 1_700_000_000, 800_000),),
    app_data=b"\x00\x01",
)

MESSAGES = [
    Propose(CHANNEL_ID, (Transfer(ETH, 5), SettleHtlc(3, b"p" * 32)), STATE, b"sig"),
    Accept(CHANNEL_ID, 7, b"sig", b"rev"),
    Accept(CHANNEL_ID, 7, b"sig"),
    Ack(CHANNEL_ID, 7, None),
    Reject(CHANNEL_ID, 7, "stale_version", "version 7 is not newer than 9"),
    Reestablish(CHANNEL_ID, -1, None),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message) -> None:
    assert decode_message(encode_message(message)) == message


def test_equal_states_have_byte_equal_encodings() -> None:
    copy = msgspec.json.decode(msgspec.json.encode(STATE), type=ChannelState)
    assert copy == STATE
    assert msgspec.json.encode(copy) == msgspec.json.encode(STATE)


def test_amounts_beyond_64_bits_survive_the_wire() -> None:
    message = decode_message(encode_message(MESSAGES[0]))
    assert isinstance(message, Propose)
    assert message.state.htlcs[0].amount == 2**200
    assert message.state.balances[0].amounts[0] == 10**30


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"null",
        b"[]",
        b'{"type":"nonsense"}',
        b'{"type":"ack","channel_id":"AAAA","version":1}',  # channel id not 32 bytes
        b'{"type":"ack","version":1}',  # missing channel id
    ],
)
def test_malformed_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(raw)


def test_truncated_message_is_refused() -> None:
    data = encode_message(MESSAGES[0])
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(DecodeError):
            decode_message(data[:cut])


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(MessageTooLarge):
        decode_message(b" " * (MAX_MESSAGE_BYTES + 1))


def test_oversized_message_is_refused_on_encode() -> None:
    huge = Reject(CHANNEL_ID, 1, "x", "y" * 500)
    data = encode_message(huge)  # fits
    assert len(data) < MAX_MESSAGE_BYTES
    with pytest.raises(DecodeError):
        decode_message(data.replace(b'"reason":"', b'"reason":"' + b"z" * 600))


def _mutate(message_json: bytes, old: bytes, new: bytes) -> bytes:
    assert old in message_json
    return message_json.replace(old, new, 1)


def test_unknown_fields_are_refused() -> None:
    data = encode_message(Ack(CHANNEL_ID, 3, None))
    with pytest.raises(DecodeError):
        decode_message(_mutate(data, b'"version":3', b'"version":3,"extra":1'))


def test_float_and_negative_amounts_are_refused() -> None:
    data = encode_message(MESSAGES[0])
    with pytest.raises(DecodeError):
        decode_message(_mutate(data, b'"amount":5', b'"amount":5.0'))
    with pytest.raises(DecodeError):
        decode_message(_mutate(data, b'"amount":5', b'"amount":-5'))
    with pytest.raises(DecodeError):
        decode_message(_mutate(data, b'"amount":5', b'"amount":0'))  # transfers are positive


def test_signature_bundle_size_is_bounded() -> None:
    data = encode_message(Accept(CHANNEL_ID, 1, b"s"))
    b64 = msgspec.json.encode(b"s" * (16 * 1024 + 1))
    with pytest.raises(DecodeError):
        decode_message(_mutate(data, b'"signature":"cw=="', b'"signature":' + b64))


def test_snapshots_round_trip() -> None:
    pair = opened()
    snapshot = pair.alice.machine.snapshot()
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


amounts = st.integers(min_value=0, max_value=2**256 - 1)


@given(
    version=st.integers(min_value=0, max_value=2**63 - 1),
    a=amounts,
    b=amounts,
    htlc_amount=st.integers(min_value=1, max_value=2**256 - 1),
    preimage=st.binary(min_size=32, max_size=32),
    data=st.binary(max_size=64),
)
def test_random_proposals_round_trip(version, a, b, htlc_amount, preimage, data) -> None:
    htlc = Htlc(1, 1, TOKEN, htlc_amount, hashlib.sha256(preimage).digest(), 10, 9)
    state = ChannelState(
        CHANNEL_ID,
        version,
        (AssetBalances(ETH, (a, b)), AssetBalances(TOKEN, (b, a))),
        (htlc,),
        data,
    )
    message = Propose(CHANNEL_ID, (AddHtlc(htlc),), state, b"s")
    assert decode_message(encode_message(message)) == message
