"""Small transaction helpers shared by the BOLT 3 builders.

Kept apart so the builders read like the spec: outpoints in the spec's display
order (big-endian txid hex), witnesses as plain lists of bytes, and weights per
BIP 141 as measured on the serialized transaction.

Txids and BIP 143 digests are computed here from the transaction's fields with hashlib
rather than through python-bitcoinlib's stream serializers: every channel state signs and
verifies several of them, and the generic serializers were a third of that cost. The byte
layouts are the consensus ones (checked against python-bitcoinlib and the BOLT 3 vectors in
the tests, and by libbitcoinkernel on every mined transaction).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from bitcoin.core import (
    CMutableTransaction,
    COutPoint,
    CScriptWitness,
    CTransaction,
    CTxInWitness,
    CTxWitness,
    lx,
)

from .errors import NoOutputError

#: BOLT 3 transactions are version 2 (needed for OP_CSV / BIP 68).
TX_VERSION = 2


@dataclass(frozen=True)
class OutPoint:
    """A transaction output reference; ``txid`` is the usual display (reversed) hex."""

    txid: str
    index: int

    def to_core(self) -> COutPoint:
        return COutPoint(lx(self.txid), self.index)


_SIGHASH_ALL = 1


def dsha256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def compact_size(n: int) -> bytes:
    """Bitcoin's CompactSize length prefix."""
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def _outpoint_bytes(tx: CTransaction, index: int) -> bytes:
    prevout = tx.vin[index].prevout
    return bytes(prevout.hash) + struct.pack("<I", prevout.n)


def serialize_outputs(tx: CTransaction) -> bytes:
    """The outputs as serialized in the transaction (value, CompactSize, scriptPubKey)."""
    parts = []
    for out in tx.vout:
        spk = bytes(out.scriptPubKey)
        parts.append(struct.pack("<q", out.nValue) + compact_size(len(spk)) + spk)
    return b"".join(parts)


def serialize_stripped(tx: CTransaction) -> bytes:
    """Consensus serialization without witness (what the txid hashes)."""
    parts = [struct.pack("<i", tx.nVersion), compact_size(len(tx.vin))]
    for i, txin in enumerate(tx.vin):
        script_sig = bytes(txin.scriptSig)
        parts.append(_outpoint_bytes(tx, i))
        parts.append(compact_size(len(script_sig)) + script_sig)
        parts.append(struct.pack("<I", txin.nSequence))
    parts.append(compact_size(len(tx.vout)))
    parts.append(serialize_outputs(tx))
    parts.append(struct.pack("<I", tx.nLockTime))
    return b"".join(parts)


def txid_of(tx: CTransaction) -> str:
    """Display-order txid (witness data excluded)."""
    return dsha256(serialize_stripped(tx))[::-1].hex()


class SegwitV0Sighash:
    """BIP 143 SIGHASH_ALL digests of one unsigned transaction's inputs.

    ``hashPrevouts``, ``hashSequence`` and ``hashOutputs`` are the same for every input and
    every signer, so they are computed once per transaction; each digest then hashes one
    short preimage. The transaction must not change after this is built.
    """

    __slots__ = ("_head", "_tail", "_tx")

    def __init__(self, tx: CTransaction) -> None:
        self._tx = tx
        prevouts = b"".join(_outpoint_bytes(tx, i) for i in range(len(tx.vin)))
        sequences = b"".join(struct.pack("<I", txin.nSequence) for txin in tx.vin)
        self._head = struct.pack("<i", tx.nVersion) + dsha256(prevouts) + dsha256(sequences)
        self._tail = dsha256(serialize_outputs(tx)) + struct.pack("<Ii", tx.nLockTime, _SIGHASH_ALL)

    def digest(self, input_index: int, script_code: bytes, amount: int) -> bytes:
        """The digest input ``input_index`` signs, spending ``amount`` sat under
        ``script_code`` (the witness script of a P2WSH input)."""
        tx = self._tx
        if not 0 <= input_index < len(tx.vin):
            raise IndexError(f"transaction has no input {input_index}")
        return dsha256(
            b"".join(
                (
                    self._head,
                    _outpoint_bytes(tx, input_index),
                    compact_size(len(script_code)),
                    script_code,
                    struct.pack("<qI", amount, tx.vin[input_index].nSequence),
                    self._tail,
                )
            )
        )


class SingleInput:
    """Txid and BIP 143 digest of a version-2 transaction with one input (empty scriptSig),
    from its fields: what a commitment or an HTLC tx is, without the ``CTransaction``.

    The same bytes as :func:`txid_of` and :class:`SegwitV0Sighash` on the transaction built
    from these fields (``outputs`` is the outputs as :func:`serialize_outputs` gives them);
    the signing path of every channel state then needs no python-bitcoinlib object.
    """

    __slots__ = ("_locktime", "_n_outputs", "_outpoint", "_outputs", "_sequence")

    def __init__(
        self,
        prevout_txid: str,
        prevout_index: int,
        sequence: int,
        outputs: list[tuple[int, bytes]],
        locktime: int,
    ) -> None:
        self._outpoint = bytes.fromhex(prevout_txid)[::-1] + struct.pack("<I", prevout_index)
        self._sequence = struct.pack("<I", sequence)
        self._outputs = b"".join(
            struct.pack("<q", amount) + compact_size(len(spk)) + spk for amount, spk in outputs
        )
        self._n_outputs = compact_size(len(outputs))
        self._locktime = struct.pack("<I", locktime)

    def txid(self) -> str:
        """Display-order txid (as :func:`txid_of`)."""
        stripped = b"".join(
            (
                struct.pack("<i", TX_VERSION),
                b"\x01",  # one input
                self._outpoint,
                b"\x00",  # empty scriptSig
                self._sequence,
                self._n_outputs,
                self._outputs,
                self._locktime,
            )
        )
        return dsha256(stripped)[::-1].hex()

    def digest(self, script_code: bytes, amount: int) -> bytes:
        """BIP 143 SIGHASH_ALL digest of the input (as :meth:`SegwitV0Sighash.digest`)."""
        return dsha256(
            b"".join(
                (
                    struct.pack("<i", TX_VERSION),
                    dsha256(self._outpoint),
                    dsha256(self._sequence),
                    self._outpoint,
                    compact_size(len(script_code)),
                    script_code,
                    struct.pack("<q", amount),
                    self._sequence,
                    dsha256(self._outputs),
                    self._locktime,
                    struct.pack("<i", _SIGHASH_ALL),
                )
            )
        )


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
    if not tx.vout:
        raise NoOutputError("a transaction without outputs has no valid weight")
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
