"""Peer connections between nodes: the interface, TCP (encrypted) and in-memory.

The node talks to ``Transport`` and ``PeerConnection`` only, so the single-process demo and
the tests can swap the TCP transport for ``MemoryTransport`` without changing a line.

Failure is per connection: a frame that fails authentication, an oversized frame or garbage
closes that one connection (``recv`` raises) and nothing else; a listener keeps serving.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from .framing import (
    MAX_FRAME_BYTES,
    AuthenticationFailed,
    ConnectionClosed,
    FrameTooLarge,
    HandshakeError,
    NonceExhausted,
    PeerNotAllowed,
    TransportError,
    WrongPeerIdentity,
    encode_frame,
    read_frame,
)
from .handshake import (
    TAG_BYTES,
    AllowList,
    Identity,
    Session,
    Signer,
    as_signer,
    initiate,
    node_id_of,
    respond,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "AllowList",
    "AuthenticationFailed",
    "ConnectionClosed",
    "ConnectionHandler",
    "FrameTooLarge",
    "HandshakeError",
    "Identity",
    "Listener",
    "MemoryNetwork",
    "MemoryTransport",
    "NonceExhausted",
    "PeerConnection",
    "PeerNotAllowed",
    "Signer",
    "TcpTransport",
    "Transport",
    "TransportError",
    "WrongPeerIdentity",
    "node_id_of",
]

log = logging.getLogger(__name__)

#: Largest plaintext one ``send`` accepts (the ciphertext frame adds the 16-byte tag).
MAX_MESSAGE_BYTES = MAX_FRAME_BYTES - TAG_BYTES
HANDSHAKE_TIMEOUT = 10.0
#: Incoming connections in their handshake at once (``[policy.peers] max_handshakes``;
#: from one address, ``max_handshakes_per_host``: no bound of its own unless given).
MAX_HANDSHAKES = 128


class PeerConnection(abc.ABC):
    """An authenticated, ordered, reliable message pipe to one peer."""

    peer_id: bytes

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Queue one message; raise ``ConnectionClosed`` or ``FrameTooLarge``."""

    async def send_many(self, messages: list[bytes]) -> None:
        """Queue several messages, in order, as if by one ``send`` each (a transport may
        write them at once). On an error, none of them counts as sent."""
        for data in messages:
            await self.send(data)

    @abc.abstractmethod
    async def recv(self) -> bytes:
        """Next message, in order.

        Raises ``ConnectionClosed`` once the connection is over, or another
        ``TransportError`` (``AuthenticationFailed``, ``FrameTooLarge``) when the peer sent
        something bad, after which the connection is closed too: catch ``TransportError``.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close (idempotent); a pending ``recv`` on either side raises ``ConnectionClosed``."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop the connection at once without flushing what is unsent (a peer that does
        not read, or a hostile one); a pending ``send`` or ``recv`` fails."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool: ...


ConnectionHandler = Callable[[PeerConnection], Awaitable[None]]


class Listener(abc.ABC):
    """A served address; ``port`` is the real one when 0 was asked for."""

    host: str
    port: int

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop accepting and close every connection this listener accepted."""


class Transport(abc.ABC):
    """Connects to and accepts peers as the node identified by ``node_id``."""

    node_id: bytes

    @abc.abstractmethod
    async def connect(self, host: str, port: int, expected_node_id: bytes) -> PeerConnection:
        """Open a connection; ``WrongPeerIdentity`` if the peer is not ``expected_node_id``."""

    @abc.abstractmethod
    async def serve(
        self,
        host: str,
        port: int,
        on_connection: ConnectionHandler,
        *,
        allow: AllowList | None = None,
    ) -> Listener:
        """Accept peers; run ``on_connection`` in its own task per authenticated peer.

        The connection is closed when the handler returns. ``allow`` vets the initiator's
        identity after it is proven; a refused peer is disconnected.
        """


async def _run_handler(conn: PeerConnection, handler: ConnectionHandler) -> None:
    try:
        await handler(conn)
    except Exception:
        log.exception("connection handler for %s failed", conn.peer_id.hex()[:16])
    finally:
        await conn.close()


# --- TCP --------------------------------------------------------------------------------------


def _host_of(peername: object) -> str:
    """Who a connection comes from, for ``max_handshakes_per_host``: an IPv4 address (an
    IPv4-mapped IPv6 one as IPv4), or an IPv6 address's /64 (what one host is given)."""
    if not isinstance(peername, tuple) or not peername:
        return "?"
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%")[0])
    except ValueError:
        return str(peername[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class TcpPeerConnection(PeerConnection):
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session
    ) -> None:
        self.peer_id = session.peer_id
        self._reader = reader
        self._writer = writer
        self._session = session
        self._recv_lock = asyncio.Lock()
        self._drain_lock = asyncio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, data: bytes) -> None:
        await self.send_many([data])

    async def send_many(self, messages: list[bytes]) -> None:
        """Encrypt every message and hand the frames to the socket in one write: under load
        a sender's batch (a job's outbox: one proposal per channel) costs one system call,
        not one per message."""
        if self._closed:
            raise ConnectionClosed("connection is closed")
        for data in messages:  # checked before any nonce is used: a refusal sends nothing
            if len(data) > MAX_MESSAGE_BYTES:
                raise FrameTooLarge(f"message is {len(data)} bytes, limit {MAX_MESSAGE_BYTES}")
        # Encrypt and write without an await in between: the counter order is the wire order.
        encrypt = self._session.send.encrypt
        frames = [encode_frame(encrypt(data), MAX_FRAME_BYTES) for data in messages]
        self._writer.write(frames[0] if len(frames) == 1 else b"".join(frames))
        try:
            async with self._drain_lock:
                await self._writer.drain()
        except OSError as exc:
            self.abort()
            raise ConnectionClosed(f"connection lost: {exc}") from None

    async def recv(self) -> bytes:
        async with self._recv_lock:
            if self._closed:
                raise ConnectionClosed("connection is closed")
            try:
                frame = await read_frame(self._reader, MAX_FRAME_BYTES)
                return self._session.recv.decrypt(frame)
            except TransportError as exc:
                if not isinstance(exc, ConnectionClosed):
                    log.warning("dropping peer %s: %s", self.peer_id.hex()[:16], exc)
                self.abort()
                raise

    def abort(self) -> None:
        self._closed = True
        self._writer.transport.abort()

    async def close(self) -> None:
        if self._closed and self._writer.transport.is_closing():
            return
        self._closed = True
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class _TcpListener(Listener):
    def __init__(self, server: asyncio.Server, host: str) -> None:
        self._server = server
        self.host = host
        self.port = server.sockets[0].getsockname()[1]
        self.connections: set[PeerConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        self._server.close()
        for conn in list(self.connections):
            await conn.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self._server.wait_closed()


class TcpTransport(Transport):
    """TCP with the handshake of :mod:`.handshake` and encrypted length-prefixed frames."""

    def __init__(
        self,
        identity: Identity,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        max_handshakes: int = MAX_HANDSHAKES,
        max_handshakes_per_host: int = MAX_HANDSHAKES,
    ) -> None:
        """``identity``: a ``SigningKey`` or any ``Signer`` (e.g. ``NodeIdentity``).
        ``max_handshakes``: incoming connections in their handshake at once, and
        ``max_handshakes_per_host`` from one address; one more is closed at once
        (``handshakes_refused`` counts them)."""
        self._key = as_signer(identity)
        self.node_id = self._key.node_id
        self._handshake_timeout = handshake_timeout
        self.max_handshakes = max_handshakes
        self.max_handshakes_per_host = max_handshakes_per_host
        self.handshakes_refused = 0
        self._handshaking = 0
        self._handshaking_from: dict[str, int] = {}

    async def connect(self, host: str, port: int, expected_node_id: bytes) -> PeerConnection:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            # ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` can swallow
            # a cancellation that arrives as the handshake ends, and a dial loop cancelled at
            # shutdown then went on serving the link (a shutdown that never ended, in CI).
            async with asyncio.timeout(self._handshake_timeout):
                session = await initiate(reader, writer, self._key, expected_node_id)
        except TimeoutError:
            writer.transport.abort()
            raise HandshakeError("handshake timed out") from None
        except ConnectionClosed:
            writer.transport.abort()
            raise HandshakeError("peer closed the connection during the handshake") from None
        except BaseException:
            writer.transport.abort()
            raise
        return TcpPeerConnection(reader, writer, session)

    async def serve(
        self,
        host: str,
        port: int,
        on_connection: ConnectionHandler,
        *,
        allow: AllowList | None = None,
    ) -> Listener:
        listener: _TcpListener | None = None

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert listener is not None
            host = _host_of(writer.get_extra_info("peername"))
            from_host = self._handshaking_from.get(host, 0)
            if (
                self._handshaking >= self.max_handshakes
                or from_host >= self.max_handshakes_per_host
            ):
                # Before authentication anyone may connect: a connection that never ends its
                # handshake holds a socket and a task until the timeout, so without a bound
                # a flood of them would take every file descriptor of the process; and one
                # address alone may not take every place (channels' members dial in too).
                self.handshakes_refused += 1
                writer.transport.abort()
                return
            self._handshaking += 1
            self._handshaking_from[host] = from_host + 1
            try:
                async with asyncio.timeout(self._handshake_timeout):  # see ``connect``
                    session = await respond(reader, writer, self._key, allow)
            except (TransportError, TimeoutError, OSError) as exc:
                log.info("refused incoming connection: %s", exc or type(exc).__name__)
                writer.transport.abort()
                return
            finally:
                self._handshaking -= 1
                left = self._handshaking_from[host] - 1
                if left:
                    self._handshaking_from[host] = left
                else:
                    del self._handshaking_from[host]
            conn = TcpPeerConnection(reader, writer, session)
            listener.connections.add(conn)
            try:
                await _run_handler(conn, on_connection)
            finally:
                listener.connections.discard(conn)

        def spawn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Keep a reference to every task so none is garbage-collected mid-flight and
            # ``Listener.close`` can cancel the ones still in their handshake.
            assert listener is not None
            task = asyncio.get_running_loop().create_task(accept(reader, writer))
            listener.tasks.add(task)
            task.add_done_callback(listener.tasks.discard)

        server = await asyncio.start_server(spawn, host, port)
        listener = _TcpListener(server, host)
        return listener


# --- in memory ------------------------------------------------------------------------------


class _MemoryPeerConnection(PeerConnection):
    """One end of an in-memory pipe: messages are copied into the other end's queue.

    No backpressure (the queue is unbounded) and no encryption; identities, size limits,
    ordering and close semantics match the TCP transport.
    """

    def __init__(self, peer_id: bytes) -> None:
        self.peer_id = peer_id
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._other: _MemoryPeerConnection | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, data: bytes) -> None:
        if self._closed or self._other is None or self._other._closed:
            raise ConnectionClosed("connection is closed")
        if len(data) > MAX_MESSAGE_BYTES:
            raise FrameTooLarge(f"message is {len(data)} bytes, limit {MAX_MESSAGE_BYTES}")
        self._other._inbox.put_nowait(bytes(data))

    async def recv(self) -> bytes:
        if self._closed:
            raise ConnectionClosed("connection is closed")
        item = await self._inbox.get()
        if item is None:
            self._closed = True
            self._inbox.put_nowait(None)  # wake any other waiting receiver too
            raise ConnectionClosed("connection is closed")
        return item

    async def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put_nowait(None)
        if self._other is not None:
            self._other._inbox.put_nowait(None)  # after whatever we sent before: EOF


class _MemoryListener(Listener):
    def __init__(
        self,
        network: MemoryNetwork,
        transport: MemoryTransport,
        host: str,
        port: int,
        handler: ConnectionHandler,
        allow: AllowList | None,
    ) -> None:
        self.network = network
        self.transport = transport
        self.host = host
        self.port = port
        self.handler = handler
        self.allow = allow
        self.connections: set[PeerConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def accept(self, conn: _MemoryPeerConnection) -> None:
        if self.allow is not None:
            verdict = self.allow(conn.peer_id)
            if not isinstance(verdict, bool):
                verdict = await verdict
            if not verdict:
                await conn.close()
                return
        self.connections.add(conn)
        try:
            await _run_handler(conn, self.handler)
        finally:
            self.connections.discard(conn)

    async def close(self) -> None:
        self.network._listeners.pop((self.host, self.port), None)
        for conn in list(self.connections):
            await conn.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class MemoryNetwork:
    """The address space in-memory transports share (one per test or demo process)."""

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, int], _MemoryListener] = {}
        self._next_port = 40000

    def _allocate(self, host: str, port: int) -> int:
        if port == 0:
            while (host, self._next_port) in self._listeners:
                self._next_port += 1
            port = self._next_port
            self._next_port += 1
        if (host, port) in self._listeners:
            raise OSError(f"address {host}:{port} already in use")
        return port


class MemoryTransport(Transport):
    """Same interface as ``TcpTransport``; identities are taken as given (no crypto)."""

    def __init__(self, identity: Identity, network: MemoryNetwork) -> None:
        self.node_id = node_id_of(identity)
        self._network = network

    async def connect(self, host: str, port: int, expected_node_id: bytes) -> PeerConnection:
        listener = self._network._listeners.get((host, port))
        if listener is None:
            raise ConnectionRefusedError(f"nothing listens on {host}:{port}")
        if listener.transport.node_id != expected_node_id:
            raise WrongPeerIdentity(
                f"expected node {expected_node_id.hex()[:16]}, "
                f"peer is {listener.transport.node_id.hex()[:16]}"
            )
        mine = _MemoryPeerConnection(listener.transport.node_id)
        theirs = _MemoryPeerConnection(self.node_id)
        mine._other, theirs._other = theirs, mine
        task = asyncio.get_running_loop().create_task(listener.accept(theirs))
        listener.tasks.add(task)
        task.add_done_callback(listener.tasks.discard)
        return mine

    async def serve(
        self,
        host: str,
        port: int,
        on_connection: ConnectionHandler,
        *,
        allow: AllowList | None = None,
    ) -> Listener:
        port = self._network._allocate(host, port)
        listener = _MemoryListener(self._network, self, host, port, on_connection, allow)
        self._network._listeners[(host, port)] = listener
        return listener
