"""N-party channels on Solana: the client of ``contracts/solana/chenilles_group.c`` and the
``GroupAuthority`` the core's group machine signs with.

Instruction builders, the account layout, the signed state message and PDAs, on solders
types; constants kept in sync with the C source. A core ``GroupParams`` of this chain has
one asset, SOL (``Asset(chain, "native")``), and members whose chain keys are base58
ed25519 public keys.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey

from chenilles_hub.core.group import GroupParams, GroupState

from .program_client import (
    INSTRUCTIONS_SYSVAR_ID,
    REPO_ROOT,
    SYSTEM_PROGRAM_ID,
    ed25519_verify_ix,
)

GROUP_PROGRAM_SO = REPO_ROOT / "contracts" / "solana" / "build" / "chenilles_group.so"
MSG_MAGIC = b"CHNLGRP1"  # first bytes of a signed state
GROUP_MAGIC = b"CHNLGRP1"  # first bytes of a group account
CHANNEL_ID_DOMAIN = b"CHENILLES-SOL-GROUP"
SEED_GROUP = b"group"
SEED_SIGS = b"sigs"
MAX_MEMBERS = 16
GROUP_ACCOUNT_SIZE = 976
SIG_RECORD_SIZE = 16

IX_OPEN, IX_DEPOSIT, IX_REGISTER, IX_CONCLUDE, IX_WITHDRAW = range(5)
ST_OPEN, ST_DISPUTE, ST_CONCLUDED = range(3)

ERRORS = {
    1: "BAD_INSTRUCTION",
    2: "NOT_ENOUGH_ACCOUNTS",
    3: "WRONG_GROUP_ACCOUNT",
    4: "BAD_PDA",
    5: "NOT_SIGNER",
    6: "NOT_WRITABLE",
    7: "BAD_SYSVAR",
    8: "MISSING_SIGNATURE",
    9: "BAD_SIGNATURE_IX",
    10: "BAD_SIGNER",
    11: "BAD_MESSAGE",
    12: "WRONG_CHANNEL",
    13: "STALE_VERSION",
    14: "BAD_STATUS",
    15: "CHALLENGE_PERIOD_OVER",
    16: "CHALLENGE_PERIOD_ACTIVE",
    17: "ALREADY_WITHDRAWN",
    18: "WRONG_MEMBER_ACCOUNT",
    19: "OVERFLOW",
    20: "BAD_MEMBERS",
    21: "WRONG_SYSTEM_PROGRAM",
    22: "DUPLICATE_SIGNER",
}
ERROR_CODES = {name: code for code, name in ERRORS.items()}


def load_group_program() -> bytes:
    if not GROUP_PROGRAM_SO.exists():
        raise FileNotFoundError(
            f"{GROUP_PROGRAM_SO} is missing: run `python scripts/build_solana_program.py`"
        )
    return GROUP_PROGRAM_SO.read_bytes()


def group_channel_id(
    program_id: Pubkey, members: Sequence[Pubkey], challenge_duration: int, nonce: bytes
) -> bytes:
    if not 2 <= len(members) <= MAX_MEMBERS or len(nonce) != 32:
        raise ValueError(f"2 to {MAX_MEMBERS} members and a 32-byte nonce expected")
    return hashlib.sha256(
        CHANNEL_ID_DOMAIN
        + bytes(program_id)
        + bytes([len(members)])
        + b"".join(bytes(m) for m in members)
        + struct.pack("<Q", challenge_duration)
        + nonce
    ).digest()


def group_pda(program_id: Pubkey, cid: bytes) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([SEED_GROUP, cid], program_id)


def sigs_pda(program_id: Pubkey, cid: bytes, message: bytes) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address(
        [SEED_SIGS, cid, hashlib.sha256(message).digest()], program_id
    )


def state_message(cid: bytes, version: int, final: bool, balances: Sequence[int]) -> bytes:
    """What every member signs: magic | channel id | version | final | n | amounts."""
    return (
        MSG_MAGIC
        + cid
        + struct.pack("<QBB", version, int(final), len(balances))
        + b"".join(struct.pack("<Q", b) for b in balances)
    )


def core_state_message(state: GroupState) -> bytes:
    if len(state.balances) != 1:
        raise ValueError("a Solana group channel holds one asset, SOL")
    return state_message(state.channel_id, state.version, state.final, state.balances[0].amounts)


# ---------------------------------------------------------------------------------------
# Instructions
# ---------------------------------------------------------------------------------------


def open_ix(
    program_id: Pubkey,
    payer: Pubkey,
    members: Sequence[Pubkey],
    challenge_duration: int,
    nonce: bytes,
    rent_lamports: int,
) -> tuple[Instruction, bytes, Pubkey]:
    cid = group_channel_id(program_id, members, challenge_duration, nonce)
    pda, bump = group_pda(program_id, cid)
    data = (
        bytes([IX_OPEN, len(members)])
        + b"".join(bytes(m) for m in members)
        + struct.pack("<Q", challenge_duration)
        + nonce
        + struct.pack("<BQ", bump, rent_lamports)
    )
    metas = [
        AccountMeta(payer, True, True),
        AccountMeta(pda, False, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ]
    return Instruction(program_id, data, metas), cid, pda


def deposit_ix(
    program_id: Pubkey, funder: Pubkey, group: Pubkey, member: int, amount: int
) -> Instruction:
    metas = [
        AccountMeta(funder, True, True),
        AccountMeta(group, False, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ]
    return Instruction(program_id, struct.pack("<BBQ", IX_DEPOSIT, member, amount), metas)


PACKET_SIZE = 1232  # the most bytes a Solana transaction may have on the wire


def transaction_size(ixs: Sequence[Instruction], fee_payer: Pubkey) -> int:
    """The wire size of a transaction of ``ixs`` signed by its required signers."""
    message = Message(list(ixs), fee_payer)
    return 1 + 64 * message.header.num_required_signatures + len(bytes(message))


def register_ixs(
    program_id: Pubkey,
    group: Pubkey,
    cid: bytes,
    message: bytes,
    signatures: Sequence[tuple[Pubkey, bytes]],
    payer: Pubkey,
    n_members: int,
) -> list[list[Instruction]]:
    """The transactions (each a list of instructions: Ed25519 check, then REGISTER, with
    ``payer`` paying fees and any record rent) that register ``message``: one when every
    signature fits a packet, else as many signatures per transaction as fit, collected in
    the message's signature record."""
    record, bump = sigs_pda(program_id, cid, message)

    def tx(batch: Sequence[tuple[Pubkey, bytes]]) -> list[Instruction]:
        metas = [
            AccountMeta(group, False, True),
            AccountMeta(INSTRUCTIONS_SYSVAR_ID, False, False),
        ]
        if len(batch) < n_members:
            metas += [
                AccountMeta(payer, True, True),
                AccountMeta(record, False, True),
                AccountMeta(SYSTEM_PROGRAM_ID, False, False),
            ]
        check = ed25519_verify_ix(message, [(bytes(pk), sig) for pk, sig in batch])
        return [check, Instruction(program_id, bytes([IX_REGISTER, 0, bump]), metas)]

    txs, rest = [], list(signatures)
    while rest:
        take = len(rest)
        while take > 1 and transaction_size(tx(rest[:take]), payer) > PACKET_SIZE:
            take -= 1
        txs.append(tx(rest[:take]))
        rest = rest[take:]
    return txs


def conclude_ix(program_id: Pubkey, group: Pubkey) -> Instruction:
    return Instruction(program_id, bytes([IX_CONCLUDE]), [AccountMeta(group, False, True)])


def withdraw_ix(program_id: Pubkey, group: Pubkey, member: int, to: Pubkey) -> Instruction:
    metas = [AccountMeta(group, False, True), AccountMeta(to, False, True)]
    return Instruction(program_id, bytes([IX_WITHDRAW, member]), metas)


# ---------------------------------------------------------------------------------------
# Account
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupAccount:
    channel_id: bytes
    challenge_duration: int
    status: int
    n: int
    final: bool
    version: int
    deadline: int
    withdrawn: int
    members: tuple[Pubkey, ...]
    deposits: tuple[int, ...]
    balances: tuple[int, ...]
    payout: tuple[int, ...]

    @classmethod
    def decode(cls, data: bytes) -> GroupAccount:
        if len(data) < GROUP_ACCOUNT_SIZE or data[:8] != GROUP_MAGIC:
            raise ValueError("not a group account")
        cid = data[8:40]
        duration, status, _bump, n, final = struct.unpack_from("<QBBBB", data, 40)
        version, deadline, withdrawn = struct.unpack_from("<QqQ", data, 56)
        off = 80
        members = tuple(Pubkey.from_bytes(data[off + 32 * i : off + 32 * i + 32]) for i in range(n))
        off += 32 * MAX_MEMBERS

        def row(start: int) -> tuple[int, ...]:
            return struct.unpack_from(f"<{n}Q", data, start)

        return cls(
            cid,
            duration,
            status,
            n,
            bool(final),
            version,
            deadline,
            withdrawn,
            members,
            row(off),
            row(off + 8 * MAX_MEMBERS),
            row(off + 16 * MAX_MEMBERS),
        )


class SolanaGroupAuthority:
    """The core's ``GroupAuthority`` for a group channel on the Solana group program."""

    def __init__(self, params: GroupParams, keypair: Keypair | None) -> None:
        self._members = [VerifyKey(bytes(Pubkey.from_string(m.chain_key))) for m in params.members]
        self._keypair = keypair

    def sign(self, state: GroupState) -> bytes:
        if self._keypair is None:
            raise ValueError("this authority only verifies")
        return bytes(self._keypair.sign_message(core_state_message(state)))

    def verify(self, state: GroupState, member: int, signature: bytes) -> bool:
        if not 0 <= member < len(self._members) or len(signature) != 64:
            return False
        try:
            self._members[member].verify(core_state_message(state), signature)
        except (BadSignatureError, ValueError):
            return False
        return True
