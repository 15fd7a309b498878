"""Recovering Bitcoin channels from a static backup never broadcasts a revoked commitment.

Bob opens 1,000,000 sat to Alice and pays her twice; Alice's backup is taken after the
first payment (stale: version 1 of 2). Alice loses her store; a fresh node with her
identity and keys restores the backup into an empty store, on a fresh ``BitcoinBackend``
over the same kernel-validated chain. With Bob gone, the restored channel is not registered
on chain however long Alice waits (version 1 is revoked: Bob would take everything); a
current backup the operator vouches for is registered. A current backup with Bob there
closes cooperatively and Alice's wallet receives her 400,000 sat less the closing fee.
(A *stale* Bitcoin backup with Bob there stays open: Bob refuses the older proposals and
nothing asks him to close; see docs/operating-a-hub.md, "Backups".)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chenilles_hub.core import SignedState
from chenilles_hub.node.config import load_config
from chenilles_hub.node.hub.backup import collect, restore_into, seal, unseal
from chenilles_hub.node.runtime.backups import BackupFile
from chenilles_hub.node.store.sqlite import SQLiteStore

from .test_bitcoin_restart import Scene

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial, pytest.mark.bitcoin]


class Restored(Scene):
    """The scene, with Alice's backup taken as her node writes it after version 1."""

    stale: bytes = b""

    def pay(self, amount: int) -> SignedState:
        latest = super().pay(amount)
        if latest.state.version == 1:  # from her durable store, as the node's file holds it
            self.alice.checkpoint()
            made = collect(self.store, self.alice.node_id, 0)
            (channel,) = made.channels
            assert channel.snapshot is not None and channel.snapshot.latest == latest
            self.stale = seal(made, self.alice.identity)
        return latest

    def lose_and_restore(
        self, tmp_path: Path, sealed: bytes, *, vouch: bool, force_after: int
    ) -> None:
        """Alice's store is gone: a fresh one gets the backup, a fresh node starts on it."""
        self.kill_alice()
        self.path = tmp_path / "fresh.sqlite"
        with SQLiteStore(self.path) as store:
            restored = restore_into(
                store, unseal(sealed, self.alice.identity), self.world.now(), force_after, vouch
            )
            assert restored == [self.channel_id]
        self.restart_alice()

    def registered(self) -> bool:
        channel = self.alice.channels[self.channel_id]
        return any(r.operation == "register" for r in channel.receipts)

    def run(self, rounds: int, seconds: int) -> None:
        for _ in range(rounds):
            self.alice.tick()
            self.world.network.run()
            self.world.advance(seconds)
            if self.alice.channels[self.channel_id].status == "closed":
                return


@pytest.fixture(name="scene")
def _scene(tmp_path: Path):  # type: ignore[no-untyped-def]
    scene = Restored(tmp_path)
    try:
        yield scene
    finally:
        scene.close()


def test_a_stale_bitcoin_backup_is_never_registered_without_the_operators_word(
    scene: Restored, tmp_path: Path
) -> None:
    scene.world.network.silence(scene.bob)  # the peer is gone
    scene.lose_and_restore(tmp_path, scene.stale, vouch=False, force_after=0)
    scene.run(5, 3600)
    assert not scene.registered(), "\n".join(scene.alice.journal[-10:])
    assert scene.alice.channels[scene.channel_id].status == "active"


def test_the_operators_word_lets_a_restored_bitcoin_channel_be_registered(
    scene: Restored, tmp_path: Path
) -> None:
    """The same with a current backup the operator vouches for: registered on chain."""
    scene.alice.checkpoint()
    current = seal(collect(scene.store, scene.alice.node_id, 0), scene.alice.identity)
    scene.world.network.silence(scene.bob)
    scene.lose_and_restore(tmp_path, current, vouch=True, force_after=0)
    scene.run(1, 60)
    assert scene.registered(), "\n".join(scene.alice.journal[-10:])


def test_a_restored_bitcoin_channel_closes_cooperatively_with_the_peer_back(
    scene: Restored, tmp_path: Path
) -> None:
    scene.alice.checkpoint()
    current = seal(collect(scene.store, scene.alice.node_id, 0), scene.alice.identity)
    scene.lose_and_restore(tmp_path, current, vouch=False, force_after=10**6)
    scene.run(10, 600)
    channel = scene.alice.channels[scene.channel_id]
    assert channel.status == "closed", "\n".join(scene.alice.journal[-15:])
    assert not scene.registered()
    received = scene.alice_received()
    assert 400_000 - 5_000 < received <= 400_000, received


def test_the_backup_file_follows_opens_closes_and_with_an_interval_payments(
    scene: Restored, tmp_path: Path
) -> None:
    """``[backup] interval``: a new signed state makes the file due (at most once per
    interval); without it only opens and closes do."""
    files = {}
    for interval in (0, 1e-9):
        (tmp_path / f"{interval}.toml").write_text(f"[backup]\ninterval = {interval}\n")
        files[interval] = BackupFile(load_config(tmp_path / f"{interval}.toml"))
        files[interval].note(scene.alice)
        assert files[interval].due  # never written: due at once
        files[interval].write(scene.store, scene.alice)
        files[interval].note(scene.alice)
        assert not files[interval].due
    scene.pay(1_000)
    scene.alice.checkpoint()
    files[0].note(scene.alice)
    files[1e-9].note(scene.alice)
    assert not files[0].due and files[1e-9].due
    written = files[1e-9].write(scene.store, scene.alice)
    assert written["channels"] == 1 and (tmp_path / "data" / "channels.backup").exists()
    backup = unseal((tmp_path / "data" / "channels.backup").read_bytes(), scene.alice.identity)
    (channel,) = backup.channels
    assert channel.snapshot is not None and channel.snapshot.latest is not None
    assert channel.snapshot.latest.state.version == 3  # the payment just made
    scene.alice.close(scene.channel_id)
    scene.run(10, 600)
    files[0].note(scene.alice)
    assert files[0].due  # closed: the file must drop it
    assert files[0].write(scene.store, scene.alice)["channels"] == 0


def test_a_restarted_node_does_not_write_its_unchanged_backup_again(
    scene: Restored, tmp_path: Path
) -> None:
    """The file holds the channels and statuses the node restarts with: no rewrite (a hub
    with 100,000 channels read 500 MB of snapshots to write it again). A changed channel,
    a missing file or an ``interval`` writes it."""
    config = tmp_path / "hub.toml"
    config.write_text("[backup]\n")
    file = BackupFile(load_config(config))
    file.note(scene.alice)
    assert file.due
    file.write(scene.store, scene.alice)
    older = file.config.backup_path.read_bytes()
    file.write(scene.store, scene.alice)  # the same channels, another nonce
    written = file.config.backup_path.read_bytes()
    assert written != older

    scene.kill_alice()
    scene.restart_alice()
    file.config.backup_path.write_bytes(older)  # an older copy put back: not the file written
    stale = BackupFile(load_config(config))
    stale.note(scene.alice)
    assert stale.due
    file.config.backup_path.write_bytes(written[:-1])  # cut short
    short = BackupFile(load_config(config))
    short.note(scene.alice)
    assert short.due
    file.config.backup_path.write_bytes(written)
    again = BackupFile(load_config(config))  # a new process
    again.note(scene.alice)
    assert not again.due
    assert file.config.backup_path.read_bytes() == written

    interval = tmp_path / "interval.toml"
    interval.write_text("[backup]\ninterval = 60\n")
    timed = BackupFile(load_config(interval))
    timed.note(scene.alice)
    assert timed.due  # the file may predate the last payments: not known without reading

    file.config.backup_path.unlink()
    gone = BackupFile(load_config(config))
    gone.note(scene.alice)
    assert gone.due

    scene.alice.close(scene.channel_id)
    scene.run(10, 600)
    closed = BackupFile(load_config(config))
    closed.note(scene.alice)
    assert closed.due
