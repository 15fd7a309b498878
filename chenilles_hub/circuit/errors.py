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
    code = "invalid_quote"


class BadOnion(CircuitError):
    code = "bad_onion"


class WrongAmount(CircuitError):
    code = "wrong_amount"
