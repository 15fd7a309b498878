"""Sealed per-hop routing instructions ("onion"): each node on a circuit can read only its
own instruction (where to forward, how much, in which asset, until when) and an opaque
blob for the next node.

Layers are sealed with libsodium sealed boxes to each node's X25519 image of its ed25519
id, and encoded with msgpack (binary, so nesting does not inflate like base64 would).
Unlike Lightning's Sphinx packets, layers are not padded to a fixed size: a node can guess
its distance to the payee from the blob's size. That is a known privacy limitation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec
import nacl.exceptions

from ..core.model import MAX_ONION, Asset
from ..identity import NodeIdentity, seal_to
from .errors import BadOnion
from .quote import MAX_QUOTE_BYTES, Quote, encode_quote


class HopPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """For a forwarding node: the HTLC to offer next. For the payee (``final``): what the
    incoming HTLC must carry. Amounts are 32-byte big-endian (msgpack ints stop at 64 bits).

    ``quote``: where the next HTLC is in another asset than the incoming one, the
    forwarding hub's own signed quote for that conversion (``encode_quote``), which it
    checks and uses up (``QuoteBook``); without one it refuses (``quote_required``).

    ``deadline`` (for a forwarding node; 0: none): the payer's bound on how long the
    payment may stay pending. If the next HTLC is still waiting to be offered then (the next
    peer is offline, or the channel has no free HTLC slot), the forwarder fails the
    incoming HTLC back instead, so the payer's money is unlocked within its bound."""

    final: bool
    amount: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    asset: Asset
    expiry: int
    next_channel: Annotated[bytes, msgspec.Meta(max_length=32)] = b""
    quote: Annotated[bytes, msgspec.Meta(max_length=MAX_QUOTE_BYTES)] = b""
    inner: Annotated[bytes, msgspec.Meta(max_length=MAX_ONION)] = b""
    deadline: Annotated[int, msgspec.Meta(ge=0, lt=2**40)] = 0

    @property
    def amount_int(self) -> int:
        return int.from_bytes(self.amount, "big")


class OnionHop(msgspec.Struct, frozen=True):
    """One hop as the payer plans it: the node that receives the HTLC on ``channel``.
    ``quote``: the sending hub's quote, where this hop's asset differs from the previous."""

    node: bytes
    channel: bytes
    amount: int
    asset: Asset
    expiry: int
    quote: Quote | None = None


_decoder = msgspec.msgpack.Decoder(HopPayload)


#: Seconds between the deadlines of consecutive forwarders: the one further downstream gives
#: up first, so its fail reaches the one before it (one round trip, a timer tick) in time.
FAIL_BACK_MARGIN = 2


def build_onion(hops: Sequence[OnionHop], deadline: int = 0) -> bytes:
    """The blob the payer attaches to its first HTLC (``hops[0]``). Each receiving node's
    layer tells it the next hop; the last node's layer tells it what it should receive.
    ``deadline`` (0: none): when the payer gives up; forwarder ``i`` (from the payer) must
    have offered its next HTLC by ``deadline - FAIL_BACK_MARGIN * (i + 1)``."""
    if not hops:
        raise ValueError("a circuit has at least one hop")
    last = hops[-1]
    layer = seal_to(
        last.node,
        msgspec.msgpack.encode(
            HopPayload(True, last.amount.to_bytes(32, "big"), last.asset, last.expiry)
        ),
    )
    forwarders = len(hops) - 1
    for back, (receiver, nxt) in enumerate(
        zip(reversed(hops[:-1]), reversed(hops[1:]), strict=True)
    ):
        index = forwarders - 1 - back
        hop_deadline = max(1, deadline - FAIL_BACK_MARGIN * (index + 1)) if deadline else 0
        payload = HopPayload(
            final=False,
            amount=nxt.amount.to_bytes(32, "big"),
            asset=nxt.asset,
            expiry=nxt.expiry,
            next_channel=nxt.channel,
            quote=encode_quote(nxt.quote) if nxt.quote is not None else b"",
            inner=layer,
            deadline=hop_deadline,
        )
        layer = seal_to(receiver.node, msgspec.msgpack.encode(payload))
    if len(layer) > MAX_ONION:
        raise ValueError(f"route too long for the onion limit ({len(layer)} > {MAX_ONION})")
    return layer


def peel(identity: NodeIdentity, onion: bytes) -> HopPayload:
    """This node's instruction; raises BadOnion if the layer is not for us or tampered."""
    try:
        return _decoder.decode(identity.unseal(onion))
    except (nacl.exceptions.CryptoError, msgspec.DecodeError, ValueError) as exc:
        raise BadOnion(f"cannot open the routing instructions: {exc}") from None
