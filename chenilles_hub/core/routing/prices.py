"""Reference prices of assets under a set of quotes, and whether the quotes make an arbitrage.

Routes paying in different assets are compared by value, and the search needs value never
to grow from the payee back to the payer (the label-setting argument). Both hold under
prices where, for every quote, ``price(in) >= price(out) * N / D``: no quote creates value.
A set of quotes has such prices unless some cycle of them returns more than it took (an
arbitrage).

Quotes are mostly peers' word, strangers' included, so what pricing costs is theirs to
choose: the work here grows with what the quotes change, never with the order they are
listed in or with copies of a quote. :class:`PriceBook` also takes quotes a group at a time
(one node's), each group kept only if the set stays free of arbitrage, and pays for what
the group moves, not for the whole set again (``quotes.choose_quotes``).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from fractions import Fraction

from ..model import Asset
from .model import AssetRate

#: The range of an asset's reference price (per base unit, relative to its group's root):
#: real quotes span some 2**70 at most (a whole-unit token of $1e6 against a wei); 2**512
#: keeps every value of an amount up to 2**256 a finite, normal float.
MIN_PRICE = Fraction(1, 2**512)
MAX_PRICE = Fraction(2**512)

#: Significant bits a reference price keeps once it is longer than twice that: real books
#: stay exact (a cycle of exact inverses with no spread, which rounding would turn into an
#: arbitrage, keeps its prices short), and only long chains of large terms, a peer's doing,
#: are rounded.
PRICE_BITS = 512

#: Why a group of quotes cannot join the others (``PriceBook.try_add``).
ARBITRAGE = "its quotes and others' form an arbitrage cycle"
OUT_OF_RANGE = "its quotes price an asset beyond the router's range"
TOO_COSTLY = "its quotes with others' take too much work to price"

#: How many cycles without gain (rounding's, :meth:`PriceBook._settle`) one lowering
#: settles before taking the next for an arbitrage: real books make none, and each costs
#: exact prices as long as the cycle's rates together.
MAX_SETTLES = 4

#: How many times over a group's lowering may look at every quote of the book (and of the
#: group) before the group is refused (``PriceBook.try_add``): real quotes settle in a few
#: looks; a queue's worst case (crafted chains that lower one price again and again) is
#: the quotes' count times their assets', which a stranger would otherwise choose.
WORK_PER_BOUND = 8


def rounded_down(x: Fraction) -> Fraction:
    """``x`` (> 0) if it is short, else the largest ``m / 2**k`` below it with ``m`` of
    :data:`PRICE_BITS` bits (or ``m * 2**k`` for a large ``x``). Exact products grew by a
    quote's 512 bits at every step: a peer's frame of 190 quotes chained through invented
    assets around one arbitrage took 93 s to price. A rounded price is lower, so the quote
    that lowered it still holds exactly, and every quote is still checked exactly."""
    num, den = x.numerator, x.denominator
    if num.bit_length() + den.bit_length() <= 2 * PRICE_BITS:
        return x
    shift = PRICE_BITS - (num.bit_length() - den.bit_length())
    if shift >= 0:
        return Fraction((num << shift) // den, 1 << shift)
    return Fraction((num // (den << -shift)) << -shift)


def in_range(price: Fraction) -> bool:
    return MIN_PRICE <= price <= MAX_PRICE


def unusable(prices: Mapping[Asset, Fraction], arbitrage_free: bool) -> str | None:
    """Why quotes priced at ``prices`` (and free of arbitrage or not) cannot be routed over
    together (``None``: they can)."""
    if not arbitrage_free:
        return ARBITRAGE
    if not all(in_range(price) for price in prices.values()):
        return OUT_OF_RANGE
    return None


class PriceBook:
    """Prices under the quotes added so far (each added set free of arbitrage, or the book
    says so): a value for one base unit of every asset under which no quote creates value.

    A new asset starts at the price its quotes' mid-rates give it from an asset already
    priced (a breadth-first walk; a group of new assets joined to none is rooted at its
    first asset, priced 1). Prices are then lowered until every quote holds, an asset's
    quotes looked at again only when its price fell (Bellman-Ford by a queue, or largest
    fall first when adding to prices that already hold: :meth:`_lower`): passes over every
    quote in the order given took one pass per step of a chain of quotes listed
    backwards, and a stranger's few thousand quotes took seconds to price.
    """

    def __init__(self) -> None:
        self.prices: dict[Asset, Fraction] = {}
        #: per asset, the quotes it is the input of: (output asset, D / N), the tightest
        #: of each pair only (the only quote of a pair that can bind)
        self._bounds: dict[Asset, list[tuple[Asset, Fraction]]] = {}
        #: each ordered pair's D / N, and its place in ``_bounds``
        self._tightest: dict[tuple[Asset, Asset], Fraction] = {}
        self._slot: dict[tuple[Asset, Asset], int] = {}
        #: every asset some quote takes or gives
        self._quoted: set[Asset] = set()
        self._broken = False

    def add(self, rates: Iterable[AssetRate], assets: Iterable[Asset] = ()) -> bool:
        """Add ``rates`` (and price ``assets`` that no quote touches at 1); ``False`` if
        the quotes now make an arbitrage (the prices are then as far as lowering got:
        routes stay valid but are no longer guaranteed cheapest, and the book takes no
        more quotes)."""
        self._usable()
        free = self._add(list(rates), assets, None, None)
        self._broken = not free
        return bool(free)

    def try_add(self, rates: Iterable[AssetRate]) -> str | None:
        """Add ``rates`` if the quotes stay free of arbitrage and every price in range;
        otherwise change nothing and say why. Lowering may look at each quote of the book
        a few times (:data:`WORK_PER_BOUND`), not more: a group needing more (quotes
        built so that every price falls again and again) is refused as too costly."""
        self._usable()
        undo = _Undo()
        rates = list(rates)
        budget = WORK_PER_BOUND * (len(self._tightest) + len(rates))
        free = self._add(rates, (), undo, budget)
        why: str | None = None
        if free is None:
            why = TOO_COSTLY
        elif not free:
            why = ARBITRAGE
        elif not all(in_range(self.prices[a]) for a in undo.touched()):
            why = OUT_OF_RANGE
        if why is not None:
            undo.revert(self)
        return why

    def _usable(self) -> None:
        if self._broken:  # its bounds no longer hold: nothing added could be checked
            raise ValueError("this price book holds an arbitrage: it takes no more quotes")

    def _add(
        self,
        rates: list[AssetRate],
        assets: Iterable[Asset],
        undo: _Undo | None,
        budget: int | None,
    ) -> bool | None:
        self._price_new_assets(rates, assets, undo)
        lowered_from: set[Asset] = set()
        for r in rates:
            n, d = r.effective
            d_over_n = Fraction(d, n)
            pair = (r.asset_in, r.asset_out)
            old = self._tightest.get(pair)
            if old is not None and d_over_n >= old:
                continue
            if undo is not None:
                undo.bounds.append((pair, old))
            self._tightest[pair] = d_over_n
            out = self._bounds.setdefault(r.asset_in, [])
            if old is None:
                self._slot[pair] = len(out)
                out.append((r.asset_out, d_over_n))
            else:  # in its place: a pair tightened again and again costs one look
                out[self._slot[pair]] = (r.asset_out, d_over_n)
            for a in pair:
                if a not in self._quoted:
                    if undo is not None:
                        undo.quoted.append(a)
                    self._quoted.add(a)
            lowered_from.add(r.asset_in)
        return self._lower(sorted(lowered_from), undo, budget)

    def _price_new_assets(
        self, rates: list[AssetRate], assets: Iterable[Asset], undo: _Undo | None
    ) -> None:
        links: dict[Asset, list[tuple[Asset, Fraction]]] = {}
        for r in rates:
            mid = Fraction(r.num, r.den)  # out per in
            links.setdefault(r.asset_in, []).append((r.asset_out, 1 / mid))
            links.setdefault(r.asset_out, []).append((r.asset_in, mid))
        prices = self.prices
        new = sorted({*assets, *links} - prices.keys())
        if undo is not None:
            undo.new.extend(new)
        # From the assets already priced first: a new asset joins its group's prices.
        walk = sorted(a for a in links if a in prices)
        for root in [None, *new]:
            if root is not None:
                if root in prices:
                    continue
                prices[root] = Fraction(1)
                walk = [root]
            while walk:
                a = walk.pop()
                for b, factor in links.get(a, ()):
                    if b not in prices:
                        prices[b] = rounded_down(prices[a] * factor)
                        walk.append(b)

    def _lower(self, start: list[Asset], undo: _Undo | None, budget: int | None) -> bool | None:
        """Lower prices until every quote holds (``True``), find an arbitrage (``False``),
        or give up once more than ``budget`` quotes were looked at (``None``).

        Adding to a book whose prices already hold (``undo`` given), the largest relative
        fall goes first (:class:`_ByFall`): the book's quotes then pass a fall on without
        growing it, and only the group's own quotes can lower a price twice. In the
        order of a queue, a stranger's chain of quotes hung off a real asset made a later
        group lower one price once per step of the chain, looking at all its quotes each
        time. Pricing afresh takes a queue (:class:`_Fifo`): no order is better there.

        An arbitrage shows as a cycle among the quotes that last lowered each price
        (``parent``): looked for each time as many quotes were looked at as ``parent``
        holds (so the looks cost at most as much again), a cycle is found about one lap
        after it closes, however many other cycles the quotes hold and however few prices
        each lap lowers. ``steps`` (the length of the chain of quotes behind each
        lowering) ends it in any case: a chain as long as the quoted assets are many
        repeats one, and only a cycle returning more than it took lowers a price it
        already set."""
        prices, bounds, limit = self.prices, self._bounds, len(self._quoted)
        steps: dict[Asset, int] = {}
        parent: dict[Asset, Asset] = {}
        frontier: _Fifo | _ByFall = _Fifo(start) if undo is None else _ByFall()
        # By fall, the assets the group's quotes start from are looked at first, all of
        # them: one by one between falls, each of a group's quotes into one asset lowered
        # it once more, and the quotes beyond it were looked at once per quote.
        seeds = deque(start if undo is not None else ())
        scanned = looked = 0
        settles = 0

        def settle() -> bool:
            """A cycle among the parents: rounding's (settled: go on) or an arbitrage."""
            nonlocal settles, scanned
            cycle = _cycle(parent)
            settles += 1
            if cycle is None or settles > MAX_SETTLES or not self._settle(cycle, undo, frontier):
                return False
            # Settled prices are exact, as long as the cycle's rates together: its work
            # counts against the budget, and a few settlings per lowering are plenty.
            scanned += len(cycle)
            for a in cycle:  # its prices hold around it now: no chain behind them
                del parent[a]
                steps[a] = 0
            return True

        while seeds or frontier:
            a_in = seeds.popleft() if seeds else frontier.pop()
            price_in = prices[a_in]
            out = bounds[a_in]
            scanned += len(out)
            for a_out, d_over_n in out:
                cap = price_in * d_over_n
                if prices[a_out] > cap:
                    before = prices[a_out]
                    if undo is not None:
                        undo.price(a_out, before)
                    prices[a_out] = rounded_down(cap)
                    parent[a_out] = a_in
                    steps[a_out] = steps.get(a_in, 0) + 1
                    if a_out in bounds:
                        frontier.push(a_out, before, prices[a_out])
                    if steps[a_out] >= limit:
                        if not settle():
                            return False
                        steps[a_out] = 0  # (its chain may have run through the cycle)
            if parent and scanned - looked >= len(parent):
                looked = scanned
                if _cycle(parent) is not None and not settle():
                    return False
            if budget is not None and scanned > budget:
                return None
        return True

    def _settle(
        self,
        cycle: list[Asset],
        undo: _Undo | None,
        frontier: _Fifo | _ByFall,
    ) -> bool:
        """Whether the quotes around ``cycle`` (in their direction) return no more than
        they take, checked exactly; if so, its prices are set to hold exactly around it,
        as high as they may be without rising. Such a cycle lowers prices only by
        rounding: a price rounded down loses its last bit at every lap (a cycle of exact
        inverses whose prices grew past :data:`PRICE_BITS`; a stranger's three quotes got
        every later stranger's quotes refused as an arbitrage by it)."""
        relative = [Fraction(1)]  # each price relative to the first's, held exactly
        for a, b in itertools.pairwise(cycle):
            relative.append(relative[-1] * self._tightest[(a, b)])
        if relative[-1] * self._tightest[(cycle[-1], cycle[0])] < 1:
            return False  # each lap lowers the first price: an arbitrage
        prices = self.prices
        scale = rounded_down(min(prices[a] / r for a, r in zip(cycle, relative, strict=True)))
        for a, r in zip(cycle, relative, strict=True):
            settled = scale * r
            if settled < prices[a]:
                if undo is not None:
                    undo.price(a, prices[a])
                frontier.push(a, prices[a], settled)
                prices[a] = settled
        return True


class _Fifo:
    """Assets whose quotes are to be looked at again, in the order their prices fell."""

    def __init__(self, start: list[Asset]) -> None:
        self._queue = deque(start)
        self._waiting = set(start)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def push(self, asset: Asset, before: Fraction, now: Fraction) -> None:
        if asset not in self._waiting:
            self._queue.append(asset)
            self._waiting.add(asset)

    def pop(self) -> Asset:
        asset = self._queue.popleft()
        self._waiting.discard(asset)
        return asset


class _ByFall:
    """Assets whose quotes are to be looked at again, the largest fall of price since
    the lowering began first (exact keys: a float ties falls of 1e-28, which a crafted
    chain of quotes uses)."""

    def __init__(self) -> None:
        self._base: dict[Asset, Fraction] = {}  # each asset's price when lowering began
        self._key: dict[Asset, Fraction] = {}
        self._heap: list[tuple[Fraction, Asset]] = []

    def __bool__(self) -> bool:
        return bool(self._key)

    def push(self, asset: Asset, before: Fraction, now: Fraction) -> None:
        key = now / self._base.setdefault(asset, before)
        self._key[asset] = key
        heapq.heappush(self._heap, (key, asset))

    def pop(self) -> Asset:
        while True:
            key, asset = heapq.heappop(self._heap)
            if self._key.get(asset) == key:  # else an older entry of an asset fallen since
                del self._key[asset]
                return asset


class _Undo:
    """What a ``try_add`` changed in a book, to put back if the quotes are refused."""

    def __init__(self) -> None:
        self.prices: dict[Asset, Fraction] = {}
        self.new: list[Asset] = []
        self.quoted: list[Asset] = []
        self.bounds: list[tuple[tuple[Asset, Asset], Fraction | None]] = []

    def price(self, asset: Asset, old: Fraction) -> None:
        self.prices.setdefault(asset, old)

    def touched(self) -> list[Asset]:
        return [*self.new, *self.prices]

    def revert(self, book: PriceBook) -> None:
        for pair, old in reversed(self.bounds):  # a new pair's bound went last in its list
            out = book._bounds[pair[0]]
            if old is None:
                out.pop()
                if not out:
                    del book._bounds[pair[0]]
                del book._tightest[pair], book._slot[pair]
            else:
                out[book._slot[pair]] = (pair[1], old)
                book._tightest[pair] = old
        book._quoted.difference_update(self.quoted)
        book.prices.update(self.prices)
        for asset in self.new:
            del book.prices[asset]


def _cycle(parent: Mapping[Asset, Asset]) -> list[Asset] | None:
    """A cycle of ``parent`` (each asset has one parent at most: every walk is followed
    once, O(len(parent))), in the direction of the quotes (each asset's parent before it),
    or ``None``."""
    done: set[Asset] = set()
    for start in parent:
        walk: set[Asset] = set()
        a = start
        while a in parent and a not in done:
            if a in walk:
                cycle = [a]
                while parent[cycle[-1]] != a:
                    cycle.append(parent[cycle[-1]])
                return cycle[::-1]
            walk.add(a)
            a = parent[a]
        done |= walk
    return None


def prices_hold(prices: Mapping[Asset, Fraction], rates: Iterable[AssetRate]) -> bool:
    """Whether ``prices`` are reference prices for ``rates``: every asset of a quote
    priced, in range, and no quote creating value (checked exactly: such prices prove
    the quotes free of arbitrage, whoever computed them)."""
    for r in rates:
        p_in, p_out = prices.get(r.asset_in), prices.get(r.asset_out)
        if p_in is None or p_out is None or not (in_range(p_in) and in_range(p_out)):
            return False
        n, d = r.effective
        if p_in * d < p_out * n:
            return False
    return True


def reference_prices(
    assets: Iterable[Asset], rates: Iterable[AssetRate]
) -> tuple[dict[Asset, Fraction], bool]:
    """A value for one base unit of every asset of ``assets`` and ``rates`` under which no
    quote creates value (see :class:`PriceBook`), and whether there is one: ``False`` if
    some cycle of quotes is an arbitrage."""
    book = PriceBook()
    free = book.add(rates, assets)
    return book.prices, free
