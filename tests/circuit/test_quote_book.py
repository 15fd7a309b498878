"""The hub's quote book against a plain model: whatever the order of issues, forwards and
time, it holds exactly the quotes issued and not yet expired, each used at most once, and
the changes it hands to the checkpoint rebuild exactly that book (what a restart reads)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chenilles_hub.circuit.errors import CircuitError
from chenilles_hub.circuit.quote import IssuedQuote, QuoteBook, Rate, encode_quote
from chenilles_hub.core.model import Asset
from chenilles_hub.identity import NodeIdentity

HUB = NodeIdentity()
ETH, TOKEN = Asset("evm:1", "native"), Asset("evm:1", "token")
RATE = Rate(3, 1)

#: ("issue", ttl) | ("use", index of an issued quote) | ("wait", seconds) | ("save", 0)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("issue"), st.integers(1, 40)),
        st.tuples(st.just("use"), st.integers(0, 30)),
        st.tuples(st.just("wait"), st.integers(0, 25)),
        st.tuples(st.just("save"), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(steps=steps, limit=st.integers(1, 8))
def test_the_book_is_the_live_quotes_and_its_changes_rebuild_it(
    steps: list[tuple[str, int]], limit: int
) -> None:
    book = QuoteBook(HUB, limit=limit)
    now = 1_000
    model: dict[bytes, IssuedQuote] = {}  # what the book must hold
    stored: dict[bytes, IssuedQuote] = {}  # what the checkpoints wrote
    issued = []
    for kind, n in steps:
        if kind == "issue":
            model = {q: e for q, e in model.items() if now < e.quote.expires_at}
            try:
                quote = book.issue(ETH, TOKEN, 1_000, RATE, 0, now, ttl=n)
            except CircuitError:
                assert len(model) >= limit
                continue
            assert len(model) < limit
            model[quote.quote_id] = IssuedQuote(quote)
            issued.append(quote)
        elif kind == "use" and issued:
            quote = issued[n % len(issued)]
            entry = model.get(quote.quote_id)
            try:
                book.check(encode_quote(quote), ETH, quote.amount_in, TOKEN, 1_000, now)
            except CircuitError:
                assert entry is None or entry.used or now >= quote.expires_at
                continue
            assert entry is not None and not entry.used and now < quote.expires_at
            book.consume(quote, now)
            model = {q: e for q, e in model.items() if now < e.quote.expires_at}
            model[quote.quote_id] = IssuedQuote(quote, used=True)
        elif kind == "wait":
            now += n
        elif kind == "save":
            for quote_id, entry in book.take_changes().items():
                if entry is None:
                    stored.pop(quote_id, None)
                else:
                    stored[quote_id] = entry
        assert {e.quote.quote_id: e for e in book.state} == model
    for quote_id, entry in book.take_changes().items():
        if entry is None:
            stored.pop(quote_id, None)
        else:
            stored[quote_id] = entry
    assert stored == model
    restarted = QuoteBook(HUB, limit=limit)
    restarted.restore(stored.values())
    restarted.prune(now)
    assert {e.quote.quote_id: e for e in restarted.state} == {
        q: e for q, e in model.items() if now < e.quote.expires_at
    }
