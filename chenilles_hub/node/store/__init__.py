"""Durable state: one store interface (``base``), two SQL backends (``sqlite``,
``postgres``) and the ordered schema ``migrations`` they share.

The PostgreSQL store imports psycopg, so it is imported only by operators who configure it:
``from chenilles_hub.node.store.postgres import PostgresStore``.
"""

from .base import (
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

__all__ = [
    "ChannelRecord",
    "Conflict",
    "Duty",
    "InvalidTransition",
    "Invoice",
    "NotFound",
    "NotLeader",
    "Payment",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreLocked",
]
