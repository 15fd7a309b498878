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
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
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
