"""The counts ``/metrics`` reports of our payments and invoices (``PaymentTotals``) equal a
recount whatever the feed: the changes a checkpoint names, a restore's records that no
checkpoint names, and a node nobody scrapes for a long while (its noted changes are dropped
past ``MAX_NOTED`` for one recount, not kept growing)."""

from __future__ import annotations

from collections import Counter

import pytest

from chenilles_hub.core import Asset
from chenilles_hub.node.hub import payment_totals
from chenilles_hub.node.hub.journal import INVOICE_PREFIX, PAYMENT_PREFIX
from chenilles_hub.node.hub.payment_totals import PaymentTotals
from chenilles_hub.node.hub.records import Payment

pytestmark = pytest.mark.node

ETH = Asset("eip155:1", "native")


def _hash(i: int) -> bytes:
    return i.to_bytes(32, "big")


def _recount(payments: dict[bytes, Payment], invoices: set[bytes], paid: set[bytes]):  # type: ignore[no-untyped-def]
    by_status = Counter(p.status for p in payments.values())
    open_ = sum(1 for h in invoices if h not in paid)
    return dict(by_status), {"paid": len(invoices) - open_, "open": open_}


def _kept(totals: PaymentTotals):  # type: ignore[no-untyped-def]
    return (
        {s: n for s, n in totals.payments.items() if n},
        {s: totals.invoices[s] for s in ("paid", "open")},
    )


def test_the_counts_follow_the_noted_changes_and_a_long_silence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(payment_totals, "MAX_NOTED", 50)
    payments = {_hash(i): Payment(_hash(i), 1, ETH, 1, ETH) for i in range(60)}
    invoices = {_hash(i) for i in range(60)}
    paid: set[bytes] = set()
    totals = PaymentTotals()
    totals.refresh(payments, invoices, paid)  # a restore: nothing noted, every one counted
    assert _kept(totals) == _recount(payments, invoices, paid)

    payments[_hash(3)].status = "succeeded"
    paid.add(_hash(3))
    totals.changed([PAYMENT_PREFIX + _hash(3).hex(), INVOICE_PREFIX + _hash(3).hex()])
    totals.refresh(payments, invoices, paid)
    assert _kept(totals) == _recount(payments, invoices, paid)

    # Nobody scrapes while every payment ends: past MAX_NOTED the noted changes are
    # dropped (the sizes stay the same), and the next refresh counts every one afresh.
    for i in range(60):
        payments[_hash(i)].status = "failed" if i % 2 else "succeeded"
        totals.changed([PAYMENT_PREFIX + _hash(i).hex()])
        assert len(totals._payments.changed) <= 50
    totals.refresh(payments, invoices, paid)
    assert _kept(totals) == _recount(payments, invoices, paid)
