"""A node driven in jobs, as the server drives it (``autocommit`` off: every message or call
that arrived together is handled, then one checkpoint, then the job's outbox leaves),
proposes once at the end of the job: a burst of payments started together goes out in one
state per channel, not the first payment alone and the others in the next. Every state it
signed is in the job's checkpoint before anything of the job is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.core import Asset
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, plan

pytestmark = pytest.mark.circuit

ETH = 10**18


@pytest.fixture
def world():
    backend = embedded_backend()
    yield World({backend.chain: backend}, backend)
    backend.close()


def durable(node: Node) -> None:
    """What the server checks before it releases a job's outbox, for every channel: the
    store holds the machine's snapshot (every signature sent is on a persisted state)."""
    assert node.store is not None
    for channel_id, channel in node.channels.items():
        assert node.store.load_snapshot(channel_id) == channel.machine.snapshot()


def test_a_burst_of_payments_in_one_job_is_one_state_each_way(world: World, tmp_path: Path) -> None:
    (backend,) = world.backends.values()
    eth = Asset(backend.chain, "native")
    alice = world.node("alice", [eth.chain], store=SQLiteStore(tmp_path / "alice.sqlite"))
    bob = world.node("bob", [eth.chain], store=SQLiteStore(tmp_path / "bob.sqlite"))
    channel_id = world.open(alice, bob, eth.chain, {eth: (ETH, 0)})
    start = alice.channels[channel_id].machine.state.version
    for node in (alice, bob):
        node.autocommit = False  # as the server runs them
    invoices = [bob.invoice(1000 + i, eth) for i in range(8)]
    bob.checkpoint()
    payments = [
        alice.pay_route(
            invoice,
            plan(world, alice, [(bob, channel_id)], invoice.amount, eth, invoice.final_lead),
        )
        for invoice in invoices
    ]
    assert not alice.outbox  # nothing proposed before the job ends
    alice.checkpoint()  # the job's end: one proposal with all 8 HTLCs, persisted first
    durable(alice)
    assert len(alice.channels[channel_id].machine.state.htlcs) == 0
    pending = alice.channels[channel_id].machine.pending
    assert pending is not None and len(pending.signed.state.htlcs) == 8
    world.network.run_in_jobs([alice, bob], after_job=durable)
    assert [p.status for p in payments] == ["succeeded"] * 8
    state = alice.channels[channel_id].machine.state
    assert state.free(eth) == (
        ETH - sum(i.amount for i in invoices),
        sum(i.amount for i in invoices),
    )
    assert state.version - start == 2  # the 8 HTLCs added in one state, settled in one


def test_without_grouping_each_event_still_proposes_at_once(world: World) -> None:
    (backend,) = world.backends.values()
    eth = Asset(backend.chain, "native")
    alice, bob = world.node("alice", [eth.chain]), world.node("bob", [eth.chain])
    channel_id = world.open(alice, bob, eth.chain, {eth: (ETH, 0)})
    invoice = bob.invoice(1000, eth)
    hops = plan(world, alice, [(bob, channel_id)], invoice.amount, eth, invoice.final_lead)
    alice.pay_route(invoice, hops)
    assert alice.outbox  # autocommit (the default): proposed and checkpointed in the event
    world.network.run()
    assert alice.payments[invoice.payment_hash].status == "succeeded"


def test_a_job_signs_at_most_proposals_per_job_and_the_next_job_goes_on(
    world: World, tmp_path: Path
) -> None:
    """Transfers queued on 5 channels at once, 2 proposals per job: each job signs 2 (all
    in its checkpoint before its outbox leaves) and says more are waiting, until none is."""
    (backend,) = world.backends.values()
    eth = Asset(backend.chain, "native")
    alice = world.node("alice", [eth.chain], store=SQLiteStore(tmp_path / "alice.sqlite"))
    bob = world.node("bob", [eth.chain], store=SQLiteStore(tmp_path / "bob.sqlite"))
    channels = [world.open(alice, bob, eth.chain, {eth: (ETH, 0)}) for _ in range(5)]
    for node in (alice, bob):
        node.autocommit = False  # as the server runs them
    alice.proposals_per_job = 2
    alice.transfer_many([(c, eth, 1000, None) for c in channels])
    proposed = []
    while True:
        alice.checkpoint()
        durable(alice)
        proposed.append(len(alice.outbox))
        alice.outbox = []  # (not delivered: the peer's answers are not needed here)
        if not alice.more_to_propose:
            break
    assert proposed == [2, 2, 1]
    assert all(alice.channels[c].machine.pending is not None for c in channels)
    assert not alice.more_to_propose
