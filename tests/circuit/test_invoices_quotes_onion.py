"""Invoices, quotes and onion layers: signed, short-lived, readable only by their node."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from chenilles_hub.circuit.errors import (
    BadOnion,
    InvalidInvoice,
    InvalidQuote,
    InvoiceExpired,
    QuoteExpired,
)
from chenilles_hub.circuit.invoice import check_payable, create_invoice, decode_invoice
from chenilles_hub.circuit.onion import OnionHop, build_onion, peel
from chenilles_hub.circuit.quote import Rate, check_quote, make_quote
from chenilles_hub.core import Asset
from chenilles_hub.identity import NodeIdentity

pytestmark = pytest.mark.circuit

BTC = Asset("bip122:regtest", "native")
ETH = Asset("eip155:1", "native")
NOW = 1_700_000_000


def test_invoice_round_trips_and_carries_the_payees_signature() -> None:
    bob = NodeIdentity()
    invoice, preimage = create_invoice(bob, 50_000, BTC, NOW, final_lead=1800)
    decoded = decode_invoice(invoice.encode())
    assert decoded == invoice
    assert decoded.payment_hash == hashlib.sha256(preimage).digest()
    assert decoded.payee == bob.node_id


def test_a_rewritten_invoice_is_refused() -> None:
    bob = NodeIdentity()
    invoice, _ = create_invoice(bob, 50_000, BTC, NOW, final_lead=1800)
    tampered = msgspec.structs.replace(invoice, amount=1)
    with pytest.raises(InvalidInvoice, match="not signed"):
        decode_invoice(tampered.encode())
    with pytest.raises(InvalidInvoice):
        decode_invoice("chinv1!!!")
    with pytest.raises(InvalidInvoice):
        decode_invoice("lnbc1...")


def test_an_expired_invoice_is_not_payable() -> None:
    invoice, _ = create_invoice(NodeIdentity(), 1, BTC, NOW, ttl=60, final_lead=10)
    check_payable(invoice, NOW + 59)
    with pytest.raises(InvoiceExpired):
        check_payable(invoice, NOW + 60)


def test_quote_amounts_are_exact_integers() -> None:
    hub = NodeIdentity()
    # 1 BTC = 20 ETH: 1 sat = 20 * 10**18 / 10**8 wei, i.e. sat = wei * 1 / 2 * 10**-11
    rate = Rate(numerator=1, denominator=2 * 10**11)
    quote = make_quote(hub, ETH, BTC, 100_000, rate, fee=100, now=NOW)
    assert quote.amount_in == (100_000 + 100) * 2 * 10**11
    assert rate.convert(quote.amount_in) == 100_100
    check_quote(quote, NOW + 1)


def test_expired_or_forged_quotes_are_refused() -> None:
    hub = NodeIdentity()
    quote = make_quote(hub, ETH, BTC, 1000, Rate(1, 3), fee=0, now=NOW, ttl=30)
    with pytest.raises(QuoteExpired):
        check_quote(quote, NOW + 30)
    with pytest.raises(InvalidQuote):
        check_quote(msgspec.structs.replace(quote, amount_in=1), NOW)
    other = NodeIdentity()
    forged = msgspec.structs.replace(quote, hub=other.node_id)
    with pytest.raises(InvalidQuote):
        check_quote(forged, NOW)


def test_required_input_is_the_least_that_covers_the_output() -> None:
    for num, den in [(1, 3), (7, 5), (2, 2 * 10**11), (10**18, 1)]:
        rate = Rate(num, den)
        for out in [1, 2, 99, 12345]:
            need = rate.required_input(out)
            assert rate.convert(need) >= out
            assert need == 1 or rate.convert(need - 1) < out


def test_each_node_reads_only_its_own_layer() -> None:
    nodes = [NodeIdentity() for _ in range(3)]
    hops = [
        OnionHop(nodes[0].node_id, b"\x01" * 32, 10**20, ETH, NOW + 9000),
        OnionHop(nodes[1].node_id, b"\x02" * 32, 5000, BTC, NOW + 5000),
        OnionHop(nodes[2].node_id, b"\x03" * 32, 4990, BTC, NOW + 3000),
    ]
    onion = build_onion(hops)
    first = peel(nodes[0], onion)
    assert not first.final and first.next_channel == b"\x02" * 32
    assert first.amount_int == 5000 and first.asset == BTC and first.expiry == NOW + 5000
    with pytest.raises(BadOnion):
        peel(nodes[1], onion)  # not for the second node
    second = peel(nodes[1], first.inner)
    assert second.next_channel == b"\x03" * 32 and second.amount_int == 4990
    last = peel(nodes[2], second.inner)
    assert last.final and last.amount_int == 4990 and last.expiry == NOW + 3000


def test_a_tampered_onion_is_refused() -> None:
    node = NodeIdentity()
    onion = build_onion([OnionHop(node.node_id, b"\x01" * 32, 1, BTC, NOW)])
    flipped = onion[:-1] + bytes([onion[-1] ^ 1])
    with pytest.raises(BadOnion):
        peel(node, flipped)


def test_converted_keys_are_kept_per_node_and_bad_ids_still_fail() -> None:
    """The X25519 images are converted once (payer side per node id, receiver side per
    identity): a restarted node (same seed) opens layers sealed before, another node with
    a cached box still cannot, and a malformed node id fails every time, not just once."""
    seed = hashlib.sha256(b"onion restart").digest()
    node, other = NodeIdentity.from_seed(seed), NodeIdentity()
    hop = OnionHop(node.node_id, b"\x01" * 32, 7, BTC, NOW)
    onions = [build_onion([hop]) for _ in range(3)]  # the second and third: cached box
    assert len(set(onions)) == 3  # a fresh ephemeral key per layer all the same
    restarted = NodeIdentity.from_seed(seed)
    for onion in onions:
        assert peel(restarted, onion).amount_int == 7
        with pytest.raises(BadOnion):
            peel(other, onion)
    bad = OnionHop(b"\x00" * 31, b"\x01" * 32, 7, BTC, NOW)
    for _ in range(2):
        with pytest.raises((ValueError, TypeError)):
            build_onion([bad])
