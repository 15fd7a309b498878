"""Quotes a router uses together (``core/routing/quotes.py``): a stranger's quote that makes
an arbitrage with others' is left out, not allowed to turn every query exhaustive."""

from __future__ import annotations

import hashlib
import random
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chenilles_hub.core.errors import InvalidParams
from chenilles_hub.core.model import Asset
from chenilles_hub.core.routing import (
    AssetRate,
    ChannelEdge,
    RoutingGraph,
    find_route,
    prices,
    reference_prices,
)
from chenilles_hub.core.routing.prices import PRICE_BITS
from chenilles_hub.core.routing.quotes import choose_quotes, why_unusable
from tests.core.test_routing import BTC, ETH, SOL, node
from tests.core.test_routing import TIME as MODELS
from tests.core.test_routing import edge as route_edge

ASSETS = (ETH, BTC, SOL)
#: Base units of each asset per dollar (wei, sat, lamports at $3,000, $60,000, $150).
PER_USD = {ETH: Fraction(10**18, 3000), BTC: Fraction(10**8, 60000), SOL: Fraction(10**9, 150)}


def quote(who: int, a_in: Asset, a_out: Asset, premium: Fraction = Fraction(1), spread: int = 0):
    """``who``'s quote at the market times ``premium`` (above 1: more out than the market)."""
    mid = PER_USD[a_out] / PER_USD[a_in] * premium
    return AssetRate(node(who), a_in, a_out, mid.numerator, mid.denominator, spread_ppm=spread)


FAR = b"\xff" * 32


def channels(*who: int, assets: tuple[Asset, ...] = ASSETS) -> list[ChannelEdge]:
    """An edge into and one out of each node ``who`` in every asset: all its quotes usable."""
    out = []
    for w in who:
        for a in assets:
            for c, (u, v) in enumerate(((FAR, node(w)), (node(w), FAR))):
                cid = hashlib.sha256(b"%d %d " % (w, c) + str(a).encode()).digest()
                out.append(ChannelEdge(cid, a.chain, a, u, v, capacity=10**24))
    return out


EVERYONE = channels(*range(10))


def honest(who: int) -> list[AssetRate]:
    return [quote(who, a, b, spread=3000) for a in ASSETS for b in ASSETS if a != b]


def test_quotes_without_arbitrage_are_all_kept() -> None:
    others = honest(1) + honest(2)
    kept, left_out, _ = choose_quotes([], others, EVERYONE)
    assert kept == others and left_out == {}


def test_a_quote_above_the_market_is_left_out_whatever_its_node_id() -> None:
    """2 % more BTC per ETH than the market: alone harmless, with any honest hub's BTC->ETH
    quote an arbitrage. The quote furthest from the others' goes, not the first met."""
    for cheat in (0, 9):  # before and after the honest hubs in node order
        rogue = [quote(cheat, ETH, BTC, Fraction(102, 100))]
        kept, left_out, _ = choose_quotes([], honest(3) + rogue + honest(4), EVERYONE)
        assert set(left_out) == {node(cheat)}
        assert "arbitrage" in left_out[node(cheat)]
        assert kept == honest(3) + honest(4)
        assert why_unusable(ASSETS, kept) is None


def test_our_own_quotes_set_the_market() -> None:
    """Our book is trusted: a peer at the market as the others see it, but making an
    arbitrage with our own quote, is the one left out, and ours always stay."""
    ours = [quote(0, BTC, ETH, Fraction(103, 100))]  # we pay 3 % over the market for BTC
    kept, left_out, _ = choose_quotes(ours, honest(5), EVERYONE)
    assert set(left_out) == {node(5)} and kept == ours


def test_quotes_that_price_beyond_the_range_are_left_out() -> None:
    fake = [Asset("eip155:1", f"erc20:z{i}") for i in range(6)]
    extreme = [AssetRate(node(7), fake[i], fake[i + 1], 2**256 - 1, 1) for i in range(5)]
    edges = EVERYONE + channels(7, assets=tuple(fake))
    kept, left_out, _ = choose_quotes([], honest(1) + extreme, edges)
    assert kept == honest(1)
    assert "range" in left_out[node(7)]


def test_a_route_stays_fast_and_cheapest_beside_an_arbitrage() -> None:
    """The attack itself: one peer's quote beside honest hubs made every query an
    exhaustive search (minutes on a 2,000-node graph). With the quotes filtered, the graph
    is arbitrage-free and the route is the one without the rogue quote."""
    payer, hub, rogue, payee = node(1), node(2), node(3), node(4)
    edges = [
        route_edge(c, u, v, asset, cap=10**24)
        for c, u, v, asset in ((1, 1, 2, ETH), (2, 2, 4, BTC), (3, 1, 3, ETH), (4, 3, 2, BTC))
    ] + [route_edge(5, 2, 3, ETH, cap=10**24)]
    # a second honest hub (elsewhere in the network) quotes too: the market is the majority
    rates = [*honest(2), *honest(5), quote(3, ETH, BTC, Fraction(102, 100))]
    assert why_unusable(ASSETS, rates) is not None  # the attack, unfiltered
    kept, left_out, _ = choose_quotes([], rates, edges + channels(5))
    routing = RoutingGraph(edges, kept, MODELS)
    assert routing.index().arbitrage_free and set(left_out) == {rogue}
    t0 = time.perf_counter()
    route = find_route(routing, payer, payee, 10**6, BTC, 1_700_000_000, 3600, 30 * 86400)
    assert time.perf_counter() - t0 < 5  # generous: the point is "not exhaustive"
    assert [h.edge.target for h in route] == [hub, payee]  # not through the rogue


_premium = st.fractions(
    min_value=Fraction(90, 100), max_value=Fraction(110, 100), max_denominator=10**6
)


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
    kept, left_out, _ = choose_quotes(ours, others, EVERYONE)
    assert why_unusable(ASSETS, kept) is None
    assert RoutingGraph(EVERYONE, kept, MODELS).index().arbitrage_free
    assert kept[: len(ours)] == ours  # ours always stay
    by_node: dict[bytes, list[AssetRate]] = {}
    for rate in others:
        by_node.setdefault(rate.node, []).append(rate)
    for who, rates in by_node.items():
        inside = [r for r in rates if r in kept]
        assert (who in left_out) == (not inside)  # all of a node's quotes, or none
        if who in left_out:  # and none left out that would have fitted at the end
            assert why_unusable(ASSETS, [*kept, *rates]) is not None


def test_a_quote_given_twice_is_checked_as_the_graph_keeps_it() -> None:
    """The graph keeps one quote per node and pair (the last): checking both copies let a
    second, extreme one past the check (the first priced X at 1, the graph's copy at
    2**-255, and two more quotes took a price past the range), the graph built from it then
    failed, and that dropped every peer's quotes. Now the check sees what the graph gets."""
    x, y, z = (Asset("eip155:1", f"erc20:{t}") for t in "xyz")
    edges = EVERYONE + channels(7, assets=(ETH, x, y, z))
    big = 2**255
    rogue = [
        AssetRate(node(7), ETH, x, 1, 1),
        AssetRate(node(7), ETH, x, 1, big),  # replaces the first in the graph
        AssetRate(node(7), x, y, 1, big),
        AssetRate(node(7), y, z, 1, big),
    ]
    kept, left_out, _ = choose_quotes([], honest(1) + honest(2) + rogue, edges)
    index = RoutingGraph(edges, kept, MODELS).index()  # builds: no InvalidParams
    assert index.arbitrage_free
    assert all(r in kept for r in honest(1) + honest(2))
    assert set(left_out) == {node(7)} and "range" in left_out[node(7)]


def test_our_quote_wins_over_the_peers_own_for_the_same_pair() -> None:
    """The operator's graph quoting for a node (or our own book) is what routes use, not
    that node's gossip for the same pair."""
    ours = [quote(3, ETH, BTC, Fraction(99, 100))]
    kept, _, _ = choose_quotes(ours, honest(3), EVERYONE)
    book = RoutingGraph(EVERYONE, kept, MODELS).rates
    assert book[(node(3), ETH, BTC)] == ours[0]
    assert len([r for r in kept if (r.node, r.asset_in, r.asset_out) == (node(3), ETH, BTC)]) == 1


def test_quotes_no_route_can_use_neither_count_nor_cost() -> None:
    """A node without channels, or with none in the assets it quotes, and an expired
    quote: dropped before the market is measured. One such stranger quoting 3 % above the
    market used to be the "market" against the one honest hub, and push it out."""
    stranger = quote(8, ETH, BTC, Fraction(103, 100))  # node 8 has no channel here
    expired = AssetRate(
        node(9), ETH, BTC, stranger.num, stranger.den, valid_until=1_000
    )  # node 9 has channels, but the quote is stale
    edges = channels(1, 9)
    kept, left_out, _ = choose_quotes([], [*honest(1), stranger, expired], edges, now=2_000)
    assert kept == honest(1) and left_out == {}


def test_when_our_own_quotes_make_an_arbitrage_every_other_node_is_told_why() -> None:
    ours = [quote(0, ETH, BTC, Fraction(102, 100)), quote(0, BTC, ETH)]
    kept, left_out, _ = choose_quotes(ours, honest(1), EVERYONE)
    assert kept == ours
    assert "our own quotes" in left_out[node(1)]


def test_prices_stay_short_however_the_quotes_chain() -> None:
    """A peer's frame of quotes with 256-bit terms, chained through made-up assets around
    an arbitrage: exact prices grew by ~512 bits at each of ~190 passes (93 s to price one
    such frame). Rounded down to PRICE_BITS, they stay short; the verdict is unchanged."""
    rng = random.Random(1)

    def big() -> int:
        return rng.getrandbits(256) | (1 << 255) | 1

    made_up = [Asset("eip155:1", f"erc20:m{i}") for i in range(60)]
    x, y = big(), big()
    rates = [
        AssetRate(node(7), made_up[0], made_up[1], x, y),
        AssetRate(node(7), made_up[1], made_up[0], y + (y >> 20), x),  # the arbitrage
    ]
    rates += [AssetRate(node(7), made_up[i], made_up[i + 1], big(), big()) for i in range(1, 59)]
    prices, arbitrage_free = reference_prices(made_up, rates)
    assert not arbitrage_free
    # (significant bits: a rounded price is m / 2**k or m * 2**k with m of PRICE_BITS bits)
    assert all(
        min(p.numerator.bit_length(), p.denominator.bit_length()) <= PRICE_BITS + 1
        for p in prices.values()
    )
    fair = [*rates[:1], AssetRate(node(7), made_up[1], made_up[0], y - (y >> 20), x), *rates[2:]]
    assert reference_prices(made_up, fair)[1]  # the same chain without the arbitrage


def test_strangers_cannot_outvote_a_configured_hub() -> None:
    """Node ids and claimed channels cost nothing: three strangers quoting 3 % over the
    market made the median, and pushed the one honest hub out. The nodes the operator
    configured make the market for the pairs they quote, and go first."""
    strangers = [quote(w, ETH, BTC, Fraction(103, 100)) for w in (6, 7, 8)]
    others = honest(1) + strangers
    _, alike, _ = choose_quotes([], others, EVERYONE)
    assert node(1) in alike  # with every peer alike, the strangers' median wins
    kept, left_out, _ = choose_quotes([], others, EVERYONE, preferred={node(1)})
    assert all(r in kept for r in honest(1))
    assert set(left_out) == {node(6), node(7), node(8)}


def test_a_book_of_exact_inverses_from_a_price_feed_stays_free_of_arbitrage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hubs quote with no spread (their fees are the spread), both ways at exact inverses,
    from a float feed. Prices rounded to 128 bits turned 7-37 of 200 such books into an
    arbitrage (every query then exhaustive, every peer left out); they agree with exact
    pricing now."""
    feed = {"usdc": (6, 1.0), "eth": (18, 3012.4), "btc": (8, 67123.0), "sol": (9, 151.3)}
    feed |= {"dai": (18, 1.0), "link": (18, 14.2), "uni": (18, 7.9), "op": (18, 1.7)}
    token = {t: Asset("eip155:1", f"erc20:{t}") for t in feed}
    pairs = [(a, b) for a in feed for b in feed if a < b]
    books = []
    for seed in range(100):
        rng = random.Random(seed)
        book = []
        for a, b in rng.sample(pairs, 6):
            mid = Fraction(feed[a][1] / feed[b][1] * rng.uniform(0.99, 1.01)) * Fraction(
                10 ** feed[b][0], 10 ** feed[a][0]
            )
            book += [
                AssetRate(node(0), token[a], token[b], mid.numerator, mid.denominator),
                AssetRate(node(0), token[b], token[a], mid.denominator, mid.numerator),
            ]
        books.append(book)
    rounded = [reference_prices(token.values(), book)[1] for book in books]
    monkeypatch.setattr(prices, "PRICE_BITS", 10**6)  # exact
    exact = [reference_prices(token.values(), book)[1] for book in books]
    assert rounded == exact


def test_a_quote_losing_beyond_any_float_does_not_break_the_graph() -> None:
    """Quotes free of arbitrage and in the price range can still lose 2**1276 of the value
    on one conversion: the index's float of it overflowed and every route of the node
    failed. The bound's loss is capped (a lower bound may be)."""
    z = [Asset("eip155:1", f"erc20:z{i}") for i in range(5)]
    big, top = 2**250, 2**256 - 1
    rogue = [
        AssetRate(node(7), z[0], z[1], big, 1),
        AssetRate(node(7), z[1], z[3], big, 1),
        AssetRate(node(7), z[0], z[2], 1, big),
        AssetRate(node(7), z[2], z[4], 1, big),
        AssetRate(node(7), z[4], z[3], 1, top, spread_ppm=999_999),
    ]
    edges = EVERYONE + channels(7, assets=tuple(z))
    kept, _, _ = choose_quotes([], honest(1) + rogue, edges)
    routing = RoutingGraph(edges, kept, MODELS)
    assert routing.index().arbitrage_free  # builds: no OverflowError
    route = find_route(routing, node(1), FAR, 10**6, BTC, 1_700_000_000, 3600, 30 * 86400)
    assert route[-1].amount == 10**6


def test_quotes_priced_out_of_range_only_afresh_push_no_one_out() -> None:
    """A stranger's quotes free of arbitrage, in range priced from the assets already
    priced, out of range priced afresh (rooted at its own asset that sorts first). Checking
    the chosen set afresh at the end refused them all, and its fallback then left out every
    stranger (or every peer). The graph now routes under the prices the quotes were checked
    under."""
    first = Asset("bip122:regtest", "a")  # sorts before every real asset: a fresh root
    y, z1, z2 = (Asset("eip155:1", f"erc20:{t}") for t in ("y", "z1", "z2"))
    big, mid = 2**250, 2**230
    attacker = [
        AssetRate(node(9), z1, z2, big, 1),
        AssetRate(node(9), z2, ETH, big, 1),
        AssetRate(node(9), ETH, y, mid, 1),
        AssetRate(node(9), y, first, mid, 1),
    ]
    edges = EVERYONE + channels(9, assets=(ETH, first, y, z1, z2))
    honest_ = honest(1) + honest(2) + honest(3)
    for preferred in ({node(1)}, None):
        choice = choose_quotes([], honest_ + attacker, edges, None, preferred)
        assert all(r in choice.rates for r in honest_) and choice.left_out == {}
        models = {**MODELS, first.chain: MODELS[BTC.chain]}
        graph = RoutingGraph(edges, choice.rates, models, choice.prices)
        assert graph.index().arbitrage_free  # builds: the known prices hold
    with pytest.raises(InvalidParams, match="beyond the router's range"):
        RoutingGraph(edges, choice.rates, models).index()  # priced afresh


def test_a_cycle_without_gain_near_the_rounding_edge_blames_no_one() -> None:
    """A stranger's three quotes at no spread: BTC into a made-up token, and that token and
    another at exact inverses of 250-bit terms (no gain). Their prices sit just under the
    length past which prices are rounded; a later stranger's better ETH -> BTC quote lowers
    BTC, pushes them past it, and rounding down lost a last bit at every lap of the pair:
    the cycle check took it for an arbitrage and refused every honest stranger after."""
    rng = random.Random(1)

    def big() -> int:
        return rng.getrandbits(250) | 1 | (1 << 249)

    a, b = Asset("eip155:1", "erc20:aaa"), Asset("eip155:1", "erc20:bbb")
    n0, d0, p, q = big(), big(), big(), big()
    attacker = [
        AssetRate(node(90), BTC, a, n0, d0),
        AssetRate(node(90), a, b, q, p),
        AssetRate(node(90), b, a, p, q),
    ]
    better = [
        quote(10 + j, ETH, BTC, Fraction(1001, 1000) + Fraction(j, 10**7), 500) for j in range(20)
    ]
    edges = channels(1, *range(10, 30)) + channels(90, assets=(BTC, a, b))
    kept, left_out, _ = choose_quotes(honest(1), attacker + better, edges, None, {node(1)})
    assert left_out == {}
    assert all(r in kept for r in better + attacker)
