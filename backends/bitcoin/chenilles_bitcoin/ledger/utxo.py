"""An index of the active chain: unspent outputs, where each tx confirmed, who spent what.

Bitcoin Core's kernel keeps a UTXO set but offers no query for it, nor a transaction or
spending index. This index is fed only with blocks the kernel connected or disconnected (its
validation callbacks), so it mirrors the kernel's active chain and never decides validity.
Disconnecting uses an undo record kept per block at connect time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .interface import OutPoint, Utxo
from .txparse import ParsedTx


@dataclass(slots=True)
class _BlockUndo:
    """What connecting one block changed, to revert it on disconnect."""

    spent: list[tuple[OutPoint, Utxo, bool]] = field(default_factory=list)
    created: list[OutPoint] = field(default_factory=list)
    txids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TxLocation:
    """Where a transaction is confirmed on the active chain."""

    block_hash: str
    height: int
    raw: bytes


class UtxoIndex:
    """UTXO set, transaction index and spending index of the active chain."""

    def __init__(self) -> None:
        self.utxos: dict[OutPoint, Utxo] = {}
        self.coinbase: set[OutPoint] = set()
        self.txs: dict[str, TxLocation] = {}
        self.spent_by: dict[OutPoint, str] = {}
        #: scriptPubKey -> its unspent outpoints: wallets find their coins without a scan
        self.by_script: dict[bytes, set[OutPoint]] = {}
        self._undo: dict[str, _BlockUndo] = {}

    def connect(self, block_hash: str, height: int, txs: list[ParsedTx]) -> None:
        """Apply a block the kernel connected to the tip."""
        undo = _BlockUndo()
        for i, tx in enumerate(txs):
            if i > 0:
                for txin in tx.inputs:
                    prev = self.utxos.pop(txin.prevout, None)
                    if prev is not None:
                        self._unindex(txin.prevout, prev.script_pubkey)
                        was_cb = txin.prevout in self.coinbase
                        self.coinbase.discard(txin.prevout)
                        undo.spent.append((txin.prevout, prev, was_cb))
                    self.spent_by[txin.prevout] = tx.txid
            for vout, out in enumerate(tx.outputs):
                op = OutPoint(tx.txid, vout)
                self.utxos[op] = Utxo(out.value, out.script_pubkey, height)
                self.by_script.setdefault(out.script_pubkey, set()).add(op)
                if i == 0:
                    self.coinbase.add(op)
                undo.created.append(op)
            self.txs[tx.txid] = TxLocation(block_hash, height, tx.raw)
            undo.txids.append(tx.txid)
        self._undo[block_hash] = undo

    def disconnect(self, block_hash: str, txs: list[ParsedTx]) -> None:
        """Revert a block the kernel disconnected from the tip (reorg)."""
        undo = self._undo.pop(block_hash, None)
        if undo is None:
            raise RuntimeError(f"no undo record for block {block_hash}")
        for op in undo.created:
            gone = self.utxos.pop(op, None)
            if gone is not None:
                self._unindex(op, gone.script_pubkey)
            self.coinbase.discard(op)
        for tx in txs[1:]:
            for txin in tx.inputs:
                self.spent_by.pop(txin.prevout, None)
        for op, utxo, was_cb in undo.spent:
            self.utxos[op] = utxo
            self.by_script.setdefault(utxo.script_pubkey, set()).add(op)
            if was_cb:
                self.coinbase.add(op)
        for txid in undo.txids:
            self.txs.pop(txid, None)

    def _unindex(self, outpoint: OutPoint, script_pubkey: bytes) -> None:
        ops = self.by_script.get(script_pubkey)
        if ops is not None:
            ops.discard(outpoint)
            if not ops:
                del self.by_script[script_pubkey]

    def get(self, outpoint: OutPoint) -> Utxo | None:
        """The unspent output at `outpoint`, if any."""
        return self.utxos.get(outpoint)

    def is_coinbase(self, outpoint: OutPoint) -> bool:
        """Whether the unspent output at `outpoint` was created by a coinbase."""
        return outpoint in self.coinbase
