"""Readable reasons for failed Solana transactions.

The runtime reports ``InstructionError(index, Custom(code))``: the code alone does not say
which program refused (ours, the SPL Token program it invoked, the Ed25519 precompile). The
logs do, so the reason names the program and the error: an operator reading
``BAD_VAULT (custom program error 0x20)`` knows what happened without the C source.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from solders.pubkey import Pubkey
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from . import program_client as pc
from .spl_token import TOKEN_PROGRAM_ID

#: spl-token's TokenError, in declaration order.
TOKEN_ERRORS = (
    "NotRentExempt",
    "InsufficientFunds",
    "InvalidMint",
    "MintMismatch",
    "OwnerMismatch",
    "FixedSupply",
    "AlreadyInUse",
    "InvalidNumberOfProvidedSigners",
    "InvalidNumberOfRequiredSigners",
    "UninitializedState",
    "NativeNotSupported",
    "NonNativeHasBalance",
    "InvalidInstruction",
    "InvalidState",
    "Overflow",
    "AuthorityTypeNotSupported",
    "MintCannotFreeze",
    "AccountFrozen",
    "MintDecimalsMismatch",
    "NonNativeNotSupported",
)

#: solana-sdk PrecompileError, in declaration order.
PRECOMPILE_ERRORS = (
    "InvalidPublicKey",
    "InvalidRecoveryId",
    "InvalidSignature",
    "InvalidDataOffsets",
    "InvalidInstructionDataSize",
)

_FAILED = re.compile(r"^Program (\S+) failed: (.*)$")


def _failing_program(logs: Sequence[str]) -> str | None:
    """The innermost program that failed (the first ``failed`` line of the logs)."""
    for line in logs:
        m = _FAILED.match(line)
        if m:
            return m.group(1)
    return None


def describe(
    err: object,
    logs: Sequence[str],
    program_id: Pubkey,
    instruction_programs: Sequence[Pubkey] = (),
) -> str:
    """``<error name> (custom program error 0x..)`` for custom errors, else the runtime's."""
    if not isinstance(err, TransactionErrorInstructionError):
        return str(err)
    inner = err.err
    failed_at = instruction_programs[err.index] if err.index < len(instruction_programs) else None
    if failed_at == pc.ED25519_PROGRAM_ID:
        code = inner.code if isinstance(inner, InstructionErrorCustom) else None
        name = (
            PRECOMPILE_ERRORS[code]
            if code is not None and code < len(PRECOMPILE_ERRORS)
            else str(inner)
        )
        return f"ED25519_{name} (signature precompile, instruction {err.index})"
    if not isinstance(inner, InstructionErrorCustom):
        return f"{inner} (instruction {err.index})"
    code = inner.code
    hexcode = f"custom program error 0x{code:x}"
    culprit = _failing_program(logs)
    if culprit == str(TOKEN_PROGRAM_ID) and code < len(TOKEN_ERRORS):
        return f"spl-token {TOKEN_ERRORS[code]} ({hexcode})"
    if culprit in (None, str(program_id)) and code in pc.ERRORS:
        return f"{pc.ERRORS[code]} ({hexcode})"
    if code in (pc.APP_INVALID_TRANSITION, pc.APP_BAD_CALL):
        name = "INVALID_TRANSITION" if code == pc.APP_INVALID_TRANSITION else "BAD_CALL"
        return f"app program {culprit} refused the move: {name} ({hexcode})"
    return f"{culprit or 'program'} error ({hexcode})"
