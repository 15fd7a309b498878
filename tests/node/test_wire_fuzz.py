"""Hypothesis against the peer wire decoder and the handshake.

A crash here is any exception other than the documented typed errors: the decoder raises
only ``DecodeError`` (``MessageTooLarge`` included); the handshake, over real loopback
sockets, fails only with a ``TransportError`` (``HandshakeError``, ``ConnectionClosed``,
``FrameTooLarge``) or the caller's timeout, whatever the other side sends.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgspec
import nacl.signing
import pytest
from hypothesis import strategies as st

from chenilles_hub.core import Asset, ChannelParams, Participant
from chenilles_hub.core.errors import DecodeError
from chenilles_hub.node.net import handshake, wire
from chenilles_hub.node.net.framing import HEADER, TransportError
from tests.fuzzing import explore

pytestmark = [pytest.mark.node, pytest.mark.adversarial]

ASSET = Asset("eip155:1", "native")


def _samples() -> list[bytes]:
    temp = os.urandom(32)
    params = ChannelParams(
        chain="eip155:1",
        participants=(Participant("0x" + "11" * 20, os.urandom(32)),) * 2,
        assets=(ASSET,),
        challenge_duration=600,
        nonce=os.urandom(32),
    )
    return [
        wire.encode(m)
        for m in (
            wire.OpenRequest(temp, "eip155:1", (ASSET,), ((5, 0),), 600, temp, "key"),
            wire.OpenAccept(temp, "key"),
            wire.OpenRefused(temp, "no"),
            wire.OpenChannel(temp, params),
            wire.FundingDone(temp, ("00" * 32,)),
        )
    ]


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**63, max_value=2**300),
        st.floats(),
        st.text(max_size=30),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_tagged = st.builds(
    lambda tag, body: {"type": tag, **body},
    st.sampled_from(
        [
            "open_request",
            "open_accept",
            "open_refused",
            "open_channel",
            "funding_done",
            "propose",
            "accept",
            "ack",
            "reject",
            "reestablish",
        ]
    ),
    st.dictionaries(
        st.sampled_from(
            ["temp_id", "channel_id", "version", "chain", "assets", "deposits", "state", "params"]
        ),
        _json,
        max_size=5,
    ),
)


@st.composite
def _mutated_samples(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_samples())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 2))
        if op == 0:
            data[at] = draw(st.integers(0, 255))
        elif op == 1:
            del data[at]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


_frames = st.one_of(
    st.binary(max_size=2000),
    _mutated_samples(),
    _json.map(msgspec.json.encode),
    _tagged.map(msgspec.json.encode),
    st.integers(64 * 1024 - 8, 64 * 1024 + 8).map(lambda n: b'"' + b"a" * n + b'"'),
)


def test_the_wire_decoder_raises_only_decode_errors() -> None:
    def typed(data: bytes) -> None:
        try:
            message = wire.decode(data)
        except DecodeError:
            return
        assert wire.decode(wire.encode(message)) == message  # what decodes is a message

    explore(typed, _frames, default=500)


# --- the handshake over real sockets ---------------------------------------------------------


async def _respond_to(chunks: list[bytes]) -> BaseException | None:
    """A responder on loopback fed ``chunks`` by a hostile initiator: what it raised."""
    server_key = nacl.signing.SigningKey.generate()
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(handshake.respond(reader, writer, server_key), 2)
            outcome.set_result(None)
        except BaseException as exc:  # the property inspects it
            outcome.set_result(exc)
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for chunk in chunks:
            writer.write(chunk)
        await writer.drain()
        writer.write_eof()
        result = await asyncio.wait_for(outcome, 5)
        writer.transport.abort()
        return result
    finally:
        server.close()


async def _initiate_against(reply: bytes) -> BaseException | None:
    """An initiator on loopback whose responder answers ``reply`` to its first frame."""
    expected = nacl.signing.SigningKey.generate().verify_key.encode()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(4 + handshake._MSG1_BYTES)
            writer.write(reply)
            await writer.drain()
            writer.write_eof()
            await reader.read()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = nacl.signing.SigningKey.generate()
        try:
            await asyncio.wait_for(
                handshake.initiate(reader, writer, handshake.as_signer(key), expected), 2
            )
        except BaseException as exc:  # the property inspects it
            return exc
        finally:
            writer.transport.abort()
        return None
    finally:
        server.close()


def _typed(error: BaseException | None) -> bool:
    return error is None or isinstance(error, TransportError | TimeoutError)


def _framed(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


_handshake_input = st.one_of(
    st.lists(st.binary(max_size=200), max_size=4),
    st.lists(st.binary(max_size=200).map(_framed), min_size=1, max_size=3),
    st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=112, max_size=112)).map(
        lambda t: [_framed(handshake.MAGIC + t[0]), _framed(t[1])]
    ),
    st.integers(0, 2**32 - 1).map(lambda n: [HEADER.pack(n)]),
)


def test_the_responder_fails_only_with_transport_errors() -> None:
    def typed(chunks: list[bytes]) -> None:
        error = asyncio.run(_respond_to(chunks))
        assert _typed(error), repr(error)

    explore(typed, _handshake_input, default=60)


def test_the_initiator_fails_only_with_transport_errors() -> None:
    replies: Any = st.one_of(
        st.binary(max_size=300),
        st.binary(min_size=handshake._MSG2_BYTES, max_size=handshake._MSG2_BYTES).map(_framed),
        st.integers(0, 2**32 - 1).map(HEADER.pack),
    )

    def typed(reply: bytes) -> None:
        error = asyncio.run(_initiate_against(reply))
        assert _typed(error), repr(error)

    explore(typed, replies, default=60)
