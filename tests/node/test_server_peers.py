"""Hostile peers against a running node (in-process servers over real TCP, chain on anvil).

Two honest nodes keep a channel open and pay each other while attackers connect to one of
them: malformed frames, oversized frames, replayed ciphertext, a wrong identity, a peer
that is not allowed. Each attacker is disconnected; the honest channel never notices.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from chenilles_hub.circuit.invoice import Invoice
from chenilles_hub.core import Asset
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.config import load_config
from chenilles_hub.node.net import handshake, wire
from chenilles_hub.node.net.framing import HEADER, MAX_FRAME_BYTES, encode_frame
from chenilles_hub.node.net.transport import (
    TcpTransport,
    TransportError,
    WrongPeerIdentity,
)
from chenilles_hub.node.runtime.server import HubServer

from .test_server_harness import ETH, AnvilChain, anvil, free_port

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]


def _config(tmp_path: Path, name: str, chain: AnvilChain, account: int, extra: str = "") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    path = directory / "hub.toml"
    path.write_text(
        f"""
[node]
name = "{name}"
listen = "127.0.0.1:{free_port()}"
tick_interval = 0.2
reconnect_min = 0.05
reconnect_max = 0.2
{extra}
[api]
listen = "127.0.0.1:0"
[chains.evm]
url = "{chain.url}"
account_key = "{chain.key(account)}"
adjudicator = "{chain.adjudicator}"
from_block = {chain.from_block}
"""
    )
    return path


async def _until(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


class Pair:
    """Alice (dials) and Bob (listens), both HubServers in this process, with a channel."""

    def __init__(self, alice: HubServer, bob: HubServer, channel_id: bytes) -> None:
        self.alice, self.bob, self.channel_id = alice, bob, channel_id

    async def pay(self, amount: int) -> str:
        assert self.alice.node is not None and self.bob.node is not None
        from chenilles_hub.node.api import operations as ops

        chain = self.alice.node.channels[self.channel_id].params.chain
        invoice: Invoice = await self.bob.call(
            self.bob.node.invoice, amount, Asset(chain, "native")
        )
        result = await self.alice.call(
            ops.pay, self.alice.node, self.alice.graph, invoice, 86400, None
        )
        payment = self.alice.node.payments[bytes.fromhex(result["payment_hash"])]
        await _until(lambda: payment.status != "pending")
        return payment.status


def _peer(path: Path, identity: NodeIdentity, port: int) -> None:
    path.write_text(
        path.read_text()
        + f'\n[[peers]]\nnode_id = "{identity.node_id.hex()}"\naddress = "127.0.0.1:{port}"\n'
    )


def _with_identity(path: Path) -> NodeIdentity:
    identity = NodeIdentity()
    seed = path.parent / "data" / "identity.seed"
    seed.parent.mkdir()
    seed.write_text(identity.seed.hex())
    seed.chmod(0o600)
    return identity


async def with_pair(
    tmp_path: Path,
    chain: AnvilChain,
    body: Callable[[Pair], Awaitable[None]],
    bob_extra: str = "",
    alice_tail: str = "",
    closes: bool = False,
) -> None:
    """Both list each other as peers (both dial: one connection must survive).
    ``alice_tail``: TOML appended to Alice's config (another ``[chains.NAME]`` table).
    ``closes``: the body closes the channel (no payment through it afterwards)."""
    bob_path = _config(tmp_path, "bob", chain, 8, bob_extra)
    alice_path = _config(tmp_path, "alice", chain, 9)
    alice_path.write_text(alice_path.read_text() + alice_tail)
    bob_id, alice_id = _with_identity(bob_path), _with_identity(alice_path)
    _peer(bob_path, alice_id, load_config(alice_path).listen_port)
    _peer(alice_path, bob_id, load_config(bob_path).listen_port)
    bob = HubServer(load_config(bob_path))
    await bob.start()
    alice = HubServer(load_config(alice_path))
    await alice.start()
    try:
        await _until(lambda: bob.node_id in alice.links and alice.node_id in bob.links)
        assert alice.node is not None
        asset = Asset(next(iter(alice.node.backends)), "native")
        temp = await alice.call(
            alice.node.open_channel, bob.node_id, asset.chain, {asset: (ETH, 0)}, 600
        )
        channel_id = await _until(lambda: alice.node.open_results.get(temp))  # type: ignore[union-attr]

        def active() -> bool:
            assert alice.node is not None and bob.node is not None
            # (Alice knows the channel id before Bob's node has taken her open)
            channels = (alice.node.channels.get(channel_id), bob.node.channels.get(channel_id))
            if all(c is not None and c.active for c in channels):
                return True
            chain.mine()  # deposits reach the confirmation depth as blocks come
            return False

        await _until(active)
        pair = Pair(alice, bob, channel_id)
        assert await pair.pay(10**15) == "succeeded"
        await body(pair)
        if not closes:
            assert await pair.pay(10**15) == "succeeded", "the honest channel was affected"
        assert bob.node_id in alice.links
    finally:
        await alice.shutdown()
        await bob.shutdown()


async def _raw_session(
    host: str, port: int, server_id: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, handshake.Session]:
    reader, writer = await asyncio.open_connection(host, port)
    key = nacl.signing.SigningKey.generate()
    session = await handshake.initiate(reader, writer, handshake.as_signer(key), server_id)
    return reader, writer, session


async def _disconnected(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """True once the server closed the connection (EOF), reading whatever it sent first."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
        return True
    except (TimeoutError, ConnectionError):
        return False


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


def test_malformed_frames_disconnect_only_that_peer(anvil: AnvilChain, tmp_path: Path) -> None:
    async def attack(pair: Pair) -> None:
        bob = pair.bob
        for garbage in (b"not json", b'{"type":"propose","junk":1}', b"\x01{not json", b"[1,2]"):
            reader, writer, session = await _raw_session("127.0.0.1", bob.listen_port, bob.node_id)
            writer.write(encode_frame(session.send.encrypt(garbage), MAX_FRAME_BYTES))
            await writer.drain()
            assert await _disconnected(reader), garbage
            writer.close()
        assert bob.stats.get("messages_malformed", 0) >= 4
        assert bob.stats.get("peers_dropped", 0) >= 4

    run(with_pair(tmp_path, anvil, attack))


def test_oversized_and_replayed_frames_disconnect(anvil: AnvilChain, tmp_path: Path) -> None:
    async def attack(pair: Pair) -> None:
        bob = pair.bob
        # A frame announcing more than the limit: refused before its body is read.
        reader, writer, _ = await _raw_session("127.0.0.1", bob.listen_port, bob.node_id)
        writer.write(HEADER.pack(MAX_FRAME_BYTES + 1) + os.urandom(64))
        await writer.drain()
        assert await _disconnected(reader)
        writer.close()
        # A replayed ciphertext (an old message sent again): it fails authentication.
        reader, writer, session = await _raw_session("127.0.0.1", bob.listen_port, bob.node_id)
        hello = wire.encode(wire.OpenRefused(os.urandom(32), "x"))
        frame = encode_frame(session.send.encrypt(hello), MAX_FRAME_BYTES)
        writer.write(frame + frame)
        await writer.drain()
        assert await _disconnected(reader)
        writer.close()

    run(with_pair(tmp_path, anvil, attack))


def test_wrong_identity_and_unknown_peers_are_refused(anvil: AnvilChain, tmp_path: Path) -> None:
    async def attack(pair: Pair) -> None:
        bob = pair.bob
        stranger = TcpTransport(NodeIdentity())
        # Dialling Bob's address while expecting another node: the handshake proves who
        # answers, so the client refuses (a MITM cannot pretend to be Bob, nor Bob someone else).
        with pytest.raises(WrongPeerIdentity):
            await stranger.connect("127.0.0.1", bob.listen_port, os.urandom(32))
        # Bob only accepts configured peers: a stranger is dropped after the handshake.
        conn = await stranger.connect("127.0.0.1", bob.listen_port, bob.node_id)
        with pytest.raises(TransportError):
            async with asyncio.timeout(5):
                await conn.recv()
        await conn.close()

    run(with_pair(tmp_path, anvil, attack, bob_extra="accept_unknown_peers = false\n"))


def test_dropping_the_connection_mid_payment_both_sides_agree(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    async def cut(pair: Pair) -> None:
        alice, bob = pair.alice, pair.bob
        assert alice.node is not None and bob.node is not None
        for _ in range(5):
            task = asyncio.create_task(pair.pay(10**14))
            await asyncio.sleep(0.005)
            link = bob.links.get(alice.node_id)
            if link is not None:
                await link.conn.close()  # the TCP connection dies; both sides reconnect
            assert await task in ("succeeded", "failed")
        await _until(lambda: alice.node_id in bob.links)
        ours = alice.node.channels[pair.channel_id].machine
        theirs = bob.node.channels[pair.channel_id].machine
        await _until(lambda: ours.idle and theirs.idle and ours.state == theirs.state)
        assert not ours.state.htlcs

    run(with_pair(tmp_path, anvil, cut))


def test_a_configured_peer_with_another_identity_is_never_linked(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    async def impostor(pair: Pair) -> None:
        alice = pair.alice
        fake = os.urandom(32)
        from chenilles_hub.node.config import PeerConfig

        alice.add_peer(PeerConfig(fake, "127.0.0.1", pair.bob.listen_port))
        await asyncio.sleep(0.5)
        assert fake not in alice.links
        assert json.dumps(alice.stats)  # still serving

    run(with_pair(tmp_path, anvil, impostor))


def test_a_peer_that_never_reads_is_dropped_and_stalls_nothing(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    """A peer floods requests that each get an answer, and never reads the answers. Its
    messages pile up in its own outbox only: the node drops it once that is full, keeps
    answering its API and its honest peer, and never blocks on the silent socket."""

    async def attack(pair: Pair) -> None:
        bob = pair.bob
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", bob.listen_port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        key = nacl.signing.SigningKey.generate()
        session = await handshake.initiate(reader, writer, handshake.as_signer(key), bob.node_id)
        unknown = Asset("eip155:1", "native")  # a chain bob does not serve: refused each time
        for i in range(20_000):
            request = wire.OpenRequest(
                os.urandom(32), "x" * 96, (unknown,), ((1, 1),), 600, os.urandom(32), "k" * 20
            )
            writer.write(encode_frame(session.send.encrypt(wire.encode(request)), MAX_FRAME_BYTES))
            if i % 500 == 0:
                await asyncio.sleep(0)
        await _until(lambda: bob.stats.get("peers_not_reading", 0) >= 1, timeout=30)
        assert await asyncio.wait_for(bob.call(lambda: 42), 5) == 42
        writer.transport.abort()

    run(with_pair(tmp_path, anvil, attack))
