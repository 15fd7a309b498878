"""The devnet's state: a kernel-validated chain, a mempool, mining, persistence.

`DevnetNode` is what the RPC methods act on. It is not thread-safe: the server runs every
call on one worker thread, so calls are serialized as they are in bitcoind's chain lock.

Chain changes all go through here (mining, generateblock, submitblock, the devnet-only
reorg), and each ends with `_after_chain_change`: the transactions of disconnected blocks
come back to the mempool, the mempool is re-validated against the new tip (evicting what no
longer passes) and saved.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..ledger.interface import BlockRejected, EventKind, LedgerError, LedgerEvent
from ..ledger.kernel_chain import KernelChain
from ..ledger.miner import DEFAULT_COINBASE_SCRIPT
from ..ledger.txparse import hash_to_hex, parse_block_txs, sha256d
from . import persist
from .fees import FeeEstimator
from .mempool import DecodeError, Entry, Mempool
from .policy import Reject

log = logging.getLogger("chenilles.devnet")
_HEX64 = re.compile(r"\b([0-9a-f]{64})\b")
#: Evictions remembered for getmempoolinfo-style inspection (newest last).
EVICTION_LOG = 100


@dataclass
class ChainChange:
    """What a change of the active chain did to the mempool."""

    reinstated: list[str] = field(default_factory=list)
    evicted: list[tuple[str, str]] = field(default_factory=list)


class DevnetNode:
    """See the module docstring. `coinbase_script` receives interval-mined blocks."""

    def __init__(self, datadir: str | Path, coinbase_script: bytes = DEFAULT_COINBASE_SCRIPT):
        self.datadir = Path(datadir).absolute()
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.coinbase_script = coinbase_script
        self.chain = KernelChain(self.datadir / "regtest")
        self.mempool = Mempool(self.chain)
        self.fees = FeeEstimator(self.chain)
        self.started = time.time()
        self.evictions: list[tuple[str, str]] = []
        self._disconnected: list[str] = []
        self.chain.subscribe(self._on_event)
        self.chain.poll_events()
        self._load_mempool()

    def _on_event(self, event: LedgerEvent) -> None:
        if event.kind is EventKind.BLOCK_DISCONNECTED:
            self._disconnected.append(event.block_hash)

    # -- persistence ----------------------------------------------------------------------

    def _load_mempool(self) -> None:
        """Re-validate the saved mempool against the (possibly newer) chain."""
        kept = 0
        for raw, when, height in persist.load_mempool(self.datadir):
            try:
                entry = self.mempool.check(raw, when)
            except (Reject, DecodeError) as exc:
                log.info("saved mempool tx dropped on load: %s", exc)
                continue
            entry.height = height
            self.mempool.add(entry)
            kept += 1
        log.info("mempool loaded: %d transactions", kept)
        self._save_mempool()

    def _save_mempool(self) -> None:
        persist.save_mempool(
            self.datadir, [(e.raw, e.time, e.height) for e in self.mempool.entries.values()]
        )

    def close(self) -> None:
        self._save_mempool()
        self.chain.close()

    # -- transactions ---------------------------------------------------------------------

    def submit(self, raw: bytes) -> Entry:
        """Accept a transaction into the mempool (raises Reject / DecodeError)."""
        entry = self.mempool.accept(raw, int(time.time()))
        self._save_mempool()
        return entry

    # -- blocks ---------------------------------------------------------------------------

    def mine(self, n: int, to_script: bytes | None = None) -> list[str]:
        """Mine `n` blocks on the tip; each takes what fits of the mempool, in order.

        If the kernel refuses a block, the transaction it names (by txid or wtxid), or the
        only one, or else every transaction of that block, is evicted with the kernel's
        reason and the block is built again: the kernel, not the mempool, has the last word.
        """
        script = self.coinbase_script if to_script is None else to_script
        hashes: list[str] = []
        for _ in range(n):
            template = self.mempool.block_template()
            while True:
                try:
                    hashes.append(self.chain.mine_block([e.raw for e in template], script))
                    break
                except BlockRejected as exc:
                    if not template:
                        raise
                    template = self._evict_offender(template, exc.reason)
            self._after_chain_change()
        return hashes

    def _evict_offender(self, template: list[Entry], reason: str) -> list[Entry]:
        ids = {e.txid: e for e in template} | {e.parsed.wtxid: e for e in template}
        named = [ids[t].txid for t in _HEX64.findall(reason) if t in ids]
        culprits = named[:1] or ([template[0].txid] if len(template) == 1 else [])
        if not culprits:
            culprits = [e.txid for e in template]
        removed = self.mempool.remove(culprits)
        self._note_evicted([(t, f"block rejected by the kernel: {reason}") for t in removed])
        return [e for e in template if e.txid not in removed]

    def generate_block(
        self, raw_txs: Sequence[bytes], to_script: bytes, submit: bool = True
    ) -> tuple[str, bytes]:
        """A block with exactly `raw_txs` (consensus decides, not relay policy)."""
        built = self.chain.build_next_block(raw_txs, to_script)
        if not submit:
            return built.block_hash, built.raw
        self.chain.submit_block(built.raw, built.txs)
        self._after_chain_change()
        return built.block_hash, built.raw

    def submit_block(self, raw: bytes) -> str | None:
        """Core's submitblock: None when accepted, else "duplicate", "inconclusive" (stored
        on a side branch with less work) or the kernel's reason."""
        block_hash = hash_to_hex(sha256d(raw[:80]))
        try:
            self.chain.block_info(block_hash)
            return "duplicate"
        except KeyError:
            pass
        try:
            self.chain.submit_block(raw, side_ok=True)
        except BlockRejected as exc:
            self._after_chain_change()
            return exc.reason
        info = self.chain.block_info(block_hash)
        self._after_chain_change()
        return None if info.in_active_chain else "inconclusive"

    def reorg(
        self, depth: int, blocks: int | None, raw_txs: Sequence[bytes], to_script: bytes | None
    ) -> tuple[list[str], list[str], ChainChange]:
        """The devnet-only reorg: a longer branch from `depth` below the tip (see
        `KernelChain.fork`). Returns (disconnected hashes, connected hashes, mempool change)."""
        tip = self.chain.tip_height()
        if not 0 < depth <= tip:
            raise ValueError(f"depth must be between 1 and the tip height ({tip})")
        old = [self.chain.block_hash(h) for h in range(tip - depth + 1, tip + 1)]
        try:
            new = self.chain.fork(depth, blocks, raw_txs, to_script or self.coinbase_script)
        finally:
            change = self._after_chain_change()
        return old, new, change

    def _after_chain_change(self) -> ChainChange:
        self.chain.poll_events()  # nobody else reads the chain's event list: keep it short
        reinstate: list[bytes] = []
        for block_hash in reversed(self._disconnected):  # disconnected newest first
            try:
                txs = parse_block_txs(self.chain.raw_block(block_hash))[1:]
            except (KeyError, LedgerError):
                continue
            reinstate.extend(tx.raw for tx in txs)
        self._disconnected.clear()
        reinstated, evicted = self.mempool.revalidate(reinstate, int(time.time()))
        self._note_evicted(evicted)
        self._save_mempool()
        return ChainChange(reinstated, evicted)

    def _note_evicted(self, evicted: list[tuple[str, str]]) -> None:
        for txid, reason in evicted:
            log.info("evicted %s: %s", txid, reason)
        self.evictions = (self.evictions + evicted)[-EVICTION_LOG:]
