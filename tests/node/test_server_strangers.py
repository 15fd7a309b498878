"""A stranger against a running node (in-process servers over real TCP, chain on anvil).

With ``accept_unknown_peers = true`` (the default) anyone who completes the handshake may
send messages. Here a stranger sends open requests and then ``open_channel`` messages that
name another chain key for the node, over and over, while two honest nodes pay each other
through their channel. The node must refuse each one, keep its timer and its API alive,
keep the honest channel moving, and ban the stranger after repeated faults.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nacl.signing
import pytest

from chenilles_hub.core import Asset, ChannelParams, Participant
from chenilles_hub.node.config import PeerConfig, load_config
from chenilles_hub.node.hub.gossip import Announcement, encode_announcement, split
from chenilles_hub.node.net import handshake, wire
from chenilles_hub.node.net.framing import MAX_FRAME_BYTES, encode_frame
from chenilles_hub.node.runtime import peers
from chenilles_hub.node.runtime.server import HubServer

from .test_gossip_parts import _edges
from .test_server_harness import CHAIN, ETH, AnvilChain, anvil, free_port
from .test_server_peers import (
    Pair,
    _config,
    _disconnected,
    _peer,
    _until,
    _with_identity,
    run,
    with_pair,
)

pytestmark = [pytest.mark.node, pytest.mark.adversarial, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]


async def _session(
    port: int, server_id: bytes, key: nacl.signing.SigningKey
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, handshake.Session]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    session = await handshake.initiate(reader, writer, handshake.as_signer(key), server_id)
    return reader, writer, session


def test_a_stranger_neither_stops_the_node_nor_freezes_an_honest_channel(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    async def attack(pair: Pair) -> None:
        bob = pair.bob
        assert bob.node is not None
        chain = next(iter(bob.node.backends))
        asset = Asset(chain, "native")
        key = nacl.signing.SigningKey.generate()
        stranger = key.verify_key.encode()
        ticks = bob.stats.get("ticks", 0)

        async def hostile() -> None:
            reader, writer, session = await _session(bob.listen_port, bob.node_id, key)
            for _ in range(5):  # max_faults below: the fifth refusal bans the stranger
                temp = os.urandom(32)
                request = wire.OpenRequest(
                    temp, chain, (asset,), ((10**15, 0),), 600, os.urandom(32), "0x" + "22" * 20
                )
                params = ChannelParams(
                    chain=chain,
                    participants=(
                        Participant("0x" + "22" * 20, stranger),
                        Participant("0x" + "33" * 20, bob.node_id),  # not bob's key
                    ),
                    assets=(asset,),
                    challenge_duration=600,
                    nonce=os.urandom(32),
                )
                for message in (request, wire.OpenChannel(temp, params)):
                    writer.write(
                        encode_frame(session.send.encrypt(wire.encode(message)), MAX_FRAME_BYTES)
                    )
                await writer.drain()
                await asyncio.sleep(0.3)  # a few ticks of bob's timer meanwhile
            assert await _disconnected(reader)
            writer.close()

        async def honest() -> None:
            for _ in range(4):
                assert await asyncio.wait_for(pair.pay(10**14), 15) == "succeeded"

        await asyncio.gather(hostile(), honest())
        assert bob.exit_code == 0 and bob.role == "leader", "the node stopped"
        await _until(lambda: bob.stats.get("ticks", 0) >= ticks + 3)  # the timer lives on
        assert bob.stats.get("peers_banned", 0) == 1
        assert not bob.node.pending_opens and not [
            c for c in bob.node.channels.values() if c.peer == stranger
        ]
        # Banned: the stranger cannot come back before the ban expires.
        reader, writer, _ = await _session(bob.listen_port, bob.node_id, key)
        assert await _disconnected(reader)
        writer.close()
        # Another stranger's open request is kept while it is connected, dropped when it
        # goes away.
        other = nacl.signing.SigningKey.generate()
        reader, writer, session = await _session(bob.listen_port, bob.node_id, other)
        request = wire.OpenRequest(
            os.urandom(32), chain, (asset,), ((10**15, 0),), 600, os.urandom(32), "0x" + "44" * 20
        )
        writer.write(encode_frame(session.send.encrypt(wire.encode(request)), MAX_FRAME_BYTES))
        await writer.drain()
        await _until(lambda: len(bob.node.pending_opens) == 1)  # type: ignore[union-attr]
        writer.transport.abort()
        await _until(lambda: not bob.node.pending_opens)  # type: ignore[union-attr]

    run(
        with_pair(
            tmp_path,
            anvil,
            attack,
            bob_extra="[policy.peers]\nmax_faults = 5\nban_seconds = 600\n",
        )
    )


def test_a_stranger_announces_one_frame_a_configured_peer_in_parts_and_both_are_forgotten(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """Over the wire, the peer server's side of :class:`GraphView`: a large announcement
    (1,000 edges, in parts) from a stranger is not kept, one frame of it is; the same parts
    from a peer the operator added are kept whole; each goes when its link drops."""

    def announcement(source: bytes, n: int) -> Announcement:
        return Announcement(_edges(n, source=source))

    async def send(writer: asyncio.StreamWriter, session: handshake.Session, data: bytes) -> None:
        writer.write(encode_frame(session.send.encrypt(data), MAX_FRAME_BYTES))
        await writer.drain()

    async def one_peer(pair: Pair, configured: bool) -> None:
        bob, node = pair.bob, pair.bob.node
        assert node is not None
        chain = next(iter(node.backends))
        key = nacl.signing.SigningKey.generate()
        peer = key.verify_key.encode()
        if configured:  # as ``POST /v1/peers`` does (its dial to port 1 just fails)
            bob.add_peer(PeerConfig(peer, "127.0.0.1", 1))
        _, writer, session = await _session(bob.listen_port, bob.node_id, key)
        parts, _ = split(announcement(peer, 1_000), serial=11)
        assert len(parts) > 1
        for part in parts:
            await send(writer, session, encode_announcement(part))
        # a barrier: a link's frames are read in order, gossip at once, this one after it
        request = wire.OpenRequest(
            os.urandom(32),
            chain,
            (Asset(chain, "native"),),
            ((10**15, 0),),
            600,
            os.urandom(32),
            "0x" + "55" * 20,
        )
        await send(writer, session, wire.encode(request))
        await _until(lambda: any(o.peer == peer for o in node.pending_opens.values()))
        kept = bob.graph.announced.get(peer)
        if configured:
            assert kept is not None and len(kept.edges) == 1_000
        else:
            assert kept is None, "a stranger made the node keep more than one frame"
            (one,), _ = split(announcement(peer, 100), serial=12)
            await send(writer, session, encode_announcement(one))
            await _until(lambda: peer in bob.graph.announced)
            assert len(bob.graph.announced[peer].edges) == 100
        writer.transport.abort()
        await _until(lambda: peer not in bob.graph.announced)
        if configured:
            bob.remove_peer(peer)

    async def body(pair: Pair) -> None:
        await one_peer(pair, configured=False)
        await one_peer(pair, configured=True)

    run(with_pair(tmp_path, anvil, body))


def test_the_announcement_timer_reads_no_channel_while_nothing_changed(
    anvil: AnvilChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ``announce_interval`` (and for every new link) the node built its announcement
    from every channel: 0.4-1 s of its thread for 100,000 channels. It is built again only
    after a change of our channels (here a payment) or of our fees."""
    built: list[int] = []
    real = peers.own_announcement

    def counting(node):  # type: ignore[no-untyped-def]
        built.append(1)
        return real(node)

    monkeypatch.setattr(peers, "own_announcement", counting)

    async def body(pair: Pair) -> None:
        alice, bob = pair.alice, pair.bob
        assert alice.node is not None

        def latest(server: HubServer) -> tuple[bool, int | None]:
            """On the node's thread: whether nothing is in flight on the channel, and the
            version both hold at the end."""
            assert server.node is not None
            machine = server.node.channels[pair.channel_id].machine
            return machine.idle, machine.latest.version if machine.latest else None

        async def quiet() -> None:
            """Until the last payment's messages are all in on both sides (a late
            acknowledgement changes Alice's edge: under load it may come after an
            announcement that saw nothing new yet), then the rebuild for it, if any."""
            for _ in range(200):
                (a_idle, a_version), (b_idle, b_version) = (
                    await alice.in_worker(latest, alice),
                    await bob.in_worker(latest, bob),
                )
                if a_idle and b_idle and a_version == b_version:
                    await alice.peer_links.announce_all()
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the channel never settled")

        await quiet()
        before, sent_at = len(built), alice.peer_links._last_announced_at
        for _ in range(3):
            await alice.peer_links.announce_all()
        assert len(built) == before, "rebuilt with nothing changed"
        assert alice.peer_links._last_announced_at == sent_at, "sent again, nothing changed"
        edge = bob.graph.announced[alice.node_id].edges[0]
        assert await pair.pay(10**14) == "succeeded"
        await alice.peer_links.announce_all()
        assert len(built) > before  # (the payment's last acknowledgements may follow)
        await _until(lambda: bob.graph.announced[alice.node_id].edges[0] != edge)
        await quiet()
        before = len(built)
        await alice.peer_links.announce_all()
        assert len(built) == before
        chain = next(iter(alice.node.backends))
        await alice.call(alice.node.set_fee, Asset(chain, "native"), 5, 9)
        await alice.peer_links.announce_all()
        assert len(built) == before + 1
        await _until(lambda: bob.graph.announced[alice.node_id].edges[0].fee_base == 5)

    run(with_pair(tmp_path, anvil, body))


def test_strangers_beyond_max_strangers_are_refused_and_a_channels_member_is_not(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """Identities cost nothing: a stranger could open links without end, each a socket,
    a task and an announcement in every graph build. With ``max_strangers = 2``, a third
    stranger is disconnected after its handshake (and counted); a peer that is a member
    of one of our channels is never a stranger, even when no longer configured and the
    strangers' places are taken; a place freed is taken again."""

    async def body(pair: Pair) -> None:
        bob, alice = pair.bob, pair.alice
        first = [await _session(bob.listen_port, bob.node_id, _key()) for _ in range(2)]
        await _until(lambda: bob.stranger_links()["connected"] == 2)
        reader, writer, _ = await _session(bob.listen_port, bob.node_id, _key())
        assert await _disconnected(reader), "a third stranger was kept"
        writer.close()
        assert bob.stranger_links() == {
            "connected": 2,
            "max": 2,
            "refused": 1,
            "handshakes_refused": 0,
            "promoted": 0,
            "evicted": 0,
            "lapsed": 0,
        }
        # Alice, no longer configured at Bob, dials him again: a channel's member gets in.
        bob.remove_peer(alice.node_id)
        await _until(lambda: alice.node_id not in bob.links)
        await _until(lambda: alice.node_id in bob.links)
        assert bob.stranger_links()["connected"] == 2
        assert await pair.pay(10**15) == "succeeded"
        # A stranger leaves: its place is another's.
        first[0][1].transport.abort()
        await _until(lambda: bob.stranger_links()["connected"] == 1)
        reader, writer, _ = await _session(bob.listen_port, bob.node_id, _key())
        await _until(lambda: bob.stranger_links()["connected"] == 2)
        assert bob.stranger_links()["refused"] == 1
        for _, w, _ in [first[1], (reader, writer, None)]:
            w.transport.abort()

    run(with_pair(tmp_path, anvil, body, bob_extra="[policy.peers]\nmax_strangers = 2\n"))


def test_a_newcomer_takes_the_place_of_the_stranger_linked_longest(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """Whoever takes every stranger's place must not keep newcomers out for as long as it
    stays connected. With ``max_strangers = 2`` and ``stranger_tenure = 2``: a newcomer
    arriving within the tenure is refused; after it, the next one takes the place of the
    stranger linked longest (that one's connection is closed). The one that gave way,
    dialling again at once, is refused rather than pushing out the other in turn (one
    newcomer, one stranger off its place), and the honest channel never notices."""

    async def body(pair: Pair) -> None:
        bob = pair.bob
        keys = [_key(), _key()]
        squatters = [await _session(bob.listen_port, bob.node_id, key) for key in keys]
        await _until(lambda: bob.stranger_links()["connected"] == 2)
        reader, writer, _ = await _session(bob.listen_port, bob.node_id, _key())
        assert await _disconnected(reader), "a newcomer took a place held under the tenure"
        writer.close()
        await asyncio.sleep(2.1)
        reader, writer, _ = await _session(bob.listen_port, bob.node_id, _key())
        assert await _disconnected(squatters[0][0]), "the stranger linked longest stayed"
        back, back_writer, _ = await _session(bob.listen_port, bob.node_id, keys[0])
        assert await _disconnected(back), "the stranger that gave way took another's place"
        back_writer.close()
        assert not await _disconnected(squatters[1][0], timeout=0.3)
        assert not await _disconnected(reader, timeout=0.3), "the newcomer was refused"
        await _until(lambda: bob.stranger_links()["connected"] == 2)
        assert bob.stranger_links()["evicted"] == 1
        assert bob.stranger_links()["refused"] == 2
        assert await pair.pay(10**15) == "succeeded"
        for w in (squatters[1][1], writer):
            w.transport.abort()

    extra = "[policy.peers]\nmax_strangers = 2\nstranger_tenure = 2\n"
    run(with_pair(tmp_path, anvil, body, bob_extra=extra))


async def _customer_funds_a_channel(
    tmp_path: Path,
    anvil: AnvilChain,
    bob_policy: str,
    then: Callable[[HubServer, HubServer], Awaitable[None]],
) -> None:
    """Carol, whom Bob does not know, connects to him (``max_strangers = 1``: a second
    stranger is refused), opens a channel with a deposit of 1 ETH of hers and waits until
    it is active on Bob's side; then ``then(bob, carol)``."""
    extra = f"[policy.peers]\nmax_strangers = 1\n{bob_policy}"
    bob_path = _config(tmp_path, "bob", anvil, 8, extra)
    carol_path = _config(tmp_path, "carol", anvil, 9)
    bob_id = _with_identity(bob_path)
    _with_identity(carol_path)
    _peer(carol_path, bob_id, load_config(bob_path).listen_port)  # Bob does not know Carol
    bob = HubServer(load_config(bob_path))
    await bob.start()
    carol = HubServer(load_config(carol_path))
    await carol.start()
    try:
        assert bob.node is not None and carol.node is not None
        await _until(lambda: carol.node_id in bob.links)
        assert bob.stranger_links()["connected"] == 1  # her place is the only one
        reader, writer, _ = await _session(bob.listen_port, bob.node_id, _key())
        assert await _disconnected(reader), "a second stranger was let in"
        writer.close()
        temp = await carol.call(
            carol.node.open_channel, bob.node_id, CHAIN, {Asset(CHAIN, "native"): (ETH, 0)}, 600
        )
        channel_id = await _until(lambda: carol.node.open_results.get(temp))  # type: ignore[union-attr]

        def active() -> bool:
            assert bob.node is not None
            # (Carol knows the channel id before Bob's node has taken her open)
            channel = bob.node.channels.get(channel_id)
            if channel is not None and channel.active:
                return True
            anvil.mine()
            return False

        await _until(active)
        await then(bob, carol)
    finally:
        await carol.shutdown()
        await bob.shutdown()


def test_a_stranger_that_funds_a_channel_frees_its_place(anvil: AnvilChain, tmp_path: Path) -> None:
    """A new customer connects as a stranger, then opens and funds its channel. Once a
    member, its link stops counting toward ``max_strangers``, so the next newcomer gets in
    (before, the place stayed taken for as long as the customer stayed connected: with
    ``max_strangers`` such customers, every next one was refused). A stranger the operator
    adds as a peer stops counting too."""

    async def then(bob: HubServer, carol: HubServer) -> None:
        await _until(lambda: bob.stranger_links()["connected"] == 0)
        assert bob.stranger_links()["promoted"] == 1
        assert carol.node_id in bob.links  # her link stays; only its count changed
        key = _key()
        reader, writer, _ = await _session(bob.listen_port, bob.node_id, key)
        await _until(lambda: bob.stranger_links()["connected"] == 1)
        assert not await _disconnected(reader, timeout=0.5), "the newcomer was refused"
        newcomer = bytes(key.verify_key)
        bob.add_peer(PeerConfig(newcomer, "127.0.0.1", free_port()))
        assert bob.stranger_links()["connected"] == 0
        assert bob.stranger_links()["promoted"] == 2
        writer.transport.abort()

    run(_customer_funds_a_channel(tmp_path, anvil, "", then))


def test_a_member_whose_channel_closed_counts_as_a_stranger_again(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """Carol funds a channel (her link stops counting), then closes it. Once it is closed
    her link counts toward ``max_strangers`` again at the next tick, and the place she
    takes back is held for a new tenure: the next newcomer is refused. Before, a member
    whose channels had all closed kept its link uncounted for as long as it stayed."""

    async def then(bob: HubServer, carol: HubServer) -> None:
        assert bob.node is not None and carol.node is not None
        await _until(lambda: bob.stranger_links()["promoted"] == 1)
        assert bob.stranger_links()["connected"] == 0
        (channel_id,) = bob.node.channels
        await carol.call(carol.node.close, channel_id)

        def closed() -> bool:
            assert bob.node is not None
            if bob.node.channels[channel_id].status == "closed":
                return True
            anvil.mine()
            return False

        await _until(closed)
        await _until(lambda: bob.stranger_links()["lapsed"] == 1)
        assert bob.stranger_links()["connected"] == 1
        assert bob.links[carol.node_id].stranger
        reader, writer, _ = await _session(bob.listen_port, bob.node_id, _key())
        assert await _disconnected(reader), "a newcomer took the lapsed member's place"
        writer.close()
        assert carol.node_id in bob.links

    run(_customer_funds_a_channel(tmp_path, anvil, "", then))


def test_a_failed_check_of_standing_is_shown_and_leaves_the_other_check_running(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """The tick's check of which members still have standing fails: the operator sees it
    in ``background_errors`` (``member_check``, counted), the check of which strangers
    became members goes on at every tick, and the error clears once a check succeeds."""

    async def body(pair: Pair) -> None:
        bob = pair.bob
        links = bob.peer_links
        promoted = 0
        promote = links.promote_members

        async def counting(node: object) -> int:
            nonlocal promoted
            promoted += 1
            return await promote(node)  # type: ignore[arg-type]

        async def failing(node: object) -> int:
            raise RuntimeError("the node's thread could not say")

        links.promote_members = counting  # type: ignore[method-assign]
        links.demote_lapsed = failing  # type: ignore[method-assign]
        _, writer, _ = await _session(bob.listen_port, bob.node_id, _key())
        await _until(lambda: bob.stats.get("member_check_errors", 0) >= 2)
        assert "member_check" in bob.background_errors
        assert "stranger_check" not in bob.background_errors and promoted >= 2
        del links.demote_lapsed  # the class's again
        await _until(lambda: "member_check" not in bob.background_errors)
        writer.transport.abort()

    run(with_pair(tmp_path, anvil, body))


def test_a_deposit_under_the_stake_asked_leaves_its_peer_a_stranger(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """With ``[[policy.peers.stake]]`` asking 2 ETH of a peer's own, Carol's channel of
    1 ETH gives her no standing: her link keeps counting while she stays, and counts again
    when she connects anew (both checks, the tick's and the admission's, ask the stake)."""
    stake = f'[[policy.peers.stake]]\nasset = "native@{CHAIN}"\nmin = {2 * ETH}\n'

    async def then(bob: HubServer, carol: HubServer) -> None:
        ticks = bob.stats.get("ticks", 0)
        await _until(lambda: bob.stats.get("ticks", 0) >= ticks + 3)
        assert bob.stranger_links()["connected"] == 1
        assert bob.stranger_links()["promoted"] == 0
        old = bob.links[carol.node_id]
        await old.conn.close()  # she dials again
        await _until(lambda: bob.links.get(carol.node_id) not in (None, old))
        assert bob.links[carol.node_id].stranger, "her new link was a member's"
        assert bob.stranger_links()["connected"] == 1

    run(_customer_funds_a_channel(tmp_path, anvil, stake, then))


@pytest.mark.parametrize(
    ("policy", "places"),
    [("max_handshakes = 3", 3), ("max_handshakes_per_host = 2", 2)],
)
def test_connections_that_never_end_their_handshake_cannot_take_every_socket(
    anvil: AnvilChain, tmp_path: Path, policy: str, places: int
) -> None:
    """Before authentication anyone may connect, and a connection that says nothing holds
    a socket and a task until the handshake's timeout. Silent connections fill the
    handshake places (all of them, or one address's share): one more connection is closed
    at once (counted), the peers already linked go on paying, and once the silent ones
    leave a stranger completes its handshake again."""

    async def body(pair: Pair) -> None:
        bob = pair.bob
        silent = [
            await asyncio.open_connection("127.0.0.1", bob.listen_port) for _ in range(places)
        ]
        await _until(lambda: getattr(bob.transport, "_handshaking", 0) == places)
        reader, writer = await asyncio.open_connection("127.0.0.1", bob.listen_port)
        assert await _disconnected(reader, timeout=2.0), "one more handshake was let wait"
        writer.close()
        assert bob.stranger_links()["handshakes_refused"] == 1
        assert await pair.pay(10**15) == "succeeded"
        for _, w in silent:
            w.transport.abort()
        await _until(lambda: getattr(bob.transport, "_handshaking", 0) == 0)
        _, writer, _ = await _session(bob.listen_port, bob.node_id, _key())
        await _until(lambda: bob.stranger_links()["connected"] == 1)
        writer.transport.abort()

    run(with_pair(tmp_path, anvil, body, bob_extra=f"[policy.peers]\n{policy}\n"))


def test_a_stranger_racing_connections_keeps_one_link(anvil: AnvilChain, tmp_path: Path) -> None:
    """One identity connecting 40 times at once: each new link replaces the last, and a
    connection that arrived while an older one was being closed used to be put in its
    place and then overwritten, served on, uncounted by ``max_strangers`` (a review's
    80 racing connections left 40 live at Bob). One link is left, counted once; its
    replaced links are not counted as other strangers (a place for another is left)."""

    async def body(pair: Pair) -> None:
        bob = pair.bob
        key = _key()
        peer = key.verify_key.encode()
        sessions = await asyncio.gather(
            *(_session(bob.listen_port, bob.node_id, key) for _ in range(40))
        )

        def settled() -> bool:
            live = [c for c in bob._listener.connections if c.peer_id == peer and not c.closed]  # type: ignore[union-attr]
            return len(live) == 1 and peer in bob.links

        await _until(settled)
        await asyncio.sleep(0.5)
        assert settled(), "more than one link of one peer"
        assert bob.stranger_links()["connected"] == 1 and bob.stranger_links()["refused"] == 0
        _, other, _ = await _session(bob.listen_port, bob.node_id, _key())
        await _until(lambda: bob.stranger_links()["connected"] == 2)
        for _, writer, _ in [*sessions, (None, other, None)]:
            writer.transport.abort()

    policy = "[policy.peers]\nmax_strangers = 2\nmax_handshakes_per_host = 64\n"
    run(with_pair(tmp_path, anvil, body, bob_extra=policy))


def test_strangers_are_not_held_while_the_node_is_busy(anvil: AnvilChain, tmp_path: Path) -> None:
    """Whether a peer is a channel's member is the node's thread's to say, and that thread
    is busy at times (a graph build, a slow disk). Connections that ended their handshake
    and waited for its answer were held outside every bound (a review: 264 sockets of one
    address for a 0.4 s stall). A peer without any channel of ours is a stranger without
    asking: refused at once beyond ``max_strangers``, however busy the node."""

    async def body(pair: Pair) -> None:
        bob = pair.bob
        busy = asyncio.create_task(bob.in_worker(time.sleep, 2.0))
        await asyncio.sleep(0.1)
        peak = 0
        held = []
        for _ in range(5):
            held += await asyncio.gather(
                *(_session(bob.listen_port, bob.node_id, _key()) for _ in range(8))
            )
            peak = max(peak, len(bob._listener.connections))  # type: ignore[union-attr]
        assert not busy.done(), "the node's thread was not busy all along"
        assert peak <= 2 + 1, f"{peak} connections held (2 strangers and Alice may be)"
        await _until(lambda: bob.stranger_links()["refused"] == 40 - 2)
        assert not busy.done(), "refused only once the node's thread was free"
        await busy
        for _, writer, _ in held:
            writer.transport.abort()

    policy = "[policy.peers]\nmax_strangers = 2\nmax_handshakes_per_host = 64\n"
    run(with_pair(tmp_path, anvil, body, bob_extra=policy))


def test_connections_waiting_to_be_told_members_are_bounded(
    anvil: AnvilChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer with a channel of ours is asked about on the node's thread, and a connection
    waits for the answer holding a socket. Two messages give any identity a channel (one
    it never funds), so while the thread is busy at most ``max_handshakes`` connections
    wait: one more is refused at once. (Every identity here is made to look as if it had a
    channel: what is under test is the wait, not how the channels were made.)"""

    async def body(pair: Pair) -> None:
        bob = pair.bob
        assert bob.node is not None
        monkeypatch.setattr(type(bob.node), "may_be_member", lambda self, peer: True)
        busy = asyncio.create_task(bob.in_worker(time.sleep, 2.0))
        await asyncio.sleep(0.1)
        sessions = [await _session(bob.listen_port, bob.node_id, _key()) for _ in range(10)]
        await _until(lambda: bob.stranger_links()["refused"] == 10 - 3)
        assert not busy.done(), "refused only once the node's thread was free"
        waiting = [c for c in bob._listener.connections if c.peer_id not in bob.links]  # type: ignore[union-attr]
        assert len([c for c in waiting if not c.closed]) <= 3
        await busy
        for _, writer, _ in sessions:
            writer.transport.abort()

    policy = "[policy.peers]\nmax_handshakes = 3\nmax_handshakes_per_host = 64\n"
    run(with_pair(tmp_path, anvil, body, bob_extra=policy))


def _key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()
