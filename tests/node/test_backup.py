"""Static channel backups: sealed to the node's key, restored into a fresh node whose
channels are then closed and whose funds arrive on chain.

The recovery tests delete a node process's whole store (``node.sqlite*``), restore the
backup with the CLI and start the node again, against anvil: once with the peer online
(cooperative close) and once with the peer gone (the restored state is registered on
chain and concluded after the challenge period).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from chenilles_hub.cli import main
from chenilles_hub.core import ChannelSnapshot
from chenilles_hub.core.model import (
    Asset,
    AssetBalances,
    ChannelParams,
    ChannelState,
    Participant,
)
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub import backup as backup_module
from chenilles_hub.node.hub.backup import (
    Backup,
    BackupError,
    ChannelBackup,
    collect,
    restore_into,
    seal,
    seal_from_store,
    unseal,
    write_file,
)
from chenilles_hub.node.hub.journal import ChannelMeta
from chenilles_hub.node.store.base import ChannelRecord
from chenilles_hub.node.store.sqlite import SQLiteStore

from .test_server_harness import (
    CONSENTING,
    ETH,
    AnvilChain,
    NodeProc,
    anvil,
    channel,
    make_node,
    open_channel,
    wait_for,
)

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
SLOW = pytest.mark.skipif(
    not os.environ.get("CHENILLES_SLOW_TESTS"), reason="long variant: CHENILLES_SLOW_TESTS=1"
)
__all__ = ["anvil"]


# --- the sealed file -------------------------------------------------------------------------


def _backup(identity: NodeIdentity) -> Backup:
    """A backup of one (made-up) channel: what the store and the file carry, no chain."""
    asset = Asset("eip155:1", "native")
    params = ChannelParams(
        chain="eip155:1",
        participants=(
            Participant("0x" + "01" * 20, identity.node_id),
            Participant("0x" + "02" * 20, NodeIdentity().node_id),
        ),
        assets=(asset,),
        challenge_duration=600,
        nonce=b"\x00" * 32,
    )
    cid = b"\x07" * 32
    state = ChannelState(cid, 0, (AssetBalances(asset, (10, 0)),))
    meta = ChannelMeta(
        channel_id=cid,
        deposits=((asset, (10, 0)),),
        queue=(),
        next_htlc_seq=0,
        funded_by_me=True,
        funded_by_peer=False,
        status="active",
    )
    record = ChannelRecord(cid, params, 0, state)
    snapshot = ChannelSnapshot(cid, None, None, None, None, None)
    funding = ((f"funding/{cid.hex()}/eip155:1/native", b"submitted"),)
    channel = ChannelBackup(record, meta, snapshot, (("p", b"x"),), funding)
    return Backup(identity.node_id, 1, (channel,))


@pytest.fixture
def sealed() -> Iterator[tuple[NodeIdentity, Backup, bytes]]:
    identity = NodeIdentity()
    backup = _backup(identity)
    yield identity, backup, seal(backup, identity)


def test_a_backup_opens_only_with_its_node_key_and_unchanged(
    sealed: tuple[NodeIdentity, Backup, bytes],
) -> None:
    identity, backup, data = sealed
    assert unseal(data, identity) == backup
    assert b"eip155" not in data  # encrypted, not just signed
    with pytest.raises(BackupError, match="does not open"):
        unseal(data, NodeIdentity())
    for index in (9, len(data) // 2, len(data) - 1):
        tampered = bytearray(data)
        tampered[index] ^= 1
        with pytest.raises(BackupError):
            unseal(bytes(tampered), identity)
    with pytest.raises(BackupError, match="not a Chenilles"):
        unseal(b"{}", identity)
    with pytest.raises(BackupError):
        seal(backup, NodeIdentity())  # another node's backup is never sealed with our key


def test_a_backup_too_large_for_a_restore_is_never_written(
    sealed: tuple[NodeIdentity, Backup, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What no restore would read is refused when written, with what to do instead (a
    node with 20,000 channels wrote 98 MiB backups that the restore's 64 MiB refused)."""
    identity, backup, data = sealed
    with SQLiteStore(tmp_path / "node.sqlite") as store:
        restore_into(store, backup, 100, 60)
        pieces, count = seal_from_store(store, identity, 5)
        written = b"".join(pieces)
        assert count == 1 and unseal(written, identity) == collect(store, identity.node_id, 5)
        monkeypatch.setattr(backup_module, "MAX_BACKUP", len(data) - 100)
        with pytest.raises(BackupError, match="more than a restore reads"):
            seal_from_store(store, identity, 5)
        with pytest.raises(BackupError, match="more than a restore reads"):
            seal(backup, identity)
        with pytest.raises(BackupError, match="at most"):
            unseal(data + bytes(200), identity)


def _reference_collect(store: SQLiteStore, node_id: bytes, now: int) -> Backup:
    """The backup as the node built it before it read the store in bulk (a query or three
    per channel): what the bulk read must still give."""
    metas = {
        meta.channel_id: meta
        for _, value in store.settings_with_prefix("channel/")
        for meta in (msgspec.json.decode(value, type=ChannelMeta),)
    }
    channels = []
    for record in store.list_channels():
        meta = metas.get(record.channel_id)
        if meta is None or meta.status == "closed":
            continue
        prefix = f"record/{record.channel_id.hex()}/"
        parts = tuple(
            (key.removeprefix(prefix), value)
            for key, value in store.settings_with_prefix(prefix)
            if value
        )
        funding = tuple(store.settings_with_prefix(f"funding/{record.channel_id.hex()}/"))
        snapshot = store.load_snapshot(record.channel_id)
        channels.append(ChannelBackup(record, meta, snapshot, parts, funding))
    return Backup(node_id, now, tuple(channels))


def test_the_bulk_read_backup_holds_what_the_per_channel_one_held(tmp_path: Path) -> None:
    """Several channels: with backend parts (an emptied one), funding markers (an empty
    one), one closed and one never checkpointed; the file opens to the same backup."""
    identity = NodeIdentity()
    base = _backup(identity).channels[0]
    channels = []
    for i, status in enumerate(("active", "closed", "active", "closing")):
        cid = bytes([0x10 + i]) * 32
        record = msgspec.structs.replace(
            base.record,
            channel_id=cid,
            initial=msgspec.structs.replace(base.record.initial, channel_id=cid),
        )
        meta = msgspec.structs.replace(base.meta, channel_id=cid, status=status)
        snapshot = ChannelSnapshot(cid, None, None, None, None, None, attempt=i)
        parts = tuple((f"part{j}", b"p%d" % j) for j in range(i + 1))
        funding = tuple((f"funding/{cid.hex()}/eip155:1/t{j}", b"sent") for j in range(i))
        channels.append(ChannelBackup(record, meta, snapshot, parts, funding))
    with SQLiteStore(tmp_path / "node.sqlite") as store:
        restore_into(store, Backup(identity.node_id, 1, tuple(channels)), 100, 60)
        lonely = bytes([0x20]) * 32  # a channel record and nothing else
        store.add_channel(msgspec.structs.replace(channels[0].record, channel_id=lonely))
        store.set_setting(f"record/{(bytes([0x12]) * 32).hex()}/gone", b"")
        store.set_setting(f"funding/{(bytes([0x13]) * 32).hex()}/eip155:1/none", b"")
        expected = _reference_collect(store, identity.node_id, 5)
        assert [c.record.channel_id[0] for c in expected.channels] == [0x10, 0x12, 0x13]
        assert collect(store, identity.node_id, 5) == expected
        pieces, count = seal_from_store(store, identity, 5)
        assert count == 3 and unseal(b"".join(pieces), identity) == expected


def test_a_damaged_snapshot_in_the_store_fails_the_backups_writing_not_its_restore(
    sealed: tuple[NodeIdentity, Backup, bytes], tmp_path: Path
) -> None:
    """Snapshots go into the file as stored; each is still decoded as its channel's, so a
    damaged row (cut short, another channel's, a field of the wrong type) stops the writing
    and the previous file stays, instead of making a file no restore opens."""
    identity, backup, _ = sealed
    path = tmp_path / "node.sqlite"
    file = tmp_path / "channels.backup"
    with SQLiteStore(path) as store:
        restore_into(store, backup, 100, 60)
        good = b"".join(seal_from_store(store, identity, 5)[0])
        write_file(file, good)
        stored = store.load_encoded_snapshot(b"\x07" * 32)
        assert stored is not None and b'"awaiting_ack":null' in stored
        for damage in (
            b'{"channel_id":',
            b'{"channel_id":"' + b"A" * 44 + b'"}',
            b"[1]",
            stored.replace(b'"awaiting_ack":null', b'"awaiting_ack":"x"'),
            stored.replace(b'"latest":null', b'"latest":{"bogus":1}'),
        ):
            with sqlite3.connect(path) as db:
                db.execute("UPDATE snapshots SET data = ?", (damage,))
            with pytest.raises(BackupError, match="snapshot"):
                seal_from_store(store, identity, 5)
    assert file.read_bytes() == good
    assert unseal(good, identity).channels == backup.channels


def test_a_backup_file_is_never_left_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that takes fewer bytes than asked is continued; one that takes none fails
    and leaves the previous file as it was (a short file would open to nothing)."""
    file = tmp_path / "channels.backup"
    write_file(file, b"previous")
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:1000])))
    data = os.urandom(100_000)
    write_file(file, data)
    assert file.read_bytes() == data
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    with pytest.raises(OSError, match="stopped"):
        write_file(file, b"new" * 1000)
    assert file.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["channels.backup"]  # no temporary left


def test_a_backup_in_chunks_opens_only_whole_and_in_order(
    sealed: tuple[NodeIdentity, Backup, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealed a chunk at a time (the node's thread gets the interpreter between chunks):
    chunks dropped, swapped or cut off at a chunk's end are refused, like any change."""
    identity, backup, _ = sealed
    monkeypatch.setattr(backup_module, "CHUNK", 256)
    data = seal(backup, identity)
    head, step = len(backup_module.MAGIC_CHUNKED) + 7, 256 + 16
    chunks = [data[i : i + step] for i in range(head, len(data), step)]
    assert data.startswith(b"CHENSCB2") and len(chunks) >= 4
    assert unseal(data, identity) == backup
    for changed in (
        data[: head + 2 * step],  # cut off at a chunk's end
        data[:head] + b"".join([chunks[1], chunks[0], *chunks[2:]]),  # swapped
        data[:head] + b"".join([chunks[0], *chunks[2:]]),  # one dropped
        data[:head] + b"".join(chunks[:-1]) + chunks[-1] + chunks[-1],  # the last twice
    ):
        with pytest.raises(BackupError, match="does not open"):
            unseal(changed, identity)


def test_a_backup_of_the_first_format_still_opens(
    sealed: tuple[NodeIdentity, Backup, bytes],
) -> None:
    """``CHENSCB1 | nonce | one seal of the whole JSON``: what nodes wrote before chunks."""
    identity, backup, _ = sealed
    nonce = os.urandom(12)
    plain = msgspec.json.encode(backup)
    cipher = backup_module._cipher(identity)
    old = b"CHENSCB1" + nonce + cipher.encrypt(nonce, plain, b"CHENSCB1" + identity.node_id)
    assert unseal(old, identity) == backup
    with pytest.raises(BackupError, match="does not open"):
        unseal(old[:-1], identity)


def test_restore_refuses_a_store_that_knows_the_channel(
    sealed: tuple[NodeIdentity, Backup, bytes], tmp_path: Path
) -> None:
    identity, backup, _ = sealed
    with SQLiteStore(tmp_path / "node.sqlite") as store:
        assert restore_into(store, backup, 100, 60) == [b"\x07" * 32]
        again = collect(store, identity.node_id, 5)
        assert again.channels == backup.channels  # what was restored is what a backup holds
        # a deposit already sent stays marked: the restored node never sends it again
        assert store.get_setting(f"funding/{'07' * 32}/eip155:1/native") == b"submitted"
        before = store.settings_with_prefix("")
        with pytest.raises(BackupError, match="already holds"):
            restore_into(store, backup, 100, 60)
        assert store.settings_with_prefix("") == before  # nothing changed


# --- recovering funds with node processes ----------------------------------------------------


def _pair(anvil: AnvilChain, tmp_path: Path, a: int, b: int) -> tuple[NodeProc, NodeProc]:
    alice = make_node(tmp_path, "alice", anvil, a)
    bob = make_node(tmp_path, "bob", anvil, b)
    alice.peers = [bob]
    alice.tail = bob.tail = CONSENTING
    bob.start(wait=False)
    alice.start(wait=False)
    bob.wait_ready()
    alice.wait_ready()
    return alice, bob


def _balance(node: NodeProc) -> int:
    (chain,) = node.api.get("/v1/backends")
    return int(chain["balances"]["native@eip155:31337"])


def _lose_store(node: NodeProc) -> None:
    node.stop()
    for path in node.data_dir.glob("node.sqlite*"):
        path.unlink()


def _closed(node: NodeProc, channel_id: str) -> bool:
    node.chain.mine()  # chain time moves on: the challenge period ends, payouts confirm
    return bool(channel(node, channel_id)["status"] == "closed")


def _transfer(node: NodeProc, channel_id: str, amount: int) -> None:
    node.api.post(f"/v1/channels/{channel_id}/transfers", {"amount": amount})


def test_a_backup_the_node_cannot_write_is_shown_to_the_operator_until_written(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """The backup file's place is taken (a directory): the node says so in ``GET /v1/info``
    and ``/metrics``, keeps serving, and writes the file once the place is free again."""
    alice = make_node(tmp_path, "alice", anvil, 2)
    bob = make_node(tmp_path, "bob", anvil, 3)
    alice.peers = [bob]
    blocked = alice.directory / "data" / "channels.backup"
    (blocked / "in-the-way").mkdir(parents=True)
    bob.tail = CONSENTING
    alice.tail = CONSENTING + '\n[backup]\nfile = "data/channels.backup"\n'
    bob.start(wait=False)
    alice.start(wait=False)
    bob.wait_ready()
    alice.wait_ready()
    try:
        cid = open_channel(alice, bob, 10**18)

        def backup_error() -> list[dict[str, Any]]:
            return [
                e for e in alice.api.get("/v1/info")["background_errors"] if e["task"] == "backup"
            ]

        (error,) = wait_for(backup_error, what="the backup's failure in /v1/info")
        assert "channels.backup" in error["error"] and error["at"] > 0
        (errors,) = [
            line.split()[-1]
            for line in alice.api.get("/metrics").splitlines()
            if line.startswith("chenilles_backup_errors_total ")
        ]
        assert int(errors) >= 1
        _transfer(alice, cid, 1_000)  # the node goes on
        (blocked / "in-the-way").rmdir()
        blocked.rmdir()
        wait_for(lambda: not backup_error(), what="the backup written, its error gone")
        opened = unseal(blocked.read_bytes(), alice.identity)
        assert [c.record.channel_id.hex() for c in opened.channels] == [cid]
        before = blocked.read_bytes()
        written = alice.api.post("/v1/backup")  # the operator asks for one now
        assert written["channels"] == 1 and written["path"] == str(blocked)
        assert blocked.read_bytes() != before  # sealed anew
        assert unseal(blocked.read_bytes(), alice.identity).channels == opened.channels
    finally:
        alice.stop()
        bob.stop()


def test_a_fresh_node_recovers_its_funds_from_a_backup_with_the_peer_online(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """Two channels; the backup is exported after a payment on the first and before one on
    the second. The store is deleted and the backup restored: the first (current) closes
    cooperatively; the second (stale: the peer holds a newer state) is refused by the
    peer, registered on chain, refuted with the newer state, and its money follows that."""
    alice, bob = _pair(anvil, tmp_path, 2, 3)
    try:
        current = open_channel(alice, bob, ETH, challenge=2)
        # the node writes its backup on its own once a channel opens
        auto = alice.data_dir / "channels.backup"
        wait_for(
            lambda: (
                auto.exists() and current in alice.cli("backup", "show", str(auto), "--json").stdout
            ),
            what="the automatic backup",
        )
        assert auto.stat().st_mode & 0o777 == 0o600
        stale = open_channel(alice, bob, ETH, challenge=2)
        _transfer(alice, current, 10**17)
        out = tmp_path / "alice.backup"
        exported = json.loads(alice.cli("backup", "export", "--out", str(out), "--json").stdout)
        assert {c["channel_id"] for c in exported["channels"]} == {current, stale}
        assert out.stat().st_mode & 0o777 == 0o600
        _transfer(alice, stale, 2 * 10**17)  # after the backup: it holds an older state
        local = {c: channel(alice, c)["balances"][0]["local"] for c in (current, stale)}
        assert local == {current: ETH - 10**17, stale: ETH - 2 * 10**17}
        before = _balance(alice)
        _lose_store(alice)
        restored = json.loads(
            alice.cli("backup", "restore", str(out), "--force-after", "3", "--json").stdout
        )
        assert {c["channel_id"] for c in restored["restored"]} == {current, stale}
        alice.start()
        for channel_id in (current, stale):
            wait_for(lambda c=channel_id: _closed(alice, c), timeout=60, what="closed, restored")
            wait_for(lambda c=channel_id: _closed(bob, c), timeout=60, what="closed on bob")
        gained = _balance(alice) - before
        total = local[current] + local[stale]
        assert total - 10**16 < gained <= total  # the channels' money, less the fees
        log = alice.log_tail(400)
        assert f"channel {current[:8]} closed cooperatively" in log
        assert f"restored {stale[:8]}: the peer did not close; registered" in log
        assert "refuted stale version 0 with 1" in bob.log_tail(400)  # the newer state won
        # the store knows the channels now: restoring again is refused, nothing changes
        alice.stop()
        again = alice.cli("backup", "restore", str(out), check=False)
        assert again.returncode == 1 and "already holds" in again.stderr
    finally:
        alice.stop()
        bob.stop()


@pytest.mark.slow
@SLOW
def test_a_restored_channel_is_registered_when_the_peer_is_gone(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    alice, bob = _pair(anvil, tmp_path, 4, 8)
    try:
        channel_id = open_channel(alice, bob, ETH, challenge=2)
        out = tmp_path / "alice.backup"
        alice.cli("backup", "export", "--out", str(out))
        local = channel(alice, channel_id)["balances"][0]["local"]
        before = _balance(alice)
        bob.stop()  # the peer is gone for good
        _lose_store(alice)
        alice.cli("backup", "restore", str(out), "--force-after", "1")
        alice.start()
        wait_for(
            lambda: channel(alice, channel_id)["status"] in ("disputed", "closing", "closed"),
            what="registered",
        )
        wait_for(lambda: _closed(alice, channel_id), timeout=60, what="concluded and withdrawn")
        gained = _balance(alice) - before
        assert local - 10**16 < gained <= local
    finally:
        alice.stop()
        bob.stop()


# --- bad input: a clear error, nothing changed ------------------------------------------------


def _offline_node(tmp_path: Path) -> tuple[Path, NodeIdentity]:
    config = tmp_path / "hub.toml"
    config.write_text('[node]\ndata_dir = "data"\n')
    identity = NodeIdentity()
    (tmp_path / "data").mkdir(mode=0o700)
    seed = tmp_path / "data" / "identity.seed"
    seed.write_text(identity.seed.hex() + "\n")
    seed.chmod(0o600)
    return config, identity


def _restore(config: Path, file: Path) -> Any:
    return CliRunner().invoke(main, ["backup", "restore", str(file), "--config", str(config)])


def test_restore_refuses_what_is_not_this_nodes_backup(
    sealed: tuple[NodeIdentity, Backup, bytes], tmp_path: Path
) -> None:
    config, identity = _offline_node(tmp_path)
    _, _, foreign = sealed
    cases = {
        "garbage": (b"\x00" * 100, "not a Chenilles channel backup"),
        "another node's": (foreign, "does not open with this node's key"),
        "truncated": (seal(_backup(identity), identity)[:-1], "does not open"),
    }
    for name, (data, message) in cases.items():
        file = tmp_path / f"{name}.backup"
        file.write_bytes(data)
        result = _restore(config, file)
        assert result.exit_code == 1 and message in result.output, (name, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "data" / "node.sqlite").exists()  # nothing was even opened
    missing = _restore(config, tmp_path / "nope.backup")
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_restore_refuses_while_the_node_runs(tmp_path: Path) -> None:
    config, identity = _offline_node(tmp_path)
    file = tmp_path / "mine.backup"
    file.write_bytes(seal(_backup(identity), identity))
    with SQLiteStore(tmp_path / "data" / "node.sqlite"):  # what a running node holds
        result = _restore(config, file)
        assert result.exit_code == 1 and "is the node running?" in result.output
    result = CliRunner().invoke(
        main, ["backup", "restore", str(file), "--config", str(config), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["restored"][0]["channel_id"] == "07" * 32


def test_restore_needs_the_nodes_identity(tmp_path: Path) -> None:
    config, identity = _offline_node(tmp_path)
    file = tmp_path / "mine.backup"
    file.write_bytes(seal(_backup(identity), identity))
    (tmp_path / "data" / "identity.seed").unlink()
    result = _restore(config, file)
    assert result.exit_code == 1 and "no node identity" in result.output
    assert not (tmp_path / "data" / "identity.seed").exists()  # never made up a new one
