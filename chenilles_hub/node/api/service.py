"""What the API needs from a running node, as a protocol.

The runtime's server implements it; the API depends only on this, so the layers stay
one-way (runtime -> api -> hub) and the API can be served by anything that keeps this
contract (a test harness, a future multi-node process)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ...core import Asset
from ..config import NodeConfig, PeerConfig
from ..hub.graph_view import GraphView
from ..hub.node import Node
from .auth import TokenBook

T = TypeVar("T")


class TransferFailed(Exception):
    """A direct transfer was refused (by our channel's checks or by the peer)."""


class NodeService(Protocol):
    token: str
    #: The admin token and the scoped tokens created at run time.
    tokens: TokenBook
    role: str  # starting, standby, leader, stopping
    config: NodeConfig
    #: ``None`` while this process is a standby waiting for the leader lease.
    node: Node | None
    graph: GraphView
    stats: dict[str, int]
    #: chain name -> seconds its last poll held the node's thread
    chain_polls: dict[str, float]
    #: chain name -> seconds its last fetch took off the node's thread (the chain's RPC)
    chain_fetches: dict[str, float]
    #: Background tasks (tick, backup, announce) whose last run failed: (error, unix time).
    background_errors: dict[str, tuple[str, int]]
    started_at: float
    listen_port: int
    api_port: int

    @property
    def node_id(self) -> bytes: ...

    @property
    def peers(self) -> Mapping[bytes, PeerConfig]:
        """Peers this node dials (configured or added at run time)."""
        ...

    def connections(self) -> dict[bytes, bool]:
        """Peers connected now, each with whether they dialled us (inbound)."""
        ...

    def stranger_links(self) -> dict[str, int]:
        """Links of peers neither configured nor in a channel with us (``connected``), their
        bound (``max``), connections refused at the bounds (``refused``,
        ``handshakes_refused``), strangers whose links stopped counting (``promoted``:
        members or added peers since), strangers that gave way to newcomers
        (``evicted``) and members' links that count again, their standing lapsed
        (``lapsed``)."""
        ...

    def load(self) -> Mapping[str, float | int]:
        """How loaded the node's worker and writer threads are, totals since the start
        (``Pipeline.load``): ``busy_seconds``, ``busy_cpu_seconds``, ``items_handled``,
        ``write_seconds``."""
        ...

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a view on the node's thread; answered once what it shows is durable."""
        ...

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a request on the node's thread in the next group commit."""
        ...

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the node's thread now, outside the group commit (a pure check)."""
        ...

    async def transfer(self, channel_id: bytes, asset: Asset, amount: int) -> int: ...

    async def transfers(
        self, items: list[tuple[bytes, Asset, int]]
    ) -> list[int | TransferFailed]: ...

    def payment_outcome(self, payment_hash: bytes) -> contextlib.AbstractContextManager[Any]: ...

    def add_peer(self, peer: PeerConfig) -> None: ...

    def remove_peer(self, node_id: bytes) -> bool: ...

    def request_stop(self, reason: str = "requested", exit_code: int = 0) -> None: ...

    async def backup(self, *, write: bool) -> dict[str, Any]:
        """The sealed channel backup (base64) with a summary, or (``write``) write the
        backup file now and say where; built from what is durable."""
        ...

    def save_setting(self, key: str, value: bytes) -> None:
        """Write one record to the store now (tokens): call it on the node's thread."""
        ...
