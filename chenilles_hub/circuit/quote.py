"""Rate quotes: the hub's promise to convert one asset into another at a fixed rate.

A quote is a free option for the payer: between receiving it and paying, the payer can
watch the market and pay only if the rate moved in its favour. The hub limits that option
by keeping quotes short-lived (``DEFAULT_QUOTE_TTL`` seconds, and the HTLC must arrive
before the quote expires) and by pricing a spread into the rate. See docs/circuits.md.

Quotes are binding, not advisory (issue 12, item 7): a hop that changes asset names the
hub's signed quote in its onion layer, and the hub forwards only what the quote covers,
once, while it is valid (:class:`QuoteBook`). A quote's id alone proves nothing; the hub
remembers every quote it issued until it expires, each a record written with its node's
checkpoint, so a restart does not forget a quote a payer holds.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import msgspec

from ..core.messages import BoundedCodec
from ..core.model import Asset, Bytes32, UnixTime, parse_asset
from ..identity import NodeIdentity, verify_signature
from .errors import (
    InvalidQuote,
    QuoteExpired,
    QuoteMismatch,
    QuoteRequired,
    QuoteUsed,
    TooManyQuotes,
    UnknownQuote,
)

#: Seconds a quote stays valid. Long enough for a payer to build a route and lock the
#: first HTLC (a few hundred ms here, seconds across the internet), short enough that
#: the option it grants is worth little in a volatile market.
DEFAULT_QUOTE_TTL = 30
#: Live quotes a hub remembers at most (30 s each: ~330 quotes a second sustained).
MAX_LIVE_QUOTES = 10_000
#: Bound on an encoded quote (it travels inside an onion layer); a real one is ~500 bytes.
MAX_QUOTE_BYTES = 1024
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


_codec: BoundedCodec[Quote] = BoundedCodec(Quote, "quote", MAX_QUOTE_BYTES)


def encode_quote(quote: Quote) -> bytes:
    """The form a quote travels in (a payer's onion layer for the converting hub)."""
    return _codec.encode(quote)


def decode_quote(data: bytes) -> Quote:
    try:
        return _codec.decode(data)
    except Exception as exc:  # DecodeError, MessageTooLarge, a bad amount: all "malformed"
        raise InvalidQuote(f"malformed quote: {exc}") from None


def quote_view(quote: Quote) -> dict[str, Any]:
    """The JSON object the API hands a payer (hex bytes, ``token@chain`` assets)."""
    return {
        "quote_id": quote.quote_id.hex(),
        "hub": quote.hub.hex(),
        "asset_in": str(quote.asset_in),
        "asset_out": str(quote.asset_out),
        "amount_in": quote.amount_in,
        "amount_out": quote.amount_out,
        "rate": {"numerator": quote.rate.numerator, "denominator": quote.rate.denominator},
        "fee": quote.fee,
        "expires_at": quote.expires_at,
        "signature": quote.signature.hex(),
    }


def parse_quote_view(view: Mapping[str, Any]) -> Quote:
    """The inverse of :func:`quote_view`; raises ``InvalidQuote`` on anything malformed."""
    try:
        rate = view["rate"]
        fields = {
            "quote_id": bytes.fromhex(view["quote_id"]),
            "hub": bytes.fromhex(view["hub"]),
            "asset_in": parse_asset(view["asset_in"]),
            "asset_out": parse_asset(view["asset_out"]),
            "amount_out": view["amount_out"],
            "amount_in": view["amount_in"],
            "rate": {"numerator": rate["numerator"], "denominator": rate["denominator"]},
            "fee": view["fee"],
            "expires_at": view["expires_at"],
            "signature": bytes.fromhex(view["signature"]),
        }
        return msgspec.convert(fields, Quote)
    except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
        raise InvalidQuote(f"malformed quote: {exc}") from None


class IssuedQuote(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A quote the hub issued; ``used`` once a forward was made on it."""

    quote: Quote
    used: bool = False


class QuoteBook:
    """The quotes this hub issued and still honours: each binds one forward of (at most)
    ``amount_out`` of ``asset_out`` for (at least) ``amount_in`` of ``asset_in``, until
    ``expires_at``. Bounded: expired quotes are dropped whenever one is issued or used, and
    at most ``limit`` live ones are kept (then issuing is refused, ``too_many_quotes``).

    Pure: the node passes the time and persists each quote as a record of its own, from
    :meth:`take_changes` with its checkpoint. A hub paying at rate r holds about 30 r
    live quotes: rewriting all of them with every checkpoint made each fsynced write carry
    them (0.15 MB at 10 payments a second, 5 MB at the limit).
    """

    def __init__(self, identity: NodeIdentity, limit: int = MAX_LIVE_QUOTES) -> None:
        self._identity = identity
        self._limit = limit
        self._issued: dict[bytes, IssuedQuote] = {}
        #: (expiry, quote id) of every live quote, soonest first: pruning costs what expired,
        #: not a scan of up to ``limit`` quotes on every issue and every forward.
        self._expiries: list[tuple[int, bytes]] = []
        #: Quotes issued, used or forgotten since :meth:`take_changes` (``None``: forgotten).
        self._changes: dict[bytes, IssuedQuote | None] = {}

    @property
    def state(self) -> tuple[IssuedQuote, ...]:
        return tuple(self._issued.values())

    def restore(self, entries: Iterable[IssuedQuote], *, changed: bool = False) -> None:
        """Take back the quotes a store kept; ``changed``: write them again (they were
        read from an older layout)."""
        self._issued = {entry.quote.quote_id: entry for entry in entries}
        self._expiries = [(e.quote.expires_at, qid) for qid, e in self._issued.items()]
        heapq.heapify(self._expiries)
        self._changes = dict(self._issued) if changed else {}

    def take_changes(self) -> dict[bytes, IssuedQuote | None]:
        """Quotes to write (or, ``None``, to delete) since the last call, by quote id."""
        changes, self._changes = self._changes, {}
        return changes

    def prune(self, now: int) -> None:
        """Forget expired quotes: a copy a payer still holds is refused as expired by its
        signature's date, whether we remember it or not."""
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, quote_id = heapq.heappop(expiries)
            if self._issued.pop(quote_id, None) is not None:
                self._changes[quote_id] = None

    def issue(
        self,
        asset_in: Asset,
        asset_out: Asset,
        amount_out: int,
        rate: Rate,
        fee: int,
        now: int,
        ttl: int = DEFAULT_QUOTE_TTL,
    ) -> Quote:
        self.prune(now)
        if len(self._issued) >= self._limit:
            raise TooManyQuotes(f"{len(self._issued)} live quotes; ask again in a few seconds")
        quote = make_quote(self._identity, asset_in, asset_out, amount_out, rate, fee, now, ttl)
        entry = self._issued[quote.quote_id] = IssuedQuote(quote)
        heapq.heappush(self._expiries, (quote.expires_at, quote.quote_id))
        self._changes[quote.quote_id] = entry
        return quote

    def check(
        self,
        data: bytes,
        asset_in: Asset,
        amount_in: int,
        asset_out: Asset,
        amount_out: int,
        now: int,
    ) -> Quote:
        """The quote a payer named for forwarding ``amount_in`` of ``asset_in`` received as
        ``amount_out`` of ``asset_out`` sent, if it binds us to exactly that; else raise
        with the reason's code. Nothing changes: :meth:`consume` once the forward is made."""
        if not data:
            raise QuoteRequired(f"converting {asset_in} into {asset_out} needs this hub's quote")
        quote = decode_quote(data)
        if quote.hub != self._identity.node_id:
            raise InvalidQuote("the quote is another hub's")
        entry = self._issued.get(quote.quote_id)
        # The very quote we issued, signature included, needs no signature check (we
        # signed it); anything else is checked, so that a forgery is named as one.
        if (entry is None or entry.quote != quote) and not verify_signature(
            quote.hub, quote.signing_bytes(), quote.signature
        ):
            raise InvalidQuote("the quote's signature does not verify: forged or altered")
        if now >= quote.expires_at:
            raise QuoteExpired(f"the quote expired at {quote.expires_at} (now {now})")
        if entry is None:
            raise UnknownQuote(f"no live quote {quote.quote_id.hex()[:16]} was issued here")
        if entry.quote != quote:
            raise QuoteMismatch("the quote differs from the one issued under its id")
        if entry.used:
            raise QuoteUsed("this quote already covered a payment (one quote, one payment)")
        if (quote.asset_in, quote.asset_out) != (asset_in, asset_out):
            raise QuoteMismatch(
                f"the quote converts {quote.asset_in} into {quote.asset_out}, "
                f"not {asset_in} into {asset_out}"
            )
        if amount_out > quote.amount_out:
            raise QuoteMismatch(f"{amount_out} out exceeds the quoted {quote.amount_out}")
        if amount_in < quote.amount_in:
            raise QuoteMismatch(f"{amount_in} in is less than the quoted {quote.amount_in}")
        return quote

    def consume(self, quote: Quote, now: int) -> None:
        """The forward ``quote`` covered was made: it covers no other."""
        entry = self._issued[quote.quote_id] = IssuedQuote(quote, used=True)
        self._changes[quote.quote_id] = entry
        self.prune(now)
