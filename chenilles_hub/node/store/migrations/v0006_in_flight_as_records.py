"""The HTLCs, forward links and preimages in flight (``htlc/``, ``link/``, ``preimage/``)
are settings of their own, no longer inside the node's state (``node-state/v1``).

No statement: the node moves what an older store holds at its first checkpoint after the
upgrade (``Persistence.restore``). The migration is recorded so that an older program
refuses this store (``SchemaError``) instead of opening it without reading these records:
it would forget every HTLC in flight, so a preimage learnt downstream would no longer be
passed upstream, and a forward's incoming HTLC would be lost to its expiry.
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = ()
POSTGRES: tuple[str, ...] = ()
