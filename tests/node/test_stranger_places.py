"""Who gets a stranger's place (``Peers._admit``), decided on the event loop: the node's
thread and the sockets are stand-ins here (the tests over real TCP are in
``test_server_strangers.py``); the node's thread can be held busy, as under load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from chenilles_hub.node.config_policy import PeerPolicyConfig
from chenilles_hub.node.runtime import peers
from chenilles_hub.node.runtime.peers import Peers, stranger_to_evict

pytestmark = [pytest.mark.node, pytest.mark.adversarial]

A, B, C, M = (bytes([n]) * 32 for n in b"ABCM")


class _Conn:
    """A connection whose ``close`` ends its link before it returns, as over TCP (the
    link's reader sees the end before ``wait_closed`` does)."""

    def __init__(self, peer_id: bytes) -> None:
        self.peer_id, self.closed = peer_id, False
        self.on_close: Callable[[], None] = lambda: None

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.on_close()
        await asyncio.sleep(0)


class _NodeThread:
    """``in_worker`` as the pipeline's: the call runs once the node's thread is free."""

    def __init__(self) -> None:
        self.free = asyncio.Event()
        self.free.set()
        self.jobs = 0

    async def in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.jobs += 1
        await self.free.wait()
        return fn(*args)


class _Node:
    def __init__(self) -> None:
        self.members: set[bytes] = set()
        self.with_channel: set[bytes] = set()

    def may_be_member(self, peer: bytes) -> bool:
        return peer in self.with_channel or peer in self.members

    def is_member(self, peer: bytes, min_stake: Any = None) -> bool:
        return peer in self.members


def _peers(tenure: float) -> tuple[Peers, _NodeThread, dict[str, int]]:
    policy = PeerPolicyConfig(max_strangers=2, stranger_tenure=tenure)
    stats: dict[str, int] = {}

    def count(key: str, n: int = 1) -> None:
        stats[key] = stats.get(key, 0) + n

    thread = _NodeThread()
    config = SimpleNamespace(peer_policy=policy, peers=[])
    links = Peers(config, b"me" * 16, None, None, thread, asyncio.ensure_future, count)  # type: ignore[arg-type]
    return links, thread, stats


async def _admit(links: Peers, node: _Node, peer: bytes) -> tuple[_Conn, Any]:
    """``peer`` connects; its link, once admitted, ends when its connection closes (what
    ``Peers._serve`` does when the link's reads stop)."""
    conn = _Conn(peer)
    link = await links._admit(conn, peer, node)  # type: ignore[arg-type]
    if link is not None:
        conn.on_close = lambda: links._drop_stranger(link)
    return conn, link


def test_a_flood_at_full_places_waits_for_nothing_on_the_nodes_thread() -> None:
    """Places full, held under the tenure, one holder with an unfunded channel of ours:
    each newcomer of a flood is refused at once, while the node's thread is busy, with no
    job for it and no slot of the connections waiting for that thread."""

    async def body() -> None:
        links, thread, stats = _peers(tenure=60)
        node = _Node()
        node.with_channel.add(A)
        await _admit(links, node, A)
        await _admit(links, node, B)
        jobs = thread.jobs
        thread.free.clear()  # the node's thread busy
        flood = [bytes([n]) * 32 for n in range(10)]
        results = await asyncio.wait_for(
            asyncio.gather(*(_admit(links, node, peer) for peer in flood)), 1
        )
        assert all(link is None for _, link in results)
        assert thread.jobs == jobs and links._admitting == 0
        assert stats["strangers_refused"] == 10

    asyncio.run(body())


def test_a_stranger_funded_since_the_last_tick_keeps_its_link_instead_of_giving_way() -> None:
    """The stranger linked longest is the likeliest to be a customer whose channel is now
    funded (confirmations take longer than a tenure). Before it gives way, the node's
    thread is asked: a member stops counting, keeps its link, and the newcomer gets the
    place it leaves."""

    async def body() -> None:
        links, _, stats = _peers(tenure=0.2)
        node = _Node()
        node.with_channel.add(A)
        a, _ = await _admit(links, node, A)
        await _admit(links, node, B)
        node.members.add(A)  # its funding confirmed; no tick since
        await asyncio.sleep(0.25)
        _, newcomer = await _admit(links, node, C)
        assert newcomer is not None and not a.closed
        assert stats.get("strangers_evicted", 0) == 0 and stats["strangers_promoted"] == 1
        assert links.strangers_linked() == 2  # B and C

    asyncio.run(body())


@pytest.mark.parametrize("how", ["replacing its link", "after its link ended"])
def test_connecting_again_keeps_the_tenure_of_the_place(how: str) -> None:
    """A stranger that connects again within a tenure holds its place since it first took
    it, whether its new link replaces the old one (whose end comes first, as over TCP) or
    comes after the old one ended: redialling once per tenure does not keep a place for
    ever."""

    async def body() -> None:
        links, _, stats = _peers(tenure=0.2)
        node = _Node()
        first, _ = await _admit(links, node, A)
        await asyncio.sleep(0.15)
        await _admit(links, node, B)
        if how == "after its link ended":
            await first.close()
            assert links.strangers_linked() == 1
        again, _ = await _admit(links, node, A)
        await asyncio.sleep(0.1)  # A: 0.25 s in its place, B: 0.1 s
        _, newcomer = await _admit(links, node, C)
        await asyncio.sleep(0)  # the eviction's close runs
        assert newcomer is not None and again.closed, "A's new link reset its tenure"
        assert stats["strangers_evicted"] == 1

    asyncio.run(body())


def test_a_stranger_not_asked_about_never_gives_way_if_it_may_be_a_member() -> None:
    """The stranger asked about on the node's thread leaves while the question runs, and
    another newcomer takes its place: the first newcomer, answered, must not push out the
    next oldest, which has a channel of ours nobody asked about (a customer funded since
    the last tick). It is refused instead."""

    async def body() -> None:
        links, thread, stats = _peers(tenure=0.2)
        node = _Node()
        node.with_channel.update((A, B))
        first, _ = await _admit(links, node, A)
        await asyncio.sleep(0.05)
        second, _ = await _admit(links, node, B)
        node.members.add(B)  # funded since the last tick
        await asyncio.sleep(0.2)
        thread.free.clear()
        asking = asyncio.ensure_future(_admit(links, node, C))  # asks about A
        await asyncio.sleep(0.01)
        await first.close()  # A leaves meanwhile ...
        _, d = await _admit(links, node, M)  # ... and M takes its place
        assert d is not None
        thread.free.set()
        _, c = await asyncio.wait_for(asking, 1)
        await asyncio.sleep(0)
        assert c is None and not second.closed, "B, never asked about, gave way"
        assert stats.get("strangers_evicted", 0) == 0

    asyncio.run(body())


def test_a_stranger_that_gave_way_and_finds_a_free_place_starts_a_new_tenure() -> None:
    """A stranger that gave way cannot push out another for a tenure, but one that comes
    back to a free place holds it for a whole tenure, as a new identity would: a hub that
    redials at once is not pushed out again by the next newcomer."""

    async def body() -> None:
        links, _, stats = _peers(tenure=0.2)
        node = _Node()
        a, _ = await _admit(links, node, A)
        b, _ = await _admit(links, node, B)
        await asyncio.sleep(0.25)
        await _admit(links, node, C)  # A gives way
        await asyncio.sleep(0)
        assert a.closed and stats["strangers_evicted"] == 1
        await b.close()  # a place is free
        again, back = await _admit(links, node, A)
        assert back is not None
        _, d = await _admit(links, node, M)
        await asyncio.sleep(0)
        assert d is None and not again.closed, "A, back at a free place, had no tenure"
        assert stats["strangers_evicted"] == 1

    asyncio.run(body())


def test_the_stranger_to_give_way_has_held_its_place_longest() -> None:
    now = time.monotonic()
    places = {A: now - 100, B: now - 90, C: now - 5}
    assert stranger_to_evict(places, C, now, 60, set()) == A
    assert stranger_to_evict(places, C, now, 60, {A}) == B  # configured: spared
    assert stranger_to_evict(places, A, now, 95, set()) is None  # B: 90 s, under the tenure
    assert stranger_to_evict({C: 0.0}, C, now, 60, set()) is None  # never the newcomer
    assert peers.stranger_to_evict is stranger_to_evict


def test_a_member_whose_standing_lapsed_counts_as_a_stranger_again() -> None:
    """A peer that funded a channel and closed it kept its link uncounted for as long as it
    stayed connected. At the tick's check it counts as a stranger again, at a free place
    with a new tenure (so it is not the first to give way); a member that still has
    standing stays uncounted."""

    async def body() -> None:
        links, thread, stats = _peers(tenure=60)
        node = _Node()
        node.members.update({M, B})
        m, member = await _admit(links, node, M)
        await _admit(links, node, B)
        await _admit(links, node, A)
        assert links.strangers_linked() == 1 and not member.stranger
        node.members.discard(M)  # its channels closed
        assert await links.demote_lapsed(node) == 1
        assert member.stranger and not m.closed and links.strangers_linked() == 2
        assert stats["members_lapsed"] == 1
        _, newcomer = await _admit(links, node, C)
        assert newcomer is None, "the places are full, both held under the tenure"
        jobs = thread.jobs
        assert await links.demote_lapsed(node) == 0  # B is still a member
        assert thread.jobs == jobs + 1 and not links.links[B].stranger

    asyncio.run(body())


def test_a_lapsed_member_with_no_place_free_is_disconnected() -> None:
    """The lapsed member finds every stranger's place taken: its connection is closed (it
    may connect again and wait for a place, as any stranger), and the strangers in their
    places keep them."""

    async def body() -> None:
        links, _, stats = _peers(tenure=60)
        node = _Node()
        node.members.add(M)
        m, _ = await _admit(links, node, M)
        a, _ = await _admit(links, node, A)
        b, _ = await _admit(links, node, B)
        node.members.discard(M)
        assert await links.demote_lapsed(node) == 1
        await asyncio.sleep(0)
        assert m.closed and not a.closed and not b.closed
        assert links.strangers_linked() == 2 and stats["members_lapsed"] == 1

    asyncio.run(body())


def test_members_are_asked_about_in_turns_and_a_link_replaced_meanwhile_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each check asks about a bounded number of members, the next ones in peer id order,
    so every member is asked in turn; a link replaced while the node's thread answered
    (its new one was asked about at its admission) is not demoted on the old answer."""

    async def body() -> None:
        monkeypatch.setattr(peers, "_ASKED_PER_TICK", 2)
        links, thread, _ = _peers(tenure=60)
        node = _Node()
        node.members.update({A, B, C})
        for peer in (A, B, C):
            await _admit(links, node, peer)
        asked: list[bytes] = []
        is_member = node.is_member

        def counting(peer: bytes, min_stake: Any = None) -> bool:
            asked.append(peer)
            return is_member(peer, min_stake)

        node.is_member = counting  # type: ignore[method-assign]
        await links.demote_lapsed(node)
        await links.demote_lapsed(node)
        assert asked == [A, B, C, A]
        node.members.discard(C)
        thread.free.clear()
        check = asyncio.ensure_future(links.demote_lapsed(node))
        await asyncio.sleep(0)
        _, replacing = await _admit(links, node, C)  # not a member now: a stranger's link
        assert replacing is not None and links.links[C] is replacing
        thread.free.set()
        assert await check == 0
        assert links.strangers_linked() == 1

    asyncio.run(body())


def test_a_lapsed_member_holds_its_place_for_a_new_tenure() -> None:
    """A member linked for longer than a tenure, lapsed, starts a new tenure at its place,
    as a newcomer would: the next newcomer at full places pushes out the stranger that
    has held its place longest, not the member that has just lost its standing."""

    async def body() -> None:
        links, _, _ = _peers(tenure=0.2)
        node = _Node()
        node.members.add(M)
        node.with_channel.add(M)  # its closed channel stays known
        m, _ = await _admit(links, node, M)
        a, _ = await _admit(links, node, A)
        await asyncio.sleep(0.25)
        node.members.discard(M)
        assert await links.demote_lapsed(node) == 1
        _, newcomer = await _admit(links, node, C)
        await asyncio.sleep(0)
        assert newcomer is not None and a.closed and not m.closed

    asyncio.run(body())


def test_a_member_the_operator_adds_while_it_is_asked_about_is_not_demoted() -> None:
    """The answer comes from before the operator added the peer: an added peer is
    dialled by us and never a stranger."""

    async def body() -> None:
        links, thread, stats = _peers(tenure=60)
        node = _Node()
        node.members.add(M)
        m, link = await _admit(links, node, M)
        node.members.discard(M)
        thread.free.clear()
        check = asyncio.ensure_future(links.demote_lapsed(node))
        await asyncio.sleep(0)
        links.configured[M] = None  # type: ignore[assignment]  # what Peers.add records
        thread.free.set()
        assert await check == 0
        assert not link.stranger and not m.closed and "members_lapsed" not in stats

    asyncio.run(body())
