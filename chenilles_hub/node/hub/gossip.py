"""Channel announcements between direct peers: how a node learns the edges it routes over.

Deliberately simple (see docs/operating-a-hub.md, "Routing"): right after a connection is
set up, and every ``announce_interval`` seconds when something changed, each node sends its
direct peers one ``Announcement`` of *its own* active channels (as outgoing router edges:
capacity = its free balance, its fees), its conversion rates and its chains' time models.
A receiver keeps, per peer, only the edges whose source is that peer and the rates of that
peer: the transport already authenticated the sender, so nobody can announce for another
node, and nothing is relayed further. That is enough for a payer to route through any hub
it is connected to (payer -> hub -> payee); wider graphs can be given by the operator
(``POST /v1/graph``).

Announcements travel on the same encrypted connection as channel messages, in frames that
start with the byte ``0x01`` (node messages are JSON objects, so they start with ``{``). A
frame holds some 185 edges: a larger announcement goes in up to ``MAX_PARTS`` frames
(:func:`split`), which the receiver puts together before it replaces what it knew.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from chenilles_hub.core import TimeModel
from chenilles_hub.core.errors import MessageTooLarge
from chenilles_hub.core.messages import MAX_MESSAGE_BYTES, BoundedCodec
from chenilles_hub.core.routing import AssetRate, ChannelEdge

from .node import Node

GOSSIP_PREFIX = b"\x01"
MAX_EDGES = 512
#: Frames of one announcement: a node announces at most this many parts (some 11,000
#: edges at ~350 bytes each; past that the largest capacities go, see :func:`split`).
MAX_PARTS = 64
#: Room left in a frame for everything but the edges, rates and time models.
_FRAME_MARGIN = 256


class Announcement(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag="announce"
):
    edges: Annotated[tuple[ChannelEdge, ...], msgspec.Meta(max_length=MAX_EDGES)] = ()
    rates: Annotated[tuple[AssetRate, ...], msgspec.Meta(max_length=MAX_EDGES)] = ()
    time_models: Annotated[
        tuple[tuple[Annotated[str, msgspec.Meta(max_length=96)], TimeModel], ...],
        msgspec.Meta(max_length=64),
    ] = ()
    #: An announcement larger than a frame goes in ``parts`` frames (``part`` 0, 1, ...),
    #: all with the same ``serial``: a receiver replaces what it knew of the sender once it
    #: holds every part. A single frame leaves the three out (what nodes before parts sent
    #: and read).
    part: Annotated[int, msgspec.Meta(ge=0, lt=MAX_PARTS)] = 0
    parts: Annotated[int, msgspec.Meta(ge=1, le=MAX_PARTS)] = 1
    serial: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0


_codec: BoundedCodec[Announcement] = BoundedCodec(Announcement, "announcement")


def encode_announcement(announcement: Announcement) -> bytes:
    return GOSSIP_PREFIX + _codec.encode(announcement)


def decode_announcement(frame: bytes) -> Announcement:
    """Raises ``DecodeError`` (the peer is then disconnected, like for a bad node message)."""
    return _codec.decode(frame[len(GOSSIP_PREFIX) :])


def own_announcement(node: Node) -> Announcement:
    """Our active channels as edges, our rates and our chains' time models, whole: what
    :func:`split` cuts into frames."""
    own = node.own_edges()
    return Announcement(
        edges=tuple(own.edges()),
        rates=tuple(node.policy.asset_rates(node.node_id)),
        time_models=tuple(sorted(own.time_models().items())),
    )


def split(announcement: Announcement, serial: int) -> tuple[tuple[Announcement, ...], int]:
    """``announcement`` in frames that each fit the wire's limits (a frame, ``MAX_EDGES``
    edges), and how many edges did not fit in ``MAX_PARTS`` frames: those of the smallest
    capacities, left out (a hub with 200 channels could announce none of them: one frame
    held some 185 edges). Rates and time models go in the first frame."""
    room = MAX_MESSAGE_BYTES - len(GOSSIP_PREFIX) - _FRAME_MARGIN
    head = Announcement(rates=announcement.rates, time_models=announcement.time_models)
    first_room = room - len(_codec.encode(head))
    if first_room < 0:
        raise MessageTooLarge("our rates and time models alone exceed a frame")
    edges = sorted(announcement.edges, key=lambda e: e.capacity, reverse=True)
    chunks: list[list[ChannelEdge]] = [[]]
    used = 0
    for edge in edges:
        size = len(msgspec.json.encode(edge)) + 1
        limit = first_room if len(chunks) == 1 else room
        if used + size > limit or len(chunks[-1]) == MAX_EDGES:
            if len(chunks) == MAX_PARTS:
                break
            chunks.append([])
            used = 0
        chunks[-1].append(edge)
        used += size
    sent = sum(len(chunk) for chunk in chunks)
    if len(chunks) == 1:
        return (Announcement(tuple(chunks[0]), head.rates, head.time_models),), 0
    parts = tuple(
        Announcement(
            tuple(chunk),
            head.rates if i == 0 else (),
            head.time_models if i == 0 else (),
            part=i,
            parts=len(chunks),
            serial=serial,
        )
        for i, chunk in enumerate(chunks)
    )
    return parts, len(edges) - sent
