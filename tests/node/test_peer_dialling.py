"""A dial loop ends when the node stops, even if its cancellation was lost on the way
(Python 3.11's ``wait_for`` could swallow one: a stopping node went on dialling, and a
shutdown that gathered the loop never ended, seen once in CI)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from chenilles_hub.node.config import load_config
from chenilles_hub.node.hub.graph_view import GraphView
from chenilles_hub.node.runtime.peers import Peers

pytestmark = pytest.mark.node

PEER = hashlib.sha256(b"a peer that never answers").hexdigest()


class NobodyAnswers:
    """The transport, at a boundary this test is not about: every dial is refused."""

    def __init__(self) -> None:
        self.dials = 0

    async def connect(self, host: str, port: int, peer_id: bytes) -> object:
        self.dials += 1
        raise OSError("connection refused")


class NodeStopping:
    """The pipeline as the dial loop sees it: is the node stopping?"""

    closing = False
    node = None


def test_a_dial_loop_ends_when_the_node_stops_though_never_cancelled(tmp_path: Path) -> None:
    config_file = tmp_path / "hub.toml"
    config_file.write_text(
        "[node]\nreconnect_min = 0.01\nreconnect_max = 0.02\n"
        f'[[peers]]\nnode_id = "{PEER}"\naddress = "127.0.0.1:9"\n'
    )
    config = load_config(config_file)
    transport, pipeline = NobodyAnswers(), NodeStopping()
    peers = Peers(
        config,
        b"\x01" * 32,
        transport,  # type: ignore[arg-type]
        GraphView(),
        pipeline,  # type: ignore[arg-type]
        asyncio.ensure_future,
        lambda *_: None,
    )

    async def scenario() -> None:
        loop = asyncio.create_task(peers.dial_loop(config.peers[0]))
        await asyncio.sleep(0.1)
        assert not loop.done() and transport.dials >= 2  # dialling, with backoff
        pipeline.closing = True
        await asyncio.wait_for(loop, 1.0)  # ends by itself: nobody cancels it
        dials = transport.dials
        await asyncio.sleep(0.05)
        assert transport.dials == dials

    asyncio.run(scenario())
