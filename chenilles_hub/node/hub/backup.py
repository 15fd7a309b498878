"""Static channel backups: what a fresh node (same identity, empty store) needs to get the
money of every channel back by closing it, encrypted to the node's own secret.

Like Lightning's static channel backups (SCB), a backup is meant for recovery only: it is
restored into an empty store and every channel in it is then closed (cooperatively if the
peer answers, else by registering its latest signed state: :mod:`.recovery`), never used to
go on paying. Unlike an SCB it carries each channel's latest signed state and the backend's
records (on Bitcoin: what recognises and punishes the peer's commitments), because a
Chenilles peer is not asked to close on our behalf.

Per channel: its record (params, our index, initial state), its snapshot (latest signed
state and what is in flight), the node's record of it (deposits, status), the backend's
record parts and the markers of deposits already sent (never sent twice), all as the store
holds them. The file is ``CHENSCB2 | prefix (7 bytes) | chunk 0 | chunk 1 ...``: the JSON
in chunks of 1 MiB, each sealed with ChaCha20-Poly1305 under a key derived (HKDF-SHA256)
from the node's identity seed, the node id bound as associated data, its nonce the prefix,
the chunk's number and whether it is the last (the STREAM construction: chunks cannot be
reordered, dropped or cut off unnoticed). Only this node's secret opens it, and any change
to it is detected. In chunks, sealing a large backup on another thread leaves the node's
thread the interpreter between chunks (one seal of the whole file held it for a second at
100,000 channels). Files of the first format (``CHENSCB1 | nonce | sealed``, one seal of
the whole JSON) are still read.

A backup from before the latest payments holds an older state: on EVM and Solana a newer
state registered by the peer simply replaces it (the money follows the newest state); on
Bitcoin an old commitment is a revoked one, so restoring a stale backup there is only safe
through the cooperative close (see docs/operating-a-hub.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ...core import ChannelSnapshot, decode_snapshot
from ...identity import NodeIdentity
from ..store.base import ChannelRecord, Store, StoreView
from .journal import (
    CHANNEL_PREFIX,
    FUNDING_PREFIX,
    RECORD_PREFIX,
    ChannelMeta,
    decode_record,
    record_parts,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

#: The first format: MAGIC, a nonce of NONCE_BYTES, one ciphertext (read, not written).
MAGIC = b"CHENSCB1"
#: The format written: MAGIC_CHUNKED, a nonce prefix, then chunks (module docstring).
MAGIC_CHUNKED = b"CHENSCB2"
NONCE_BYTES = 12
#: Plaintext bytes per chunk; each chunk's ciphertext is 16 bytes longer (its tag).
CHUNK = 1 << 20
_PREFIX = 7
_TAG = 16
_INFO = b"chenilles/static-channel-backup/v1"
#: ``recovery/<channel id hex>``: a channel restored from a backup, to be closed (value:
#: :class:`RecoveryMarker`); emptied once the channel is closed.
RECOVERY_PREFIX = "recovery/"
#: The most a backup may hold once decrypted, and so the most a node writes: 1 GiB, some
#: 200,000 channels (a snapshot is 1-4 KB). It was 64 MiB, which a node with 20,000 channels
#: outgrew: it wrote backups that no restore would read.
MAX_BACKUP = 1024 * 1024 * 1024


class BackupError(Exception):
    """Not a backup of this node, damaged, or not restorable here (the message says why)."""


class ChannelBackup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    record: ChannelRecord
    meta: ChannelMeta
    snapshot: ChannelSnapshot | None = None
    #: the backend's record parts (``ChannelRecords``: Bitcoin), by part name
    parts: tuple[tuple[str, bytes], ...] = ()
    #: our deposits already sent (``funding/<channel>/...`` markers): never sent twice
    funding: tuple[tuple[str, bytes], ...] = ()


class Backup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node_id: bytes
    created_at: int
    channels: tuple[ChannelBackup, ...]
    version: int = 1


class RecoveryMarker(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A restored channel: closed cooperatively if the peer answers, else registered on
    chain ``force_after`` seconds (node clock) after ``restored_at``."""

    restored_at: int
    #: seconds from the node's start to register the state if the peer did not close; -1:
    #: never (cooperative only)
    force_after: int
    #: the operator vouches that the backup is current: a backend that punishes old states
    #: (Bitcoin) may be force-closed too
    force_revoking: bool = False


def _cipher(identity: NodeIdentity) -> ChaCha20Poly1305:
    """The backup cipher under a key derived from the identity seed (``cryptography`` is
    imported here: a node that never writes a backup does not pay for the import)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(identity.seed)
    return ChaCha20Poly1305(key)


#: The settings a backup holds besides the channels and their snapshots.
BACKUP_PREFIXES = (CHANNEL_PREFIX, RECORD_PREFIX, FUNDING_PREFIX)


class _StoredChannel(msgspec.Struct, frozen=True):
    """A :class:`ChannelBackup` whose snapshot stays the bytes the store holds: encoded
    as is, the same JSON as the decoded one (each is still decoded once, as a check)."""

    record: ChannelRecord
    meta: ChannelMeta
    snapshot: msgspec.Raw | None = None
    parts: tuple[tuple[str, bytes], ...] = ()
    funding: tuple[tuple[str, bytes], ...] = ()


class _StoredBackup(msgspec.Struct, frozen=True):
    node_id: bytes
    created_at: int
    channels: tuple[_StoredChannel, ...]
    version: int = 1


def _checked_snapshot(channel_id: bytes, data: bytes) -> msgspec.Raw:
    """``data`` as it goes into the file, once it decodes as this channel's snapshot: one
    damaged row (even a field of the wrong type) would make the whole file refused at
    restore, so it fails the writing instead, and the previous file stays. (A restarted
    node reads an idle channel's snapshot only on first use: this may be the first look.)"""
    try:
        snapshot = decode_snapshot(data)
    except (msgspec.DecodeError, ValueError) as exc:
        raise BackupError(
            f"channel {channel_id.hex()}'s stored snapshot is damaged ({exc}): no backup "
            "was written; the previous file is kept"
        ) from None
    if snapshot.channel_id != channel_id:
        raise BackupError(f"channel {channel_id.hex()}'s stored snapshot is another channel's")
    return msgspec.Raw(data)


def read_view(store: Store) -> StoreView:
    """What a backup holds, read from ``store`` at one moment (on the node's thread: the
    rest, :func:`seal_view`, may run on any)."""
    return store.consistent_view(BACKUP_PREFIXES)


def _stored(view: StoreView, node_id: bytes, now: int) -> _StoredBackup:
    """Every channel of ``view`` that is not closed."""
    return _StoredBackup(node_id, now, tuple(_stored_channels(view)))


def _stored_channels(view: StoreView) -> Iterator[_StoredChannel]:
    """Every channel of ``view`` that is not closed, one at a time: each record is decoded
    as its channel comes (a sealer that encodes each at once keeps no 100,000 objects
    alive, which made the garbage collector pass over the whole heap, a second each)."""
    metas = {key[len(CHANNEL_PREFIX) :]: value for key, value in view.settings[CHANNEL_PREFIX]}
    parts = record_parts(view.settings[RECORD_PREFIX])
    funding = _funding_by_channel(view.settings[FUNDING_PREFIX])
    for record in view.channels:
        raw = metas.get(record.channel_id.hex())
        if raw is None:
            continue  # never checkpointed: nothing was signed or sent
        meta = decode_record(raw, ChannelMeta)
        if meta.channel_id != record.channel_id or meta.status == "closed":
            continue  # another channel's record (damage), or nothing left to recover
        snapshot = view.snapshots.get(record.channel_id)
        yield _StoredChannel(
            record,
            meta,
            _checked_snapshot(record.channel_id, snapshot) if snapshot is not None else None,
            tuple(sorted(parts.get(record.channel_id.hex(), {}).items())),
            tuple(sorted(funding.get(record.channel_id.hex(), ()))),
        )


def _funding_by_channel(rows: list[tuple[str, bytes]]) -> dict[str, list[tuple[str, bytes]]]:
    """The markers of deposits already sent (``funding/<channel id hex>/...``), whole, by
    channel id (hex)."""
    found: dict[str, list[tuple[str, bytes]]] = {}
    for key, value in rows:
        channel_hex, slash, _ = key.removeprefix(FUNDING_PREFIX).partition("/")
        if slash:
            found.setdefault(channel_hex, []).append((key, value))
    return found


def collect(store: Store, node_id: bytes, now: int) -> Backup:
    """Every channel the store holds that is not closed, as the store has it (durable)."""
    made = _stored(read_view(store), node_id, now)
    return msgspec.json.decode(msgspec.json.encode(made), type=Backup)


def seal_view(view: StoreView, identity: NodeIdentity, now: int) -> tuple[list[bytes], int]:
    """The sealed backup of ``view`` (the file's pieces, in order) and how many channels it
    holds, its snapshots copied as stored. Encoded a channel at a time and sealed a chunk
    at a time: run on another thread, it never holds the interpreter for long."""
    outer = msgspec.json.encode(_StoredBackup(identity.node_id, now, ()))
    at = outer.index(b'"channels":[]') + len(b'"channels":[')
    count = 0

    def pieces() -> Iterator[bytes]:
        nonlocal count
        yield outer[:at]
        for channel in _stored_channels(view):
            if count:
                yield b","
            count += 1
            yield msgspec.json.encode(channel)
        yield outer[at:]

    return _seal_pieces(pieces(), identity), count


def seal_from_store(store: Store, identity: NodeIdentity, now: int) -> tuple[list[bytes], int]:
    return seal_view(read_view(store), identity, now)


def seal(backup: Backup, identity: NodeIdentity) -> bytes:
    if backup.node_id != identity.node_id:
        raise BackupError("a backup is sealed by the node it belongs to")
    return b"".join(_seal_pieces([msgspec.json.encode(backup)], identity))


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _seal_pieces(pieces: Iterable[bytes], identity: NodeIdentity) -> list[bytes]:
    """The JSON given in ``pieces``, sealed in chunks: the file's pieces, in order."""
    cipher, aad = _cipher(identity), MAGIC_CHUNKED + identity.node_id
    prefix = os.urandom(_PREFIX)
    out = [MAGIC_CHUNKED + prefix]
    buffer = bytearray()
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_BACKUP:
            raise BackupError(
                f"the backup would hold more than {MAX_BACKUP} bytes, more than a restore "
                "reads: close the channels that are done with, or back up the store itself "
                "(docs/operating-a-hub.md, Backups)"
            )
        buffer += piece
        while len(buffer) > CHUNK:  # more than a chunk: this one is not the last
            out.append(cipher.encrypt(_nonce(prefix, len(out) - 1, False), buffer[:CHUNK], aad))
            del buffer[:CHUNK]
    out.append(cipher.encrypt(_nonce(prefix, len(out) - 1, True), bytes(buffer), aad))
    return out


def _open_chunks(data: bytes, identity: NodeIdentity) -> bytes:
    cipher, aad = _cipher(identity), MAGIC_CHUNKED + identity.node_id
    head = len(MAGIC_CHUNKED) + _PREFIX
    prefix, step = data[len(MAGIC_CHUNKED) : head], CHUNK + _TAG
    plain = []
    for index, at in enumerate(range(head, len(data), step)):
        last = at + step >= len(data)
        plain.append(cipher.decrypt(_nonce(prefix, index, last), data[at : at + step], aad))
    return b"".join(plain)


def unseal(data: bytes, identity: NodeIdentity) -> Backup:
    """Open a backup of this node; :class:`BackupError` if it is not one or was changed."""
    chunked = data.startswith(MAGIC_CHUNKED)
    if not (chunked or data.startswith(MAGIC)) or len(data) < len(MAGIC) + NONCE_BYTES + _TAG:
        raise BackupError("not a Chenilles channel backup")
    if len(data) > MAX_BACKUP + len(MAGIC) + NONCE_BYTES + _TAG * (MAX_BACKUP // CHUNK + 1):
        raise BackupError(f"a backup is at most {MAX_BACKUP} bytes")
    from cryptography.exceptions import InvalidTag

    try:
        if chunked:
            plain = _open_chunks(data, identity)
        else:
            nonce = data[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
            plain = _cipher(identity).decrypt(
                nonce, data[len(MAGIC) + NONCE_BYTES :], MAGIC + identity.node_id
            )
    except InvalidTag:
        raise BackupError(
            "this backup does not open with this node's key (another node's, or damaged)"
        ) from None
    try:
        backup = msgspec.json.decode(plain, type=Backup)
    except msgspec.ValidationError as exc:
        raise BackupError(f"the backup's content is not understood: {exc}") from None
    if backup.node_id != identity.node_id:
        raise BackupError("this backup belongs to another node")
    return backup


def write_file(path: Path, data: bytes | Sequence[bytes]) -> None:
    """Replace ``path`` atomically with ``data`` (or its pieces, in order), mode 0600,
    durable (the directory entry too)."""
    pieces = [data] if isinstance(data, bytes) else data
    size = sum(len(piece) for piece in pieces)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for piece in pieces:
            left = memoryview(piece)
            while left:  # a write may take fewer bytes than asked; the file is never short
                written = os.write(fd, left)
                if written <= 0:
                    raise OSError(f"writing {tmp} stopped with {len(left)} bytes left")
                left = left[written:]
        os.fsync(fd)
        if os.fstat(fd).st_size != size:
            raise OSError(f"{tmp} holds {os.fstat(fd).st_size} bytes of {size}")
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)  # the previous file stays as it was
        raise
    os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def restore_into(
    store: Store, backup: Backup, now: int, force_after: int, force_revoking: bool = False
) -> list[bytes]:
    """Write the backup's channels into ``store`` (which must not know them), each marked
    for recovery; return their ids. A channel the store already has is refused: a backup
    is for a fresh node, and an older state must never overwrite a newer one."""
    known = {record.channel_id for record in store.list_channels()}
    clash = [
        c.record.channel_id.hex()[:16] for c in backup.channels if c.record.channel_id in known
    ]
    if clash:
        raise BackupError(
            f"the store already holds channel(s) {', '.join(clash)}: restore into a fresh "
            "node (an empty store) only"
        )
    restored = []
    marker = msgspec.json.encode(RecoveryMarker(now, force_after, force_revoking))
    for channel in backup.channels:
        cid = channel.record.channel_id
        store.add_channel(channel.record)
        settings = {
            CHANNEL_PREFIX + cid.hex(): msgspec.json.encode(channel.meta),
            RECOVERY_PREFIX + cid.hex(): marker,
            **{f"{RECORD_PREFIX}{cid.hex()}/{part}": value for part, value in channel.parts},
            **{
                key: value
                for key, value in channel.funding
                if key.startswith(f"{FUNDING_PREFIX}{cid.hex()}/")
            },
        }
        snapshots = [channel.snapshot] if channel.snapshot is not None else []
        store.save_checkpoint(snapshots, settings)
        restored.append(cid)
    return restored


def summary(backup: Backup) -> list[dict[str, object]]:
    """What a backup holds, for the operator (no secrets)."""
    rows: list[dict[str, object]] = []
    for channel in backup.channels:
        snapshot = channel.snapshot
        latest = snapshot.latest if snapshot is not None else None
        rows.append(
            {
                "channel_id": channel.record.channel_id.hex(),
                "chain": channel.record.params.chain,
                "peer": channel.record.params.participants[1 - channel.record.me].node_id.hex(),
                "status": channel.meta.status,
                "version": latest.state.version if latest is not None else None,
            }
        )
    return rows
