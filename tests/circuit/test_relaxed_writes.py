"""A relaxed write (an event after which nothing leaves: a peer's Ack) lost to a power
failure loses nothing: the peer, which wrote its Ack durably before sending it, sends it
again when the channel is reestablished (docs/security.md, "Relaxed writes").

Alice's store is copied as the disk holds it just before her relaxed write of Bob's Ack of
version 2 (her previous write, the Accept, was durable); she is killed after the payment,
and her files are replaced by that copy, as a power failure before the sync would leave
them. She must come back with Bob's revocation of version 1 (he sends his Ack again) and
punish Bob when he publishes version 1.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from chenilles_hub.core import SignedState

from .test_bitcoin_restart import Scene, _penalised

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial, pytest.mark.bitcoin]


class PowerLoss(Scene):
    """The Scene of test_bitcoin_restart, with Alice's disk copied before her first
    relaxed write of the second payment."""

    def __init__(self, tmp_path: Path) -> None:
        self.disk = tmp_path / "disk"
        self.relaxed: list[dict[str, bytes]] = []
        super().__init__(tmp_path)

    def pay(self, amount: int) -> SignedState:
        if amount == 300_000:
            self._arm()
        return super().pay(amount)

    def _arm(self) -> None:
        store = self.store
        inner = store.save_checkpoint

        def save(snapshots: Any, settings: dict[str, bytes], *, durable: bool = True) -> None:
            if not durable and not self.relaxed:
                assert not self.alice.persistence.unsynced  # her last write was durable
                self.disk.mkdir()
                for suffix in ("", "-wal"):
                    shutil.copyfile(f"{self.path}{suffix}", self.disk / f"alice{suffix}")
            if not durable:
                self.relaxed.append(dict(settings))
            inner(snapshots, settings, durable=durable)

        store.save_checkpoint = save  # type: ignore[method-assign]

    def power_failure(self) -> None:
        """Kill Alice; her disk is back to the copy (nothing after it reached the platter)."""
        self.kill_alice()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        for suffix in ("", "-wal"):
            shutil.copyfile(self.disk / f"alice{suffix}", f"{self.path}{suffix}")


@pytest.fixture(name="scene")
def _scene(tmp_path: Path):  # type: ignore[no-untyped-def]
    scene = PowerLoss(tmp_path)
    try:
        yield scene
    finally:
        scene.close()


def test_an_ack_is_written_relaxed_and_holds_the_peers_revocation(scene: PowerLoss) -> None:
    assert len(scene.relaxed) == 1, "Alice's write of Bob's Ack was not relaxed"
    (records,) = scene.relaxed
    assert any(key.endswith("/head") for key in records)  # the shachain store: Bob's secret


def test_a_relaxed_write_lost_to_a_power_failure_is_sent_again_by_the_peer(
    scene: PowerLoss,
) -> None:
    scene.power_failure()
    scene.restart_alice()
    alice = scene.alice.channels[scene.channel_id].machine
    bob = scene.bob.channels[scene.channel_id].machine
    assert alice.latest == bob.latest == scene.v2
    assert alice.idle and bob.idle
    # Bob's revocation of version 1 came back with his Ack: publishing it costs him all.
    params = scene.bob.channels[scene.channel_id].params
    cheat = scene.bob.backends[scene.chain].register(params, scene.v1, scene.bob_account())
    scene.world.sync()
    _penalised(scene, cheat.txid)
