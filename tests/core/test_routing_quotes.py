"""Quotes a router uses together (``core/routing/quotes.py``): a stranger's quote that makes
an arbitrage with others' is left out, not allowed to turn every query exhaustive."""

from __future__ import annotations

import time
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from chenilles_hub.core.model import Asset
from chenilles_hub.core.routing import AssetRate, ChannelEdge, RoutingGraph, find_route
from chenilles_hub.core.routing.quotes import consistent_quotes, why_unusable
from chenilles_hub.core.timing import TimeModel

ETH = Asset("eip155:1", "native")
BTC = Asset("bip122:test", "native")
SOL = Asset("solana:test", "native")
ASSETS = (ETH, BTC, SOL)
#: Base units of each asset per dollar (wei, sat, lamports at $3,000, $60,000, $150).
PER_USD = {ETH: Fraction(10**18, 3000), BTC: Fraction(10**8, 60000), SOL: Fraction(10**9, 150)}
MODELS = {a.chain: TimeModel(2_000, 1, 12, 30 * 86_400) for a in ASSETS}


def node(i: int) -> bytes:
    return bytes([i]) * 32


def quote(who: int, a_in: Asset, a_out: Asset, premium: Fraction = Fraction(1), spread: int = 0):
    """``who``'s quote at the market times ``premium`` (above 1: more out than the market)."""
    mid = PER_USD[a_out] / PER_USD[a_in] * premium
    return AssetRate(node(who), a_in, a_out, mid.numerator, mid.denominator, spread_ppm=spread)


def honest(who: int) -> list[AssetRate]:
    return [quote(who, a, b, spread=3000) for a in ASSETS for b in ASSETS if a != b]


def test_quotes_without_arbitrage_are_all_kept() -> None:
    others = honest(1) + honest(2)
    kept, left_out = consistent_quotes([], others, ASSETS)
    assert kept == others and left_out == {}


def test_a_quote_above_the_market_is_left_out_whatever_its_node_id() -> None:
    """2 % more BTC per ETH than the market: alone harmless, with any honest hub's BTC->ETH
    quote an arbitrage. The quote furthest from the others' goes, not the first met."""
    for cheat in (0, 9):  # before and after the honest hubs in node order
        rogue = [quote(cheat, ETH, BTC, Fraction(102, 100))]
        kept, left_out = consistent_quotes([], honest(3) + rogue + honest(4), ASSETS)
        assert set(left_out) == {node(cheat)}
        assert "arbitrage" in left_out[node(cheat)]
        assert kept == honest(3) + honest(4)
        assert why_unusable(ASSETS, kept) is None


def test_our_own_quotes_set_the_market() -> None:
    """Our book is trusted: a peer at the market as the others see it, but making an
    arbitrage with our own quote, is the one left out, and ours always stay."""
    ours = [quote(0, BTC, ETH, Fraction(103, 100))]  # we pay 3 % over the market for BTC
    kept, left_out = consistent_quotes(ours, honest(5), ASSETS)
    assert set(left_out) == {node(5)} and kept == ours


def test_quotes_that_price_beyond_the_range_are_left_out() -> None:
    fake = [Asset("eip155:1", f"erc20:z{i}") for i in range(6)]
    extreme = [AssetRate(node(7), fake[i], fake[i + 1], 2**256 - 1, 1) for i in range(5)]
    kept, left_out = consistent_quotes([], honest(1) + extreme, [*ASSETS, *fake])
    assert kept == honest(1)
    assert "range" in left_out[node(7)]


def test_a_route_stays_fast_and_cheapest_beside_an_arbitrage() -> None:
    """The attack itself: one peer's quote beside honest hubs made every query an
    exhaustive search (minutes on a 2,000-node graph). With the quotes filtered, the graph
    is arbitrage-free and the route is the one without the rogue quote."""
    payer, hub, rogue, payee = node(1), node(2), node(3), node(4)

    def edge(c: int, u: bytes, v: bytes, asset: Asset) -> ChannelEdge:
        return ChannelEdge(
            channel_id=bytes([c]) * 32,
            chain=asset.chain,
            asset=asset,
            source=u,
            target=v,
            capacity=10**24,
        )

    edges = [
        edge(1, payer, hub, ETH),
        edge(2, hub, payee, BTC),
        edge(3, payer, rogue, ETH),
        edge(4, rogue, hub, BTC),
        edge(5, hub, rogue, ETH),
    ]
    # a second honest hub (elsewhere in the network) quotes too: the market is the majority
    rates = [*honest(2), *honest(5), quote(3, ETH, BTC, Fraction(102, 100))]
    assert why_unusable(ASSETS, rates) is not None  # the attack, unfiltered
    kept, left_out = consistent_quotes([], rates, (e.asset for e in edges))
    graph = RoutingGraph(edges, kept, MODELS)
    assert graph.index().arbitrage_free and set(left_out) == {rogue}
    t0 = time.perf_counter()
    route = find_route(graph, payer, payee, 10**6, BTC, 1_700_000_000, 3600, 30 * 86400)
    assert time.perf_counter() - t0 < 5  # generous: the point is "not exhaustive"
    assert [h.edge.target for h in route] == [hub, payee]  # not through the rogue


_premium = st.fractions(min_value=Fraction(90, 100), max_value=Fraction(110, 100))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 6),
            st.sampled_from(ASSETS),
            st.sampled_from(ASSETS),
            _premium,
            st.integers(0, 20_000),
        ),
        max_size=14,
    ),
    st.lists(st.tuples(st.sampled_from(ASSETS), st.sampled_from(ASSETS)), max_size=2),
)
def test_what_is_kept_is_usable_whole_nodes_and_maximal(
    drawn: list[tuple[int, Asset, Asset, Fraction, int]],
    own_pairs: list[tuple[Asset, Asset]],
) -> None:
    others = [quote(w, a, b, p, s) for w, a, b, p, s in drawn if a != b]
    ours = [quote(0, a, b, spread=5000) for a, b in dict.fromkeys(own_pairs) if a != b]
    if why_unusable(ASSETS, ours) is not None:
        return  # our own book is our own problem (kept as it is)
    kept, left_out = consistent_quotes(ours, others, ASSETS)
    assert why_unusable(ASSETS, kept) is None
    assert kept[: len(ours)] == ours  # ours always stay
    by_node: dict[bytes, list[AssetRate]] = {}
    for rate in others:
        by_node.setdefault(rate.node, []).append(rate)
    for who, rates in by_node.items():
        inside = [r for r in rates if r in kept]
        assert (who in left_out) == (not inside)  # all of a node's quotes, or none
        if who in left_out:  # and none left out that would have fitted at the end
            assert why_unusable(ASSETS, [*kept, *rates]) is not None
