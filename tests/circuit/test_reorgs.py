"""The chain reorganizes under the node (issue 12 item 6): funding, refutations and
conclusions that a reorg takes away are noticed and dealt with.

EVM: eth-tester's ``take_snapshot`` / ``revert_to_snapshot`` and anvil's ``evm_snapshot`` /
``evm_revert`` put the chain back to an earlier block; mining on from there makes a branch
whose blocks differ from the ones the node read, which is a real reorg from the node's
point of view (the event stream finds the fork by block hashes). Bitcoin: the kernel chain
switches to a longer fork (``KernelChain.reorg``), validated by libbitcoinkernel.

LiteSVM (the embedded Solana ledger) has no forks: a transaction it executed is final, so
there is no Solana case here (see docs/writing-a-backend.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chenilles_bitcoin.backend import embedded_backend as bitcoin_backend
from chenilles_bitcoin.ledger import KernelChain
from chenilles_evm.backend import EvmBackend, connect_backend
from chenilles_evm.backend import embedded_backend as evm_backend
from chenilles_evm.ledgers import anvil_ledger
from chenilles_evm.mapping import asset_address
from web3.types import RPCEndpoint

from chenilles_hub.backend import ChainBackend, Reorged
from chenilles_hub.core import Asset
from chenilles_hub.core.errors import ChannelNotOpen

from .world import World, confirm

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]

ETH = 10**18


class Snapshots:
    """Put an EVM ledger back to an earlier block (eth-tester or anvil)."""

    def __init__(self, backend: EvmBackend) -> None:
        self.backend = backend

    def take(self) -> Any:
        ledger = self.backend._ledger
        if ledger is not None and ledger.kind == "ethtester":
            return ledger.tester.take_snapshot()  # type: ignore[attr-defined]
        return self._rpc("evm_snapshot", [])

    def revert(self, snapshot: Any) -> None:
        ledger = self.backend._ledger
        if ledger is not None and ledger.kind == "ethtester":
            ledger.tester.revert_to_snapshot(snapshot)  # type: ignore[attr-defined]
        else:
            assert self._rpc("evm_revert", [snapshot]) is True

    def _rpc(self, method: str, args: list[Any]) -> Any:
        response = self.backend.w3.provider.make_request(RPCEndpoint(method), args)
        assert "error" not in response, response
        return response["result"]


@pytest.fixture(params=["ethtester", "anvil"])
def evm(request: pytest.FixtureRequest) -> Iterator[EvmBackend]:
    if request.param == "ethtester":
        backend = evm_backend()
        yield backend
        backend.close()
        return
    ledger = anvil_ledger()
    try:
        yield connect_backend(ledger.url, deploy=True)  # type: ignore[attr-defined]
    finally:
        ledger.stop()


def mine(world: World, blocks: int) -> None:
    for backend in world.backends.values():
        for _ in range(blocks):
            backend.advance_time(12)


def _alice_paid_bob(evm: EvmBackend) -> tuple[World, Asset, Any, Any, bytes]:
    """Alice and Bob, a channel Alice funded with 1 ETH, and 0.3 ETH of it paid to Bob."""
    world = World({evm.chain: evm}, evm)
    eth = Asset(evm.chain, "native")
    alice, bob = world.node("alice", [evm.chain]), world.node("bob", [evm.chain])
    channel_id = world.open(alice, bob, evm.chain, {eth: (ETH, 0)})
    alice.pay_direct(channel_id, eth, 3 * 10**17)
    world.network.run()
    return world, eth, alice, bob, channel_id


def reorgs_seen(node_journal: list[str]) -> int:
    return sum("reorg of depth" in line for line in node_journal)


def test_a_funding_reorged_out_takes_the_channel_out_of_active(evm: EvmBackend) -> None:
    world = World({evm.chain: evm}, evm)
    eth = Asset(evm.chain, "native")
    alice, bob = world.node("alice", [evm.chain]), world.node("bob", [evm.chain])
    world.sync()  # both nodes have read the chain up to here
    snapshots = Snapshots(evm)
    before_deposit = snapshots.take()
    channel_id = world.open(alice, bob, evm.chain, {eth: (ETH, 0)})

    snapshots.revert(before_deposit)  # the deposit and every block after it are gone
    mine(world, 4)
    world.sync()
    for node in (alice, bob):
        channel = node.channels[channel_id]
        assert reorgs_seen(node.journal) == 1
        assert channel.status == "opening", node.name
    assert alice.channels[channel_id].waiting.startswith(f"waiting for our deposit: 0 of {ETH}")
    assert bob.channels[channel_id].waiting.startswith(
        f"waiting for the peer's deposit: 0 of {ETH}"
    )
    # No new payment goes through it.
    with pytest.raises(ChannelNotOpen):
        alice.pay_direct(channel_id, eth, 10**17)
    assert bob.channels[channel_id].machine.state.version == 0


@pytest.mark.parametrize("seen", [True, False], ids=["seen", "unseen"])
def test_a_refutation_reorged_out_is_sent_again_and_wins(evm: EvmBackend, seen: bool) -> None:
    """``seen``: the node read the block with its refutation before the reorg (the event
    stream reports the reorg, then the channel's surviving history: the stale registration
    again). ``unseen``: the block was replaced before the node polled it (no reorg to see:
    the chain just never shows the refutation, and the watcher answers again on the next
    block)."""
    world = World({evm.chain: evm}, evm)
    eth = Asset(evm.chain, "native")
    alice, bob = world.node("alice", [evm.chain]), world.node("bob", [evm.chain])
    channel_id = world.open(alice, bob, evm.chain, {eth: (ETH, 0)})
    alice.pay_direct(channel_id, eth, 10**17)
    world.network.run()
    stale = bob.channels[channel_id].machine.latest
    assert stale is not None and stale.version == 1
    bob.pay_direct(channel_id, eth, 10**17)  # bob gives it back: version 2
    world.network.run()
    assert alice.channels[channel_id].machine.latest.version == 2  # type: ignore[union-attr]

    # Bob cheats: registers version 1, where he holds 10**17 more.
    channel = bob.channels[channel_id]
    evm.register(channel.params, stale, channel.account)
    snapshots = Snapshots(evm)
    before_refute = snapshots.take()
    world.sync()  # alice's watcher refutes with version 2
    cid = evm.channel_id(channel.params)
    assert evm.adjudicator.dispute(cid).version == 2
    if seen:
        world.sync()  # the refutation's block and event are read
        assert alice.watcher.dispute(channel_id).version == 2  # type: ignore[union-attr]

    snapshots.revert(before_refute)  # the refutation is reorged out
    mine(world, 3)
    assert evm.adjudicator.dispute(cid).version == 1
    world.sync()
    assert reorgs_seen(alice.journal) == (1 if seen else 0)
    assert evm.adjudicator.dispute(cid).version == 2, "the refutation was not sent again"
    world.sync()
    assert alice.watcher.dispute(channel_id).version == 2  # type: ignore[union-attr]

    # The period ends on the chain's clock; the honest version is what is paid.
    start = evm.balance(alice.accounts[evm.chain], eth)
    world.advance(700)
    world.sync()
    assert alice.channels[channel_id].status == "closed"
    paid = evm.balance(alice.accounts[evm.chain], eth) - start
    fees = sum(r.fee for r in alice.channels[channel_id].receipts if r.operation == "conclude")
    assert paid + fees == ETH  # version 2: alice holds everything again


@pytest.mark.parametrize("seen", [True, False], ids=["seen", "unseen"])
def test_a_conclusion_reorged_out_is_concluded_again(evm: EvmBackend, seen: bool) -> None:
    """``seen``: the reorg is reported and the channel's history no longer has the
    conclusion. ``unseen``: the conclusion's block was replaced before the node read it;
    the watcher's check once the conclusion should be deep enough finds it missing."""
    world, eth, alice, _bob, channel_id = _alice_paid_bob(evm)
    alice.force_close(channel_id)
    world.sync()
    evm.advance_time(700)  # the period is over in this block
    snapshots = Snapshots(evm)
    before_conclusion = snapshots.take()
    world.sync()  # alice (and bob) conclude
    cid = alice.channels[channel_id].channel_id
    assert evm.adjudicator.dispute(cid).phase == 3  # concluded
    assert alice.channels[channel_id].status == "closed"
    if seen:
        world.sync()

    snapshots.revert(before_conclusion)
    mine(world, 3)
    assert evm.adjudicator.dispute(cid).phase == 1  # registered again, not concluded
    world.sync()
    assert reorgs_seen(alice.journal) == (1 if seen else 0)
    assert evm.adjudicator.dispute(cid).phase == 3, "the conclusion was not taken again"
    assert alice.channels[channel_id].status == "closed"
    token = asset_address(eth)
    assert evm.adjudicator.holding(cid, token) == 0
    # Once deep enough (and checked still there) the watcher retires the channel.
    assert alice.watcher.duties_of(channel_id) != ()
    for _ in range(3):
        mine(world, 2)
        world.sync()
    assert alice.watcher.duties_of(channel_id) == ()
    assert alice.watcher.dispute(channel_id) is None


def _seen_then_reorged_out(
    world: World, alice: Any, channel_id: bytes, send: Callable[[], object]
) -> None:
    """``send`` a transaction of the channel, let Alice's node read it, then take it away
    in a reorg that nobody sends it again in (the EVM ledger of ``world``)."""
    (evm,) = world.backends.values()
    assert isinstance(evm, EvmBackend)
    snapshots = Snapshots(evm)
    before = snapshots.take()
    send()
    world.sync()
    assert alice.watcher.dispute(channel_id) is not None  # Alice read it
    snapshots.revert(before)
    mine(world, 3)
    world.sync()
    assert reorgs_seen(alice.journal) == 1


def test_a_registration_reorged_out_for_good_is_finished_with_ours(evm: EvmBackend) -> None:
    """Bob registers the latest state, Alice's node reads it, then a reorg takes it away
    and nobody sends it again. Alice's watcher waited out the period and then failed to
    conclude on every block ("NotRegistered()"), the channel in dispute with its funds
    until an operator forced a close. Now the conclusion that finds nothing registered
    registers Alice's latest state, and concludes after that one's period."""
    world, eth, alice, bob, channel_id = _alice_paid_bob(evm)
    world.network.silence(bob)  # Bob's node is gone: it never registers again
    channel = bob.channels[channel_id]
    latest = channel.machine.latest
    assert latest is not None
    _seen_then_reorged_out(
        world, alice, channel_id, lambda: evm.register(channel.params, latest, channel.account)
    )
    start = evm.balance(alice.accounts[evm.chain], eth)
    for _ in range(4):  # Bob's period, then Alice's own
        world.advance(700)
        world.sync()
    ours = alice.channels[channel_id]
    journal = "\n".join(alice.journal[-8:])
    assert [r.operation for r in ours.receipts if r.txid].count("register") == 1, journal
    assert ours.status == "closed", journal
    paid = evm.balance(alice.accounts[evm.chain], eth) - start
    fees = sum(r.fee for r in ours.receipts if r.operation != "fund")
    assert paid + fees == ETH - 3 * 10**17  # her balance, less what her closing cost


def test_a_cooperative_close_reorged_out_does_not_make_the_node_register(
    evm: EvmBackend,
) -> None:
    """Found by review: Alice proposes the final state, Bob signs it and sends the close
    himself without answering her, and a reorg takes that close away. Alice's latest
    state is not the final one, so her conclusion asks ``conclude``, which finds nothing
    registered; no registration was ever reported, so she must not register her own
    (a unilateral close in place of the cooperative one coming back): the conclusion
    fails and is tried again on every block, as before."""
    world, _eth, alice, bob, channel_id = _alice_paid_bob(evm)
    alice.close(channel_id)
    for _peer, data in alice.outbox:  # the final state reaches Bob; his answer never comes
        bob.receive(alice.node_id, data)
    alice.outbox.clear()
    bob.checkpoint()
    bob.outbox.clear()
    world.network.silence(bob)
    final = bob.channels[channel_id].machine.latest
    assert final is not None and final.state.final and final.complete
    channel = bob.channels[channel_id]
    _seen_then_reorged_out(
        world,
        alice,
        channel_id,
        lambda: evm.close_cooperative(channel.params, final, channel.account),
    )
    for _ in range(3):
        world.advance(700)
        world.sync()
    ours = alice.channels[channel_id]
    assert "register" not in [r.operation for r in ours.receipts if r.txid], alice.journal[-6:]
    assert evm.adjudicator.dispute(evm.channel_id(ours.params)).phase == 0  # nothing on-chain


def test_bitcoin_funding_reorged_out_deactivates_until_confirmed_again() -> None:
    backend: ChainBackend = bitcoin_backend()
    chain = backend.ledger  # type: ignore[attr-defined]
    assert isinstance(chain, KernelChain)
    try:
        world = World({backend.chain: backend}, backend)
        btc = Asset(backend.chain, "native")
        alice, bob = world.node("alice", [backend.chain]), world.node("bob", [backend.chain])
        channel_id = world.open(alice, bob, backend.chain, {btc: (1_000_000, 0)})
        funding = alice.channels[channel_id].params.nonce.hex()
        alice.pay_direct(channel_id, btc, 10_000)
        world.network.run()

        depth = chain.get_tx_confirmations(funding)
        assert depth is not None and depth >= 6
        chain.reorg(depth=depth, exclude=[funding])  # a reorg deeper than the confirmations
        events = backend.poll_events()
        assert any(isinstance(e, Reorged) and funding in e.txids for e in events)
        for node in (alice, bob):
            node.on_chain_events(backend.chain, events)
            node.tick()
        world.network.run()
        assert alice.channels[channel_id].status == "opening"
        assert bob.channels[channel_id].status == "opening"
        assert "0 of 1000000" in bob.channels[channel_id].waiting
        with pytest.raises(ChannelNotOpen):
            alice.pay_direct(channel_id, btc, 10_000)

        confirm(world)  # the backend broadcast the funding again: it confirms anew
        assert alice.channels[channel_id].status == "active"
        assert bob.channels[channel_id].status == "active"
        alice.pay_direct(channel_id, btc, 10_000)
        world.network.run()
        assert bob.channels[channel_id].machine.state.version == 2
    finally:
        chain.close()
