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
    meta = ChannelMeta(cid, ((asset, (10, 0)),), (), (), 0, True, False, "active")
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
        written, count = seal_from_store(store, identity, 5)
        assert count == 1 and unseal(written, identity) == collect(store, identity.node_id, 5)
        monkeypatch.setattr(backup_module, "MAX_BACKUP", len(data) - 100)
        with pytest.raises(BackupError, match="more than a restore reads"):
            seal_from_store(store, identity, 5)
        with pytest.raises(BackupError, match="more than a restore reads"):
            seal(backup, identity)
        with pytest.raises(BackupError, match="at most"):
            unseal(data + bytes(200), identity)


def test_a_damaged_snapshot_in_the_store_fails_the_backups_writing_not_its_restore(
    sealed: tuple[NodeIdentity, Backup, bytes], tmp_path: Path
) -> None:
    """Snapshots go into the file as stored, undecoded: each is still checked to be whole,
    with a snapshot's fields, for its channel, so a damaged row stops the writing (the
    previous file stays) instead of making a file no restore opens."""
    identity, backup, _ = sealed
    assert msgspec.structs.fields(backup_module._SnapshotOutline) and [
        f.name for f in msgspec.structs.fields(backup_module._SnapshotOutline)
    ] == [f.name for f in msgspec.structs.fields(ChannelSnapshot)]
    path = tmp_path / "node.sqlite"
    with SQLiteStore(path) as store:
        restore_into(store, backup, 100, 60)
        good, _ = seal_from_store(store, identity, 5)
        for damage in (b'{"channel_id":', b'{"channel_id":"' + b"A" * 44 + b'"}', b"[1]"):
            with sqlite3.connect(path) as db:
                db.execute("UPDATE snapshots SET data = ?", (damage,))
            with pytest.raises(BackupError, match="snapshot"):
                seal_from_store(store, identity, 5)
    assert unseal(good, identity).channels == backup.channels


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
        assert "chenilles_backup_errors_total 0" not in alice.api.get("/metrics")
        _transfer(alice, cid, 1_000)  # the node goes on
        (blocked / "in-the-way").rmdir()
        blocked.rmdir()
        wait_for(lambda: not backup_error(), what="the backup written, its error gone")
        opened = unseal(blocked.read_bytes(), alice.identity)
        assert [c.record.channel_id.hex() for c in opened.channels] == [cid]
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
