"""Announcements larger than a frame: a hub with more than ~185 channel edges could announce
none of them (the frame's 64 KiB limit), so peers never routed through it. They now go in
parts, put together by the receiver, and a peer that sends odd parts changes nothing."""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Annotated

import msgspec
import pytest

from chenilles_hub.core import Asset, TimeModel
from chenilles_hub.core.errors import DecodeError, InvalidParams
from chenilles_hub.core.routing import AssetRate, ChannelEdge, find_route
from chenilles_hub.node.hub import graph_view
from chenilles_hub.node.hub.gossip import (
    MAX_EDGES,
    MAX_PARTS,
    Announcement,
    decode_announcement,
    encode_announcement,
    split,
)
from chenilles_hub.node.hub.graph_view import GraphView

pytestmark = pytest.mark.node

HUB = hashlib.sha256(b"hub").digest()
ETH = Asset("eip155:31337", "native")
MODELS = (("eip155:31337", TimeModel(2000, 1, 12, 86_400)),)


def _edges(n: int, source: bytes = HUB, seed: int = 1) -> tuple[ChannelEdge, ...]:
    rng = random.Random(seed)
    return tuple(
        ChannelEdge(
            channel_id=hashlib.sha256(b"%d %d" % (seed, i)).digest(),
            chain=ETH.chain,
            asset=ETH,
            source=source,
            target=hashlib.sha256(b"peer %d" % i).digest(),
            capacity=rng.randrange(1, 10**24),
            fee_base=rng.randrange(0, 10**6),
            fee_ppm=rng.randrange(0, 10**4),
            challenge_duration=3600,
        )
        for i in range(n)
    )


def _whole(n: int) -> Announcement:
    rate = AssetRate(HUB, ETH, Asset("bip122:regtest", "native"), 1, 20 * 10**10)
    return Announcement(_edges(n), (rate,), MODELS)


def test_a_large_announcement_goes_in_frames_that_each_fit_and_arrive_whole() -> None:
    whole = _whole(1_000)
    parts, left_out = split(whole, serial=7)
    assert left_out == 0 and 1_000 // MAX_EDGES < len(parts) <= MAX_PARTS
    frames = [encode_announcement(p) for p in parts]  # each within the codec's limit
    view = GraphView()
    order = list(range(len(frames)))
    random.Random(3).shuffle(order)  # frames may be handled in any order
    for i in order[:-1]:
        assert view.accept(HUB, decode_announcement(frames[i])) == 0  # not whole yet
        assert HUB not in view.announced
    assert view.accept(HUB, decode_announcement(frames[order[-1]])) == 1_000
    got = view.announced[HUB]
    assert sorted(got.edges, key=lambda e: e.channel_id) == sorted(
        whole.edges, key=lambda e: e.channel_id
    )
    assert got.rates == whole.rates and got.time_models == whole.time_models


def test_a_small_announcement_is_one_frame_that_nodes_before_parts_read() -> None:
    whole = _whole(100)
    (only,), left_out = split(whole, serial=3)
    frame = encode_announcement(only)
    assert left_out == 0 and b'"part' not in frame and b'"serial"' not in frame

    class Before(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="announce"):
        edges: Annotated[tuple[ChannelEdge, ...], msgspec.Meta(max_length=MAX_EDGES)] = ()
        rates: tuple[AssetRate, ...] = ()
        time_models: tuple[tuple[str, TimeModel], ...] = ()

    before = msgspec.json.decode(frame[1:], type=Before)  # the decoder of the last release
    assert set(before.edges) == set(whole.edges)
    view = GraphView()
    assert view.accept(HUB, decode_announcement(frame)) == 100


def test_past_the_most_frames_the_smallest_capacities_are_left_out_and_counted() -> None:
    whole = _whole(MAX_PARTS * 250)  # about 200 fit in a frame
    parts, left_out = split(whole, serial=1)
    assert len(parts) == MAX_PARTS and left_out > 0
    sent = [e for p in parts for e in p.edges]
    assert len(sent) + left_out == len(whole.edges)
    assert min(e.capacity for e in sent) >= max(e.capacity for e in set(whole.edges) - set(sent))
    for part in parts:
        encode_announcement(part)


def test_odd_parts_from_a_peer_change_nothing_until_an_announcement_is_whole() -> None:
    view = GraphView()
    first, _ = split(_whole(400), serial=1)
    for part in first:
        view.accept(HUB, part)
    known = view.announced[HUB]
    newer, _ = split(Announcement(_edges(400, seed=2), (), MODELS), serial=2)
    view.accept(HUB, newer[0])
    view.accept(HUB, msgspec.structs.replace(newer[1], part=5, parts=2))  # not a part
    view.accept(HUB, msgspec.structs.replace(newer[1], serial=9))  # another announcement
    assert view.announced[HUB] == known  # the older whole one stands meanwhile
    stranger = hashlib.sha256(b"stranger").digest()
    for part in split(Announcement(_edges(400, source=stranger, seed=4)), serial=1)[0]:
        view.accept(HUB, part)  # edges of another node: never kept for this peer
    assert view.announced[HUB].edges == ()
    for part in newer:
        view.accept(HUB, part)
    assert len(view.announced[HUB].edges) == 400
    assert {e.channel_id for e in view.announced[HUB].edges} == {
        e.channel_id for e in _edges(400, seed=2)
    }


def test_what_a_peer_gone_announced_is_forgotten() -> None:
    """What strangers announce stays bounded by who is connected now."""
    view = GraphView()
    parts, _ = split(_whole(400), serial=5)
    for part in parts:
        view.accept(HUB, part)
    assert len(view.announced[HUB].edges) == 400
    view.accept(HUB, split(_whole(400), serial=6)[0][0])
    view.forget(HUB)  # the link dropped
    assert HUB not in view.announced
    for part in split(_whole(400), serial=6)[0][1:]:
        view.accept(HUB, part)
    assert HUB not in view.announced  # never whole: the first part went with the link


def test_an_edge_on_a_chain_nobody_gave_a_clock_for_is_left_out_not_fatal() -> None:
    """One peer's edge on an unknown chain made every route lookup of the node fail."""
    view = GraphView()
    unknown = msgspec.structs.replace(
        _edges(1, seed=9)[0], chain="eip155:999", asset=Asset("eip155:999", "native")
    )
    view.accept(HUB, Announcement((*_edges(3), unknown), (), MODELS))
    me = hashlib.sha256(b"me").digest()
    graph, _, _ = graph_view._build(me, list(view.announced.items()), [], [], {})
    assert sorted(e.channel_id for e in graph.edges) == sorted(e.channel_id for e in _edges(3))


def test_a_stranger_announces_in_one_frame_only() -> None:
    """A peer nobody configured (``accept_unknown_peers``) makes us keep at most one
    frame's edges, as before announcements had parts; a configured one, every part."""
    parts, _ = split(_whole(1_000), serial=1)
    stranger, configured = GraphView(), GraphView()
    for part in parts:
        stranger.accept(HUB, part, max_parts=1)
        configured.accept(HUB, part)
    assert HUB not in stranger.announced
    assert len(configured.announced[HUB].edges) == 1_000
    (one,), _ = split(_whole(100), serial=2)
    assert stranger.accept(HUB, one, max_parts=1) == 100


def test_a_late_part_does_not_overwrite_a_newer_announcement_in_one_frame() -> None:
    """The parts of an older announcement still coming must not, once whole, replace the
    one-frame announcement the peer sent after them."""
    view = GraphView()
    older, _ = split(_whole(400), serial=1)
    newer = Announcement(_edges(3, seed=5), (), MODELS)
    view.accept(HUB, older[0])
    view.accept(HUB, newer)
    for part in older[1:]:
        view.accept(HUB, part)
    assert set(view.announced[HUB].edges) == set(newer.edges)


def test_an_edge_a_peer_cannot_mean_is_a_bad_announcement_not_a_crash() -> None:
    """A peer's announcement is decoded at the door: an edge that joins a node to itself
    (refused by the edge's own check) or carries an integer past 256 bits (which the
    router's float bound would overflow, failing every route) is a ``DecodeError``, the
    one error the connection handles (it counts the frame and drops the peer)."""
    edge = ChannelEdge(
        channel_id=b"\x01" * 32,
        chain=ETH.chain,
        asset=ETH,
        source=b"\x02" * 32,
        target=b"\x03" * 32,
        capacity=10,
    )
    frame = encode_announcement(Announcement(edges=(edge,)))
    source, target = (b'"' + base64.b64encode(bytes([c]) * 32) + b'"' for c in (2, 3))
    assert source in frame and target in frame
    for bad in (
        frame.replace(target, source),
        frame.replace(b'"capacity":10', b'"capacity":' + str(2**256).encode()),
        frame.replace(b'"capacity":10', b'"capacity":1' + b"0" * 400),
        frame.replace(b'"fee_base":0', b'"fee_base":' + str(2**300).encode()),
    ):
        with pytest.raises(DecodeError):
            decode_announcement(bad)
    assert decode_announcement(frame).edges == (edge,)
    with pytest.raises(InvalidParams):
        msgspec.structs.replace(edge, capacity=2**256)


def test_a_peers_time_model_out_of_range_is_a_bad_announcement() -> None:
    """A chain's clock from a peer feeds every hop's delta: a block interval of 10**40 ms
    overflowed the index's int64 deltas, a negative inclusion delay let routes expire in
    the past. Both are refused at the door."""
    good = Announcement(time_models=(("bip122:regtest", TimeModel(600_000, 6, 3600, 86_400)),))
    frame = encode_announcement(good)
    assert decode_announcement(frame) == good
    for old, new in (
        (b'"block_interval_ms":600000', b'"block_interval_ms":' + b"1" + b"0" * 40),
        (b'"block_interval_ms":600000', b'"block_interval_ms":0'),
        (b'"inclusion_delay":3600', b'"inclusion_delay":-1000000'),
        (b'"finality_depth":6', b'"finality_depth":' + str(2**62).encode()),
    ):
        assert old in frame
        with pytest.raises(DecodeError):
            decode_announcement(frame.replace(old, new))
    with pytest.raises(InvalidParams):
        TimeModel(600_000, 6, -1, 86_400)


def test_a_peers_quotes_that_break_the_price_range_are_left_out_not_fatal() -> None:
    """Quotes chained between invented assets, each term within 256 bits, can price an
    asset at 2**-1280 of another: every float of the router would overflow, and every
    route failed. The graph drops the peers' quotes instead; our route needs none."""
    us, hub, payee, peer = (bytes([i]) * 32 for i in (1, 2, 3, 9))
    eth = ETH

    def edge(c: int, u: bytes, v: bytes) -> ChannelEdge:
        return ChannelEdge(
            channel_id=bytes([c]) * 32,
            chain=eth.chain,
            asset=eth,
            source=u,
            target=v,
            capacity=10**20,
        )

    fake = [Asset(eth.chain, f"erc20:z{i}") for i in range(6)]
    extreme = tuple(AssetRate(peer, fake[i], fake[i + 1], 2**256 - 1, 1) for i in range(4))
    for rates in (extreme, (*extreme, AssetRate(peer, fake[4], eth, 2**256 - 1, 1))):
        frame = encode_announcement(Announcement(edges=(edge(9, peer, hub),), rates=rates))
        sources = [
            (hub, Announcement(edges=(edge(2, hub, payee),))),
            (peer, decode_announcement(frame)),
        ]
        models = {eth.chain: TimeModel(2000, 1, 12, 86_400)}
        graph, _, _ = graph_view._build(us, sources, [edge(1, us, hub)], [], models)
        for strategy in ("cached", "astar"):
            route = find_route(
                graph,
                us,
                payee,
                1000,
                eth,
                1_700_000_000,
                3600,
                30 * 86400,
                strategy=strategy,  # type: ignore[arg-type]
            )
            assert [h.amount for h in route] == [1000, 1000]


def test_one_peer_does_not_replace_the_others_clock_for_a_chain() -> None:
    """For a chain we do not run the last announcement's clock used to win: one peer could
    give every route over the chain a wrong clock (hubs check expiries against their own,
    so every such route failed). Now most peers with channels on the chain decide; a peer
    with none there has no say; the operator's graph and our own backends win."""
    chain = "eip155:31337"
    honest, wrong = TimeModel(2000, 1, 12, 86_400), TimeModel(86_400_000, 1, 12, 86_400)
    a, b, rogue, idle = (hashlib.sha256(n).digest() for n in (b"a", b"b", b"rogue", b"idle"))
    me = hashlib.sha256(b"me").digest()

    def said(peer: bytes, model: TimeModel, with_edges: bool = True) -> graph_view.Source:
        edges = _edges(1, source=peer, seed=peer[0]) if with_edges else ()
        return (peer, Announcement(edges, (), ((chain, model),)))

    def clock(*sources: graph_view.Source, own: TimeModel | None = None) -> TimeModel:
        graph, _, _ = graph_view._build(me, list(sources), [], [], {chain: own} if own else {})
        return graph.time_models[chain]

    assert clock(said(a, honest), said(b, honest), said(rogue, wrong)) == honest
    assert clock(said(rogue, wrong), said(a, honest), said(b, honest)) == honest
    idle2 = hashlib.sha256(b"idle 2").digest()
    idlers = (said(idle, wrong, with_edges=False), said(idle2, wrong, with_edges=False))
    assert clock(said(a, honest), *idlers) == honest
    operator = (None, Announcement((), (), ((chain, wrong),)))
    assert clock(said(a, honest), said(b, honest), operator) == wrong
    assert clock(said(rogue, wrong), said(a, wrong), own=honest) == honest


def test_strangers_do_not_outvote_a_configured_peer_on_a_clock() -> None:
    """A stranger's claimed channel costs nothing: two of them used to outvote the one hub
    we configured. Strangers' votes count only where no configured peer voted."""
    chain = "eip155:31337"
    honest, wrong = TimeModel(2000, 1, 12, 86_400), TimeModel(86_400_000, 1, 12, 86_400)
    hub, s1, s2 = (hashlib.sha256(n).digest() for n in (b"hub", b"s1", b"s2"))

    def said(peer: bytes, model: TimeModel) -> graph_view.Source:
        return (peer, Announcement(_edges(1, source=peer, seed=peer[0]), (), ((chain, model),)))

    sources = [said(hub, honest), said(s1, wrong), said(s2, wrong)]
    assert graph_view._time_models(sources)[chain] == wrong  # every peer alike
    assert graph_view._time_models(sources, {hub})[chain] == honest
    assert graph_view._time_models(sources[1:], {hub})[chain] == wrong  # nobody else said


def test_the_view_knows_which_peers_are_strangers() -> None:
    view = GraphView()
    stranger = hashlib.sha256(b"stranger").digest()
    view.accept(HUB, Announcement(_edges(2), (), MODELS))
    view.accept(
        stranger, Announcement(_edges(2, source=stranger, seed=5), (), MODELS), 1, configured=False
    )
    assert view._strangers == {stranger}
    view.accept(stranger, Announcement(_edges(2, source=stranger, seed=5), (), MODELS))
    assert view._strangers == set()  # configured since
    view.accept(
        stranger, Announcement(_edges(1, source=stranger, seed=6), (), MODELS), 1, configured=False
    )
    view.forget(stranger)  # its link dropped: nothing of it kept
    assert view._strangers == set() and stranger not in view.announced
