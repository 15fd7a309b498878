"""SPL token accounts and mints as the RPC reports them (getTokenAccountBalance, and the
pre/post token balances in a transaction's meta).

Reads the byte layouts of spl-token (and the base layout Token-2022 shares); amounts are
integers in base units, and the UI strings follow Solana's ``real_number_string_trimmed``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.account import Account
from solders.pubkey import Pubkey

from .. import spl_token as spl

TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EN5mKRHtFGH4TLMfWjbd")
TOKEN_PROGRAMS = (spl.TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
_ACCOUNT_TYPE_ACCOUNT = 2  # Token-2022's byte after the 165-byte base of an extended account
_ACCOUNT_TYPE_MINT = 1


@dataclass(frozen=True)
class TokenHolding:
    mint: Pubkey
    owner: Pubkey
    amount: int
    program_id: Pubkey


def token_account(account: Account | None) -> TokenHolding | None:
    """The holding in an initialized token account, or None for anything else."""
    if account is None or account.owner not in TOKEN_PROGRAMS:
        return None
    data = bytes(account.data)
    size = spl.TOKEN_ACCOUNT_SIZE
    if len(data) < size:
        return None
    if len(data) > size and (
        account.owner != TOKEN_2022_PROGRAM_ID or data[size] != _ACCOUNT_TYPE_ACCOUNT
    ):
        return None
    if data[108] == 0:  # AccountState::Uninitialized
        return None
    (amount,) = struct.unpack_from("<Q", data, 64)
    return TokenHolding(
        Pubkey.from_bytes(data[0:32]), Pubkey.from_bytes(data[32:64]), amount, account.owner
    )


def mint_decimals(account: Account | None) -> int | None:
    """A mint's decimals, or None if ``account`` is not an initialized mint."""
    if account is None or account.owner not in TOKEN_PROGRAMS:
        return None
    data = bytes(account.data)
    if len(data) < spl.MINT_SIZE:
        return None
    if len(data) > spl.MINT_SIZE and (
        account.owner != TOKEN_2022_PROGRAM_ID
        or len(data) <= spl.TOKEN_ACCOUNT_SIZE
        or data[spl.TOKEN_ACCOUNT_SIZE] != _ACCOUNT_TYPE_MINT
    ):
        return None
    if data[45] == 0:  # is_initialized
        return None
    return data[44]


def ui_amount_string(amount: int, decimals: int) -> str:
    """``1500000`` at 6 decimals is ``"1.5"`` (Solana's real_number_string_trimmed)."""
    if decimals == 0:
        return str(amount)
    s = str(amount).rjust(decimals + 1, "0")
    s = f"{s[:-decimals]}.{s[-decimals:]}"
    return s.rstrip("0").rstrip(".")


def ui_token_amount(amount: int, decimals: int) -> dict[str, object]:
    """The RPC's ``UiTokenAmount`` (uiAmount is a float there: display only)."""
    text = ui_amount_string(amount, decimals)
    return {
        "uiAmount": float(text),
        "decimals": decimals,
        "amount": str(amount),
        "uiAmountString": text,
    }
