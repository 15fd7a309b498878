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
holds them. The file is ``CHENSCB1 | nonce | sealed``,
sealed with ChaCha20-Poly1305 under a key derived (HKDF-SHA256) from the node's identity
seed, the node id bound as associated data: only this node's secret opens it, and any
change to it is detected.

A backup from before the latest payments holds an older state: on EVM and Solana a newer
state registered by the peer simply replaces it (the money follows the newest state); on
Bitcoin an old commitment is a revoked one, so restoring a stale backup there is only safe
through the cooperative close (see docs/operating-a-hub.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ...core import ChannelSnapshot
from ...identity import NodeIdentity
from ..store.base import ChannelRecord, Store
from .journal import (
    CHANNEL_PREFIX,
    FUNDING_PREFIX,
    RECORD_PREFIX,
    ChannelMeta,
    decode_record,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

MAGIC = b"CHENSCB1"
_NONCE = 12
_INFO = b"chenilles/static-channel-backup/v1"
#: ``recovery/<channel id hex>``: a channel restored from a backup, to be closed (value:
#: :class:`RecoveryMarker`); emptied once the channel is closed.
RECOVERY_PREFIX = "recovery/"
#: The most a backup may hold once decrypted (a node with many channels: 64 MiB).
MAX_BACKUP = 64 * 1024 * 1024


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


def collect(store: Store, node_id: bytes, now: int) -> Backup:
    """Every channel the store holds that is not closed, as the store has it (durable)."""
    metas = {
        meta.channel_id: meta
        for _, value in store.settings_with_prefix(CHANNEL_PREFIX)
        for meta in (decode_record(value, ChannelMeta),)
    }
    channels = []
    for record in store.list_channels():
        meta = metas.get(record.channel_id)
        if meta is None or meta.status == "closed":
            continue  # never checkpointed (nothing signed), or nothing left to recover
        prefix = f"{RECORD_PREFIX}{record.channel_id.hex()}/"
        parts = tuple(
            (key.removeprefix(prefix), value)
            for key, value in store.settings_with_prefix(prefix)
            if value
        )
        funding = tuple(store.settings_with_prefix(f"{FUNDING_PREFIX}{record.channel_id.hex()}/"))
        snapshot = store.load_snapshot(record.channel_id)
        channels.append(ChannelBackup(record, meta, snapshot, parts, funding))
    return Backup(node_id, now, tuple(channels))


def seal(backup: Backup, identity: NodeIdentity) -> bytes:
    if backup.node_id != identity.node_id:
        raise BackupError("a backup is sealed by the node it belongs to")
    nonce = os.urandom(_NONCE)
    sealed = _cipher(identity).encrypt(nonce, msgspec.json.encode(backup), MAGIC + identity.node_id)
    return MAGIC + nonce + sealed


def unseal(data: bytes, identity: NodeIdentity) -> Backup:
    """Open a backup of this node; :class:`BackupError` if it is not one or was changed."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _NONCE + 16:
        raise BackupError("not a Chenilles channel backup")
    if len(data) > MAX_BACKUP:
        raise BackupError(f"a backup is at most {MAX_BACKUP} bytes")
    from cryptography.exceptions import InvalidTag

    nonce = data[len(MAGIC) : len(MAGIC) + _NONCE]
    try:
        plain = _cipher(identity).decrypt(
            nonce, data[len(MAGIC) + _NONCE :], MAGIC + identity.node_id
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


def write_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically, mode 0600, durable (the directory entry too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
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
