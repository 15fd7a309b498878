"""A node keeps its routing graph between payments (``GraphView``): the router's bound for
this node as payer is then computed once and reused. What must hold is that the kept graph
routes exactly as a graph built afresh would, after payments move capacities, after a fee
change and after a channel opens: a stale graph would route over money that is not there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chenilles_hub.circuit.invoice import ROUTE_SLACK
from chenilles_hub.core import Asset, TimeModel
from chenilles_hub.core.errors import NoRoute
from chenilles_hub.core.routing import AssetRate, ChannelEdge, RoutingGraph, find_route
from chenilles_hub.node.hub import graph_view
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy, channel_edge
from chenilles_hub.node.hub.gossip import Announcement, own_announcement
from chenilles_hub.node.hub.graph_view import GraphView
from chenilles_hub.node.hub.node import Node
from chenilles_hub.sandbox import MAX_LOCK, Sandbox
from tests.core.test_routing_prices import multiplications

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
    # The hub's announcements moved its capacities only: put in place, not rebuilt.
    assert view.graph(alice) is first

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

    # A fee cut at the hub (a new announcement) is put in place too; a new channel of the
    # hub's, or of ours, rebuilds.
    hub.set_fee(eth, 0, 0)
    view.accept(hub.node_id, own_announcement(hub))
    assert view.graph(alice) is kept
    check(ETH // 10)
    carol = box.node("carol")
    box.open(hub, carol, chain, {eth: (ETH // 4, 0)})
    view.accept(hub.node_id, own_announcement(hub))
    before = view.graph(alice)
    assert before is not kept
    check(ETH // 10)
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


def _alice_with_a_channel(
    box: Sandbox,
) -> tuple[Node, Node, Asset, tuple[tuple[str, TimeModel], ...]]:
    """Alice with one EVM channel to Bob: both nodes, the chain's native asset, and her
    clocks as an announcement carries them."""
    chain = box.chain("evm")
    eth = next(a for a in box.backends[chain].assets() if a.token == "native")
    alice, bob = box.node("alice"), box.node("bob")
    box.open(alice, bob, chain, {eth: (ETH, 0)})
    return alice, bob, eth, tuple(sorted(alice.own_edges().time_models().items()))


def _edge(channel: int, source: bytes, target: bytes, asset: Asset, capacity: int, fee: int = 0):  # type: ignore[no-untyped-def]
    return ChannelEdge(
        channel.to_bytes(32, "big"), asset.chain, asset, source, target, capacity, fee_base=fee
    )


def test_a_peers_announcement_moves_its_edges_in_place_and_nothing_else(box: Sandbox) -> None:
    """A peer announces again every few seconds when its channels moved: what moved only in
    capacity or fees is put into the kept graph in place (a graph of 100,000 edges is not
    rebuilt, nor the router's bound dropped, at each of our payments). It must change what
    a fresh graph would change and nothing more: an edge the operator's graph gives wins
    over the peer's; an edge on a chain nobody gave a clock for stays out; a peer cannot
    move another's edge; a new edge, a rate or a time model rebuilds."""
    alice, bob, eth, models = _alice_with_a_channel(box)
    peer, other, far = b"\x0a" * 32, b"\x0b" * 32, b"\x0c" * 32
    elsewhere = Asset("eip155:999999", "native")  # a chain nobody gave a clock for

    def announcement(capacity: int, fee: int = 0, extra: tuple[ChannelEdge, ...] = ()):  # type: ignore[no-untyped-def]
        edges = (
            _edge(1, peer, far, eth, capacity, fee),
            _edge(2, peer, bob.node_id, eth, capacity),
            _edge(3, peer, far, elsewhere, capacity),
            _edge(4, other, far, eth, capacity),  # not the peer's to announce: dropped
            *extra,
        )
        return Announcement(edges=edges, time_models=models)

    view = GraphView()
    view.operator = Announcement(edges=(_edge(2, peer, bob.node_id, eth, 77),), time_models=models)
    view.accept(peer, announcement(1000))
    view.accept(other, Announcement(edges=(_edge(4, other, far, eth, 5),), time_models=models))
    kept = view.graph(alice)

    def fresh() -> dict[tuple[bytes, bytes], ChannelEdge]:
        again = GraphView()
        again.operator = view.operator
        for who, said in view.announced.items():
            again.accept(who, said)
        return {(e.channel_id, e.source): e for e in again.graph(alice).edges}

    def edges() -> dict[tuple[bytes, bytes], ChannelEdge]:
        return {(e.channel_id, e.source): e for e in view.graph(alice).edges}

    view.accept(peer, announcement(900, fee=3))
    assert view.graph(alice) is kept  # capacities and fees: in place
    assert edges() == fresh()
    moved = edges()
    assert moved[(_edge(1, peer, far, eth, 0).channel_id, peer)].capacity == 900
    assert moved[(_edge(2, peer, far, eth, 0).channel_id, peer)].capacity == 77  # the operator's
    assert (_edge(3, peer, far, eth, 0).channel_id, peer) not in moved  # no clock for its chain
    assert moved[(_edge(4, other, far, eth, 0).channel_id, other)].capacity == 5

    # Announcements come sorted by capacity, which moves: the same edges in another order
    # are moved in place, and the kept graph orders its edges as a fresh one (the router
    # breaks ties between equal routes by that order).
    said = announcement(950, fee=3)
    view.accept(peer, Announcement(edges=said.edges[::-1], time_models=models))
    assert view.graph(alice) is kept and edges() == fresh()
    assert list(edges()) == list(fresh())

    # A router that makes no payment of its own for a long while keeps one pending move
    # per edge, the last, not one per announcement.
    for capacity in range(1000, 1100):
        view.accept(peer, announcement(capacity, fee=3))
    assert len(view._patches) == 3  # the peer's edges 1, 2 and 3 (4 is not its own)
    assert view.graph(alice) is kept and edges() == fresh()
    assert edges()[(_edge(1, peer, far, eth, 0).channel_id, peer)].capacity == 1099

    view.accept(peer, announcement(900, fee=3, extra=(_edge(5, peer, far, eth, 10),)))
    assert view.graph(alice) is not kept  # a new edge: built again
    assert edges() == fresh()
    kept = view.graph(alice)
    view.accept(peer, Announcement(edges=announcement(800).edges, time_models=()))
    assert view.graph(alice) is not kept  # a time model gone: built again
    assert edges() == fresh()


def test_an_announcement_during_a_build_is_not_lost(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Announcements arrive on the event loop's thread while the node's thread builds the
    graph (0.5 s for 100,000 edges): one that lands during a build must be in the next
    graph, not overwritten by the build that began before it."""
    alice, _bob, eth, models = _alice_with_a_channel(box)
    peer, far = b"\x0a" * 32, b"\x0c" * 32
    view = GraphView()
    build = graph_view._build
    late = Announcement(edges=(_edge(9, peer, far, eth, 500),), time_models=models)

    def build_while_a_peer_announces(*args, **kwargs):  # type: ignore[no-untyped-def]
        built = build(*args, **kwargs)
        view.accept(peer, late)  # (as the event loop would, between two bytecodes)
        return built

    monkeypatch.setattr(graph_view, "_build", build_while_a_peer_announces)
    first = view.graph(alice)
    assert all(e.source != peer for e in first.edges)  # built from what was known before
    monkeypatch.setattr(graph_view, "_build", build)
    again = view.graph(alice)
    assert again is not first
    assert [e.capacity for e in again.edges if e.source == peer] == [500]


def test_a_peers_quote_that_makes_an_arbitrage_is_left_out_and_shown(box: Sandbox) -> None:
    """One peer quoting more of an asset than the market, beside two hubs quoting the other
    way, made an arbitrage: every route lookup of the node turned into an exhaustive search
    (minutes per query on a 2,000-node graph). Its quotes are left out of our graph, the
    others' kept, and ``quotes_left_out`` (``/v1/peers``) says whose and why; once it
    quotes at the market again, it is back."""
    alice, _bob, eth, models = _alice_with_a_channel(box)
    usd = Asset(eth.chain, "erc20:0x" + "11" * 20)
    hubs, rogue, far = (b"\x0d" * 32, b"\x0e" * 32), b"\x0f" * 32, b"\x10" * 32

    def quotes(who: bytes, premium: int = 100) -> tuple[AssetRate, ...]:
        # 3,000 USD per ETH: base units of usd (6 decimals) per wei, at the premium in %
        return (
            AssetRate(who, eth, usd, 3_000 * 10**6 * premium, 10**18 * 100, spread_ppm=3000),
            AssetRate(who, usd, eth, 10**18, 3_000 * 10**6, spread_ppm=3000),
        )

    def announce(who: bytes, rates: tuple[AssetRate, ...], channel: int) -> None:
        edges = (_edge(channel, who, far, usd, 10**12), _edge(channel + 1, who, far, eth, ETH))
        view.accept(who, Announcement(edges=edges, rates=rates, time_models=models))

    view = GraphView()
    # the far node's channels into each quoting node, in both assets (a quote is usable
    # only at a node with channels in and out in its assets)
    into = [
        _edge(40 + 2 * i + j, far, who, asset, 10**12)
        for i, who in enumerate((*hubs, rogue))
        for j, asset in enumerate((eth, usd))
    ]
    view.accept(far, Announcement(edges=tuple(into), time_models=models))
    announce(hubs[0], quotes(hubs[0]), 10)
    announce(hubs[1], quotes(hubs[1]), 20)
    announce(rogue, quotes(rogue)[:1], 30)
    assert view.graph(alice).index().arbitrage_free and view.quotes_left_out == {}

    announce(rogue, quotes(rogue, premium=102)[:1], 30)  # 2 % more USD per ETH than market
    graph = view.graph(alice)
    assert graph.index().arbitrage_free
    assert set(view.quotes_left_out) == {rogue}
    assert "arbitrage" in view.quotes_left_out[rogue]
    assert {r.node for r in graph.rates.values()} == set(hubs)

    announce(rogue, quotes(rogue)[:1], 30)
    assert view.graph(alice).index().arbitrage_free and view.quotes_left_out == {}


def test_a_strangers_frame_of_chained_quotes_costs_a_build_what_it_holds(box: Sandbox) -> None:
    """A stranger's one frame: 150 quotes around its made-up tokens, listed backwards, with
    a 2 % arbitrage, and a second stranger claiming channels into it in each token (so the
    quotes are usable). Pricing went one step of the cycle per pass over every quote: the
    build's work grew with the square of the quotes (a frame of 1,000, 4 s per build on
    the node's thread; 50 such strangers, seconds more each). Now it grows with the quotes
    the frame holds, and the stranger is left out as before."""
    alice, _bob, eth, models = _alice_with_a_channel(box)
    rogue, feeder = b"\x0e" * 32, b"\x10" * 32
    made_up = [Asset(eth.chain, f"erc20:0x{i:040x}") for i in range(1, 151)]
    gain = (102, 100)  # the last quote returns 2 % more than the lap took
    rates = [
        AssetRate(rogue, a, made_up[(i + 1) % 150], *(gain if i == 149 else (1, 1)))
        for i, a in enumerate(made_up)
    ][::-1]
    view = GraphView()
    into = tuple(_edge(1000 + i, feeder, rogue, a, 10**12) for i, a in enumerate(made_up))
    view.accept(feeder, Announcement(edges=into, time_models=models), configured=False)
    out = tuple(_edge(2000 + i, rogue, feeder, a, 10**12) for i, a in enumerate(made_up))
    view.accept(rogue, Announcement(out, tuple(rates), models), configured=False)
    with multiplications() as count:
        graph = view.graph(alice)
    assert set(view.quotes_left_out) == {rogue} and "arbitrage" in view.quotes_left_out[rogue]
    assert graph.index().arbitrage_free and not graph.rates
    assert count[0] <= 20 * len(rates), count


def test_a_stranger_announcing_again_and_again_costs_one_build_per_interval(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each change of shape used to drop the kept graph, and a build takes in every
    stranger's announcement (some 0.15 s for 64 strangers' frames of 90 quotes): a
    stranger announcing a new edge before each of our payments made each one pay for a
    build. Strangers' changes of shape now wait until the graph is ``STRANGERS_EVERY``
    old; a configured peer's, and ours, are built in at once (with the strangers' too)."""
    alice, bob, eth, models = _alice_with_a_channel(box)
    now = [1000.0]
    view = GraphView(clock=lambda: now[0])
    builds = [0]
    build = graph_view._build

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        builds[0] += 1
        return build(*args, **kwargs)

    monkeypatch.setattr(graph_view, "_build", counted)
    stranger, friend = b"\x21" * 32, b"\x22" * 32

    def announce(peer: bytes, n: int, configured: bool) -> None:
        edges = tuple(_edge(5000 + i, peer, bob.node_id, eth, 10**12) for i in range(n))
        view.accept(peer, Announcement(edges=edges, time_models=models), configured=configured)

    def edges_of(peer: bytes) -> int:
        return sum(1 for e in view.graph(alice).edges if e.source == peer)

    announce(stranger, 1, configured=False)
    assert edges_of(stranger) == 1 and builds[0] == 1
    for n in range(2, 52):  # fifty changes of shape within the interval: no build
        announce(stranger, n, configured=False)
        now[0] += 0.1
        assert edges_of(stranger) == 1
    assert builds[0] == 1
    view.forget(stranger)  # a stranger's link ending waits too
    assert edges_of(stranger) == 1 and builds[0] == 1
    announce(stranger, 60, configured=False)
    announce(friend, 1, configured=True)  # a configured peer's change: built in at once
    assert edges_of(friend) == 1 and edges_of(stranger) == 60 and builds[0] == 2
    announce(stranger, 61, configured=False)
    now[0] += graph_view.STRANGERS_EVERY - 0.1
    assert edges_of(stranger) == 60 and builds[0] == 2
    now[0] += 0.1  # the graph is STRANGERS_EVERY old: the stranger's change is built in
    assert edges_of(stranger) == 61 and builds[0] == 3
    assert edges_of(stranger) == 61 and builds[0] == 3  # and built once


def test_a_strangers_waiting_change_is_not_patched_in_by_its_next_move(box: Sandbox) -> None:
    """While a stranger's change of shape waits, its next announcement that moves only
    capacities relative to the waiting one must not be patched into the kept graph: the
    graph never had what it moves from. Patched, an edge moved to a chain without a clock
    made every graph, and so every payment of ours, fail (a review found it), and an edge
    with a new target went in without a build."""
    alice, bob, eth, models = _alice_with_a_channel(box)
    stranger, far = b"\x21" * 32, b"\x0c" * 32
    elsewhere = Asset("eip155:999999", "native")  # nobody gave a clock for its chain
    now = [1000.0]
    view = GraphView(clock=lambda: now[0])

    def say(asset: Asset, capacity: int, target: bytes = far) -> None:
        edge = _edge(1, stranger, target, asset, capacity)
        view.accept(stranger, Announcement(edges=(edge,), time_models=models), configured=False)

    def stranger_edges() -> list[tuple[str, bytes, int]]:
        graph = view.graph(alice)
        return [(e.chain, e.target, e.capacity) for e in graph.edges if e.source == stranger]

    say(eth, 1000)
    assert stranger_edges() == [(eth.chain, far, 1000)]
    say(elsewhere, 1000)  # its chain changed: a change of shape, waiting
    say(elsewhere, 999)  # a move, relative to the waiting announcement
    now[0] += 1
    assert stranger_edges() == [(eth.chain, far, 1000)]  # as built: no patch, no failure
    say(eth, 1000, target=bob.node_id)  # a new target: waiting
    say(eth, 998, target=bob.node_id)
    assert stranger_edges() == [(eth.chain, far, 1000)]
    now[0] += graph_view.STRANGERS_EVERY
    assert stranger_edges() == [(eth.chain, bob.node_id, 998)]  # built in, in time
    say(eth, 990, target=bob.node_id)  # once built in, its moves are patched in again
    assert stranger_edges() == [(eth.chain, bob.node_id, 990)]


def test_strangers_that_come_and_go_leave_nothing_behind(box: Sandbox) -> None:
    """A stranger's waiting change is remembered by peer (its moves must wait too): one
    that announced and left must not stay remembered, or identities coming and going would
    grow the view without end on a hub that seldom pays (a review: 20,000 identities,
    3.4 MB). What they changed is still built in, once, when the graph is old enough."""
    alice, bob, eth, models = _alice_with_a_channel(box)
    now = [1000.0]
    view = GraphView(clock=lambda: now[0])
    view.graph(alice)
    for i in range(200):
        stranger = (0x1000 + i).to_bytes(32, "big")
        edge = _edge(9000 + i, stranger, bob.node_id, eth, 10**12)
        view.accept(stranger, Announcement(edges=(edge,), time_models=models), configured=False)
        view.forget(stranger)
    assert not view._waiting, "identities gone are remembered"
    first = view.graph(alice)
    now[0] += graph_view.STRANGERS_EVERY
    assert view.graph(alice) is not first  # the build that was due
    assert view.graph(alice) is view.graph(alice)
