"""Deadlines in the chain's own time (issue 12 item 10, issue 14 item 4).

anvil started without ``--block-time`` mines a block only for a transaction, so its latest
block's time stands still while nothing happens. The watcher must judge a dispute's end by
the time the *next* block will carry (anvil's pending block follows its clock), send the
conclusion as soon as the contract will accept it (the conclusion's own transaction mines
the block that makes it valid) and never wait a fixed minute after a refusal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from chenilles_evm.backend import EvmBackend, connect_backend
from chenilles_evm.ledgers import anvil_ledger

from chenilles_hub.core import Asset

from .world import World

pytestmark = pytest.mark.circuit

ETH = 10**18
TICK = 0.25  # seconds between the node's chain ticks in this test
CHALLENGE = 4  # seconds


@pytest.fixture
def idle_anvil() -> Iterator[EvmBackend]:
    ledger = anvil_ledger()  # automine only: no block without a transaction
    try:
        yield connect_backend(ledger.url, deploy=True)  # type: ignore[attr-defined]
    finally:
        ledger.stop()


def test_a_dispute_concludes_within_ticks_of_its_deadline_on_an_idle_anvil(
    idle_anvil: EvmBackend,
) -> None:
    evm = idle_anvil
    world = World({evm.chain: evm}, evm)
    eth = Asset(evm.chain, "native")
    alice, bob = world.node("alice", [evm.chain]), world.node("bob", [evm.chain])
    channel_id = world.open(alice, bob, evm.chain, {eth: (ETH, 0)}, challenge=CHALLENGE)
    alice.pay_direct(channel_id, eth, 10**17)
    world.network.run()
    world.network.silence(bob)  # bob goes silent: alice must close on her own
    alice.force_close(channel_id)
    world.sync()
    cid = alice.channels[channel_id].channel_id
    timeout = evm.adjudicator.dispute(cid).timeout
    # The wall-clock moment the chain's clock reaches the deadline: anvil's pending block
    # carries its clock (wall time plus the offset the tests' time travel added).
    deadline = time.monotonic() + (timeout - evm.next_block_time())
    latest = evm.now()
    concluded_at = None
    while time.monotonic() < deadline + 30:
        time.sleep(TICK)
        world.sync()
        if alice.channels[channel_id].status == "closed":
            concluded_at = time.monotonic()
            break
    assert concluded_at is not None, "never concluded on an idle chain"
    delay = concluded_at - deadline
    # Within a couple of ticks (plus the chain clock's one-second resolution), not 60 s.
    assert delay < 2 * TICK + 1.0, delay
    assert evm.adjudicator.dispute(cid).phase == 3
    assert evm.now() > latest  # the conclusion's own transaction mined the block it needed
    failures = [line for line in alice.journal if "failed" in line]
    assert failures == [], failures  # no attempt was refused: none was sent too early
    # Alice got her 0.9 ETH back in the conclusion (bob's 0.1 was paid to him).
    paid = [r for r in alice.channels[channel_id].receipts if r.operation == "conclude"]
    assert len(paid) == 1
