"""Cooperative close transaction (BOLT 3 "Closing Transaction").

Spends the funding output straight to each side's ``shutdown`` scriptpubkey, with
no delays: both sides agree, so nothing needs to be punishable.  The fee comes
out of the funder's output; outputs below the dust limit are removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from bitcoin.core import CMutableTransaction, CMutableTxIn, CMutableTxOut
from bitcoin.core.script import CScript

from .errors import FeeTooHighError, NoOutputError, UnaffordableFeeError
from .funding_spend import FundingSpend
from .txutil import TX_VERSION, OutPoint, fee_for_weight

#: Witness of a 2-of-2 spend with 73-byte signatures: count, nil, 2 sigs, script.
_FUNDING_WITNESS_BYTES = 1 + 1 + 2 * (1 + 73) + 1 + 71


def closing_weight(local_script_pubkey: bytes | None, remote_script_pubkey: bytes | None) -> int:
    """Expected weight of a closing tx with the given outputs (73-byte signatures)."""
    outs = [s for s in (local_script_pubkey, remote_script_pubkey) if s is not None]
    base = 4 + 1 + 41 + 1 + sum(8 + 1 + len(s) for s in outs) + 4
    return 4 * base + 2 + _FUNDING_WITNESS_BYTES


def closing_fee(
    feerate_per_kw: int, local_script_pubkey: bytes | None, remote_script_pubkey: bytes | None
) -> int:
    """Fee proposal for ``closing_signed`` at ``feerate_per_kw``."""
    return fee_for_weight(feerate_per_kw, closing_weight(local_script_pubkey, remote_script_pubkey))


@dataclass
class ClosingTx(FundingSpend):
    """An unsigned closing transaction."""

    tx: CMutableTransaction
    funding_amount_sat: int
    local_funding_pubkey: bytes
    remote_funding_pubkey: bytes
    fee_sat: int


def build_closing_tx(
    *,
    funding_outpoint: OutPoint,
    funding_amount_sat: int,
    local_funding_pubkey: bytes,
    remote_funding_pubkey: bytes,
    local_script_pubkey: bytes,
    remote_script_pubkey: bytes,
    to_local_msat: int,
    to_remote_msat: int,
    local_is_funder: bool,
    fee_sat: int,
    dust_limit_sat: int,
    max_fee_sat: int | None = None,
) -> ClosingTx:
    """Closing transaction paying final balances (rounded down) minus the funder's fee.

    Raises :class:`FeeTooHighError` if ``fee_sat`` exceeds ``max_fee_sat`` and
    :class:`UnaffordableFeeError` if the funder's balance cannot cover it.
    """
    if fee_sat < 0 or to_local_msat < 0 or to_remote_msat < 0:
        raise ValueError("amounts must not be negative")
    if to_local_msat + to_remote_msat > funding_amount_sat * 1000:
        raise ValueError("balances exceed the funding amount")
    if max_fee_sat is not None and fee_sat > max_fee_sat:
        raise FeeTooHighError(f"closing fee {fee_sat} sat exceeds the limit {max_fee_sat} sat")
    local_sat, remote_sat = to_local_msat // 1000, to_remote_msat // 1000
    if local_is_funder:
        if local_sat < fee_sat:
            raise UnaffordableFeeError(f"funder has {local_sat} sat, closing fee is {fee_sat} sat")
        local_sat -= fee_sat
    else:
        if remote_sat < fee_sat:
            raise UnaffordableFeeError(f"funder has {remote_sat} sat, closing fee is {fee_sat} sat")
        remote_sat -= fee_sat
    outs = [
        (amount, spk)
        for amount, spk in ((local_sat, local_script_pubkey), (remote_sat, remote_script_pubkey))
        if amount >= dust_limit_sat
    ]
    if not outs:
        raise NoOutputError(
            f"closing transaction: {local_sat} and {remote_sat} sat after the fee are both "
            f"below the dust limit of {dust_limit_sat} sat"
        )
    outs.sort()
    tx = CMutableTransaction(
        [CMutableTxIn(funding_outpoint.to_core(), nSequence=0xFFFFFFFF)],
        [CMutableTxOut(a, CScript(s)) for a, s in outs],
        nLockTime=0,
        nVersion=TX_VERSION,
    )
    return ClosingTx(
        tx=tx,
        funding_amount_sat=funding_amount_sat,
        local_funding_pubkey=local_funding_pubkey,
        remote_funding_pubkey=remote_funding_pubkey,
        fee_sat=funding_amount_sat - sum(a for a, _ in outs),
    )
