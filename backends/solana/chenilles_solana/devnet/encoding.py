"""Accounts and transactions in the shapes Solana's RPC answers with.

Field names, order and presence follow agave's ``UiAccount``, ``UiTransaction`` and
``EncodedConfirmedTransactionWithStatusMeta``; the tests check every shape by parsing it
with solders, whose types are agave's own Rust structs.
"""

from __future__ import annotations

import base64
from typing import Any

import base58
from solders.account import Account
from solders.message import MessageV0
from solders.transaction import VersionedTransaction

from .chain import Landed
from .errors import INVALID_REQUEST, UNSUPPORTED_TRANSACTION_VERSION, RpcError, invalid_params

#: Longest account data the RPC will base58-encode (solana-account-decoder MAX_BASE58_BYTES).
MAX_BASE58_BYTES = 128
ACCOUNT_ENCODINGS = ("base58", "base64", "jsonParsed", "binary")
TRANSACTION_ENCODINGS = ("json", "base58", "base64")


def ui_account(
    account: Account, encoding: str = "base64", data_slice: tuple[int, int] | None = None
) -> dict[str, Any]:
    """``jsonParsed`` falls back to base64, as Solana does for accounts it has no parser for
    (this devnet has none: SPL token accounts come back as bytes too)."""
    full = bytes(account.data)
    data = full
    if data_slice is not None:
        offset, length = data_slice
        data = full[offset : offset + length]
    if encoding in ("base58", "binary") and len(data) > MAX_BASE58_BYTES:
        raise RpcError(
            INVALID_REQUEST,
            f"Encoded binary (base 58) data should be less than {MAX_BASE58_BYTES} bytes, "
            "please use Base64 encoding.",
        )
    encoded: Any
    if encoding == "binary":  # the deprecated form: a bare base58 string
        encoded = base58.b58encode(data).decode()
    elif encoding == "base58":
        encoded = [base58.b58encode(data).decode(), "base58"]
    elif encoding in ("base64", "jsonParsed"):
        encoded = [base64.b64encode(data).decode(), "base64"]
    else:
        raise invalid_params(
            f"Invalid params: unsupported encoding {encoding!r}; this devnet serves "
            + ", ".join(ACCOUNT_ENCODINGS)
        )
    return {
        "lamports": account.lamports,
        "data": encoded,
        "owner": str(account.owner),
        "executable": account.executable,
        "rentEpoch": account.rent_epoch,
        "space": len(full),
    }


def ui_transaction(tx: VersionedTransaction) -> dict[str, Any]:
    """The ``json`` encoding: the message's raw fields, instruction data in base58."""
    m = tx.message
    message: dict[str, Any] = {
        "header": {
            "numRequiredSignatures": m.header.num_required_signatures,
            "numReadonlySignedAccounts": m.header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": m.header.num_readonly_unsigned_accounts,
        },
        "accountKeys": [str(k) for k in m.account_keys],
        "recentBlockhash": str(m.recent_blockhash),
        "instructions": [
            {
                "programIdIndex": ix.program_id_index,
                "accounts": list(bytes(ix.accounts)),
                "data": base58.b58encode(bytes(ix.data)).decode(),
                "stackHeight": None,
            }
            for ix in m.instructions
        ],
    }
    if isinstance(m, MessageV0):
        message["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "writableIndexes": list(bytes(lookup.writable_indexes)),
                "readonlyIndexes": list(bytes(lookup.readonly_indexes)),
            }
            for lookup in m.address_table_lookups
        ]
    return {"signatures": [str(s) for s in tx.signatures], "message": message}


def encoded_transaction(landed: Landed, encoding: str) -> Any:
    if encoding == "json":
        return ui_transaction(landed.transaction)
    if encoding == "base64":
        return [base64.b64encode(landed.wire).decode(), "base64"]
    if encoding == "base58":
        return [base58.b58encode(landed.wire).decode(), "base58"]
    raise invalid_params(
        f"Invalid params: unsupported encoding {encoding!r}; this devnet serves "
        + ", ".join(TRANSACTION_ENCODINGS)
    )


def transaction_version(tx: VersionedTransaction) -> int | None:
    """0 for a v0 message, None for a legacy one."""
    return 0 if isinstance(tx.message, MessageV0) else None


def confirmed_transaction(landed: Landed, encoding: str, max_version: int | None) -> dict[str, Any]:
    """getTransaction's value. ``version`` appears only when the client said which versions
    it supports (as Solana: older clients do not expect the field)."""
    version = transaction_version(landed.transaction)
    if version is not None and (max_version is None or version > max_version):
        raise RpcError(
            UNSUPPORTED_TRANSACTION_VERSION,
            f"Transaction version ({version}) is not supported by the requesting client. "
            "Please try the request again with the following configuration parameter: "
            f'"maxSupportedTransactionVersion": {version}',
        )
    out: dict[str, Any] = {
        "slot": landed.slot,
        "transaction": encoded_transaction(landed, encoding),
        "meta": landed.meta,
    }
    if max_version is not None:
        out["version"] = "legacy" if version is None else version
    out["blockTime"] = landed.block_time
    return out


def transaction_status(landed: Landed) -> dict[str, Any]:
    """getSignatureStatuses' entry: every landed transaction is final here at once."""
    return {
        "slot": landed.slot,
        "confirmations": None,
        "status": {"Ok": None} if landed.err is None else {"Err": landed.err},
        "err": landed.err,
        "confirmationStatus": "finalized",
    }


def signature_info(landed: Landed) -> dict[str, Any]:
    """getSignaturesForAddress' entry."""
    return {
        "signature": landed.signature,
        "slot": landed.slot,
        "err": landed.err,
        "memo": landed.memo,
        "blockTime": landed.block_time,
        "confirmationStatus": "finalized",
    }
