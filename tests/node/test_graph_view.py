"""A node keeps its routing graph between payments (``GraphView``): the router's bound for
this node as payer is then computed once and reused. What must hold is that the kept graph
routes exactly as a graph built afresh would, after payments move capacities, after a fee
change and after a channel opens: a stale graph would route over money that is not there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chenilles_hub.circuit.invoice import ROUTE_SLACK
from chenilles_hub.core import Asset
from chenilles_hub.core.errors import NoRoute
from chenilles_hub.core.routing import RoutingGraph, find_route
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy, channel_edge
from chenilles_hub.node.hub.gossip import GraphView, own_announcement
from chenilles_hub.node.hub.node import Node
from chenilles_hub.sandbox import MAX_LOCK, Sandbox

pytestmark = pytest.mark.node

ETH = 10**18


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox.start(["evm"]) as sandbox:
        yield sandbox


def _route_cost(
    graph: RoutingGraph,
    payer: Node,
    payee: Node,
    amount: int,
    asset: Asset,
    now: int,
    strategy: str,
) -> tuple[int, ...] | None:
    try:
        route = find_route(
            graph,
            payer.node_id,
            payee.node_id,
            amount,
            asset,
            now=now,
            final_lead=600 + ROUTE_SLACK,
            max_lock=MAX_LOCK,
            strategy=strategy,
        )  # type: ignore[arg-type]
    except NoRoute:
        return None
    return tuple(hop.amount for hop in route)


def test_the_kept_graph_routes_as_a_fresh_one(box: Sandbox) -> None:
    chain = box.chain("evm")
    eth = next(a for a in box.backends[chain].assets() if a.token == "native")
    hub_policy = ForwardingPolicy(fees={eth: FeePolicy(base=1000, ppm=1000)})
    alice, hub, bob = box.node("alice"), box.node("hub", policy=hub_policy), box.node("bob")
    box.open(alice, hub, chain, {eth: (ETH, 0)})
    box.open(hub, bob, chain, {eth: (ETH // 2, 0)})

    view = GraphView()
    for peer in (hub, bob):
        view.accept(peer.node_id, own_announcement(peer))

    def check(amount: int) -> None:
        kept = view.graph(alice)
        fresh = GraphView()
        for peer in (hub, bob):
            fresh.accept(peer.node_id, own_announcement(peer))
        expected = _route_cost(fresh.graph(alice), alice, bob, amount, eth, box.now(), "astar")
        assert _route_cost(kept, alice, bob, amount, eth, box.now(), "cached") == expected

    first = view.graph(alice)
    check(ETH // 10)
    for amount in (ETH // 10, ETH // 5, ETH // 8):
        payment = box.pay(alice, bob.invoice(amount, eth), eth)
        assert payment.status == "succeeded"
        view.accept(hub.node_id, own_announcement(hub))  # the hub's capacities moved too
        check(ETH // 10)
        check(ETH // 4)  # more than bob's side of the hub can take now: no route, both
    assert view.graph(alice) is not first  # a peer's announcement rebuilds

    # Our own payments alone do not rebuild: capacities and fees are patched in place.
    kept = view.graph(alice)
    box.pay(alice, hub.invoice(ETH // 100, eth), eth)
    assert view.graph(alice) is kept
    capacity = next(e.capacity for e in kept.edges if e.source == alice.node_id)
    fresh_capacity = next(
        e.capacity for e in own_announcement(alice).edges if e.source == alice.node_id
    )
    assert capacity == fresh_capacity
    check(ETH // 10)

    # A fee cut at the hub (a new announcement) and a new channel of ours rebuild.
    hub.set_fee(eth, 0, 0)
    view.accept(hub.node_id, own_announcement(hub))
    check(ETH // 10)
    before = view.graph(alice)
    box.open(alice, bob, chain, {eth: (ETH // 3, 0)})
    assert view.graph(alice) is not before
    check(ETH // 10)


def _recounted_edges(node: Node) -> dict[bytes, tuple[int, int, int]]:
    """Every active channel's edge built afresh (what the node did per use before our edges
    were kept): channel -> (capacity, fee base, fee ppm) of the asset with most capacity."""
    out: dict[bytes, tuple[int, int, int]] = {}
    for channel in node.channels.values():
        if channel.status != "active":
            continue
        built = [
            channel_edge(channel, asset, node.policy, node.node_id, outgoing=True)
            for asset in channel.params.assets
        ]
        best = max(built, key=lambda e: e.capacity)
        out[channel.channel_id] = (best.capacity, best.fee_base, best.fee_ppm)
    return out


def test_our_kept_edges_follow_every_change_and_only_the_changed_ones_move(box: Sandbox) -> None:
    """A node's own edges are kept between uses (``Node.own_edges``, fed by checkpoints):
    an own payment updates the kept graph with the edges that changed, not with every
    channel (100,000 channels made each own payment build 100,000 edges). Through payments,
    a transfer, a fee change set in place, an open and a close, the kept graph's edges are
    what a recount of every channel says, and a payment moves only its own channel."""
    chain = box.chain("evm")
    eth = next(a for a in box.backends[chain].assets() if a.token == "native")
    alice, bob, carol = box.node("alice"), box.node("bob"), box.node("carol")
    c1 = box.open(alice, bob, chain, {eth: (ETH, 0)})
    c2 = box.open(alice, carol, chain, {eth: (ETH, 0)})
    view = GraphView()
    for peer in (bob, carol):
        view.accept(peer.node_id, own_announcement(peer))

    def kept_edges() -> dict[bytes, tuple[int, int, int]]:
        graph = view.graph(alice)
        return {
            e.channel_id: (e.capacity, e.fee_base, e.fee_ppm)
            for e in graph.edges
            if e.source == alice.node_id
        }

    first = view.graph(alice)
    assert kept_edges() == _recounted_edges(alice)
    revision = alice.own_edges().revision
    assert box.pay(alice, bob.invoice(ETH // 10, eth), eth).status == "succeeded"
    assert [e.channel_id for e in alice.own_edges().changes_since(revision)] == [c1]
    assert view.graph(alice) is first  # patched, not rebuilt
    assert kept_edges() == _recounted_edges(alice)
    assert kept_edges()[c1][0] == ETH - ETH // 10

    alice.pay_direct(c2, eth, ETH // 7)
    box.network.run()
    assert kept_edges() == _recounted_edges(alice) and kept_edges()[c2][0] == ETH - ETH // 7
    assert view.graph(alice) is first

    alice.set_fee(eth, 5, 50)  # in place: every edge's fees move, the shape does not
    assert kept_edges() == _recounted_edges(alice)
    assert {(base, ppm) for _, base, ppm in kept_edges().values()} == {(5, 50)}
    assert view.graph(alice) is first

    c3 = box.open(alice, carol, chain, {eth: (ETH // 3, 0)})
    assert view.graph(alice) is not first  # a new channel: a new shape
    assert set(kept_edges()) == {c1, c2, c3} and kept_edges() == _recounted_edges(alice)
    alice.close(c2)
    box.network.run()
    box.confirm()
    box.network.run()
    assert set(kept_edges()) == {c1, c3} and kept_edges() == _recounted_edges(alice)
