"""Why a circuit-level request is refused. Each has a stable ``code`` for Reject/fail reasons."""

from __future__ import annotations

from ..core.errors import ChannelError


class CircuitError(ChannelError):
    code = "circuit"


class InvalidInvoice(CircuitError):
    code = "invalid_invoice"


class InvoiceExpired(CircuitError):
    code = "invoice_expired"


class InvoiceAlreadyPaid(CircuitError):
    code = "invoice_already_paid"


class UnknownPaymentHash(CircuitError):
    code = "unknown_payment_hash"


class QuoteExpired(CircuitError):
    code = "quote_expired"


class InvalidQuote(CircuitError):
    """Malformed, not this hub's, or its signature does not verify (forged or altered)."""

    code = "invalid_quote"


class QuoteRequired(CircuitError):
    """A hop that changes asset must name a quote of the converting hub."""

    code = "quote_required"


class UnknownQuote(CircuitError):
    """Signed by this hub but not among the quotes it remembers issuing."""

    code = "unknown_quote"


class QuoteMismatch(CircuitError):
    """The forward is not what the quote was issued for: another asset pair, more out,
    less in."""

    code = "quote_mismatch"


class QuoteUsed(CircuitError):
    """One quote covers one payment: this one was already used."""

    code = "quote_used"


class NoRate(CircuitError):
    """This hub does not convert between these assets."""

    code = "no_rate"


class TooManyQuotes(CircuitError):
    """The hub holds as many live quotes as it will remember; ask again in a few seconds."""

    code = "too_many_quotes"


class BadOnion(CircuitError):
    code = "bad_onion"


class WrongAmount(CircuitError):
    code = "wrong_amount"
