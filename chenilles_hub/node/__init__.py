"""The node's I/O shell around the pure core: transport, store (and, later, the rest).

Importing this package stays cheap and needs no optional dependency: the PostgreSQL store
lives in :mod:`chenilles_hub.node.store.postgres` (it imports psycopg) and is imported
only by operators who configure it.
"""

from __future__ import annotations

from .net.transport import (
    ConnectionClosed,
    HandshakeError,
    Listener,
    MemoryNetwork,
    MemoryTransport,
    PeerConnection,
    TcpTransport,
    Transport,
    TransportError,
    WrongPeerIdentity,
    node_id_of,
)
from .store.base import (
    ChannelRecord,
    Conflict,
    Duty,
    InvalidTransition,
    Invoice,
    NotFound,
    NotLeader,
    Payment,
    SchemaError,
    Store,
    StoreError,
    StoreLocked,
)
from .store.sqlite import SQLiteStore

__all__ = [
    "ChannelRecord",
    "Conflict",
    "ConnectionClosed",
    "Duty",
    "HandshakeError",
    "InvalidTransition",
    "Invoice",
    "Listener",
    "MemoryNetwork",
    "MemoryTransport",
    "NotFound",
    "NotLeader",
    "Payment",
    "PeerConnection",
    "SQLiteStore",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreLocked",
    "TcpTransport",
    "Transport",
    "TransportError",
    "WrongPeerIdentity",
    "node_id_of",
]
