"""A cheating peer refuses a proposal, then enforces it on-chain (issue 12, item 5).

A ``Reject`` is binding for an honest peer, but the refused proposal carries our signature:
a cheater can still add its own and register it. Before, the hub failed the HTLC upstream
as soon as the downstream peer refused it; the peer then registered the refused state,
revealed the preimage on-chain and was paid by the hub's channel, while the hub had already
given the payer its money back. Now the refused proposal is reported (and the HTLC failed
upstream) only once a later version is irrevocable; until then a preimage revealed on any
chain settles upstream as for any outgoing HTLC.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.core import AddHtlc, Asset, Propose, Reject, SignedState
from chenilles_hub.node.hub.forwarding import ForwardingPolicy
from chenilles_hub.node.net import wire

from .world import World, plan

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]

ETH = 10**18


@pytest.fixture(name="world")
def _world() -> Iterator[World]:
    backend = embedded_backend()
    yield World({backend.chain: backend}, backend)
    backend.close()


def test_a_peer_that_refuses_then_enforces_the_htlc_does_not_rob_the_hub(world: World) -> None:
    backend = world.clock_backend
    chain = backend.chain
    eth = Asset(chain, "native")
    alice = world.node("alice", [chain])
    hub = world.node("hub", [chain], ForwardingPolicy())
    bob = world.node("bob", [chain])  # the cheater
    c1 = world.open(alice, hub, chain, {eth: (ETH, 0)})
    c2 = world.open(hub, bob, chain, {eth: (ETH, 0)})
    invoice = bob.invoice(2 * 10**17, eth)
    preimage = bob.invoices[invoice.payment_hash][1]
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    payment = alice.pay_route(invoice, hops)

    def hub_proposes_to_bob() -> bool:
        return any(peer == bob.node_id for peer, _ in hub.outbox)

    assert world.network.run_until(hub_proposes_to_bob)
    (frame,) = [data for peer, data in hub.outbox if peer == bob.node_id]
    hub.outbox[:] = [(p, d) for p, d in hub.outbox if p != bob.node_id]
    proposal = wire.decode(frame)
    assert isinstance(proposal, Propose) and isinstance(proposal.updates[0], AddHtlc)
    htlc = proposal.updates[0].htlc

    # Bob refuses it (a binding Reject, he says), and stops answering.
    refusal = Reject(c2, proposal.state.version, "unsafe_timelock", "no", proposal.attempt)
    world.network.silence(bob)
    hub.receive(bob.node_id, wire.encode(refusal))
    world.network.run()
    assert payment.status == "pending", "the hub failed the HTLC while Bob could enforce it"
    assert alice.channels[c1].machine.state.htlcs, "the upstream HTLC must stay locked"

    # Bob signs the refused state himself and enforces it: registers it, reveals the preimage.
    params = bob.channels[c2].params
    account = bob.accounts[chain]
    previous = bob.channels[c2].machine.latest
    mine = backend.authority(params, account, 1).sign(params, proposal.state, previous)
    signed = SignedState(proposal.state, (proposal.signature, mine))
    backend.register(params, signed, account)
    backend.claim_htlc(params, htlc, preimage, account)
    world.sync()  # the hub sees the registration and the preimage on-chain
    assert payment.status == "succeeded", payment.reason
    assert not alice.channels[c1].machine.state.htlcs
    assert hub.channels[c1].machine.state.free(eth) == (ETH - 2 * 10**17, 2 * 10**17)
    # The registered state pays Bob the HTLC from the hub's side of c2: the hub was paid
    # the same amount upstream, so it lost nothing.
    for _ in range(4):
        world.advance(300)
    assert hub.channels[c2].status == "closed"


def test_a_peer_that_refuses_everything_costs_a_bounded_number_of_proposals(
    world: World,
) -> None:
    """Bob refuses every proposal, even the empty ones that would bury the first refusal:
    the hub stops after a few, keeps what he refused (unreported, the payment pending) and
    its state does not grow."""
    backend = world.clock_backend
    chain = backend.chain
    eth = Asset(chain, "native")
    alice = world.node("alice", [chain])
    bob = world.node("bob", [chain])
    c1 = world.open(alice, bob, chain, {eth: (ETH, 0)})
    invoice = bob.invoice(10**17, eth)
    hops = plan(world, alice, [(bob, c1)], invoice.amount, eth, invoice.final_lead)
    world.network.silence(bob)
    payment = alice.pay_route(invoice, hops)
    proposals = 0
    for _ in range(50):
        frames = [data for peer, data in alice.outbox if peer == bob.node_id]
        alice.outbox.clear()
        refused = [m for m in map(wire.decode, frames) if isinstance(m, Propose)]
        if not refused:
            break
        for message in refused:
            proposals += 1
            reject = Reject(c1, message.state.version, "no", "", message.attempt)
            alice.receive(bob.node_id, wire.encode(reject))
    machine = alice.channels[c1].machine
    assert proposals <= 6, proposals
    assert len(machine.withdrawn) == 1 and machine.idle
    assert payment.status == "pending"
