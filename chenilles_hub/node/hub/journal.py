"""What a node must remember besides its channels' snapshots, in one versioned value.

The node writes this value and every snapshot an event changed in one transaction
(``Store.save_checkpoint``) before any message the event produced leaves: after a crash it
resumes from a consistent pair, never from a snapshot that its forwarding links, watcher
duties or payments do not know about.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import msgspec

from chenilles_hub.backend import TxReceipt
from chenilles_hub.circuit.invoice import Invoice
from chenilles_hub.circuit.quote import IssuedQuote
from chenilles_hub.core import Asset, Htlc, Update
from chenilles_hub.core.watcher import HtlcDuty, WatcherState

from .records import ForwardLink


class ChannelMeta(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A channel's record beside its snapshot. Built by keyword only: a field dropped or
    added never shifts the others (a positional caller wrote ``in_flight`` into
    ``next_htlc_seq`` once the field went)."""

    channel_id: bytes
    deposits: tuple[tuple[Asset, tuple[int, int]], ...]
    #: the queue without its direct transfers (``records.unwritten_update``)
    queue: tuple[Update, ...]
    next_htlc_seq: int
    funded_by_me: bool
    funded_by_peer: bool
    status: str
    concluded: bool = False
    withdrawn: tuple[Asset, ...] = ()
    last_error: str = ""
    last_error_at: int = 0
    #: what the channel's transactions cost (absent from records written before)
    receipts: tuple[TxReceipt, ...] = ()
    #: Unused (the updates of a proposal in flight are in the snapshot's pending
    #: proposal): always written empty, so that a node of an earlier version, which
    #: requires it, still reads the record (a downgrade).
    in_flight: tuple[Update, ...] = ()


class InvoiceRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    invoice: Invoice
    preimage: bytes
    paid: bool
    cancelled: bool = False


class NodeStateV1(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The watcher's state: its disputes and actions. Its guards and HTLC duties, the
    channels, payments, invoices and what is in flight (HTLCs, forward links, preimages)
    are records of their own (below), written only when they change, so a checkpoint costs
    what the event changed."""

    #: Read from stores written before the HTLCs, links and preimages in flight became
    #: records of their own (``HTLC_PREFIX``, ``LINK_PREFIX``, ``PREIMAGE_PREFIX``);
    #: written empty since.
    preimages: tuple[tuple[bytes, bytes], ...] = ()
    htlcs: tuple[tuple[bytes, Htlc], ...] = ()
    links: tuple[ForwardLink, ...] = ()
    watcher: WatcherState = WatcherState()
    #: Read from stores written before quotes became records of their own
    #: (``QUOTE_PREFIX``); written empty since.
    quotes: tuple[IssuedQuote, ...] = ()


NODE_STATE_KEY = "node-state/v1"
CHANNEL_PREFIX = "channel/"
PAYMENT_PREFIX = "payment/"
INVOICE_PREFIX = "invoice/"
#: ``guard/<channel id hex>``: b"1" while the watcher guards the channel (refutes any
#: registration older than our latest state), from its creation until the chain's conclusion
#: is final; deleted then.
GUARD_PREFIX = "guard/"
#: ``quote/<quote id hex>``: a quote we issued and have not seen expire (a payer may still
#: hold it), deleted once it has.
QUOTE_PREFIX = "quote/"
#: ``funding/<channel id hex>/<asset>``: b"submitted@<chain time>" once we send our deposit of
#: that asset to the chain (written before sending it), b"confirmed" once the chain reported it.
FUNDING_PREFIX = "funding/"
#: ``record/<channel id hex>/<part>``: a part of the backend's per-channel record
#: (``ChannelRecords``: on Bitcoin the peer's revocation secrets and what recognises a
#: commitment on-chain), written with the channel state it belongs to.
RECORD_PREFIX = "record/"
#: ``htlc/<channel id hex>/<HTLC id>``: an HTLC in flight, offered or received (JSON of the
#: core's ``Htlc``), deleted once it is resolved for good.
HTLC_PREFIX = "htlc/"
#: ``link/<outgoing channel id hex>/<outgoing HTLC id>``: a forward's way back to the HTLC
#: it came in on (JSON of ``ForwardLink``), deleted once settled or failed upstream.
LINK_PREFIX = "link/"
#: ``preimage/<payment hash hex>``: a preimage we must still reveal or enforce (its 32
#: bytes), deleted once no HTLC in flight has its hash.
PREIMAGE_PREFIX = "preimage/"
#: ``duty/<channel id hex>/<HTLC id>``: the watcher's duty for an HTLC in flight (JSON of
#: ``RefundOutgoing`` or ``ClaimIncoming``: go on-chain by its time if the peer will not
#: resolve it), deleted once the HTLC is resolved or the channel retired.
DUTY_PREFIX = "duty/"
T = TypeVar("T")
_decoder = msgspec.json.Decoder(NodeStateV1)


def record_key(channel_id: bytes, part: str) -> str:
    return f"{RECORD_PREFIX}{channel_id.hex()}/{part}"


def record_parts(rows: Iterable[tuple[str, bytes]]) -> dict[str, dict[str, bytes]]:
    """The ``record_key`` settings among ``rows``, by channel id (hex) and part: what a
    restart gives each backend and what a backup holds. An empty value is a dropped part."""
    parts: dict[str, dict[str, bytes]] = {}
    for key, value in rows:
        channel_hex, slash, part = key.removeprefix(RECORD_PREFIX).partition("/")
        if slash and value:
            parts.setdefault(channel_hex, {})[part] = value
    return parts


def htlc_key(channel_id: bytes, htlc_id: int) -> str:
    return f"{HTLC_PREFIX}{channel_id.hex()}/{htlc_id}"


def htlc_channel(key: str) -> bytes:
    """The channel id of an ``htlc_key`` (the HTLC's own id is in its record)."""
    return bytes.fromhex(key.removeprefix(HTLC_PREFIX).partition("/")[0])


def link_key(out_channel: bytes, out_htlc: int) -> str:
    return f"{LINK_PREFIX}{out_channel.hex()}/{out_htlc}"


def duty_key(channel_id: bytes, htlc_id: int) -> str:
    return f"{DUTY_PREFIX}{channel_id.hex()}/{htlc_id}"


_duty_decoder: msgspec.json.Decoder[HtlcDuty] = msgspec.json.Decoder(HtlcDuty)


def decode_duty(data: bytes) -> HtlcDuty:
    """A ``DUTY_PREFIX`` record (a tagged union: ``decode_record`` takes one type)."""
    return _duty_decoder.decode(data)


def encode_node_state(state: NodeStateV1) -> bytes:
    return msgspec.json.encode(state)


def decode_node_state(data: bytes) -> NodeStateV1:
    return _decoder.decode(data)


def encode_record(record: object) -> bytes:
    return msgspec.json.encode(record)


def decode_record(data: bytes, kind: type[T]) -> T:
    return msgspec.json.decode(data, type=kind)
