"""The channel machine's mutable part (``MachineCore``), and how a restored machine gets it
from an encoded snapshot only when it is first used.

A node restarting with 100,000 channels spent a third of its restore decoding snapshots
(about 22 us each: two signed states, the last reply, the last updates with their onions)
and checking their states, for channels most of which nothing touches for a while. A
machine made by :meth:`ChannelMachine.restored` keeps the stored bytes, or a function that
reads them (the node's store: a restart then does not even read the snapshots it does not
use, 390 MB for 100,000 channels), and checks and decodes them on its first use
(:class:`LazyCore`), with the same checks and the same errors as the constructor and
:meth:`ChannelMachine.restore`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from .effects import ChannelSnapshot, PendingProposal, WithdrawnProposal, decode_snapshot
from .errors import StateMismatch, WrongChannel
from .invariants import check_params, check_state
from .messages import ChannelMessage
from .model import ChannelParams, ChannelState, SignedState
from .updates import Update


class _Machine(Protocol):
    """What of a ``ChannelMachine`` its core is checked against (no import of it here)."""

    params: ChannelParams
    channel_id: bytes
    me: int
    initial: ChannelState


#: How an encoded snapshot with nothing withdrawn ends. The encoding is canonical (msgspec
#: writes fields in declaration order, ``withdrawn`` last, no whitespace), so a snapshot
#: ending so has an empty ``withdrawn``; one that does not is decoded at once (see
#: :meth:`ChannelMachine.restored`), which is only ever slower, never wrong.
_NOTHING_WITHDRAWN = b',"withdrawn":[]}'


class MachineCore(msgspec.Struct, frozen=True, gc=False):
    """The machine's mutable part as one immutable value, swapped atomically."""

    latest: SignedState | None = None
    previous: SignedState | None = None
    pending: PendingProposal | None = None
    awaiting_ack: int | None = None
    last_reply: ChannelMessage | None = None
    latest_updates: tuple[Update, ...] = ()
    #: The number our next proposal of version ``latest + 1`` carries.
    attempt: int = 0
    #: ``(version, attempt)``: the peer's proposals of ``version`` up to ``attempt`` are
    #: refused for good.
    refused: tuple[int, int] | None = None
    #: Our proposals the peer refused, reported once a later version is irrevocable.
    withdrawn: tuple[WithdrawnProposal, ...] = ()


def check_new_machine(
    params: ChannelParams, channel_id: bytes, me: int, initial: ChannelState
) -> None:
    """What a machine's constructor checks (and a lazily restored one on first use)."""
    check_params(params)
    check_state(params, channel_id, initial)
    if initial.version != 0 or initial.htlcs or initial.final:
        raise StateMismatch("the initial state is version 0 with no HTLCs, not final")
    if me not in (0, 1):
        raise ValueError("participant index must be 0 or 1")


def core_from_snapshot(machine: _Machine, snapshot: ChannelSnapshot) -> MachineCore:
    """The core ``snapshot`` restores, after checking it belongs to ``machine`` and its
    latest state keeps the invariants (raises, changing nothing, if not)."""
    if snapshot.channel_id != machine.channel_id:
        raise WrongChannel("snapshot belongs to another channel")
    if snapshot.latest is not None:
        check_state(machine.params, machine.channel_id, snapshot.latest.state)
    return MachineCore(
        snapshot.latest,
        snapshot.previous,
        snapshot.pending,
        snapshot.awaiting_ack,
        snapshot.last_reply,
        snapshot.latest_updates,
        snapshot.attempt,
        snapshot.refused,
        snapshot.withdrawn,
    )


def nothing_withdrawn(encoded: bytes) -> bool:
    """Whether an encoded snapshot certainly has no withdrawn proposal (without decoding)."""
    return encoded.endswith(_NOTHING_WITHDRAWN)


#: A restored machine's snapshot: its encoded bytes, or a function that reads them (called
#: on the machine's first use; it returns ``None`` if the snapshot is gone).
EncodedSnapshot = bytes | Callable[[], bytes | None]


def read_encoded(encoded: EncodedSnapshot) -> bytes:
    """The bytes of ``encoded``, read now if it is a function."""
    if isinstance(encoded, bytes):
        return encoded
    found = encoded()
    if found is None:
        raise LookupError("the channel's snapshot is no longer where it was restored from")
    return found


def decoded(machine: Any) -> None:
    """A lazily restored machine now has its core: what stood for it until then goes (the
    state answers from now on)."""
    machine.__dict__.pop("_encoded", None)
    machine.__dict__.pop("_stored_holdings", None)


class LazyCore:
    """``ChannelMachine._core`` of a machine restored from encoded bytes: decoded on first
    read, then stored in the instance, which shadows this (non-data) descriptor, so later
    reads are plain attribute reads with no cost on the hot path. A snapshot that fails to
    decode or to check raises on every read, and the machine stays unusable."""

    def __get__(self, machine: Any, owner: Any = None) -> MachineCore:
        if machine is None:
            raise AttributeError("_core is an instance attribute")
        encoded: EncodedSnapshot | None = machine.__dict__.get("_encoded")
        if encoded is None:
            raise AttributeError("the machine has no core (neither built nor restored)")
        check_new_machine(machine.params, machine.channel_id, machine.me, machine.initial)
        core = core_from_snapshot(machine, decode_snapshot(read_encoded(encoded)))
        machine.__dict__["_core"] = core
        decoded(machine)
        return core
