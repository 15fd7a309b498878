"""Hubs on a real EVM (eth-tester / py-evm): multi-hop payments, failures, a silent peer."""

from __future__ import annotations

import sqlite3

import msgspec
import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.circuit.errors import CircuitError, InvoiceAlreadyPaid, WrongAmount
from chenilles_hub.core import Asset
from chenilles_hub.core.errors import NoRoute
from chenilles_hub.core.routing import AssetRate, ChannelEdge, RoutingGraph, find_route
from chenilles_hub.node.api import metrics
from chenilles_hub.node.config import load_config
from chenilles_hub.node.hub.backup import collect, unseal
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
from chenilles_hub.node.hub.gossip import own_announcement
from chenilles_hub.node.hub.routing_view import routing_graph
from chenilles_hub.node.runtime.backups import BackupFile
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, plan

pytestmark = pytest.mark.circuit

ETH = 10**18


@pytest.fixture
def world():
    backend = embedded_backend()
    yield World({backend.chain: backend}, backend)
    backend.close()


def native(world: World) -> Asset:
    (backend,) = world.backends.values()
    return Asset(backend.chain, "native")


def test_two_hop_payment_with_fees_settles_every_hop_exactly(world: World) -> None:
    eth = native(world)
    chain = eth.chain
    alice = world.node("alice", [chain])
    hub = world.node("hub", [chain], ForwardingPolicy(fees={eth: FeePolicy(base=1000, ppm=100)}))
    bob = world.node("bob", [chain])
    c1 = world.open(alice, hub, chain, {eth: (ETH, 0)})
    c2 = world.open(hub, bob, chain, {eth: (ETH, 0)})
    invoice = bob.invoice(10**17, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    fee = 1000 + -(-(10**17) * 100 // 10**6)
    assert hops[0].amount == 10**17 + fee
    payment = alice.pay_route(invoice, hops)
    world.network.run()
    assert payment.status == "succeeded" and payment.preimage is not None
    assert alice.channels[c1].machine.state.free(eth) == (ETH - 10**17 - fee, 10**17 + fee)
    assert hub.channels[c2].machine.state.free(eth) == (ETH - 10**17, 10**17)
    assert not alice.channels[c1].machine.state.htlcs
    assert not hub.channels[c2].machine.state.htlcs


def three_nodes(world: World, fee: FeePolicy | None = None):
    eth = native(world)
    chain = eth.chain
    alice = world.node("alice", [chain])
    hub = world.node("hub", [chain], ForwardingPolicy(fees={eth: fee or FeePolicy()}))
    bob = world.node("bob", [chain])
    c1 = world.open(alice, hub, chain, {eth: (ETH, 0)})
    c2 = world.open(hub, bob, chain, {eth: (ETH, 0)})
    return eth, alice, hub, bob, c1, c2


def test_a_payment_the_payee_cannot_accept_is_refunded_on_every_hop(world: World) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    invoice = bob.invoice(10**17, eth)
    del bob.invoices[invoice.payment_hash]  # bob forgot the invoice: unknown payment hash
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    payment = alice.pay_route(invoice, hops)
    world.network.run()
    assert payment.status == "failed" and "payment hash" in payment.reason
    assert alice.channels[c1].machine.state.free(eth) == (ETH, 0)
    assert hub.channels[c2].machine.state.free(eth) == (ETH, 0)
    assert not alice.channels[c1].machine.state.htlcs and not hub.channels[c2].machine.state.htlcs


def test_a_forward_that_underpays_the_hub_is_refused_and_refunded(world: World) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world, FeePolicy(base=5000))
    invoice = bob.invoice(10**17, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    cheap = [msgspec.structs.replace(hops[0], amount=hops[0].amount - 1), hops[1]]
    payment = alice.pay_route(invoice, cheap)
    world.network.run()
    assert payment.status == "failed" and payment.reason.startswith("insufficient_fee")
    assert alice.channels[c1].machine.state.free(eth) == (ETH, 0)


def test_cooperative_close_pays_out_exact_balances_on_chain(world: World) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    backend = world.clock_backend
    invoice = bob.invoice(3 * 10**17, eth)
    alice.pay_route(
        invoice, plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    )
    world.network.run()
    bob_before = backend.balance(bob.accounts[eth.chain], eth)
    hub.close(c2)
    world.network.run()
    assert hub.channels[c2].status == "closed"
    # Bob withdraws his side himself once the channel is concluded.
    bob.channels[c2].receipts.append(
        backend.withdraw(bob.channels[c2].params, 1, bob.accounts[eth.chain], eth)
    )
    fees = sum(r.fee for r in bob.channels[c2].receipts)
    assert backend.balance(bob.accounts[eth.chain], eth) == bob_before + 3 * 10**17 - fees


def test_silent_upstream_peer_hub_claims_on_chain_and_is_made_whole(world: World) -> None:
    """Bob settles with the hub; Alice goes silent before settling with it. The hub's
    watcher registers the latest state, reveals the preimage on-chain before the HTLC
    expires, concludes after the challenge period and withdraws: paid in full."""
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    backend = world.clock_backend
    invoice = bob.invoice(2 * 10**17, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    alice.pay_route(invoice, hops)
    # Alice goes silent right after her HTLC to the hub became irrevocable.
    assert world.network.run_until(
        lambda: bool(hub.channels[c2].queue or hub.channels[c2].machine.pending)
    )
    world.network.silence(alice)
    world.network.run()
    assert hub.channels[c2].machine.state.free(eth) == (ETH - 2 * 10**17, 2 * 10**17)
    assert hub.channels[c1].machine.state.htlcs, "Alice never settled off-chain"
    hub_before = backend.balance(hub.accounts[eth.chain], eth)
    # Time passes until the claim deadline; the hub's watcher acts; the dispute runs out.
    for _ in range(12):
        world.advance(300)
    journal = "\n".join(hub.journal)
    assert "claimed HTLC" in journal and "concluded" in journal
    fees = sum(r.fee for r in hub.channels[c1].receipts)
    assert backend.balance(hub.accounts[eth.chain], eth) == hub_before + 2 * 10**17 - fees


def test_a_payer_registering_the_state_before_its_htlc_after_the_hub_forwarded_loses(
    world: World,
) -> None:
    """Two-message updates (a newer version wins on EVM): the hub forwards Alice's HTLC as
    soon as it has sent its Accept, with no Ack from her. Alice then goes to the chain with
    the state before her HTLC, as if she had never offered it, and keeps silent. The hub
    holds the newer state, signed by both: its watcher refutes hers, claims the HTLC with
    the preimage Bob revealed, and gets the payment it forwarded."""
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    backend = world.clock_backend
    before_htlc = alice.channels[c1].machine.latest
    assert before_htlc is not None
    invoice = bob.invoice(2 * 10**17, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    alice.pay_route(invoice, hops)
    assert world.network.run_until(
        lambda: bool(hub.channels[c2].queue or hub.channels[c2].machine.pending)
    )
    assert hub.channels[c1].machine.latest.version == before_htlc.version + 1  # type: ignore[union-attr]
    world.network.silence(alice)  # no Ack was ever due: the hub forwarded at its Accept
    world.network.run()
    assert hub.channels[c2].machine.state.free(eth) == (ETH - 2 * 10**17, 2 * 10**17)
    backend.register(alice.channels[c1].params, before_htlc, alice.accounts[eth.chain])
    world.sync()
    assert any(f"refuted stale version {before_htlc.version}" in line for line in hub.journal)
    hub_before = backend.balance(hub.accounts[eth.chain], eth)
    paid_so_far = len(hub.channels[c1].receipts)
    for _ in range(12):
        world.advance(300)
    assert "claimed HTLC" in "\n".join(hub.journal)
    fees = sum(r.fee for r in hub.channels[c1].receipts[paid_so_far:])
    assert backend.balance(hub.accounts[eth.chain], eth) == hub_before + 2 * 10**17 - fees


def test_a_stale_registration_is_refuted_by_the_watcher(world: World) -> None:
    eth, alice, hub, _bob, c1, _c2 = three_nodes(world)
    backend = world.clock_backend
    old = alice.channels[c1].machine.latest
    alice.pay_direct(c1, eth, 4 * 10**17)
    world.network.run()
    assert hub.channels[c1].machine.state.free(eth) == (6 * 10**17, 4 * 10**17)
    # Alice cheats: she registers version 0, where she still had everything (and her own
    # node, which would refute her, is kept out of it).
    world.network.silence(alice)
    backend.register(alice.channels[c1].params, old, alice.accounts[eth.chain])
    world.sync()
    assert any("refuted stale version 0" in line for line in hub.journal)
    hub_before = backend.balance(hub.accounts[eth.chain], eth)
    paid_so_far = len(hub.channels[c1].receipts)
    for _ in range(4):
        world.advance(300)
    fees = sum(r.fee for r in hub.channels[c1].receipts[paid_so_far:])
    assert backend.balance(hub.accounts[eth.chain], eth) == hub_before + 4 * 10**17 - fees


def stored_hub(world: World, tmp_path):  # type: ignore[no-untyped-def]
    """alice -> hub -> bob on the native coin, the hub on a SQLite store in ``tmp_path``."""
    eth = native(world)
    chain = eth.chain
    store = SQLiteStore(tmp_path / "hub.sqlite")
    alice = world.node("alice", [chain])
    hub = world.node("hub", [chain], store=store)
    bob = world.node("bob", [chain])
    c1 = world.open(alice, hub, chain, {eth: (ETH, 0)})
    c2 = world.open(hub, bob, chain, {eth: (ETH, 0)})
    return eth, store, (alice, hub, bob), (c1, c2)


@pytest.mark.parametrize("crash_after", [1, 2, 3, 4, 5, 6, 7, 8])
def test_a_hub_restarted_mid_payment_completes_it(world: World, tmp_path, crash_after) -> None:
    """The hub crashes after its n-th message of a payment (what it had not sent is lost)
    and restarts from its SQLite store: the payment completes, every balance exact."""
    eth, store, (alice, hub, bob), (c1, c2) = stored_hub(world, tmp_path)
    invoice = bob.invoice(10**17, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    payment = alice.pay_route(invoice, hops)
    received = 0

    def hub_received_enough() -> bool:
        return world.network.received_by(hub) >= crash_after

    world.network.run_until(hub_received_enough)
    received = world.network.received_by(hub)
    hub.outbox.clear()  # the crash: nothing more leaves the old process
    store.close()
    world.network.silence(hub)
    store = SQLiteStore(tmp_path / "hub.sqlite")
    hub = world.restart(hub, store)
    world.network.run()
    assert received >= 1
    assert payment.status == "succeeded"
    assert alice.channels[c1].machine.state.free(eth) == (ETH - 10**17, 10**17)
    assert hub.channels[c1].machine.state == alice.channels[c1].machine.state
    assert hub.channels[c2].machine.state.free(eth) == (ETH - 10**17, 10**17)
    assert bob.channels[c2].machine.state == hub.channels[c2].machine.state
    store.close()


def _locked(node, channel_id) -> int:  # type: ignore[no-untyped-def]
    return len(node.channels[channel_id].machine.state.htlcs)


def test_a_replayed_invoice_is_refused_before_anything_is_locked(world: World) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    invoice = bob.invoice(10**16, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    alice.pay_route(invoice, hops)
    world.network.run()
    before = alice.channels[c1].machine.state
    with pytest.raises(InvoiceAlreadyPaid):
        alice.pay_route(invoice, hops)
    assert alice.channels[c1].machine.state == before and _locked(alice, c1) == 0


def test_a_route_that_does_not_deliver_the_invoice_is_refused(world: World) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    invoice = bob.invoice(10**16, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    short = [hops[0], msgspec.structs.replace(hops[1], amount=invoice.amount - 1)]
    with pytest.raises(WrongAmount):
        alice.pay_route(invoice, short)
    wrong_asset = Asset(eth.chain, "0x" + "11" * 20)
    with pytest.raises(CircuitError):
        alice.pay_route(invoice, [hops[0], msgspec.structs.replace(hops[1], asset=wrong_asset)])
    assert _locked(alice, c1) == 0


def test_a_hop_without_its_timelock_delta_is_refused_and_refunded(world: World) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    invoice = bob.invoice(10**16, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    squeezed = [msgspec.structs.replace(hops[0], expiry=hops[1].expiry + 60), hops[1]]
    payment = alice.pay_route(invoice, squeezed)
    world.network.run()
    assert payment.status == "failed" and payment.reason.startswith("timelock_delta")
    assert _locked(alice, c1) == 0 and _locked(hub, c2) == 0


def test_insufficient_capacity_and_expired_rates_find_no_route(world: World) -> None:
    eth, alice, hub, bob, c1, _c2 = three_nodes(world)
    graph = routing_graph(world.network.nodes.values())
    with pytest.raises(NoRoute):
        find_route(
            graph,
            alice.node_id,
            bob.node_id,
            2 * ETH,
            eth,
            now=world.now(),
            final_lead=3600,
            max_lock=86400,
        )
    # A quote (a rate with a deadline) that has expired is not usable by the router.
    other = Asset(eth.chain, "0x" + "22" * 20)
    quoted = RoutingGraph(
        graph.edges,
        [AssetRate(hub.node_id, eth, other, 1, 1, valid_until=world.now() - 1)],
        graph.time_models,
    )
    with pytest.raises(NoRoute):
        find_route(
            quoted,
            alice.node_id,
            bob.node_id,
            10,
            other,
            now=world.now(),
            final_lead=3600,
            max_lock=86400,
            source_asset=eth,
        )
    assert _locked(alice, c1) == 0


def test_the_hub_passes_the_preimage_upstream_before_bobs_settle_is_irrevocable(
    world: World,
) -> None:
    """Once the hub has signed Bob's state that shows the preimage, its settle of Alice's
    HTLC goes out in the same event: Bob withholding his Ack (his revocation of the state
    with the HTLC) does not hold Alice's settle back, and the hub still gets paid."""
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    invoice = bob.invoice(10**17, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    payment = alice.pay_route(invoice, hops)
    settling = hub.channels[c2].machine
    # one message at a time until the hub has signed Bob's settle (its Accept is queued)
    assert world.network.run_until(
        lambda: (
            settling.latest is not None
            and not settling.state.htlcs
            and settling.latest.state.version > 1
        )
    )
    world.network.silence(bob)  # Bob's Ack never comes
    world.network.run()
    assert payment.status == "succeeded" and payment.preimage is not None
    assert not alice.channels[c1].machine.state.htlcs
    assert hub.channels[c1].machine.state.free(eth) == (ETH - 10**17, 10**17)


class ReadCountingStore(SQLiteStore):
    """The hub's store, recording whose snapshots the restarted hub reads, in order."""

    def __init__(self, path) -> None:  # type: ignore[no-untyped-def]
        super().__init__(path)
        self.snapshots_read: list[bytes] = []

    def load_encoded_snapshot(self, channel_id: bytes) -> bytes | None:
        self.snapshots_read.append(channel_id)
        return super().load_encoded_snapshot(channel_id)

    def snapshot_holdings(self) -> dict[bytes, bytes]:
        self.holdings_scans = getattr(self, "holdings_scans", 0) + 1
        return super().snapshot_holdings()


def restarted_with_carol_away(world: World, tmp_path):  # type: ignore[no-untyped-def]
    """``stored_hub`` plus a channel c3 from the hub to carol; the hub restarts on a
    ``ReadCountingStore`` while carol stays offline (nothing asks for c3), and reestablishes
    with alice and bob: their two snapshots are the only ones read."""
    eth, store, (alice, hub, bob), (c1, c2) = stored_hub(world, tmp_path)
    carol = world.node("carol", [eth.chain])
    c3 = world.open(hub, carol, eth.chain, {eth: (ETH, 0)})
    carol_sees = carol.channels[c3].machine.state
    store.close()
    world.network.silence(hub)
    world.network.silence(carol)
    counting = ReadCountingStore(tmp_path / "hub.sqlite")
    hub = world.restart(hub, counting)  # restore, then reestablish with alice and bob
    assert sorted(counting.snapshots_read) == sorted([c1, c2])
    return eth, counting, (alice, hub, bob), (c1, c2, c3), carol_sees


def test_a_restarted_hub_reads_a_channels_snapshot_once_when_the_channel_is_used(
    world: World, tmp_path
) -> None:
    """A restart reads no snapshot: each is read on its channel's first use (here the
    reestablish with a peer that is back), once; a channel nothing touches is not read."""
    eth, counting, (alice, hub, bob), (c1, c2, c3), carol_sees = restarted_with_carol_away(
        world, tmp_path
    )
    invoice = bob.invoice(10**17, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    payment = alice.pay_route(invoice, hops)
    world.network.run()
    assert payment.status == "succeeded"
    assert hub.channels[c1].machine.state == alice.channels[c1].machine.state
    assert hub.channels[c2].machine.state.free(eth) == (ETH - 10**17, 10**17)
    assert sorted(counting.snapshots_read) == sorted([c1, c2])  # each once
    assert hub.channels[c3].machine.state == carol_sees  # read now, exactly as signed
    assert counting.snapshots_read[2:] == [c3]
    counting.close()


def test_a_restarted_hub_announces_and_reports_balances_without_reading_snapshots(
    world: World, tmp_path
) -> None:
    """The announcement of our capacities and ``/metrics`` read every channel's balances: a
    restarted hub of 100,000 channels took 8 s to announce, decoding every snapshot. They
    now read what the store keeps beside each snapshot, and say the same as the states."""
    eth, counting, (_, hub, _), (c1, c2, c3), carol_sees = restarted_with_carol_away(
        world, tmp_path
    )
    me = hub.channels[c3].me

    def capacities() -> dict[bytes, int]:
        edges = own_announcement(hub).edges
        return {e.channel_id: e.capacity for e in edges if e.source == hub.node_id}

    assert getattr(counting, "holdings_scans", 0) == 0  # not at the restore
    announced, report = capacities(), metrics.render(hub, {}, 0, "leader")
    assert sorted(counting.snapshots_read) == sorted([c1, c2])  # c3 still unread
    assert announced[c3] == carol_sees.free(eth)[me] == ETH
    assert 'chenilles_channel_balance{asset="native@' in report
    assert counting.holdings_scans == 1  # once, for both
    hub.channels[c3].machine.state  # noqa: B018  (its first use)
    assert counting.snapshots_read[2:] == [c3]
    assert capacities() == announced and metrics.render(hub, {}, 0, "leader") == report
    world.network.revive(world.network.nodes[hub.channels[c3].peer])
    world.network.run()
    hub.pay_direct(c3, eth, 10**17)  # a new state: what is announced and reported moves
    world.network.run()
    assert capacities()[c3] == ETH - 10**17 and metrics.render(hub, {}, 0, "leader") != report
    counting.close()


def test_our_edges_follow_every_change_of_a_channel_and_of_our_fees(world: World) -> None:
    """Our edges are kept between announcements and built again only for what changed
    (``routing_view.own_edges``): a transfer, a payment's HTLC and its settlement, a fee set
    in place by the operator, a close; what did not change is the same object."""
    eth = native(world)
    alice, bob, carol = (world.node(n, [eth.chain]) for n in ("alice", "bob", "carol"))
    c1 = world.open(alice, bob, eth.chain, {eth: (ETH, 0)})
    c2 = world.open(alice, carol, eth.chain, {eth: (ETH, 0)})

    def edges() -> dict[bytes, ChannelEdge]:
        return {e.channel_id: e for e in own_announcement(alice).edges}

    first = edges()
    assert first[c1].capacity == first[c2].capacity == ETH and first[c1].fee_base == 0
    alice.pay_direct(c1, eth, 10**17)
    world.network.run()
    second = edges()
    assert second[c1].capacity == ETH - 10**17 and second[c2] is first[c2]
    invoice = bob.invoice(10**16, eth)
    payment = alice.pay_route(invoice, plan(world, alice, [(bob, c1)], 10**16, eth, 600))
    world.network.run()
    assert payment.status == "succeeded"
    assert edges()[c1].capacity == ETH - 10**17 - 10**16
    alice.set_fee(eth, 7, 11)
    assert {(e.fee_base, e.fee_ppm) for e in edges().values()} == {(7, 11)}
    alice.close(c2)
    world.network.run()
    assert list(edges()) == [c1]
    graph = routing_graph([alice])  # the router's view: the same edges
    assert graph.edge(c1, alice.node_id) == edges()[c1]


def _recount(node) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[str, int]]:  # type: ignore[no-untyped-def]
    """What /metrics reported before the totals were kept: every channel summed."""
    by_status: dict[str, int] = {}
    balances: dict[tuple[str, str], int] = {}
    locked: dict[str, int] = {}
    for channel in node.channels.values():
        by_status[channel.status] = by_status.get(channel.status, 0) + 1
        if channel.status == "closed":
            continue
        state = channel.machine.state
        for asset in channel.params.assets:
            free = state.free(asset)
            for side, amount in (("local", free[channel.me]), ("remote", free[1 - channel.me])):
                balances[(str(asset), side)] = balances.get((str(asset), side), 0) + amount
        for htlc in state.htlcs:
            locked[str(htlc.asset)] = locked.get(str(htlc.asset), 0) + htlc.amount
    return by_status, balances, locked


def test_the_kept_channel_totals_are_what_a_recount_of_every_channel_says(
    world: World, tmp_path
) -> None:
    """``/metrics`` no longer sums every channel per scrape (0.4-0.9 s for 100,000): the
    totals follow each checkpoint's changed channels. Through opens, payments, an HTLC in
    flight, a fee change, a close and a restart, they equal a recount of every channel."""
    eth, store, (alice, hub, bob), (c1, c2) = stored_hub(world, tmp_path)

    def check(node) -> None:  # type: ignore[no-untyped-def]
        totals = node.channel_totals()
        by_status, balances, locked = _recount(node)
        assert {s: n for s, n in totals.by_status.items() if n} == by_status
        assert {k: v for k, v in totals.balances.items() if totals.assets[k[0]]} == balances
        assert {a: v for a, v in totals.locked.items() if v} == locked

    check(hub)  # counted at the first scrape
    invoice = bob.invoice(10**17, eth)
    payment = alice.pay_route(
        invoice, plan(world, alice, [(hub, c1), (bob, c2)], 10**17, eth, invoice.final_lead)
    )
    world.network.silence(bob)  # the HTLC stays locked on c1
    world.network.run()
    assert hub.channels[c1].machine.state.htlcs
    check(hub)
    check(bob)
    world.network.revive(bob)
    world.network.run()
    assert payment.status == "succeeded"
    check(hub)
    check(bob)
    carol = world.node("carol", [eth.chain])
    c3 = world.open(hub, carol, eth.chain, {eth: (ETH, 0)})
    check(carol)
    hub.pay_direct(c3, eth, 10**16)
    world.network.run()
    check(hub)
    check(carol)  # the payee: only its machine changed
    hub.close(c1)
    world.network.run()
    assert hub.channels[c1].status in ("closing", "closed")
    check(hub)
    store.close()
    world.network.silence(hub)
    hub = world.restart(hub, SQLiteStore(tmp_path / "hub.sqlite"))
    check(hub)
    hub.pay_direct(c3, eth, 10**16)
    world.network.run()
    check(hub)
    assert hub.store is not None
    hub.store.close()


def _recount_payments(node) -> tuple[dict[str, int], dict[str, int]]:  # type: ignore[no-untyped-def]
    """What /metrics reported before the totals were kept: the whole history counted."""
    payments: dict[str, int] = {}
    for payment in node.payments.values():
        payments[payment.status] = payments.get(payment.status, 0) + 1
    paid = sum(1 for h in node.invoices if h in node.paid_invoices)
    return payments, {"paid": paid, "open": len(node.invoices) - paid}


def test_the_kept_payment_and_invoice_counts_are_what_a_recount_of_the_history_says(
    world: World, tmp_path
) -> None:
    """``/metrics`` no longer counts every payment and invoice per scrape (27.6 ms for
    100,000 of each, and the history only grows): the counts follow each checkpoint's
    payment and invoice records. Through payments that succeed, fail and stay pending,
    invoices paid, cancelled and open, and a restart of payer and payee from their stores,
    they equal a recount, and the scrape says the same."""
    eth = native(world)
    chain = eth.chain
    alice_store = SQLiteStore(tmp_path / "alice.sqlite")
    bob_store = SQLiteStore(tmp_path / "bob.sqlite")
    alice = world.node("alice", [chain], store=alice_store)
    hub = world.node("hub", [chain])
    bob = world.node("bob", [chain], store=bob_store)
    c1 = world.open(alice, hub, chain, {eth: (ETH, 0)})
    c2 = world.open(hub, bob, chain, {eth: (ETH, 0)})

    def check(node) -> None:  # type: ignore[no-untyped-def]
        kept = node.payment_totals()
        payments, invoices = _recount_payments(node)
        assert {s: n for s, n in kept.payments.items() if n} == payments
        assert {s: kept.invoices[s] for s in ("paid", "open")} == invoices
        text = metrics.render(node, {}, 0, "leader")
        for status in ("pending", "succeeded", "failed"):
            assert f'chenilles_payments{{status="{status}"}} {payments.get(status, 0)}' in text
        for state, n in invoices.items():
            assert f'chenilles_invoices{{state="{state}"}} {n}' in text

    def pay(amount: int):  # type: ignore[no-untyped-def]
        invoice = bob.invoice(amount, eth)
        hops = plan(world, alice, [(hub, c1), (bob, c2)], amount, eth, invoice.final_lead)
        return invoice, alice.pay_route(invoice, hops)

    check(alice)  # nothing yet
    check(bob)
    _, paid = pay(10**16)
    check(alice)  # pending, its invoice open: counted
    check(bob)
    world.network.run()  # a status that changes, with nothing added: seen all the same
    assert paid.status == "succeeded"
    check(alice)
    check(bob)
    cancelled, refused = pay(10**16)
    bob.cancel_invoice(cancelled.payment_hash)
    check(alice)
    check(bob)
    world.network.run()
    assert refused.status == "failed"
    bob.invoice(10**15, eth)  # issued, never paid
    check(alice)
    check(bob)
    world.network.silence(bob)
    _, waiting = pay(10**16)  # the HTLC stays with the hub
    world.network.run()
    assert waiting.status == "pending"
    check(alice)
    check(bob)
    alice_store.close()
    bob_store.close()
    world.network.silence(alice)
    alice = world.restart(alice, SQLiteStore(tmp_path / "alice.sqlite"))
    bob = world.restart(bob, SQLiteStore(tmp_path / "bob.sqlite"))
    check(alice)  # counted afresh from the records read at restore
    check(bob)
    world.network.revive(bob)
    world.network.run()
    assert alice.payments[waiting.payment_hash].status == "succeeded"
    check(alice)
    check(bob)
    for node in (alice, bob):
        assert node.store is not None
        node.store.close()


def test_a_scrape_in_the_job_that_changed_a_payment_counts_the_change(world: World) -> None:
    """A node server handles a job's messages and calls (a /metrics read among them), then
    takes one checkpoint: a scrape after a payment succeeded in the same job, before its
    record is written, already counts it as succeeded."""
    eth = native(world)
    alice, bob = world.node("alice", [eth.chain]), world.node("bob", [eth.chain])
    channel = world.open(alice, bob, eth.chain, {eth: (ETH, 0)})
    invoice = bob.invoice(10**15, eth)
    payment = alice.pay_route(
        invoice, plan(world, alice, [(bob, channel)], 10**15, eth, invoice.final_lead)
    )
    assert dict(alice.payment_totals().payments) == {"pending": 1}
    assert bob.payment_totals().invoices["open"] == 1
    alice.autocommit = False  # the server's jobs: one checkpoint at the end
    world.network.run()
    assert payment.status == "succeeded"
    assert {s: n for s, n in alice.payment_totals().payments.items() if n} == {"succeeded": 1}
    alice.checkpoint()
    assert {s: n for s, n in alice.payment_totals().payments.items() if n} == {"succeeded": 1}
    kept = bob.payment_totals().invoices
    assert (kept["paid"], kept["open"]) == (1, 0)


def test_a_restarted_hubs_backup_reads_no_machine_and_holds_every_signed_state(
    world: World, tmp_path
) -> None:
    """``[backup] interval`` after a restart: deciding that the file is due reads no
    channel's snapshot, and the file written from the store (snapshots copied as stored)
    opens to every channel's latest state, the idle one's exactly as its peer signed it."""
    _, counting, (alice, hub, bob), (c1, c2, c3), carol_sees = restarted_with_carol_away(
        world, tmp_path
    )
    config = tmp_path / "hub.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path}"\n[backup]\ninterval = 60\n')
    file = BackupFile(load_config(config))
    for _ in range(3):
        hub.tick()
        file.note(hub)
    assert file.due
    assert file.write(counting, hub)["channels"] == 3
    assert sorted(counting.snapshots_read) == sorted([c1, c2])  # c3 still unread
    opened = unseal(file.config.backup_path.read_bytes(), hub.identity)
    latest = {c.record.channel_id: c.snapshot.latest for c in opened.channels if c.snapshot}
    assert latest[c3] is not None and latest[c3].state == carol_sees
    assert latest[c1] is not None and latest[c1].state == alice.channels[c1].machine.state
    assert latest[c2] is not None and latest[c2].state == bob.channels[c2].machine.state
    assert opened == collect(counting, hub.node_id, opened.created_at)
    counting.close()


def test_a_snapshot_corrupted_while_the_hub_was_down_stops_that_channel_alone(
    world: World, tmp_path
) -> None:
    """Read on first use, a snapshot that no longer decodes fails there: the hub's own
    failure, told on the channel, never the peer's fault, and the other channels go on."""
    eth, store, (alice, hub, bob), (c1, c2) = stored_hub(world, tmp_path)
    store.close()
    world.network.silence(hub)
    with sqlite3.connect(tmp_path / "hub.sqlite") as db:  # the disk lost c1's snapshot
        db.execute("UPDATE snapshots SET data = ? WHERE channel_id = ?", (b"{}", c1))
    store = SQLiteStore(tmp_path / "hub.sqlite")
    hub = world.restart(hub, store)  # restored lazily: the damage shows on first use
    assert hub.counters["reestablish_failed"] == 1  # ours, for c1 (c2 reestablished)
    assert "stored state could not be loaded" in hub.channels[c1].last_error  # alice's
    alice.reestablish(hub.node_id)  # alice speaks about c1 again: nothing breaks
    world.network.run()
    assert not hub.errors  # nothing counted against alice
    assert hub.counters["peer_messages_failed"] == 2
    assert hub.channels[c2].last_error == ""
    invoice = bob.invoice(10**17, eth)  # c2 works as before
    hops = plan(world, hub, [(bob, c2)], invoice.amount, eth, invoice.final_lead)
    payment = hub.pay_route(invoice, hops)
    world.network.run()
    assert payment.status == "succeeded"
    assert bob.channels[c2].machine.state.free(eth) == (ETH - 10**17, 10**17)
    store.close()
