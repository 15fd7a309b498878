"""Which quotes a router uses together: none that, combined, create value.

The search compares routes by value and stops early because value never shrinks from the
payee back to the payer (:func:`.prices.reference_prices`). Quotes that chain into a cycle
returning more than it took (an arbitrage) break that, and the search then has to be
exhaustive: on a 2,000-node graph one peer quoting ETH to BTC 2 % above the market made
queries of about a millisecond take minutes. A quote is a peer's word, so one stranger
could do that to every payment of the node. And the two quotes of an arbitrage need not
be one node's: a quote above the market is harmless alone and an arbitrage beside an
honest hub's quote the other way.

:func:`choose_quotes` therefore keeps the trusted quotes (the node's own, the
operator's) and adds the other nodes' quotes one node at a time, all of a node's or none,
each only if the set stays free of arbitrage and of prices out of the router's range. The
nodes whose mid-rates are closest to the market (the median of every node's mid-rate for
the pair, or the trusted quote where there is one) go first: the quote that leaves is the
one furthest from everyone else's, not whichever came first. A node quoting on its own
terms (no other quote for its pairs) is at the market by this measure and goes first too.
The market is what most nodes quote: with as many nodes on each side of a dispute (one
honest hub, one rogue), which side stays is not something the quotes can tell.

Each node's quotes are priced against those already kept (:class:`.prices.PriceBook`),
paying for what they move, not for the whole set again: checking every node from scratch
made a graph build quadratic in strangers (100 strangers' 19,000 fair quotes and one
rogue's: 27 s, and a build runs on the node's thread).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from fractions import Fraction
from typing import NamedTuple

from ..model import Asset
from .model import AssetRate, ChannelEdge, RateKey, rate_book
from .prices import PriceBook, reference_prices, unusable

Pair = tuple[Asset, Asset]


def _pair_mid(rate: AssetRate) -> tuple[Pair, Fraction]:
    """The rate's mid as (lower asset, higher asset) and higher-asset units per lower unit."""
    mid = Fraction(rate.num, rate.den)  # out per in
    if rate.asset_in < rate.asset_out:
        return (rate.asset_in, rate.asset_out), mid
    return (rate.asset_out, rate.asset_in), 1 / mid


def _median(values: list[Fraction]) -> Fraction:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]  # the lower median: one of the quotes


def _market(
    trusted: Sequence[AssetRate], by_node: dict[bytes, list[AssetRate]]
) -> dict[Pair, Fraction]:
    """Per asset pair, the trusted mid if there is one, else the median of the nodes'
    mids (each node's first quote for the pair counted once, so that quoting a pair
    many times does not move the median)."""
    market: dict[Pair, Fraction] = {}
    for rate in trusted:
        pair, mid = _pair_mid(rate)
        market.setdefault(pair, mid)
    seen: dict[Pair, list[Fraction]] = {}
    for rates in by_node.values():
        counted: set[Pair] = set()
        for rate in rates:
            pair, mid = _pair_mid(rate)
            if pair not in counted:
                counted.add(pair)
                seen.setdefault(pair, []).append(mid)
    for pair, mids in seen.items():
        market.setdefault(pair, _median(mids))
    return market


def _distance(rates: list[AssetRate], market: dict[Pair, Fraction]) -> Fraction:
    """How far a node's quotes stray from the market: the largest ratio, either way."""
    worst = Fraction(1)
    for rate in rates:
        pair, mid = _pair_mid(rate)
        ratio = mid / market[pair]
        worst = max(worst, ratio, 1 / ratio)
    return worst


class QuoteChoice(NamedTuple):
    """What :func:`choose_quotes` keeps."""

    rates: list[AssetRate]
    left_out: dict[bytes, str]
    #: reference prices ``rates`` hold under (``None``: none found, price afresh)
    prices: dict[Asset, Fraction] | None


def why_unusable(assets: Iterable[Asset], rates: Sequence[AssetRate]) -> str | None:
    """Why ``rates`` cannot be routed over together (``None``: they can)."""
    return unusable(*reference_prices(assets, rates))


def choose_quotes(
    trusted: Sequence[AssetRate],
    others: Iterable[AssetRate],
    edges: Iterable[ChannelEdge],
    now: int | None = None,
    preferred: Collection[bytes] | None = None,
) -> QuoteChoice:
    """``trusted`` and as many other nodes' quotes as fit with them (see the module).

    Returns the quotes to route with, each left-out node with why, and the reference
    prices they were checked under (for ``RoutingGraph(prices=...)``: what was checked is
    what the router uses). The quotes are one per node and asset pair, as the routing
    graph's rate book keeps them (the last, and a trusted one over another's). Quotes no route
    could use are dropped before anything is measured: expired at ``now``, or at a node
    without a channel edge (of ``edges``) into it in the asset it takes and one out of it
    in the asset it gives; quotes on assets a peer made up, or from a node without
    channels, neither move the market nor cost a check. If the trusted quotes do not fit
    together, they alone are kept and every other node is left out (their fault is ours
    to fix: the search is then exhaustive). With ``preferred`` (the nodes the operator
    configured as peers), only their mid-rates make the market for a pair they quote, and
    they go before every other node: strangers, free to multiply, can outvote neither."""
    edges = list(edges)
    into = {(e.target, e.asset) for e in edges}
    out_of = {(e.source, e.asset) for e in edges}
    ours = rate_book(trusted)
    theirs: dict[RateKey, AssetRate] = {}
    for rate in others:
        key = (rate.node, rate.asset_in, rate.asset_out)
        if key in ours or not rate.usable(now):
            continue
        if (rate.node, rate.asset_in) in into and (rate.node, rate.asset_out) in out_of:
            theirs.pop(key, None)  # (a later quote replaces it, in the later one's place)
            theirs[key] = rate
    kept = list(ours.values())
    by_node: dict[bytes, list[AssetRate]] = {}
    for rate in theirs.values():
        by_node.setdefault(rate.node, []).append(rate)
    book = PriceBook()
    free = book.add(kept)  # ours priced once: the book then takes the peers' quotes
    own_fault = unusable(book.prices, free)
    if own_fault is not None:
        reason = f"our own quotes do not fit together ({own_fault})"
        return QuoteChoice(kept, dict.fromkeys(by_node, reason), None)
    if not theirs or book.try_add(theirs.values()) is None:
        return QuoteChoice([*kept, *theirs.values()], {}, book.prices)
    first = by_node if preferred is None else {n: by_node[n] for n in by_node if n in preferred}
    market = _market(kept, first)
    market = {**_market([], by_node), **market}  # strangers' median only where nobody else
    order = sorted(
        by_node,
        key=lambda node: (node not in first, _distance(by_node[node], market), node),
    )
    # Each node's quotes priced against those kept so far (what they move, not the whole
    # set again: checking each node from scratch made a build quadratic in strangers).
    left_out: dict[bytes, str] = {}
    for node in order:
        why = book.try_add(by_node[node])
        if why is None:
            kept += by_node[node]
        else:
            left_out[node] = why
    return QuoteChoice(kept, left_out, book.prices)
