"""A mempool over a `KernelChain`: Core's acceptance checks, dependency order, eviction.

Acceptance (`Mempool.check`) follows Core's MemPoolAccept::PreChecks order and reject
reasons (see policy.py for the rules): decode, CheckTransaction, coinbase, IsStandardTx,
finality, already in mempool, conflicts (no replacement: "txn-mempool-conflict"), missing
inputs, BIP 68, CheckTxInputs, input/witness standardness, minimum relay fee, chain limits,
then every input's script through libbitcoinkernel's verifier with all consensus flags.

Entries are kept in the order they were accepted, which is a dependency order (a child can
only enter after its parents), so a block takes a prefix of it. After any change of the
active chain the pool is rebuilt (`revalidate`): confirmed transactions leave, transactions
of disconnected blocks come back first, and whatever no longer passes is evicted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pbk
import pbk.script
from bitcoin.core import CTransaction

from ..ledger.interface import OutPoint
from ..ledger.kernel_chain import KernelChain
from ..ledger.txparse import ParsedTx, TxParseError, parse_tx
from .policy import (
    MAX_BLOCK_WEIGHT,
    MIN_RELAY_FEE,
    Reject,
    Spent,
    check_inputs_standard,
    check_standard,
    check_transaction,
    check_tx_inputs,
    is_final,
    sequence_locks_ok,
)

MAX_ANCESTORS = 25
MAX_DESCENDANTS = 25
_COINBASE_RESERVED_WEIGHT = 4_000


class DecodeError(ValueError):
    """The bytes are not one serialized transaction."""


@dataclass(slots=True)
class Entry:
    """One mempool transaction and what was learnt accepting it."""

    parsed: ParsedTx
    tx: CTransaction
    fee: int
    spent: list[Spent]
    time: int
    height: int
    parents: set[str] = field(default_factory=set)

    @property
    def txid(self) -> str:
        return self.parsed.txid

    @property
    def raw(self) -> bytes:
        return self.parsed.raw

    @property
    def vsize(self) -> int:
        return self.parsed.vsize

    @property
    def weight(self) -> int:
        return self.parsed.weight


def decode(raw: bytes) -> tuple[ParsedTx, CTransaction]:
    """Both views of a serialized transaction; DecodeError if it is not exactly one."""
    try:
        parsed = parse_tx(bytes(raw))
        tx = CTransaction.deserialize(bytes(raw))
    except (TxParseError, KeyError, ValueError, IndexError) as exc:
        raise DecodeError(str(exc)) from exc
    except Exception as exc:  # python-bitcoinlib raises its own SerializationError types
        raise DecodeError(str(exc)) from exc
    return parsed, tx


def verify_scripts(raw: bytes, spent: Sequence[Spent]) -> int | None:
    """Index of the first input whose script the kernel refuses (all consensus flags)."""
    ptx = pbk.Transaction(raw)
    outputs = [pbk.TransactionOutput(pbk.ScriptPubkey(s.script_pubkey), s.value) for s in spent]
    pre = pbk.script.PrecomputedTransactionData(ptx, outputs)
    flags = pbk.ScriptVerificationFlags.ALL
    for i, coin in enumerate(spent):
        try:
            ok = pbk.ScriptPubkey(coin.script_pubkey).verify(coin.value, ptx, pre, i, flags)
        except pbk.ScriptVerifyException:
            ok = False
        if not ok:
            return i
    return None


class Mempool:
    """Unconfirmed transactions waiting for a block. See the module docstring."""

    def __init__(self, chain: KernelChain) -> None:
        self.chain = chain
        self.entries: dict[str, Entry] = {}
        self.by_wtxid: dict[str, str] = {}
        self.spends: dict[OutPoint, str] = {}
        #: bumped on every add or removal (getrawmempool's mempool_sequence)
        self.sequence = 0
        #: wtxids whose scripts the kernel accepted: an outpoint's content never changes,
        #: so the verdict holds through revalidations
        self._scripts_ok: set[str] = set()

    # -- reading --------------------------------------------------------------------------

    def __contains__(self, txid: object) -> bool:
        return txid in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def output(self, outpoint: OutPoint) -> tuple[int, bytes] | None:
        """(value, script) of an output created by a mempool transaction."""
        entry = self.entries.get(outpoint.txid)
        if entry is None or outpoint.vout >= len(entry.parsed.outputs):
            return None
        out = entry.parsed.outputs[outpoint.vout]
        return out.value, out.script_pubkey

    def children(self, txid: str) -> set[str]:
        entry = self.entries.get(txid)
        if entry is None:
            return set()
        found = (self.spends.get(OutPoint(txid, i)) for i in range(len(entry.parsed.outputs)))
        return {c for c in found if c is not None}

    def ancestors(self, txid: str) -> set[str]:
        return self._closure(self.entries[txid].parents, lambda t: self.entries[t].parents)

    def descendants(self, txid: str) -> set[str]:
        return self._closure(self.children(txid), self.children)

    def _closure(self, start: Iterable[str], step: object) -> set[str]:
        assert callable(step)
        seen: set[str] = set()
        todo = list(start)
        while todo:
            t = todo.pop()
            if t in seen or t not in self.entries:
                continue
            seen.add(t)
            todo.extend(step(t))
        return seen

    def block_template(self, max_weight: int = MAX_BLOCK_WEIGHT) -> list[Entry]:
        """The longest prefix of the pool that fits in a block (parents come first)."""
        budget = max_weight - _COINBASE_RESERVED_WEIGHT
        chosen = []
        for entry in self.entries.values():
            if entry.weight > budget:
                break
            budget -= entry.weight
            chosen.append(entry)
        return chosen

    # -- accepting ------------------------------------------------------------------------

    def check(self, raw: bytes, now: int, *, extra: dict[str, Entry] | None = None) -> Entry:
        """Validate `raw` against the tip and this pool (plus `extra`, a package being
        tested); return the entry it would be. Raises DecodeError or Reject."""
        parsed, tx = decode(raw)
        pool = self.entries if extra is None else {**self.entries, **extra}
        check_transaction(tx, parsed.stripped_size)
        if tx.is_coinbase():
            raise Reject("coinbase")
        check_standard(tx, parsed.weight, parsed.stripped_size)
        chain = self.chain
        next_height = chain.tip_height() + 1
        tip_mtp = chain.median_time_past()
        if not is_final(tx, next_height, tip_mtp):
            raise Reject("non-final")
        if parsed.txid in pool:
            if pool[parsed.txid].parsed.wtxid == parsed.wtxid:
                raise Reject("txn-already-in-mempool")
            raise Reject("txn-same-nonwitness-data-in-mempool")
        spends = dict(self.spends)
        for e in (extra or {}).values():
            spends.update((i.prevout, e.txid) for i in e.parsed.inputs)
        for txin in parsed.inputs:
            if txin.prevout in spends:
                raise Reject("txn-mempool-conflict")
        spent: list[Spent] = []
        parents: set[str] = set()
        for txin in parsed.inputs:
            op = txin.prevout
            utxo = chain.get_utxo(op)
            if utxo is not None:
                spent.append(
                    Spent(utxo.value, utxo.script_pubkey, utxo.height, chain.is_coinbase_output(op))
                )
                continue
            parent = pool.get(op.txid)
            if parent is not None and op.vout < len(parent.parsed.outputs):
                out = parent.parsed.outputs[op.vout]
                spent.append(Spent(out.value, out.script_pubkey, None, False))
                parents.add(op.txid)
                continue
            if any(chain.get_utxo(OutPoint(parsed.txid, i)) for i in range(len(tx.vout))):
                raise Reject("txn-already-known")
            raise Reject("bad-txns-inputs-missingorspent", missing_inputs=True)
        if not sequence_locks_ok(tx, spent, next_height, tip_mtp, chain.median_time_past_at):
            raise Reject("non-BIP68-final")
        fee = check_tx_inputs(tx, spent, next_height)
        check_inputs_standard(tx, spent)
        min_fee = -(-MIN_RELAY_FEE * parsed.vsize // 1000)
        if fee < min_fee:
            raise Reject("min relay fee not met", f"{fee} < {min_fee}")
        entry = Entry(parsed, tx, fee, spent, now, chain.tip_height(), parents)
        self._check_limits(entry, pool)
        if parsed.wtxid not in self._scripts_ok:
            failed = verify_scripts(parsed.raw, spent)
            if failed is not None:
                raise Reject(
                    "mandatory-script-verify-flag-failed (script evaluation failed on input "
                    f"{failed}; libbitcoinkernel reports no further detail)"
                )
            self._scripts_ok.add(parsed.wtxid)
        return entry

    def _check_limits(self, entry: Entry, pool: dict[str, Entry]) -> None:
        ancestors: set[str] = set()
        todo = list(entry.parents)
        while todo:
            t = todo.pop()
            if t not in ancestors and t in pool:
                ancestors.add(t)
                todo.extend(pool[t].parents)
        if len(ancestors) + 1 > MAX_ANCESTORS:
            raise Reject(
                "too-long-mempool-chain",
                f"too many unconfirmed ancestors [limit: {MAX_ANCESTORS}]",
            )
        for a in ancestors:
            if a in self.entries and len(self.descendants(a)) + 2 > MAX_DESCENDANTS:
                raise Reject(
                    "too-long-mempool-chain",
                    f"too many descendants for tx {a} [limit: {MAX_DESCENDANTS}]",
                )

    def add(self, entry: Entry) -> None:
        self.entries[entry.txid] = entry
        self.by_wtxid[entry.parsed.wtxid] = entry.txid
        for txin in entry.parsed.inputs:
            self.spends[txin.prevout] = entry.txid
        self.sequence += 1

    def accept(self, raw: bytes, now: int) -> Entry:
        entry = self.check(raw, now)
        self.add(entry)
        return entry

    # -- removing -------------------------------------------------------------------------

    def remove(self, txids: Iterable[str], with_descendants: bool = True) -> list[str]:
        """Remove `txids` (and what spends them); return the removed txids in pool order."""
        doomed = {t for t in txids if t in self.entries}
        if with_descendants:
            for t in list(doomed):
                doomed |= self.descendants(t)
        removed = [t for t in self.entries if t in doomed]
        for t in removed:
            entry = self.entries.pop(t)
            self.by_wtxid.pop(entry.parsed.wtxid, None)
            for txin in entry.parsed.inputs:
                if self.spends.get(txin.prevout) == t:
                    del self.spends[txin.prevout]
            self.sequence += 1
        return removed

    def clear(self) -> list[Entry]:
        old = list(self.entries.values())
        self.entries.clear()
        self.by_wtxid.clear()
        self.spends.clear()
        self.sequence += 1
        return old

    def revalidate(
        self, reinstate: Sequence[bytes], now: int
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Rebuild the pool against the current tip (after any change of the active chain).

        `reinstate` are transactions of disconnected blocks (oldest first): they come back
        first, when still valid and not confirmed again. Then every entry is checked again
        in order, keeping its entry time; confirmed ones leave silently. Returns
        (reinstated txids, [(evicted txid, reason)]).
        """
        old = self.clear()
        reinstated: list[str] = []
        evicted: list[tuple[str, str]] = []
        for raw in reinstate:
            try:
                entry = self.check(raw, now)
            except (Reject, DecodeError):
                continue
            if self.chain.tx_location(entry.txid) is None:
                self.add(entry)
                reinstated.append(entry.txid)
        for entry in old:
            if entry.txid in self.entries or self.chain.tx_location(entry.txid) is not None:
                continue
            try:
                fresh = self.check(entry.raw, entry.time)
            except Reject as exc:
                evicted.append((entry.txid, exc.text))
                continue
            fresh.height = entry.height
            self.add(fresh)
        return reinstated, evicted
