"""Invoices: what a payee asks for, signed by its node key.

The payer checks the signature against the payee's node id, so a hub in the middle cannot
rewrite the amount, asset or payment hash. An invoice is single-use: the payee refuses a
second payment to the same hash (the preimage is already public after the first).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Annotated

import msgspec

from ..core.model import Asset, Bytes32, UnixTime
from ..identity import NodeIdentity, verify_signature
from .errors import InvalidInvoice, InvoiceExpired

PREFIX = "chinv1"
#: Seconds a payer adds to the invoice's final lead when routing: the payment takes time to
#: arrive, and the payee checks the lead against its own clock on arrival.
ROUTE_SLACK = 120
_DOMAIN = b"chenilles/invoice/v1\x00"


class Invoice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    payment_hash: Bytes32
    amount: Annotated[int, msgspec.Meta(gt=0)]
    asset: Asset
    payee: Bytes32
    created_at: UnixTime
    expires_at: UnixTime
    #: Minimum time the last hop's HTLC must leave the payee to enforce it on its chain.
    final_lead: Annotated[int, msgspec.Meta(ge=0)]
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""
    signature: Annotated[bytes, msgspec.Meta(max_length=64)] = b""

    def signing_bytes(self) -> bytes:
        unsigned = msgspec.structs.replace(self, signature=b"")
        return _DOMAIN + msgspec.json.encode(unsigned)

    def encode(self) -> str:
        raw = base64.urlsafe_b64encode(msgspec.json.encode(self)).decode().rstrip("=")
        return PREFIX + raw


def create_invoice(
    identity: NodeIdentity,
    amount: int,
    asset: Asset,
    now: int,
    *,
    ttl: int = 3600,
    final_lead: int,
    description: str = "",
) -> tuple[Invoice, bytes]:
    """A signed invoice and its preimage (which only the payee keeps until it is paid)."""
    preimage = secrets.token_bytes(32)
    invoice = Invoice(
        payment_hash=hashlib.sha256(preimage).digest(),
        amount=amount,
        asset=asset,
        payee=identity.node_id,
        created_at=now,
        expires_at=now + ttl,
        final_lead=final_lead,
        description=description,
    )
    signed = msgspec.structs.replace(invoice, signature=identity.sign(invoice.signing_bytes()))
    return signed, preimage


_decoder = msgspec.json.Decoder(Invoice)


def decode_invoice(text: str) -> Invoice:
    """Parse and verify the payee's signature; raises InvalidInvoice."""
    if not text.startswith(PREFIX) or len(text) > 4096:
        raise InvalidInvoice("not a Chenilles invoice")
    body = text[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        invoice = _decoder.decode(raw)
    except (ValueError, msgspec.DecodeError) as exc:
        raise InvalidInvoice(f"malformed invoice: {exc}") from None
    if not verify_signature(invoice.payee, invoice.signing_bytes(), invoice.signature):
        raise InvalidInvoice("the invoice is not signed by its payee")
    return invoice


def check_payable(invoice: Invoice, now: int) -> None:
    if now >= invoice.expires_at:
        raise InvoiceExpired(f"the invoice expired at {invoice.expires_at} (now {now})")
