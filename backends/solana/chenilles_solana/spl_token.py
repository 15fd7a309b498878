"""SPL Token and Associated Token Account instructions, built from the programs' layouts.

Only the handful the backend needs (create a test mint, mint to, associated token accounts,
read a token account). Written by hand because solana-py's spl helpers pull the whole RPC
client into what is otherwise pure instruction encoding; the byte layouts are those of
spl-token 3.x (``TokenInstruction``) and spl-associated-token-account.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")

MINT_SIZE = 82
TOKEN_ACCOUNT_SIZE = 165

# TokenInstruction tags
_TRANSFER = 3
_MINT_TO = 7
_INITIALIZE_ACCOUNT3 = 18
_INITIALIZE_MINT2 = 20
# AssociatedTokenAccountInstruction tags
_ATA_CREATE_IDEMPOTENT = 1


def associated_token_address(owner: Pubkey, mint: Pubkey) -> Pubkey:
    """The canonical token account of ``owner`` for ``mint`` (where the backend pays out)."""
    return Pubkey.find_program_address(
        [bytes(owner), bytes(TOKEN_PROGRAM_ID), bytes(mint)], ASSOCIATED_TOKEN_PROGRAM_ID
    )[0]


def create_account_ix(payer: Pubkey, new: Pubkey, lamports: int, space: int) -> Instruction:
    """system_program::create_account of an account owned by the token program."""
    data = struct.pack("<IQQ", 0, lamports, space) + bytes(TOKEN_PROGRAM_ID)
    return Instruction(
        SYSTEM_PROGRAM_ID, data, [AccountMeta(payer, True, True), AccountMeta(new, True, True)]
    )


def initialize_mint2_ix(mint: Pubkey, authority: Pubkey, decimals: int) -> Instruction:
    data = struct.pack("<BB", _INITIALIZE_MINT2, decimals) + bytes(authority) + b"\x00"
    return Instruction(TOKEN_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def initialize_account3_ix(account: Pubkey, mint: Pubkey, owner: Pubkey) -> Instruction:
    return Instruction(
        TOKEN_PROGRAM_ID,
        bytes([_INITIALIZE_ACCOUNT3]) + bytes(owner),
        [AccountMeta(account, False, True), AccountMeta(mint, False, False)],
    )


def mint_to_ix(mint: Pubkey, to: Pubkey, authority: Pubkey, amount: int) -> Instruction:
    return Instruction(
        TOKEN_PROGRAM_ID,
        struct.pack("<BQ", _MINT_TO, amount),
        [
            AccountMeta(mint, False, True),
            AccountMeta(to, False, True),
            AccountMeta(authority, True, False),
        ],
    )


def transfer_ix(source: Pubkey, dest: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    return Instruction(
        TOKEN_PROGRAM_ID,
        struct.pack("<BQ", _TRANSFER, amount),
        [
            AccountMeta(source, False, True),
            AccountMeta(dest, False, True),
            AccountMeta(owner, True, False),
        ],
    )


def create_ata_idempotent_ix(payer: Pubkey, owner: Pubkey, mint: Pubkey) -> Instruction:
    """Creates ``owner``'s associated token account for ``mint`` unless it exists."""
    return Instruction(
        ASSOCIATED_TOKEN_PROGRAM_ID,
        bytes([_ATA_CREATE_IDEMPOTENT]),
        [
            AccountMeta(payer, True, True),
            AccountMeta(associated_token_address(owner, mint), False, True),
            AccountMeta(owner, False, False),
            AccountMeta(mint, False, False),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
            AccountMeta(TOKEN_PROGRAM_ID, False, False),
        ],
    )


@dataclass(frozen=True)
class TokenAccountData:
    mint: Pubkey
    owner: Pubkey
    amount: int

    @classmethod
    def decode(cls, data: bytes) -> TokenAccountData:
        if len(data) != TOKEN_ACCOUNT_SIZE:
            raise ValueError("not an SPL token account")
        (amount,) = struct.unpack_from("<Q", data, 64)
        return cls(Pubkey.from_bytes(data[0:32]), Pubkey.from_bytes(data[32:64]), amount)
