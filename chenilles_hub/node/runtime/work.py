"""What flows through the node server's pipeline (see ``server.py``): the per-peer link,
the items of the work queue (a peer's frame, a caller's function) and a handled job
waiting for its write, with the bounds that keep every queue finite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chenilles_hub.core import ChannelSnapshot

from ..hub.records import Payment
from ..net.transport import PeerConnection

#: Most work items (messages and calls) handled in one worker job and one durable commit.
RECEIVE_BATCH = 64
#: Most proposals one worker job signs: a burst over many channels goes out in slices,
#: each durable and sent while the next is signed (the peer starts on the first at once).
PROPOSALS_PER_JOB = 64
#: Work items waiting for the worker before readers and callers block (backpressure).
WORK_QUEUE_BOUND = 1024
#: Handled jobs waiting for the writer before the worker waits for the disk.
WRITES_IN_FLIGHT = 256
#: Seconds the worker waits, before a chain transaction, for the writer to write the jobs
#: handed to it (``Pipeline.make_durable``); past that the transaction is not sent.
DURABLE_WAIT = 60.0
#: Messages waiting to be sent to one peer: a peer that lets more pile up (it does not read)
#: is dropped rather than allowed to stall the node; channel messages come back with
#: reestablish when it reconnects.
LINK_OUTBOX_BOUND = 4096
#: Frames one peer may have waiting for the worker before its connection is not read.
LINK_FRAMES_QUEUED = 256
#: Messages a link's sender encrypts and writes to its socket at once (one system call):
#: a job's outbox to one peer, up to this many; more go in further writes.
MAX_SEND_BATCH = 128
#: Seconds one message may take to leave before the peer counts as not reading.
SEND_TIMEOUT = 30.0


@dataclass(eq=False)
class Link:
    """One live connection to a peer and the two bounded queues around it (compared and
    hashed by identity: each is one connection)."""

    conn: PeerConnection
    initiator: bytes
    #: whether the peer was a stranger when it connected (``[policy.peers] max_strangers``)
    stranger: bool = False
    started: float = field(default_factory=time.monotonic)
    #: Frames of this link waiting for (or in) the worker: one peer's flood cannot take the
    #: whole work queue from the API and the other peers.
    queued: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(LINK_FRAMES_QUEUED))
    #: What to send, in order; only the link's sender task writes to the connection.
    outbox: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(LINK_OUTBOX_BOUND))
    #: Set once a frame from this connection failed to decode: frames it sent after that
    #: one are not handled, and the connection is dropped.
    violated: bool = False
    dropped: bool = False


@dataclass
class Frame:
    """A frame read from a peer, waiting for the worker."""

    peer: bytes
    data: bytes
    link: Link


@dataclass
class Done:
    """A handled job waiting for the writer: what to write, then what to release."""

    batch: list[Frame | Call]
    #: Per item: a call's (result, error), or the error a frame was refused with (or None).
    outcomes: list[Any]
    write: tuple[list[ChannelSnapshot], dict[str, bytes | None]] | None
    outbox: list[tuple[bytes, bytes]]
    settled: list[tuple[int, int | None, str | None]] = field(default_factory=list)
    #: Our payments that succeeded or failed in the job: each as it was then (a copy
    #: taken on the node's thread, which the API may read on the event loop).
    paid: list[tuple[bytes, Payment]] = field(default_factory=list)
    #: The job stopped proposing at ``Node.proposals_per_job``: another job must follow.
    more: bool = False
    #: Peer frames alone, all quiet, and nothing to send or answer: its write may be
    #: relaxed (``Store.save_checkpoint``; docs/security.md, "Relaxed writes").
    quiet: bool = False


@dataclass
class Call:
    """A function to run on the node (an API request, a timer tick), and who waits for it."""

    fn: Callable[[], Any]
    answer: asyncio.Future[Any]


def release_frames(batch: list[Frame | Call]) -> None:
    for item in batch:
        if isinstance(item, Frame):
            item.link.queued.release()
