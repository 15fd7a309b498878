"""Small transaction helpers shared by the BOLT 3 builders.

Kept apart so the builders read like the spec: outpoints in the spec's display
order (big-endian txid hex), witnesses as plain lists of bytes, and weights per
BIP 141 as measured on the serialized transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from bitcoin.core import (
    CMutableTransaction,
    COutPoint,
    CScriptWitness,
    CTransaction,
    CTxInWitness,
    CTxWitness,
    b2lx,
    lx,
)

#: BOLT 3 transactions are version 2 (needed for OP_CSV / BIP 68).
TX_VERSION = 2


@dataclass(frozen=True)
class OutPoint:
    """A transaction output reference; ``txid`` is the usual display (reversed) hex."""

    txid: str
    index: int

    def to_core(self) -> COutPoint:
        return COutPoint(lx(self.txid), self.index)


def txid_of(tx: CTransaction) -> str:
    """Display-order txid (witness data excluded)."""
    return str(b2lx(tx.GetTxid()))


def set_witness(tx: CMutableTransaction, input_index: int, stack: list[bytes]) -> None:
    """Set one input's witness stack, keeping the others."""
    wits = [
        CTxInWitness(CScriptWitness(list(w.scriptWitness.stack)))
        for w in (tx.wit.vtxinwit if tx.wit and tx.wit.vtxinwit else [])
    ]
    while len(wits) < len(tx.vin):
        wits.append(CTxInWitness())
    wits[input_index] = CTxInWitness(CScriptWitness(stack))
    tx.wit = CTxWitness(wits)


def weight(tx: CTransaction) -> int:
    """BIP 141 weight: 3 * stripped size + total size."""
    return int(tx.calc_weight())


def vsize(tx: CTransaction) -> int:
    """Virtual size in vbytes (weight / 4 rounded up)."""
    return (weight(tx) + 3) // 4


def fee_for_weight(feerate_per_kw: int, tx_weight: int) -> int:
    """Fee in satoshis at ``feerate_per_kw`` (sat per 1000 weight units), rounded down."""
    if feerate_per_kw < 0:
        raise ValueError("feerate must not be negative")
    return feerate_per_kw * tx_weight // 1000


def serialize(tx: CTransaction) -> bytes:
    """Consensus serialization (with witness if any)."""
    return bytes(tx.serialize())
