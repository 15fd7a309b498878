"""The watcher's HTLC duties (``duty/``: a refund per HTLC we offered, a claim per HTLC paid
to us whose preimage we know) are settings of their own, no longer inside the node's state
(``node-state/v1``).

No statement: the node moves what an older store holds at its first checkpoint after the
upgrade (``Watcher`` takes them out of the state it is given). The migration is recorded so
that an older program refuses this store (``SchemaError``) instead of opening it without
reading these records: it would hold no duty for any HTLC in flight, so a peer that never
settles or fails an HTLC would keep it past its expiry, and our claim of an HTLC paid to
us would never be made on-chain.
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = ()
POSTGRES: tuple[str, ...] = ()
