"""Reference prices under quotes (``core/routing/prices.py``): what a peer's quotes cost to
price grows with what they change, never with the order they are listed in, and a group of
quotes refused leaves the book as it was.

The work is counted as multiplications of fractions (every price a quote lowers or checks
is one), so the bounds below hold on any machine: passes over every quote in the order
given took one pass per step of a chain listed backwards (a stranger's 1,000 quotes, 4 s per
graph build), and checking each node's quotes from scratch made a build quadratic in
strangers (100 strangers' 19,000 fair quotes and one rogue: 27 s)."""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chenilles_hub.core.model import Asset
from chenilles_hub.core.routing import AssetRate, ChannelEdge, RoutingGraph, prices
from chenilles_hub.core.routing.prices import (
    ARBITRAGE,
    TOO_COSTLY,
    PriceBook,
    reference_prices,
)
from chenilles_hub.core.routing.quotes import choose_quotes
from tests.core.test_routing import BTC, ETH, TIME, node
from tests.core.test_routing_quotes import EVERYONE, channels, honest, quote

GAIN = Fraction(102, 100)  # a 2 % arbitrage


@contextmanager
def multiplications() -> Iterator[list[int]]:
    """Counts ``Fraction`` multiplications while the block runs (``count[0]``)."""
    count = [0]

    def profile(frame: FrameType, event: str, _: Any) -> None:
        code = frame.f_code
        if event == "call" and code.co_name == "_mul" and code.co_filename.endswith("fractions.py"):
            count[0] += 1

    previous: Callable[..., Any] | None = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield count
    finally:
        sys.setprofile(previous)


def tokens(prefix: str, n: int) -> list[Asset]:
    return [Asset("made-up:1", f"{prefix}{i}") for i in range(n)]


def cycle(who: int, assets: list[Asset], gain: Fraction | None = None) -> list[AssetRate]:
    """Quotes around ``assets``, listed backwards (one step of the cycle per pass over
    them): at a 0.3 % spread each, or with ``gain`` without spreads, the last quote
    returning ``gain`` times what the lap took (an arbitrage)."""
    rates = []
    for i, a in enumerate(assets):
        mid = gain if gain is not None and i == len(assets) - 1 else Fraction(1)
        spread = 0 if gain is not None else 3000
        b = assets[(i + 1) % len(assets)]
        rates.append(AssetRate(node(who), a, b, mid.numerator, mid.denominator, spread))
    return rates[::-1]


def chain(who: int, assets: list[Asset]) -> list[AssetRate]:
    """Quotes along ``assets`` at par, listed backwards, and a second quote for the first
    step giving twice as much: every price after the first must halve, one step of the
    chain per pass over the quotes in their order."""
    steps = [AssetRate(node(who), a, b, 1, 1) for a, b in itertools.pairwise(assets)]
    return [*steps[::-1], AssetRate(node(who + 1), assets[0], assets[1], 2, 1)]


def test_a_long_chain_listed_backwards_is_priced_in_linear_work() -> None:
    """Passes over the quotes in the order given: 160,799 multiplications for the cycle of
    400 (one pass per step), against 1,197 now."""
    for n in (100, 400):
        with multiplications() as count:
            _, free = reference_prices((), cycle(7, tokens("t", n), GAIN))
        assert not free
        with multiplications() as fair_count:
            prices, fair = reference_prices((), chain(7, tokens("t", n)))
        assert fair and prices[tokens("t", n)[-1]] == Fraction(1, 2)
        assert count[0] <= 12 * n and fair_count[0] <= 12 * n, (n, count, fair_count)


def test_many_cycles_at_once_are_each_found_in_about_a_lap() -> None:
    """50 strangers' cycles of 40 made-up tokens each, all with an arbitrage: a chain of
    quotes as long as all 2,000 tokens would be found only after 50 laps of each cycle."""
    rates = [r for who in range(50) for r in cycle(who, tokens(f"s{who}-", 40), GAIN)]
    with multiplications() as count:
        _, free = reference_prices((), rates)
    assert not free
    assert count[0] <= 12 * len(rates), count


def test_strangers_fair_quotes_are_checked_in_linear_work() -> None:
    """One rogue makes the whole set fail, so every node is checked on its own: 60 fair
    strangers with 40 quotes each on their own tokens, then twice as many."""
    costs = []
    for strangers in (60, 120):
        others = [r for h in range(3) for r in honest(h)]
        edges = list(EVERYONE)
        for who in range(100, 100 + strangers):
            own = tokens(f"f{who}-", 40)
            others += cycle(who, own, GAIN if who == 100 else None)  # stranger 100: the rogue
            edges += channels(who, assets=tuple(own))
        with multiplications() as count:
            kept, left_out, _ = choose_quotes([], others, edges)
        assert set(left_out) == {node(100)}
        assert len(kept) == len(others) - 40
        costs.append(count[0] / len(others))
    assert costs[1] <= 1.3 * costs[0], costs  # per quote, not per quote and stranger


def test_a_refused_group_leaves_the_book_as_it_was() -> None:
    a = tokens("a", 4)
    book = PriceBook()
    assert book.add(cycle(1, a))
    before = dict(book.prices)
    rogue = [
        AssetRate(node(2), a[0], a[2], 3, 2),  # 1.5x where the book says 1x
        AssetRate(node(2), a[2], a[0], 1, 1),
        *cycle(2, tokens("new", 3)),  # and new assets, which must go again
    ]
    assert book.try_add(rogue) == ARBITRAGE
    assert book.prices == before
    # The refused quotes bind nothing: a fair group using the same pairs goes in.
    fair = [AssetRate(node(3), a[0], a[2], 1, 1, 3000), AssetRate(node(3), a[2], a[0], 1, 1, 3000)]
    assert book.try_add(fair) is None
    assert book.prices == before  # (already consistent with the book: nothing moved)


_quotes = st.lists(
    st.tuples(
        st.integers(0, 3),  # the node: a group
        st.integers(0, 4),
        st.integers(0, 4),
        st.fractions(Fraction(1, 4), Fraction(4), max_denominator=50),
        st.integers(0, 30_000),
    ),
    max_size=16,
)


def _arbitrage(rates: list[AssetRate]) -> bool:
    """Whether some cycle of ``rates`` returns more than it took (Floyd-Warshall on the
    best exact product between every two assets: the reference answer)."""
    assets = sorted({a for r in rates for a in (r.asset_in, r.asset_out)})
    best: dict[tuple[Asset, Asset], Fraction] = {}
    for r in rates:
        n, d = r.effective
        pair = (r.asset_in, r.asset_out)
        best[pair] = max(best.get(pair, Fraction(0)), Fraction(n, d))
    for k, i, j in itertools.product(assets, repeat=3):
        if (i, k) in best and (k, j) in best:
            via = best[(i, k)] * best[(k, j)]
            if via > best.get((i, j), Fraction(0)):
                best[(i, j)] = via
                if i == j and via > 1:
                    return True
    return any(best.get((a, a), Fraction(0)) > 1 for a in assets)


@settings(max_examples=300, deadline=None)
@given(_quotes)
def test_prices_hold_every_quote_and_an_arbitrage_is_real(
    drawn: list[tuple[int, int, int, Fraction, int]],
) -> None:
    assets = tokens("p", 5)
    rates = [
        AssetRate(node(w), assets[i], assets[j], m.numerator, m.denominator, s)
        for w, i, j, m, s in drawn
        if i != j
    ]
    prices, free = reference_prices((), rates)
    assert free == (not _arbitrage(rates))
    if free:
        for r in rates:
            n, d = r.effective
            assert prices[r.asset_in] * d >= prices[r.asset_out] * n  # no quote creates value
    # Group by group, the book keeps exactly the groups that fit with those before them.
    book, kept = PriceBook(), list[AssetRate]()
    for who in range(4):
        group = [r for r in rates if r.node == node(who)]
        why = book.try_add(group)
        assert (why is None) == (not _arbitrage([*kept, *group]))
        if why is None:
            kept += group
        assert reference_prices((), kept)[1]


def test_an_arbitrage_beside_a_hub_of_many_quotes_is_found_in_linear_work() -> None:
    """A frame: a hub token quoted into 200 others at a 99.9999 % spread (quotes that never
    bind, but are looked at each time the hub's price falls) and a two-quote arbitrage
    through the hub gaining 2**-254 a lap. Each lap lowers two prices and looks at 200
    quotes: a look for a cycle after every |assets| lowerings came after 100 laps."""
    hub, x = Asset("made-up:1", "hub"), Asset("made-up:1", "x")
    leaves = tokens("leaf", 200)
    m, k = 2**255 - 19, 2**254 + 7
    rates = [AssetRate(node(7), hub, leaf, 3, 5, 999_999) for leaf in leaves]
    rates += [AssetRate(node(7), hub, x, m, k), AssetRate(node(7), x, hub, k + 1, m)]
    with multiplications() as count:
        _, free = reference_prices((), rates)
    assert not free
    assert count[0] <= 12 * len(rates), count


def crafted_against_a_queue() -> tuple[list[AssetRate], list[AssetRate], list[ChannelEdge]]:
    """Free of arbitrage, yet built so that one price falls again and again: a hub token
    quoted into 200 others with 256-bit terms (stranger 10), and stranger 11's chain of 100
    tokens at par, named so the queue meets them backwards, each also quoted into the hub
    at a rate rising along the chain: the chain's prices start apart and fall a step at a
    time, each step lowering the hub again and looking at its 200 quotes (a queue's worst
    case: the quotes' count times their assets'). Returns the two strangers' quotes and
    the channels that make them usable."""
    rng = random.Random(1)
    hub = Asset("made-up:1", "zzhub")
    leaves = tokens("leaf", 200)
    chain_ = [Asset("made-up:1", f"c{100 - i:03d}") for i in range(100)]
    k = rng.getrandbits(255) | (1 << 254) | 1
    stranger_10 = [
        AssetRate(node(10), hub, leaf, rng.getrandbits(256) | 1, rng.getrandbits(256) | 1)
        for leaf in leaves
    ]
    stranger_11 = []
    for i, c in enumerate(chain_):
        stranger_11.append(AssetRate(node(11), c, hub, k + i * 2**200 + rng.getrandbits(100), k))
        if i + 1 < len(chain_):
            big = rng.getrandbits(255) | 1
            stranger_11.append(AssetRate(node(11), c, chain_[i + 1], big, big))
    edges = [*EVERYONE, *channels(10, assets=(hub, *leaves)), *channels(11, assets=(hub, *chain_))]
    return stranger_10, stranger_11, edges


def test_quotes_crafted_against_a_queue_cost_what_they_hold() -> None:
    """Added to a book, the chain's quotes are looked at first and the largest fall goes
    first: the hub falls once, and the chain is kept (it is free of arbitrage)."""
    stranger_10, stranger_11, edges = crafted_against_a_queue()
    others = [*honest(1), *stranger_10, *stranger_11]
    with multiplications() as count:
        kept, left_out, _ = choose_quotes([], others, edges, preferred={node(1)})
    assert left_out == {} and kept == others
    assert count[0] <= 12 * len(others), count
    with multiplications() as count:  # afresh, by a queue: the hub falls at every step
        assert reference_prices((), [*stranger_10, *stranger_11])[1]
    assert count[0] > 12 * len(others), count


def test_a_group_past_its_work_budget_is_refused_and_undone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The backstop: a group whose lowering looks at more quotes than the budget allows
    (8 looks at every quote of the book and the group; here, to reach it, none) is refused
    as too costly, and the book is as it was."""
    stranger_10, stranger_11, _ = crafted_against_a_queue()
    book = PriceBook()
    assert book.add(stranger_10)
    before = dict(book.prices)
    monkeypatch.setattr(prices, "WORK_PER_BOUND", 0)
    assert book.try_add(stranger_11) == TOO_COSTLY
    assert book.prices == before
    monkeypatch.setattr(prices, "WORK_PER_BOUND", 8)
    assert book.try_add(stranger_11) is None


def test_known_prices_serve_only_while_they_hold() -> None:
    """``RoutingGraph(prices=...)``: the prices the quotes were checked under, used while
    every quote of the graph holds under them; a quote added later that they do not hold
    for makes the index price afresh, and find the arbitrage it makes."""
    book = PriceBook()
    assert book.add(honest(1))
    known = {asset: 7 * price for asset, price in book.prices.items()}  # (as good, scaled)
    graph = RoutingGraph(EVERYONE, honest(1), TIME, known)
    index = graph.index()
    assert index.arbitrage_free
    assert {a: p for a, p in zip(index.assets, index.prices, strict=True) if a in known} == known
    graph.add_rate(quote(2, ETH, BTC, Fraction(102, 100)))  # 2 % over what hub 1 takes back
    assert not graph.index().arbitrage_free


def test_a_stranger_kept_earlier_cannot_make_a_later_ones_quotes_too_costly() -> None:
    """Strangers 20 and 21, free of arbitrage and so kept: a chain of 60 tokens hung off
    BTC at par, each token quoted into a hub token at a slack falling along the chain, and
    the hub quoted into 60 leaves. A later stranger quoting ETH -> BTC a little better than
    the market lowers BTC; in a queue's order that lowered the hub once per step of the
    chain, 60 looks at its leaves, and the honest quote was refused as too costly. The
    largest fall going first, the hub falls once."""
    chain_ = [BTC, *tokens("c", 60)]
    hub, leaves = Asset("made-up:1", "hub"), tokens("leaf", 60)
    slack = 10**30
    hung = [AssetRate(node(20), a, b, 1, 1) for a, b in itertools.pairwise(chain_)]
    hung += [AssetRate(node(20), c, hub, slack, slack + 60 - i) for i, c in enumerate(chain_)]
    fan = [AssetRate(node(21), hub, leaf, 1, 1) for leaf in leaves]
    better = quote(30, ETH, BTC, Fraction(1001, 1000), spread=500)
    rogue = quote(31, ETH, BTC, Fraction(102, 100))  # an arbitrage: no taking all at once
    others = [*honest(1), *hung, *fan, better, rogue]
    edges = [
        *EVERYONE,
        *channels(20, assets=(hub, *chain_)),
        *channels(21, assets=(hub, *leaves)),
        *channels(30, 31),
    ]
    kept, left_out, _ = choose_quotes([], others, edges, preferred={node(1)})
    assert left_out == {node(31): ARBITRAGE}
    assert better in kept


def test_a_pair_tightened_again_and_again_costs_one_look() -> None:
    """Twenty strangers, each quoting the same 100 pairs a little tighter than the last:
    every tightening used to stay listed beside the ones before, so each fall of the hub's
    price looked at all of them, and the 17th stranger was refused as too costly."""
    hub, leaves = Asset("made-up:1", "hub"), tokens("leaf", 100)
    book = PriceBook()
    assert book.add([AssetRate(node(1), a, hub, 1, 1) for a in (BTC, ETH)])
    for who in range(20):
        tighter = Fraction(10**6 + who, 10**6)  # a little more out: a tighter bound
        group = [
            AssetRate(node(10 + who), hub, leaf, tighter.numerator, tighter.denominator)
            for leaf in leaves
        ]
        assert book.try_add(group) is None
    with multiplications() as count:  # a fall of BTC reaches the hub, then its 100 quotes
        assert book.try_add([AssetRate(node(2), ETH, BTC, 2, 1)]) is None
    assert count[0] <= 4 * 102, count


def test_a_groups_quotes_into_one_asset_lower_it_once() -> None:
    """20 quotes into one asset X, each capping it lower than the one before, X quoted into
    200 leaves. Looked at one by one between falls, each quote lowered X once more and its
    200 quotes were looked at again: 4,000 looks, and the group refused as too costly."""
    x, w = Asset("made-up:1", "x"), Asset("made-up:1", "w")
    ys, leaves = tokens("y", 20), tokens("leaf", 200)
    book = PriceBook()
    assert book.add(
        [AssetRate(node(1), x, leaf, 1, 1) for leaf in leaves]
        + [AssetRate(node(1), y, w, 1, 1) for y in ys]
    )
    group = [AssetRate(node(2), y, x, i + 2, 1) for i, y in enumerate(ys)]
    with multiplications() as count:
        assert book.try_add(group) is None
    assert book.prices[x] == Fraction(1, 21)
    assert count[0] <= 2 * (len(leaves) + len(ys)) + 100, count
