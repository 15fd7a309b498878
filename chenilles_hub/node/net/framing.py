"""Length-prefixed frames, and the transport's error types.

A frame is a 4-byte big-endian length followed by that many bytes. The length is checked
against a limit *before* the body is read, so a peer cannot make us buffer (or wait for)
more than the limit just by announcing a huge frame.

The errors live here, at the bottom of the transport's layers, so the framing, the handshake
and the connection can all raise them without import cycles.
"""

from __future__ import annotations

import asyncio
import struct

HEADER = struct.Struct(">I")
#: Largest ciphertext frame accepted after the handshake: a 64 KiB core message plus room
#: for a future envelope, and small enough that one bad peer cannot pin much memory.
MAX_FRAME_BYTES = 128 * 1024


class TransportError(Exception):
    """Base class: anything that ends (or refuses) one peer connection."""


class ConnectionClosed(TransportError):
    """The connection is closed: by us, by the peer, or after a protocol failure."""


class FrameTooLarge(TransportError):
    """A frame exceeds the size limit (announced by a peer, or asked of ``send``)."""


class AuthenticationFailed(TransportError):
    """A frame did not decrypt: tampered, replayed, reordered or garbage."""


class NonceExhausted(TransportError):
    """2**64 messages were sent with one key; sending more would reuse a nonce."""


class HandshakeError(TransportError):
    """The handshake failed: bad format, bad signature, timeout or early disconnect."""


class WrongPeerIdentity(HandshakeError):
    """The responder proved an identity other than the node id the initiator expected."""


class PeerNotAllowed(HandshakeError):
    """The responder's allow-list refused the initiator's (authenticated) identity."""


async def read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
    """Read one frame; refuse an oversized length without reading its body."""
    try:
        header = await reader.readexactly(HEADER.size)
        (length,) = HEADER.unpack(header)
        if length > limit:
            raise FrameTooLarge(f"peer announced a {length}-byte frame, limit {limit}")
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("the peer closed the connection") from None
    except OSError as exc:
        raise ConnectionClosed(f"connection lost: {exc}") from None


def encode_frame(body: bytes, limit: int) -> bytes:
    if len(body) > limit:
        raise FrameTooLarge(f"frame is {len(body)} bytes, limit {limit}")
    return HEADER.pack(len(body)) + body
