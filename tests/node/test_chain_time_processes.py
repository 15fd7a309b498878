"""A node process concludes a dispute in the chain's time, on an anvil that mines only on
demand (no ``--block-time``): within a couple of its ticks of the deadline, never a fixed
retry delay later (issue 14 item 4)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from chenilles_evm.adjudicator import AdjudicatorClient

from .test_server_harness import (
    CONSENTING,
    ETH,
    AnvilChain,
    anvil,
    channel,
    make_node,
    open_channel,
)

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]

TICK = 0.2  # the harness's tick_interval


def test_a_node_process_concludes_within_ticks_of_the_chains_deadline(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    alice = make_node(tmp_path, "alice", anvil, 4)
    bob = make_node(tmp_path, "bob", anvil, 5)
    alice.tail = bob.tail = CONSENTING  # a 3 s challenge: the test's own clock
    alice.peers = [bob]
    try:
        bob.start(wait=False)
        alice.start(wait=False)
        bob.wait_ready()
        alice.wait_ready()
        channel_id = open_channel(alice, bob, ETH // 10, challenge=3)
        bob.stop()  # bob is gone: only alice's watcher acts
        w3 = anvil.ledger.w3
        latest = int(w3.eth.get_block("latest")["timestamp"])
        forced = alice.api.post(f"/v1/channels/{channel_id}/close", {"force": True})
        assert forced["status"] == "disputed"
        timeout = AdjudicatorClient(w3, anvil.adjudicator).dispute(bytes.fromhex(channel_id))
        pending = int(w3.eth.get_block("pending")["timestamp"])
        deadline = time.monotonic() + (timeout.timeout - pending)
        closed_at = None
        while time.monotonic() < deadline + 60:
            if channel(alice, channel_id)["status"] == "closed":
                closed_at = time.monotonic()
                break
            time.sleep(0.05)
        assert closed_at is not None, alice.log_tail()
        delay = closed_at - deadline
        assert delay < 2 * TICK + 1.5, delay  # not the 60 s retry the node used to wait
        assert int(w3.eth.get_block("latest")["timestamp"]) >= timeout.timeout > latest
        assert "ChallengePeriodActive" not in (alice.directory / "node.log").read_text()
    finally:
        alice.stop()
        bob.stop()
