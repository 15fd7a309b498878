"""Rate quotes: the hub's promise to convert one asset into another at a fixed rate.

A quote is a free option for the payer: between receiving it and paying, the payer can
watch the market and pay only if the rate moved in its favour. The hub limits that option
by keeping quotes short-lived (``DEFAULT_QUOTE_TTL`` seconds, and the HTLC must arrive
before the quote expires) and by pricing a spread into the rate. See docs/circuits.md.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import msgspec

from ..core.model import Asset, Bytes32, UnixTime
from ..identity import NodeIdentity, verify_signature
from .errors import InvalidQuote, QuoteExpired

#: Seconds a quote stays valid. Long enough for a payer to build a route and lock the
#: first HTLC (a few hundred ms here, seconds across the internet), short enough that
#: the option it grants is worth little in a volatile market.
DEFAULT_QUOTE_TTL = 30
_DOMAIN = b"chenilles/quote/v1\x00"


class Rate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """out = floor(in * numerator / denominator): integers, so no rounding surprises."""

    numerator: Annotated[int, msgspec.Meta(gt=0)]
    denominator: Annotated[int, msgspec.Meta(gt=0)]

    def convert(self, amount_in: int) -> int:
        return amount_in * self.numerator // self.denominator

    def required_input(self, amount_out: int) -> int:
        """The least input whose conversion covers ``amount_out``."""
        return -(-amount_out * self.denominator // self.numerator)


class Quote(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    quote_id: Bytes32
    hub: Bytes32
    asset_in: Asset
    asset_out: Asset
    amount_out: Annotated[int, msgspec.Meta(gt=0)]
    amount_in: Annotated[int, msgspec.Meta(gt=0)]
    rate: Rate
    fee: Annotated[int, msgspec.Meta(ge=0)]  # in asset_out, included in amount_in
    expires_at: UnixTime
    signature: Annotated[bytes, msgspec.Meta(max_length=64)] = b""

    def signing_bytes(self) -> bytes:
        return _DOMAIN + msgspec.json.encode(msgspec.structs.replace(self, signature=b""))


def make_quote(
    hub: NodeIdentity,
    asset_in: Asset,
    asset_out: Asset,
    amount_out: int,
    rate: Rate,
    fee: int,
    now: int,
    ttl: int = DEFAULT_QUOTE_TTL,
) -> Quote:
    quote = Quote(
        quote_id=secrets.token_bytes(32),
        hub=hub.node_id,
        asset_in=asset_in,
        asset_out=asset_out,
        amount_out=amount_out,
        amount_in=rate.required_input(amount_out + fee),
        rate=rate,
        fee=fee,
        expires_at=now + ttl,
    )
    return msgspec.structs.replace(quote, signature=hub.sign(quote.signing_bytes()))


def check_quote(quote: Quote, now: int) -> None:
    """Signed by its hub, still valid, and internally consistent."""
    if not verify_signature(quote.hub, quote.signing_bytes(), quote.signature):
        raise InvalidQuote("the quote is not signed by its hub")
    if now >= quote.expires_at:
        raise QuoteExpired(f"the quote expired at {quote.expires_at} (now {now})")
    if quote.rate.convert(quote.amount_in) < quote.amount_out + quote.fee:
        raise InvalidQuote("amount_in does not cover amount_out plus the fee at the quoted rate")
