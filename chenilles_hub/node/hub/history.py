"""The operator's history of forwards: each forward that settled is a record of its own in
the store (``forward/<settled at>/<incoming channel>/<htlc>``, written with the checkpoint
of the event that settled it), so the in-memory node stays bounded by what is in flight
while the history is read from the store, by time range, when asked.

Fees earned are per asset, in the outgoing asset's base units: for a same-asset forward
what came in minus what went out; for a conversion, the fee of the quote it used (the
rate's own spread is not counted as a fee).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...circuit.errors import CircuitError
from ...core import Asset, Htlc
from ..store.base import Store
from .records import ForwardLink

FORWARD_PREFIX = "forward/"
#: Forwards one query returns at most (the newest first); totals cover all in the range.
MAX_FORWARDS_LISTED = 1000


class InvoiceCancelled(CircuitError):
    """The payee cancelled the invoice; an HTLC arriving for it is failed back."""

    code = "invoice_cancelled"


class ForwardRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    settled_at: int
    started_at: int
    payment_hash: bytes
    in_channel: bytes
    in_asset: Asset
    in_amount: int
    out_channel: bytes
    out_asset: Asset
    out_amount: int
    fee: int


def forward_key(settled_at: int, in_channel: bytes, in_htlc: int) -> str:
    # Zero-padded seconds: keys sort by time, so a range is a contiguous run of keys.
    return f"{FORWARD_PREFIX}{settled_at:012d}/{in_channel.hex()}/{in_htlc}"


def forward_record(
    link: ForwardLink, incoming: Htlc, outgoing: Htlc, now: int
) -> tuple[str, bytes]:
    """The store key and value of a forward that settled ``now``."""
    record = ForwardRecord(
        settled_at=now,
        started_at=link.started,
        payment_hash=incoming.payment_hash,
        in_channel=link.in_channel,
        in_asset=incoming.asset,
        in_amount=incoming.amount,
        out_channel=link.out_channel,
        out_asset=outgoing.asset,
        out_amount=outgoing.amount,
        fee=link.fee,
    )
    return forward_key(now, link.in_channel, link.in_htlc), msgspec.json.encode(record)


def _settled_at(key: str) -> int:
    stamp = key.removeprefix(FORWARD_PREFIX).partition("/")[0]
    return int(stamp) if stamp.isdigit() else -1


def forwards(store: Store | None, since: int = 0, until: int | None = None) -> dict[str, Any]:
    """Forwards settled in ``[since, until]`` (node clock seconds), newest first, with the
    fees earned per asset and the counts over the whole range."""
    if store is None:
        return {"forwards": [], "totals": [], "count": 0}
    decoder = msgspec.json.Decoder(ForwardRecord)
    rows: list[ForwardRecord] = []
    for key, value in store.settings_with_prefix(FORWARD_PREFIX):
        when = _settled_at(key)
        if when < since or (until is not None and when > until):
            continue
        rows.append(decoder.decode(value))
    rows.sort(key=lambda r: r.settled_at, reverse=True)
    totals: dict[Asset, dict[str, int]] = {}
    for row in rows:
        entry = totals.setdefault(row.out_asset, {"forwards": 0, "fees": 0, "volume": 0})
        entry["forwards"] += 1
        entry["fees"] += row.fee
        entry["volume"] += row.out_amount
    return {
        "forwards": [forward_view(r) for r in rows[:MAX_FORWARDS_LISTED]],
        "totals": [{"asset": str(asset), **entry} for asset, entry in sorted(totals.items())],
        "count": len(rows),
    }


def forward_view(row: ForwardRecord) -> dict[str, Any]:
    return {
        "settled_at": row.settled_at,
        "started_at": row.started_at,
        "payment_hash": row.payment_hash.hex(),
        "in_channel": row.in_channel.hex(),
        "in_asset": str(row.in_asset),
        "in_amount": row.in_amount,
        "out_channel": row.out_channel.hex(),
        "out_asset": str(row.out_asset),
        "out_amount": row.out_amount,
        "fee": row.fee,
        "fee_asset": str(row.out_asset),
    }
