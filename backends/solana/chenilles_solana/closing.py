"""Payouts and the end of a channel's accounts: WITHDRAW, and CLOSE_ACCOUNTS, which gives
the rent of a finished channel's account and token vaults back to whoever paid it at OPEN.

Kept apart from the backend module (which stays about the ``ChainBackend`` calls): these
build instructions from what the chain shows. The rules they follow are the program's
(contracts/solana/chenilles_channel.c): CLOSE_ACCOUNTS only once the channel is concluded
or cooperatively closed and every non-zero payout was withdrawn, lamports only to the
recorded rent payer.
"""

from __future__ import annotations

from typing import Protocol

from solders.instruction import Instruction
from solders.pubkey import Pubkey

from . import program_client as pc
from . import spl_token as spl
from .ledger import Ledger

__all__ = ["ChannelAddresses", "closing_ixs", "withdraw_ixs"]


class ChannelAddresses(Protocol):
    """Where a channel lives (the backend's ``_Channel``)."""

    @property
    def address(self) -> Pubkey: ...
    @property
    def parts(self) -> tuple[Pubkey, Pubkey]: ...
    @property
    def mints(self) -> tuple[bytes, ...]: ...


def _vault(ledger: Ledger, ch: ChannelAddresses, mint: bytes) -> Pubkey:
    return pc.vault_pda(ledger.program_id, ch.address, Pubkey.from_bytes(mint))[0]


def withdraw_ixs(
    ledger: Ledger, ch: ChannelAddresses, who: int, k: int, payer: Pubkey
) -> list[Instruction]:
    """WITHDRAW of participant ``who``'s payout of asset ``k`` (to its own account, or its
    associated token account, created first at ``payer``'s cost if missing)."""
    owner = ch.parts[who]
    if ch.mints[k] == pc.NATIVE_MINT:
        return [pc.withdraw_ix(ledger.program_id, ch.address, who, owner, asset=k)]
    mint = Pubkey.from_bytes(ch.mints[k])
    receiver = spl.associated_token_address(owner, mint)
    create = [] if ledger.account(receiver) else [spl.create_ata_idempotent_ix(payer, owner, mint)]
    return [
        *create,
        pc.withdraw_ix(
            ledger.program_id,
            ch.address,
            who,
            receiver,
            asset=k,
            vault=_vault(ledger, ch, ch.mints[k]),
        ),
    ]


def closing_ixs(
    ledger: Ledger,
    ch: ChannelAddresses,
    onchain: pc.ChannelAccount,
    lamports: int,
    sender: Pubkey | None,
    sending: tuple[int, int] | None = None,
) -> tuple[list[Instruction], int]:
    """What ``sender`` appends to its transaction to close the channel's accounts: WITHDRAW
    of every payout still in the channel except ``sending`` ((asset, participant) that the
    transaction already withdraws), then CLOSE_ACCOUNTS; and the lamports that gives back
    (the channel account's ``lamports`` less the SOL payouts, plus each vault's).

    Nothing (``[], 0``) unless ``sender`` paid the rent (``None``: nobody closes) and the
    channel is finished; and
    nothing when a payout would need the peer's token account created at the sender's cost
    (the peer's own withdraw pays it later; the accounts then stay open, which an operator
    can close by hand, ``pc.close_accounts_ix``)."""
    if (
        sender is None
        or onchain.rent_payer != sender
        or onchain.status not in (pc.ST_CONCLUDED, pc.ST_CLOSED)
    ):
        return [], 0
    ixs: list[Instruction] = []
    refund = lamports
    vaults: list[Pubkey] = []
    for k, mint in enumerate(ch.mints):
        native = mint == pc.NATIVE_MINT
        if not native:
            vault = _vault(ledger, ch, mint)
            view = ledger.account(vault)
            refund += view.lamports if view else 0
            vaults.append(vault)
        for who in (0, 1):
            amount = onchain.payout[k][who]
            if onchain.withdrawn & (1 << (2 * k + who)) or amount == 0:
                continue
            if native:
                refund -= amount  # leaves the channel account as a payout, not as rent
            if (k, who) == sending:
                continue
            owner = ch.parts[who]
            if not native and not ledger.account(
                spl.associated_token_address(owner, Pubkey.from_bytes(mint))
            ):
                return [], 0
            ixs += withdraw_ixs(ledger, ch, who, k, sender)
    ixs.append(pc.close_accounts_ix(ledger.program_id, ch.address, sender, vaults))
    return ixs, refund
