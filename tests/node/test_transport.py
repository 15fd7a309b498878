"""The encrypted TCP transport over real sockets on 127.0.0.1, and the in-memory twin.

Attacks are staged with a frame-aware proxy between a real client and a real server (it can
flip bits, replay or reorder frames) and with raw sockets that speak the handshake by hand.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nacl.signing
import pytest

from chenilles_hub.node.net import handshake
from chenilles_hub.node.net.framing import HEADER, MAX_FRAME_BYTES
from chenilles_hub.node.net.transport import (
    MAX_MESSAGE_BYTES,
    AuthenticationFailed,
    ConnectionClosed,
    FrameTooLarge,
    HandshakeError,
    MemoryNetwork,
    MemoryTransport,
    NonceExhausted,
    PeerConnection,
    TcpTransport,
    Transport,
    TransportError,
    WrongPeerIdentity,
    node_id_of,
)

pytestmark = pytest.mark.node

HOST = "127.0.0.1"


def run(coro: Coroutine[Any, Any, None], timeout: float = 30.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


class Recorder:
    """A server handler that echoes ``b"echo:" + message`` and records what happened."""

    def __init__(self) -> None:
        self.peers: list[bytes] = []
        self.errors: list[Exception] = []
        self.received: list[bytes] = []
        self.done = asyncio.Event()

    async def __call__(self, conn: PeerConnection) -> None:
        self.peers.append(conn.peer_id)
        try:
            while True:
                data = await conn.recv()
                self.received.append(data)
                await conn.send(b"echo:" + data)
        except TransportError as exc:
            self.errors.append(exc)
        finally:
            self.done.set()


class FrameProxy:
    """Forwards frames between a client and a server, letting a test rewrite them.

    ``mutate(direction, index, frame)`` returns the frames to forward instead; direction is
    ``"c2s"`` or ``"s2c"``, index counts frames per direction (0 and 1 are handshake frames
    client-side, 0 server-side).
    """

    def __init__(self, target_port: int, mutate: Callable[[str, int, bytes], list[bytes]]) -> None:
        self.target_port = target_port
        self.mutate = mutate
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> FrameProxy:
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection(HOST, self.target_port)
        await asyncio.gather(self._pump("c2s", cr, sw), self._pump("s2c", sr, cw))

    async def _pump(
        self, direction: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        index = 0
        try:
            while True:
                (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
                body = await reader.readexactly(length)
                for out in self.mutate(direction, index, body):
                    writer.write(HEADER.pack(len(out)) + out)
                index += 1
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()


def flip_bit(frame: bytes, at: int = 0) -> bytes:
    return frame[:at] + bytes([frame[at] ^ 0x01]) + frame[at + 1 :]


async def read_until_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the socket (fails on timeout)."""
    return await asyncio.wait_for(reader.read(), timeout)


async def raw_handshake(
    port: int, client_key: nacl.signing.SigningKey, server_id: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, handshake.Session]:
    reader, writer = await asyncio.open_connection(HOST, port)
    session = await handshake.initiate(reader, writer, client_key, server_id)
    return reader, writer, session


# --- handshake and round trip -----------------------------------------------------------------


def test_handshake_and_round_trip_both_ways() -> None:
    async def scenario() -> None:
        server_key, client_key = key(), key()
        greeted: list[bytes] = []

        async def handler(conn: PeerConnection) -> None:
            greeted.append(conn.peer_id)
            await conn.send(b"hello from the responder")
            assert await conn.recv() == b"ping"
            await conn.send(b"pong")
            with pytest.raises(ConnectionClosed):
                await conn.recv()

        listener = await TcpTransport(server_key).serve(HOST, 0, handler)
        conn = await TcpTransport(client_key).connect(HOST, listener.port, node_id_of(server_key))
        assert conn.peer_id == node_id_of(server_key)
        assert await conn.recv() == b"hello from the responder"
        await conn.send(b"ping")
        assert await conn.recv() == b"pong"
        await conn.close()
        await asyncio.sleep(0.05)
        assert greeted == [node_id_of(client_key)]
        await listener.close()

    run(scenario())


def test_wrong_expected_identity_is_refused() -> None:
    async def scenario() -> None:
        server_key, client_key, impostor = key(), key(), key()
        recorder = Recorder()
        listener = await TcpTransport(server_key).serve(HOST, 0, recorder)
        with pytest.raises(WrongPeerIdentity):
            await TcpTransport(client_key).connect(HOST, listener.port, node_id_of(impostor))
        await asyncio.sleep(0.05)
        assert recorder.peers == []  # the initiator never proved itself to a wrong peer
        await listener.close()

    run(scenario())


def test_allow_list_refuses_and_accepts() -> None:
    async def scenario() -> None:
        server_key, friend, stranger = key(), key(), key()
        recorder = Recorder()

        async def allow(peer: bytes) -> bool:
            return peer == node_id_of(friend)

        listener = await TcpTransport(server_key).serve(HOST, 0, recorder, allow=allow)
        refused = await TcpTransport(stranger).connect(HOST, listener.port, node_id_of(server_key))
        with pytest.raises(ConnectionClosed):
            await refused.recv()
        ok = await TcpTransport(friend).connect(HOST, listener.port, node_id_of(server_key))
        await ok.send(b"hi")
        assert await ok.recv() == b"echo:hi"
        assert recorder.peers == [node_id_of(friend)]
        await ok.close()
        await refused.close()
        await listener.close()

    run(scenario())


# --- hostile frames ------------------------------------------------------------------------------


def _proxied(
    mutate: Callable[[str, int, bytes], list[bytes]],
) -> Callable[[Callable[[PeerConnection, Recorder], Awaitable[None]]], None]:
    """Run ``body(client_conn, server_recorder)`` with the client going through a proxy."""

    def runner(body: Callable[[PeerConnection, Recorder], Awaitable[None]]) -> None:
        async def scenario() -> None:
            server_key = key()
            recorder = Recorder()
            listener = await TcpTransport(server_key).serve(HOST, 0, recorder)
            proxy = await FrameProxy(listener.port, mutate).start()
            conn = await TcpTransport(key()).connect(HOST, proxy.port, node_id_of(server_key))
            await body(conn, recorder)
            await conn.close()
            await proxy.close()
            await listener.close()

        run(scenario())

    return runner


def test_tampered_ciphertext_disconnects() -> None:
    def mutate(direction: str, index: int, frame: bytes) -> list[bytes]:
        if direction == "c2s" and index == 3:  # the second application message
            return [flip_bit(frame, len(frame) // 2)]
        return [frame]

    async def body(conn: PeerConnection, recorder: Recorder) -> None:
        await conn.send(b"first")
        assert await conn.recv() == b"echo:first"
        await conn.send(b"second")
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        await recorder.done.wait()
        assert recorder.received == [b"first"]
        assert isinstance(recorder.errors[0], AuthenticationFailed)

    _proxied(mutate)(body)


def test_tampered_handshake_fails() -> None:
    async def scenario() -> None:
        server_key = key()
        recorder = Recorder()
        listener = await TcpTransport(server_key).serve(HOST, 0, recorder)
        for target in ("c2s", "s2c"):
            for position in (0, 20, 60):

                def mutate(
                    direction: str,
                    index: int,
                    frame: bytes,
                    target: str = target,
                    at: int = position,
                ) -> list[bytes]:
                    if direction == target and index == 0:
                        return [flip_bit(frame, at % len(frame))]
                    return [frame]

                proxy = await FrameProxy(listener.port, mutate).start()
                with pytest.raises(HandshakeError):
                    conn = await TcpTransport(key()).connect(
                        HOST, proxy.port, node_id_of(server_key)
                    )
                    await conn.recv()  # the responder refused our proof
                await proxy.close()

        # a tampered initiator proof: the responder refuses, the initiator sees the close
        def tamper_proof(direction: str, index: int, frame: bytes) -> list[bytes]:
            return [flip_bit(frame, 7)] if (direction, index) == ("c2s", 1) else [frame]

        proxy = await FrameProxy(listener.port, tamper_proof).start()
        conn = await TcpTransport(key()).connect(HOST, proxy.port, node_id_of(server_key))
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        await proxy.close()
        assert recorder.peers == []
        await listener.close()

    run(scenario())


def test_replayed_frame_is_rejected() -> None:
    def mutate(direction: str, index: int, frame: bytes) -> list[bytes]:
        if direction == "c2s" and index == 2:
            return [frame, frame]  # the captured ciphertext, sent again
        return [frame]

    async def body(conn: PeerConnection, recorder: Recorder) -> None:
        await conn.send(b"pay 10")
        assert await conn.recv() == b"echo:pay 10"
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        await recorder.done.wait()
        assert recorder.received == [b"pay 10"]
        assert isinstance(recorder.errors[0], AuthenticationFailed)

    _proxied(mutate)(body)


def test_reordered_frames_are_rejected() -> None:
    held: list[bytes] = []

    def mutate(direction: str, index: int, frame: bytes) -> list[bytes]:
        if direction == "c2s" and index == 2:
            held.append(frame)
            return []
        if direction == "c2s" and index == 3:
            return [frame, *held]
        return [frame]

    async def body(conn: PeerConnection, recorder: Recorder) -> None:
        await conn.send(b"one")
        await conn.send(b"two")
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        await recorder.done.wait()
        assert recorder.received == []

    _proxied(mutate)(body)


def test_oversized_frame_disconnects_without_reading_it() -> None:
    async def scenario() -> None:
        server_key, client_key = key(), key()
        recorder = Recorder()
        listener = await TcpTransport(server_key).serve(HOST, 0, recorder)
        reader, writer, _ = await raw_handshake(listener.port, client_key, node_id_of(server_key))
        writer.write(HEADER.pack(MAX_FRAME_BYTES + 1))  # the body never comes
        await writer.drain()
        assert await read_until_eof(reader) == b""  # closed without waiting for the body
        await recorder.done.wait()
        assert isinstance(recorder.errors[0], FrameTooLarge)
        writer.close()
        await listener.close()

    run(scenario())


@pytest.mark.parametrize(
    "garbage",
    [
        os.urandom(1000),
        b"\xff\xff\xff\xff" + os.urandom(64),
        HEADER.pack(40) + b"NOTMAGIC" + os.urandom(32),
        HEADER.pack(40) + handshake.MAGIC + bytes(32),  # a degenerate (low-order) key
        HEADER.pack(0),
    ],
    ids=["random", "huge-length", "bad-magic", "zero-key", "empty"],
)
def test_garbage_before_handshake(garbage: bytes) -> None:
    async def scenario() -> None:
        server_key = key()
        recorder = Recorder()
        listener = await TcpTransport(server_key).serve(HOST, 0, recorder)
        reader, writer = await asyncio.open_connection(HOST, listener.port)
        writer.write(garbage)
        await writer.drain()
        await read_until_eof(reader)
        writer.close()
        # the listener still serves honest peers
        conn = await TcpTransport(key()).connect(HOST, listener.port, node_id_of(server_key))
        await conn.send(b"still here")
        assert await conn.recv() == b"echo:still here"
        assert len(recorder.peers) == 1
        await conn.close()
        await listener.close()

    run(scenario())


def test_silent_peer_times_out_in_handshake() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        listener = await TcpTransport(key(), handshake_timeout=0.3).serve(HOST, 0, recorder)
        reader, writer = await asyncio.open_connection(HOST, listener.port)
        await read_until_eof(reader, timeout=3.0)
        writer.close()
        assert recorder.peers == []
        await listener.close()

    run(scenario())


def test_one_bad_peer_does_not_affect_another() -> None:
    async def scenario() -> None:
        server_key = key()
        recorder = Recorder()
        listener = await TcpTransport(server_key).serve(HOST, 0, recorder)

        def mutate(direction: str, index: int, frame: bytes) -> list[bytes]:
            return [flip_bit(frame, 5)] if direction == "c2s" and index == 2 else [frame]

        proxy = await FrameProxy(listener.port, mutate).start()
        server_id = node_id_of(server_key)
        good = await TcpTransport(key()).connect(HOST, listener.port, server_id)
        bad = await TcpTransport(key()).connect(HOST, proxy.port, server_id)
        await good.send(b"before")
        assert await good.recv() == b"echo:before"
        await bad.send(b"evil")
        with pytest.raises(ConnectionClosed):
            await bad.recv()
        for i in range(100):
            await good.send(b"after %d" % i)
            assert await good.recv() == b"echo:after %d" % i
        await good.close()
        await bad.close()
        await proxy.close()
        await listener.close()

    run(scenario())


def test_nonce_counter_refuses_to_wrap() -> None:
    cipher = handshake.CipherState(bytes(32), counter=handshake.MAX_NONCE)
    cipher.encrypt(b"last message this key may send")
    with pytest.raises(NonceExhausted):
        cipher.encrypt(b"one too many")


def test_directional_keys_differ() -> None:
    """Both directions start at counter 0, so they must never share a key."""

    async def scenario() -> None:
        server_key = key()
        sessions: list[handshake.Session] = []

        async def handler(conn: PeerConnection) -> None:
            sessions.append(conn._session)  # type: ignore[attr-defined]
            await conn.recv()

        listener = await TcpTransport(server_key).serve(HOST, 0, handler)
        conn = await TcpTransport(key()).connect(HOST, listener.port, node_id_of(server_key))
        await conn.send(b"x")
        await asyncio.sleep(0.05)
        client = conn._session  # type: ignore[attr-defined]
        server = sessions[0]
        assert client.transcript == server.transcript
        assert client.send._key == server.recv._key
        assert client.recv._key == server.send._key
        assert client.send._key != client.recv._key
        await conn.close()
        await listener.close()

    run(scenario())


# --- parity: the same behaviour over TCP and in memory ------------------------------------------


TransportFactory = Callable[[nacl.signing.SigningKey], Transport]


@pytest.fixture(params=["tcp", "memory"])
def make_transport(request: pytest.FixtureRequest) -> TransportFactory:
    if request.param == "tcp":
        return lambda k: TcpTransport(k)
    network = MemoryNetwork()
    return lambda k: MemoryTransport(k, network)


def test_parity_round_trip_and_identities(make_transport: TransportFactory) -> None:
    async def scenario() -> None:
        server_key, client_key = key(), key()
        recorder = Recorder()
        listener = await make_transport(server_key).serve(HOST, 0, recorder)
        client = make_transport(client_key)
        with pytest.raises(WrongPeerIdentity):
            await client.connect(HOST, listener.port, node_id_of(key()))
        conn = await client.connect(HOST, listener.port, node_id_of(server_key))
        assert conn.peer_id == node_id_of(server_key)
        await conn.send(b"a")
        assert await conn.recv() == b"echo:a"
        assert recorder.peers == [node_id_of(client_key)]
        await conn.close()
        assert conn.closed
        with pytest.raises(ConnectionClosed):
            await conn.send(b"after close")
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        await recorder.done.wait()  # the server saw the close
        await listener.close()

    run(scenario())


def test_parity_many_messages_in_order(make_transport: TransportFactory) -> None:
    count = 3000

    async def scenario() -> None:
        server_key = key()
        got_by_server: list[bytes] = []

        async def handler(conn: PeerConnection) -> None:
            async def pump_out() -> None:
                for i in range(count):
                    await conn.send(b"s%d" % i + b"." * (i % 700))

            sender = asyncio.create_task(pump_out())
            for _ in range(count):
                got_by_server.append(await conn.recv())
            await sender

        listener = await make_transport(server_key).serve(HOST, 0, handler)
        conn = await make_transport(key()).connect(HOST, listener.port, node_id_of(server_key))

        async def pump_in() -> None:
            for i in range(count):
                await conn.send(b"c%d" % i + b"-" * (i % 900))

        sender = asyncio.create_task(pump_in())
        got = [await conn.recv() for _ in range(count)]
        await sender
        assert got == [b"s%d" % i + b"." * (i % 700) for i in range(count)]
        with pytest.raises(ConnectionClosed):  # the handler returned: the server closed
            await conn.recv()
        assert got_by_server == [b"c%d" % i + b"-" * (i % 900) for i in range(count)]
        await conn.close()
        await listener.close()

    run(scenario())


def test_parity_size_limit(make_transport: TransportFactory) -> None:
    async def scenario() -> None:
        server_key = key()
        recorder = Recorder()
        listener = await make_transport(server_key).serve(HOST, 0, recorder)
        conn = await make_transport(key()).connect(HOST, listener.port, node_id_of(server_key))
        with pytest.raises(FrameTooLarge):
            await conn.send(b"x" * (MAX_MESSAGE_BYTES + 1))
        assert not conn.closed  # a local refusal does not end the connection
        big = os.urandom(MAX_MESSAGE_BYTES)
        await conn.send(big)
        # the echo adds 5 bytes, so the server's reply is over the limit: it gives up
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        await recorder.done.wait()
        assert recorder.received == [big]
        await conn.close()
        await listener.close()

    run(scenario())


def test_parity_allow_list(make_transport: TransportFactory) -> None:
    async def scenario() -> None:
        server_key = key()
        recorder = Recorder()
        listener = await make_transport(server_key).serve(
            HOST, 0, recorder, allow=lambda peer: False
        )
        conn = await make_transport(key()).connect(HOST, listener.port, node_id_of(server_key))
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        assert recorder.peers == []
        await conn.close()
        await listener.close()

    run(scenario())


def test_parity_concurrent_connections(make_transport: TransportFactory) -> None:
    async def scenario() -> None:
        server_key = key()
        recorder = Recorder()
        listener = await make_transport(server_key).serve(HOST, 0, recorder)

        async def client(n: int) -> None:
            conn = await make_transport(key()).connect(HOST, listener.port, node_id_of(server_key))
            for i in range(50):
                await conn.send(b"%d:%d" % (n, i))
                assert await conn.recv() == b"echo:%d:%d" % (n, i)
            await conn.close()

        await asyncio.gather(*(client(n) for n in range(10)))
        assert len(set(recorder.peers)) == 10
        await listener.close()

    run(scenario())


def test_a_node_identity_works_as_the_key() -> None:
    from chenilles_hub.identity import NodeIdentity

    async def scenario() -> None:
        server, client = NodeIdentity(), NodeIdentity()
        recorder = Recorder()
        listener = await TcpTransport(server).serve(HOST, 0, recorder)
        conn = await TcpTransport(client).connect(HOST, listener.port, server.node_id)
        await conn.send(b"id")
        assert await conn.recv() == b"echo:id"
        assert recorder.peers == [client.node_id]
        await conn.close()
        await listener.close()

    run(scenario())


def test_handshakes_per_host_count_an_ipv6_host_by_its_64_and_a_mapped_ipv4_as_ipv4() -> None:
    """``max_handshakes_per_host`` counts per host: an IPv6 host is given a /64 (every
    address of it alike), and an IPv4 address mapped into IPv6 is that IPv4 address."""
    from chenilles_hub.node.net.transport import _host_of

    assert _host_of(("2001:db8::1", 1, 0, 0)) == _host_of(("2001:db8::ffff:2", 2, 0, 0))
    assert _host_of(("2001:db8::1", 1, 0, 0)) != _host_of(("2001:db8:0:1::1", 1, 0, 0))
    assert _host_of(("::ffff:10.0.0.1", 1, 0, 0)) == _host_of(("10.0.0.1", 5)) == "10.0.0.1"
    assert _host_of(("fe80::1%eth0", 1, 0, 2)) == "fe80::/64"
    assert _host_of(None) == "?"
