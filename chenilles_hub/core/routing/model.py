"""The routing vocabulary: directed channel edges, a hub's asset rates, and routes.

Everything is an immutable msgspec Struct, as in the channel model, so a route can travel in
a message and be checked by every hop against the same rules (:mod:`.rules`). Amounts are
``int`` base units of the edge's asset; rounding always favours the forwarding node (fees
and conversions round the required input *up*), so a route computed from these rules never
asks a hop to forward at a loss.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec

from ..errors import InvalidParams, WrongAsset
from ..model import Amount, Asset, Bytes32, ShortText, UnixTime

#: Proportional fees and spreads are in millionths (parts per million).
PPM = 1_000_000
#: The largest capacity, fee or rate term an edge or a quote may carry: every ledger's
#: amounts fit in 256 bits (an EVM word), and the router's bound works in floats, which a
#: peer's announcement of a larger integer would overflow (the graph could not be built).
#: Checked in ``__post_init__`` (msgspec's bounds stop at 64 bits), which decoding runs.
MAX_ROUTE_INT = 2**256 - 1


class ChannelEdge(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """One direction of one channel, as the router sees it.

    ``capacity`` is what ``source`` can still send to ``target`` in ``asset`` (its free
    balance in the channel, minus its reserve). ``fee_base``/``fee_ppm`` are the policy of
    ``source``, the node that forwards onto this edge, charged on the amount it sends here.
    ``challenge_duration`` is the channel's: it decides how long enforcing a claim on this
    channel takes, hence the timelock delta a node needs when this edge is its *incoming* one.
    """

    channel_id: Bytes32
    chain: ShortText
    asset: Asset
    source: Bytes32
    target: Bytes32
    capacity: Amount
    fee_base: Amount = 0
    fee_ppm: Annotated[int, msgspec.Meta(ge=0, le=PPM)] = 0
    challenge_duration: Annotated[int, msgspec.Meta(ge=1, le=365 * 86400)] = 86400

    def __post_init__(self) -> None:
        # msgspec checks Meta bounds on decode only; a constructed edge must obey them too.
        if self.asset.chain != self.chain:
            raise WrongAsset(f"edge on {self.chain} carries {self.asset}")
        if self.source == self.target:
            raise InvalidParams("a channel edge joins two distinct nodes")
        if not (0 <= self.capacity <= MAX_ROUTE_INT and 0 <= self.fee_base <= MAX_ROUTE_INT):
            raise InvalidParams("capacity and fee_base are between 0 and 2**256 - 1")
        if not 0 <= self.fee_ppm <= PPM:
            raise InvalidParams("fee_ppm is between 0 and 1e6")
        if not 1 <= self.challenge_duration <= 365 * 86400:
            raise InvalidParams("challenge_duration out of range")

    def fee(self, amount: int) -> int:
        """The source's fee for sending ``amount`` on this edge, rounded up."""
        return self.fee_base + (amount * self.fee_ppm + PPM - 1) // PPM


class AssetRate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A hub's quote: it turns ``asset_in`` received into ``asset_out`` sent.

    ``out = floor(in * num * (1e6 - spread_ppm) / (den * 1e6))``: a rational so that every
    hop computes the same integer. A quote is an option the payer holds against the hub, so
    ``valid_until`` (absolute unix seconds) should be short; ``None`` means the hub's own,
    standing rate (used by the hub for its own book-keeping and by tests).
    """

    node: Bytes32
    asset_in: Asset
    asset_out: Asset
    num: int
    den: int
    spread_ppm: Annotated[int, msgspec.Meta(ge=0, lt=PPM)] = 0
    valid_until: UnixTime | None = None

    def __post_init__(self) -> None:
        if not (0 < self.num <= MAX_ROUTE_INT and 0 < self.den <= MAX_ROUTE_INT):
            raise InvalidParams("a rate is a fraction num/den of integers in [1, 2**256 - 1]")
        if not 0 <= self.spread_ppm < PPM:
            raise InvalidParams("spread_ppm must be in [0, 1e6)")
        if self.asset_in == self.asset_out:
            raise InvalidParams("a rate converts between two different assets")

    @property
    def effective(self) -> tuple[int, int]:
        """``(N, D)`` with ``out = floor(in * N / D)``, the spread folded in."""
        return self.num * (PPM - self.spread_ppm), self.den * PPM

    def convert(self, amount_in: int) -> int:
        n, d = self.effective
        return amount_in * n // d

    def min_input(self, amount_out: int) -> int:
        """The least input whose conversion covers ``amount_out``: ``ceil(out * D / N)``."""
        n, d = self.effective
        return -(-amount_out * d // n)

    def usable(self, now: int | None) -> bool:
        return now is None or self.valid_until is None or now <= self.valid_until


class RouteHop(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One HTLC of a circuit: ``amount`` of ``edge.asset`` locked until ``expiry`` (unix s)."""

    edge: ChannelEdge
    amount: Amount
    expiry: UnixTime


#: hops[0] is what the payer locks; hops[-1].amount is exactly what the payee asked for.
Route = tuple[RouteHop, ...]

RateKey = tuple[bytes, Asset, Asset]


def rate_book(rates: Iterable[AssetRate]) -> dict[RateKey, AssetRate]:
    """Index rates by ``(node, asset_in, asset_out)``; a later quote replaces an earlier one."""
    return {(r.node, r.asset_in, r.asset_out): r for r in rates}
