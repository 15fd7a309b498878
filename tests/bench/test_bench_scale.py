"""The scale section's restart runs end to end at a small size: the store filled here is
restored by a new process holding the node's key (a channel it could not restore would
be quarantined, and the section fails), and every figure of the restart is reported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import bench_scale  # noqa: E402  (the scripts directory is not a package)

pytestmark = pytest.mark.bench


def test_a_restart_in_a_new_process_restores_every_channel(tmp_path: Path) -> None:
    out = bench_scale.restart(300, tmp_path, 100)
    assert out["channels"] == 300
    assert out["restore_s"] > 0 and out["first_use_of_every_channel_s"] > 0
    assert out["idle_tick_ms"]["n"] == 20
    assert out["own_payment_graph_ms"]["n"] == 200
    assert out["peer_announcement_graph_ms"]["n"] == 20  # a peer's announcements again
    assert out["profile_channels"] == 100 and out["time_share_under_cprofile"]
