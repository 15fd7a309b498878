"""An embedded regtest chain whose every block is validated by Bitcoin Core's kernel.

`KernelChain` owns a libbitcoinkernel `ChainstateManager` (py-bitcoinkernel, import `pbk`) in
a data directory, a queue of transactions for the next block (the nearest thing to a mempool:
the kernel has none), a miner (`miner.py`) and an index of the active chain (`utxo.py`) fed by
the kernel's block_connected / block_disconnected callbacks.

Who decides what: the kernel alone decides whether a block, and so each transaction in it, is
valid; the tip moves only when the kernel connects a block. `broadcast` only refuses what is
obviously wrong (unparsable, coinbase, double spend of a queued or confirmed input, unknown
input) so that the queue stays minable; scripts, signatures, amounts, timelocks and
maturity are left to the kernel when the block is mined.

Time: the kernel reads the wall clock (there is no mocktime), so a block's nTime must stay
<= now + 2 h. `advance_time` can therefore move block time forward by less than two hours.
Chenilles uses height-based CLTV/CSV timelocks, which `mine()` advances freely.
"""

from __future__ import annotations

import gc
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

import pbk

from .interface import (
    BlockRejected,
    Coin,
    EventCallback,
    EventKind,
    LedgerError,
    LedgerEvent,
    OutPoint,
    TransactionRejected,
    Utxo,
)
from .miner import DEFAULT_COINBASE_SCRIPT, BuiltBlock, build_block
from .txparse import (
    ParsedTx,
    TxParseError,
    hex_to_hash,
    parse_block_txs,
    parse_tx,
    sha256d,
)
from .utxo import TxLocation, UtxoIndex

MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60  # Bitcoin Core's limit on nTime ahead of the wall clock
_FUTURE_MARGIN = 60  # keep clear of the limit: the wall clock moves between build and check

_TXID_RE = re.compile(r"\b([0-9a-f]{64})\b")

#: Blocks given to the kernel, appended as they are processed (see `_BlockJournal`).
JOURNAL_NAME = "chenilles-blocks.journal"
_JOURNAL_MAGIC = b"CHBJ\x01\x00\x00\x00"


class BlockInfo(NamedTuple):
    """A block the kernel stored, on the active chain or not: what a header query needs."""

    block_hash: str
    height: int
    header: bytes
    in_active_chain: bool


class _BlockJournal:
    """Every block the kernel accepted, in order, so a datadir survives ``kill -9``.

    The kernel writes its block index and chainstate only when it flushes (on a clean close,
    or about once an hour): a process killed before that reopens at the last flush. The
    journal is appended (and flushed to the OS) after each accepted block; on open, blocks
    the kernel does not know are given to it again in the same order, which rebuilds the
    same chain (the kernel, not the journal, decides validity). A torn last record from a
    crash mid-write is cut off. Format: magic, then per block a 4-byte little-endian length
    and the serialized block.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None

    def read(self) -> list[bytes]:
        """The complete records, cutting a torn tail off the file."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        if not data.startswith(_JOURNAL_MAGIC):
            raise LedgerError(f"{self.path} is not a block journal")
        blocks: list[bytes] = []
        pos = len(_JOURNAL_MAGIC)
        while pos + 4 <= len(data):
            size = int.from_bytes(data[pos : pos + 4], "little")
            if pos + 4 + size > len(data):
                break
            blocks.append(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
        if pos != len(data):
            with self.path.open("r+b") as f:
                f.truncate(pos)
        return blocks

    def append(self, raw_block: bytes) -> None:
        if self._file is None:
            new = not self.path.exists()
            self._file = self.path.open("ab")
            if new:
                self._file.write(_JOURNAL_MAGIC)
        self._file.write(len(raw_block).to_bytes(4, "little") + raw_block)
        self._file.flush()  # in the OS's hands: survives the process being killed

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _KernelLog:
    """The process-wide kernel log, captured so a rejection can quote Bitcoin Core's reason.

    The kernel's logging is global (one sink per process), so one connection serves every
    `KernelChain`; each mine() reads what was logged while it processed its block.
    """

    _lock = threading.Lock()
    _instance: _KernelLog | None = None

    def __init__(self) -> None:
        self.lines: list[str] = []
        #: Lines dropped from the front so far: marks are absolute positions, so trimming
        #: the buffer never makes ``since`` return another block's (older) lines.
        self._dropped = 0
        self._conn = pbk.LoggingConnection(self._on_log)

    def _on_log(self, message: str) -> None:
        self.lines.append(message.rstrip("\n"))
        if len(self.lines) > 1000:
            del self.lines[:500]
            self._dropped += 500

    @classmethod
    def get(cls) -> _KernelLog:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _KernelLog()
            return cls._instance

    def mark(self) -> int:
        return self._dropped + len(self.lines)

    def since(self, mark: int) -> list[str]:
        return self.lines[max(0, mark - self._dropped) :]


def rejection_reason(lines: Iterable[str]) -> str:
    """Pick Bitcoin Core's reason for a refused block out of its log lines.

    Core logs e.g. "ConnectTip: ConnectBlock <hash> failed, <reason>, <detail>" or
    "Block validation error: <reason>, <detail>" or "AcceptBlock FAILED (<reason>, <detail>)".
    """
    lines = list(lines)
    patterns = (
        re.compile(r"ConnectBlock [0-9a-f]{64} failed, (.*)$"),
        re.compile(r"AcceptBlock FAILED \((.*)\)$"),
        re.compile(r"Block validation error: (.*)$"),
        re.compile(r"ProcessNewBlock: AcceptBlock FAILED \((.*)\)$"),
        re.compile(r"\[error\] (.*)$"),
    )
    for pattern in patterns:
        for line in lines:
            m = pattern.search(line)
            if m:
                return m.group(1)
    return "; ".join(line.split("Z ", 1)[-1] for line in lines[-3:]) or "no reason logged"


class KernelChain:
    """An in-process regtest ledger validated by libbitcoinkernel. See the module docstring.

    Not thread-safe: drive it from one thread (the node's event loop runs it in an executor
    or directly; blocks take well under a millisecond to validate).
    """

    def __init__(
        self,
        datadir: str | Path | None = None,
        *,
        in_memory_dbs: bool | None = None,
        worker_threads: int = 0,
        journal: bool | None = None,
    ) -> None:
        """Open (or create) a regtest chain in `datadir`; a temporary directory if None.

        `in_memory_dbs` keeps the block index and chainstate databases in memory (faster; the
        chain cannot be reopened). It defaults to True for a temporary directory and False
        for a given one, so that a given datadir can be reopened. `journal` (default: on
        for a reopenable datadir) keeps every accepted block in a journal so the chain also
        survives the process being killed (see `_BlockJournal`).
        """
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if datadir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="chenilles-regtest-")
            datadir = self._tmp.name
            if in_memory_dbs is None:
                in_memory_dbs = True
        self.datadir = Path(datadir).absolute()
        self._log = _KernelLog.get()
        self._pending: list[tuple[str, bytes, int, str]] = []
        self._known_blocks: dict[str, tuple[ParsedTx, ...]] = {}
        self._callback_errors: list[Exception] = []
        self._last_checked: tuple[pbk.ValidationMode, pbk.BlockValidationResult] | None = None
        self._callbacks = pbk.ValidationInterfaceCallbacks(
            block_checked=self._on_block_checked,
            block_connected=self._on_block_connected,
            block_disconnected=self._on_block_disconnected,
        )
        self._context = pbk.make_context(pbk.ChainType.REGTEST, self._callbacks)
        opts = pbk.ChainstateManagerOptions(
            self._context, str(self.datadir), str(self.datadir / "blocks")
        )
        if in_memory_dbs:
            opts.update_block_tree_db_in_memory(True)
            opts.update_chainstate_db_in_memory(True)
        opts.set_worker_threads_num(worker_threads)
        self._chainman: pbk.ChainstateManager | None = pbk.ChainstateManager(opts)
        self._journal: _BlockJournal | None = None
        if journal if journal is not None else not in_memory_dbs:
            self._journal = _BlockJournal(self.datadir / JOURNAL_NAME)
            self._replay_journal(self._journal)
        self._index = UtxoIndex()
        self._times: list[int] = []
        self._hashes: list[str] = []
        self._queue: list[ParsedTx] = []
        self._queued_spends: dict[OutPoint, str] = {}
        self._queued_outputs: set[OutPoint] = set()
        self._events: list[LedgerEvent] = []
        self._subscribers: list[EventCallback] = []
        self._time_offset = 0
        self._forks = 0
        self._pending.clear()  # connects of the existing chain are replayed below instead
        self._rebuild_index()

    # -- kernel callbacks: record only; applied after process_block returns -------------

    def _on_block_checked(
        self, _ud: object, _block: pbk.Block, state: pbk.BlockValidationState
    ) -> None:
        self._last_checked = (state.validation_mode, state.block_validation_result)

    def _on_block_connected(self, _ud: object, block: pbk.Block, entry: pbk.BlockTreeEntry) -> None:
        try:
            block_hash = str(entry.block_hash)
            # our own blocks are already parsed: copy only the header (serializing is costly)
            raw = bytes(block.block_header) if block_hash in self._known_blocks else bytes(block)
            self._pending.append(("connect", raw, entry.height, block_hash))
        except Exception as exc:  # ctypes would print and swallow it: keep it for later
            self._callback_errors.append(exc)

    def _on_block_disconnected(
        self, _ud: object, block: pbk.Block, entry: pbk.BlockTreeEntry
    ) -> None:
        try:
            self._pending.append(("disconnect", bytes(block), entry.height, str(entry.block_hash)))
        except Exception as exc:
            self._callback_errors.append(exc)

    def _replay_journal(self, journal: _BlockJournal) -> None:
        """Give the kernel the journaled blocks it lost (a kill before its last flush)."""
        chainman = self._require_open()
        for raw in journal.read():
            block_hash = pbk.BlockHash(sha256d(raw[:80]))
            if block_hash in chainman.block_tree_entries:
                continue
            try:
                chainman.process_block(pbk.Block(raw))
            except pbk.ProcessBlockException:
                continue  # the kernel refuses it again: it was never part of the chain

    def _rebuild_index(self) -> None:
        """Replay the kernel's active chain into the index (a fresh or reopened datadir)."""
        chainman = self._require_open()
        for entry in chainman.get_active_chain().block_tree_entries:
            block = chainman.blocks[entry]
            self._apply_connect(bytes(block), entry.height, str(entry.block_hash), emit=False)

    def _drain_pending(self) -> None:
        if self._callback_errors:
            errors, self._callback_errors = self._callback_errors, []
            raise LedgerError(f"kernel callback failed: {errors[0]!r}") from errors[0]
        pending, self._pending = self._pending, []
        for kind, raw, height, block_hash in pending:
            if kind == "connect":
                self._apply_connect(raw, height, block_hash, emit=True)
            else:
                self._apply_disconnect(raw, height, block_hash)

    def _apply_connect(self, raw: bytes, height: int, block_hash: str, *, emit: bool) -> None:
        txs = self._known_blocks.pop(block_hash, None)
        parsed = list(txs) if txs is not None else parse_block_txs(raw)
        if height != len(self._hashes):
            raise LedgerError(f"index out of step: connect at {height}, have {len(self._hashes)}")
        self._index.connect(block_hash, height, parsed)
        self._hashes.append(block_hash)
        self._times.append(int.from_bytes(raw[68:72], "little"))
        confirmed = {tx.txid for tx in parsed}
        spent = {txin.prevout for tx in parsed[1:] for txin in tx.inputs}
        # a queued tx now confirmed, or conflicting with the new block, leaves the queue
        self._set_queue(
            [
                q
                for q in self._queue
                if q.txid not in confirmed and not any(i.prevout in spent for i in q.inputs)
            ]
        )
        if emit:
            self._emit(LedgerEvent(EventKind.BLOCK_CONNECTED, height, block_hash))
            for tx in parsed:
                self._emit(LedgerEvent(EventKind.TX_CONFIRMED, height, block_hash, tx.txid))

    def _apply_disconnect(self, raw: bytes, height: int, block_hash: str) -> None:
        parsed = parse_block_txs(raw)
        if not self._hashes or self._hashes[-1] != block_hash:
            raise LedgerError(f"index out of step: disconnect {block_hash} at {height}")
        self._index.disconnect(block_hash, parsed)
        self._hashes.pop()
        self._times.pop()
        self._emit(LedgerEvent(EventKind.BLOCK_DISCONNECTED, height, block_hash))
        for tx in parsed:
            self._emit(LedgerEvent(EventKind.TX_UNCONFIRMED, height, block_hash, tx.txid))

    def _emit(self, event: LedgerEvent) -> None:
        self._events.append(event)
        for cb in self._subscribers:
            cb(event)

    def _require_open(self) -> pbk.ChainstateManager:
        if self._chainman is None:
            raise LedgerError("chain is closed")
        return self._chainman

    # -- reading --------------------------------------------------------------------------

    def tip_height(self) -> int:
        """Height of the kernel's active tip."""
        return len(self._hashes) - 1

    def tip_hash(self) -> str:
        """Hash of the kernel's active tip (display hex)."""
        return self._hashes[-1]

    def tip_time(self) -> int:
        """nTime of the tip block."""
        return self._times[-1]

    def block_hash(self, height: int) -> str:
        """Hash of the active chain's block at `height`."""
        return self._hashes[height]

    def block_header(self, block_hash: str) -> tuple[int, int]:
        """Height and nTime of a block of the active chain; KeyError if it is unknown or
        not on the active chain."""
        info = self.block_info(block_hash)
        if not info.in_active_chain:
            raise KeyError(block_hash)
        return info.height, self._times[info.height]

    def ancestor_headers(self, block_hash: str, count: int) -> list[tuple[int, int]]:
        """The active chain's blocks below ``block_hash``, parent first."""
        height, _ = self.block_header(block_hash)
        return [(h, self._times[h]) for h in range(height - 1, max(-1, height - 1 - count), -1)]

    def get_block_txids(self, block_hash: str) -> list[str]:
        """Txids of a block the kernel stored (coinbase first); KeyError if unknown."""
        chainman = self._require_open()
        entry = chainman.block_tree_entries[pbk.BlockHash(hex_to_hash(block_hash))]
        return [tx.txid for tx in parse_block_txs(bytes(chainman.blocks[entry]))]

    def median_time_past(self) -> int:
        """Median of the last 11 block times: the next block's nTime must exceed it."""
        last = sorted(self._times[-11:])
        return last[len(last) // 2]

    def get_tx_confirmations(self, txid: str) -> int | None:
        """1 when in the tip block, more below; None when not on the active chain."""
        loc = self._index.txs.get(txid)
        return None if loc is None else self.tip_height() - loc.height + 1

    def get_tx_height(self, txid: str) -> int | None:
        """Height of the block that confirmed `txid` on the active chain, or None."""
        loc = self._index.txs.get(txid)
        return None if loc is None else loc.height

    def get_raw_tx(self, txid: str) -> bytes | None:
        """A confirmed or queued transaction by txid."""
        loc = self._index.txs.get(txid)
        if loc is not None:
            return loc.raw
        for q in self._queue:
            if q.txid == txid:
                return q.raw
        return None

    def get_utxo(self, outpoint: OutPoint) -> Utxo | None:
        """The unspent output at `outpoint` on the active chain (queued spends ignored)."""
        return self._index.get(OutPoint(*outpoint))

    def find_spending_tx(self, outpoint: OutPoint) -> bytes | None:
        """The confirmed transaction that spent `outpoint` on the active chain."""
        txid = self._index.spent_by.get(OutPoint(*outpoint))
        if txid is None:
            return None
        loc = self._index.txs.get(txid)
        return None if loc is None else loc.raw

    def scan_utxos(self, scripts: Sequence[bytes]) -> list[Coin]:
        """Unspent outputs of the active chain paying one of `scripts` (from the index)."""
        coins: list[Coin] = []
        for script in dict.fromkeys(bytes(s) for s in scripts):
            for op in sorted(self._index.by_script.get(script, ())):
                utxo = self._index.utxos[op]
                coin = Coin(op, utxo.value, utxo.script_pubkey, utxo.height, False)
                coins.append(coin._replace(coinbase=self._index.is_coinbase(op)))
        return coins

    def utxo_set(self) -> dict[OutPoint, Utxo]:
        """The whole UTXO set of the active chain (read-only view: do not modify)."""
        return self._index.utxos

    def is_coinbase_output(self, outpoint: OutPoint) -> bool:
        """Whether the unspent output at `outpoint` was created by a coinbase."""
        return self._index.is_coinbase(OutPoint(*outpoint))

    def tx_location(self, txid: str) -> TxLocation | None:
        """Where `txid` is confirmed on the active chain (block, height, raw), or None."""
        return self._index.txs.get(txid)

    def estimate_fee_rate(self, conf_target: int = 6) -> int | None:
        """None: the embedded chain has no fee market (every queued tx is in the next block),
        so wallets on it use their fallback rate, which keeps test fees deterministic."""
        return None

    def block_time(self, height: int) -> int:
        """nTime of the active chain's block at `height`."""
        return self._times[height]

    def median_time_past_at(self, height: int) -> int:
        """Median time of the 11 blocks ending at `height` on the active chain."""
        last = sorted(self._times[max(0, height - 10) : height + 1])
        return last[len(last) // 2]

    def _entry(self, block_hash: str) -> pbk.BlockTreeEntry:
        chainman = self._require_open()
        return chainman.block_tree_entries[pbk.BlockHash(hex_to_hash(block_hash))]

    def block_info(self, block_hash: str) -> BlockInfo:
        """Height and header of any block the kernel stored; KeyError if unknown."""
        entry = self._entry(block_hash)
        height = entry.height
        active = height < len(self._hashes) and self._hashes[height] == block_hash
        return BlockInfo(block_hash, height, bytes(entry.block_header), active)

    def raw_block(self, block_hash: str) -> bytes:
        """The serialized block the kernel stored under `block_hash`; KeyError if unknown."""
        chainman = self._require_open()
        return bytes(chainman.blocks[self._entry(block_hash)])

    def spent_outputs(self, block_hash: str) -> list[list[tuple[int, bytes]]]:
        """The kernel's undo data: (value, scriptPubKey) of what each non-coinbase tx of the
        block spent, in input order. Empty for genesis; KeyError for an unknown block."""
        chainman = self._require_open()
        entry = self._entry(block_hash)
        if entry.height == 0:
            return []
        undo = chainman.block_spent_outputs[entry]
        return [
            [(c.output.amount, bytes(c.output.script_pubkey)) for c in tx.coins]
            for tx in undo.transactions
        ]

    def queued(self) -> list[str]:
        """Txids waiting for the next block, in inclusion order."""
        return [q.txid for q in self._queue]

    def poll_events(self) -> list[LedgerEvent]:
        """Events since the last poll."""
        events, self._events = self._events, []
        return events

    def requeue_events(self, events: list[LedgerEvent]) -> None:
        """Put back what the last poll took and its caller could not use: polled first."""
        self._events = [*events, *self._events]

    def subscribe(self, callback: EventCallback) -> None:
        """Call `callback` synchronously for every future event."""
        self._subscribers.append(callback)

    # -- writing --------------------------------------------------------------------------

    def broadcast(self, raw_tx: bytes) -> str:
        """Queue a transaction for the next block after the obvious checks; return its txid."""
        try:
            tx = parse_tx(bytes(raw_tx))
        except (TxParseError, KeyError) as exc:
            raise TransactionRejected(f"unparsable transaction: {exc}") from exc
        if tx.is_coinbase:
            raise TransactionRejected("coinbase transactions cannot be broadcast", tx.txid)
        if not tx.inputs or not tx.outputs:
            raise TransactionRejected("transaction has no inputs or no outputs", tx.txid)
        if tx.txid in self._index.txs:
            raise TransactionRejected("transaction already confirmed", tx.txid)
        if OutPoint(tx.txid, 0) in self._queued_outputs:
            return tx.txid  # idempotent, as bitcoind is for a tx already in its mempool
        queued_outputs = self._queued_outputs
        queued_spends = self._queued_spends
        seen: set[OutPoint] = set()
        for txin in tx.inputs:
            op = txin.prevout
            if op in seen:
                raise TransactionRejected(f"input {op} spent twice in one transaction", tx.txid)
            seen.add(op)
            if op in queued_spends:
                raise TransactionRejected(
                    f"double spend: {op} already spent by queued tx {queued_spends[op]}", tx.txid
                )
            spender = self._index.spent_by.get(op)
            if spender is not None:
                raise TransactionRejected(
                    f"double spend: {op} already spent by confirmed tx {spender}", tx.txid
                )
            if self._index.get(op) is None and op not in queued_outputs:
                raise TransactionRejected(f"missing input {op}", tx.txid)
        self._queue.append(tx)
        self._note_queued(tx)
        return tx.txid

    def _note_queued(self, tx: ParsedTx) -> None:
        for txin in tx.inputs:
            self._queued_spends[txin.prevout] = tx.txid
        self._queued_outputs.update(OutPoint(tx.txid, i) for i in range(len(tx.outputs)))

    def _set_queue(self, txs: list[ParsedTx]) -> None:
        """Replace the queue, keeping the lookup sets used by `broadcast` in step."""
        self._queue = txs
        self._queued_spends = {}
        self._queued_outputs = set()
        for tx in txs:
            self._note_queued(tx)

    def advance_time(self, seconds: int) -> int:
        """Move the nTime of future blocks forward; return the new offset.

        Raises LedgerError beyond what the kernel accepts (now + 2 h, minus a margin).
        """
        offset = self._time_offset + seconds
        if offset > MAX_FUTURE_BLOCK_TIME - _FUTURE_MARGIN:
            raise LedgerError(
                "the kernel reads the wall clock: block time cannot run more than 2 h ahead; "
                "use height-based timelocks"
            )
        self._time_offset = max(0, offset)
        return self._time_offset

    def _next_block_time(self) -> int:
        now = int(time.time())
        ntime = max(self.median_time_past() + 1, now + self._time_offset, self.tip_time())
        if ntime > now + MAX_FUTURE_BLOCK_TIME - _FUTURE_MARGIN:
            raise LedgerError("block time would run more than 2 h ahead of the wall clock")
        return ntime

    def _fees(self, txs: list[ParsedTx]) -> int:
        """Sum of fees of `txs`, pricing inputs from the index or earlier txs in the block.

        A fee that cannot be computed or is negative counts as 0: a coinbase may claim less
        than allowed, and the kernel judges the transaction itself.
        """
        created: dict[OutPoint, int] = {}
        total = 0
        for tx in txs:
            value_in = 0
            for txin in tx.inputs:
                utxo = self._index.get(txin.prevout)
                if utxo is not None:
                    value_in += utxo.value
                elif txin.prevout in created:
                    value_in += created[txin.prevout]
                else:
                    value_in = -1
                    break
            for i, out in enumerate(tx.outputs):
                created[OutPoint(tx.txid, i)] = out.value
            if value_in >= 0:
                total += max(0, value_in - sum(o.value for o in tx.outputs))
        return total

    def submit_block(
        self,
        raw_block: bytes,
        txs: tuple[ParsedTx, ...] | None = None,
        *,
        side_ok: bool = False,
    ) -> str:
        """Give a serialized block to the kernel; return its hash if it became the tip.

        Raises BlockRejected with Bitcoin Core's reason otherwise (the tip did not move, or,
        for a side branch, the block did not make its branch the active chain). With
        `side_ok`, a block the kernel stored on a side branch without finding it invalid
        (nothing logged, not connected: less work than the tip) is returned, not refused.
        """
        chainman = self._require_open()
        block = pbk.Block(raw_block)
        block_hash = str(block.block_hash)
        if txs is not None:
            self._known_blocks[block_hash] = txs
        mark = self._log.mark()
        self._last_checked = None
        try:
            chainman.process_block(block)
        except pbk.ProcessBlockException as exc:
            self._known_blocks.pop(block_hash, None)
            self._drain_pending()
            raise BlockRejected(
                rejection_reason(self._log.since(mark)) or str(exc), block_hash
            ) from exc
        finally:
            if self._pending:
                self._drain_pending()
        self._known_blocks.pop(block_hash, None)
        if self._hashes[-1] != block_hash:
            lines = self._log.since(mark)
            if side_ok and not lines and self._last_checked is None:
                if self._journal is not None:
                    self._journal.append(bytes(raw_block))
                return block_hash
            if not lines and self._last_checked is not None:
                mode, result = self._last_checked
                lines = [f"block_checked: {mode.name} {result.name}"]
            raise BlockRejected(rejection_reason(lines), block_hash)
        if self._journal is not None:
            self._journal.append(bytes(raw_block))
        return block_hash

    def build_next_block(
        self, raw_txs: Sequence[bytes], to_script: bytes | None = None
    ) -> BuiltBlock:
        """A solved block on the tip holding exactly `raw_txs` (in this order), not submitted.

        The coinbase claims the subsidy and the fees it can price from the index."""
        try:
            txs = [parse_tx(bytes(raw)) for raw in raw_txs]
        except (TxParseError, KeyError) as exc:
            raise TransactionRejected(f"unparsable transaction: {exc}") from exc
        return build_block(
            hex_to_hash(self.tip_hash()),
            self.tip_height() + 1,
            self._next_block_time(),
            txs,
            self._fees(txs),
            DEFAULT_COINBASE_SCRIPT if to_script is None else to_script,
            extra_nonce=len(self._hashes),
        )

    def mine_block(self, raw_txs: Sequence[bytes], to_script: bytes | None = None) -> str:
        """Mine one block on the tip holding exactly `raw_txs` (in this order); the queue is
        left alone. Returns its hash; raises BlockRejected with the kernel's reason."""
        built = self.build_next_block(raw_txs, to_script)
        return self.submit_block(built.raw, built.txs)

    def mine(self, n: int = 1, to_script: bytes | None = None) -> list[str]:
        """Mine `n` blocks on the tip; the first includes the queued transactions.

        If the kernel refuses a block because of a queued transaction, that transaction (and
        queued transactions spending its outputs) leave the queue and `TransactionRejected`
        is raised with the kernel's reason; blocks mined before stay mined. If the failure
        cannot be pinned on one transaction, the whole queue is dropped and
        `BlockRejected` is raised. Either way the chain keeps going.
        """
        script = DEFAULT_COINBASE_SCRIPT if to_script is None else to_script
        hashes: list[str] = []
        for _ in range(n):
            txs = list(self._queue)
            built = build_block(
                hex_to_hash(self.tip_hash()),
                self.tip_height() + 1,
                self._next_block_time(),
                txs,
                self._fees(txs),
                script,
                extra_nonce=len(self._hashes),
            )
            try:
                hashes.append(self.submit_block(built.raw, built.txs))
            except BlockRejected as exc:
                self._drop_offender(txs, exc)
                raise
        return hashes

    def _drop_offender(self, txs: list[ParsedTx], exc: BlockRejected) -> None:
        """After a refused block: drop the tx the kernel blamed, or the whole queue.

        Core names the failing tx in script, input and BIP68 failures; for a non-final
        nLockTime (checked before connecting) it does not, so we attribute that one by the
        IsFinalTx rule. The kernel has already decided; this only picks what to drop.
        """
        by_id = {tx.txid: tx for tx in txs} | {tx.wtxid: tx for tx in txs}
        named = [by_id[t] for t in _TXID_RE.findall(exc.reason) if t in by_id]
        culprit = named[0] if named else None
        if culprit is None and len(txs) == 1:
            culprit = txs[0]
        if culprit is None and "nonfinal" in exc.reason:
            culprit = next((tx for tx in txs if not self._is_final(tx)), None)
        if culprit is None:
            self._set_queue([q for q in self._queue if q not in txs])
            return
        dropped = {culprit.txid}
        keep = []
        for q in self._queue:
            if q.txid in dropped or any(i.prevout.txid in dropped for i in q.inputs):
                dropped.add(q.txid)
            else:
                keep.append(q)
        self._set_queue(keep)
        raise TransactionRejected(exc.reason, culprit.txid) from exc

    def _is_final(self, tx: ParsedTx) -> bool:
        """IsFinalTx for the next block (used only to attribute a kernel rejection)."""
        if tx.locktime == 0 or all(i.sequence == 0xFFFFFFFF for i in tx.inputs):
            return True
        limit = self.tip_height() + 1 if tx.locktime < 500_000_000 else self.median_time_past()
        return tx.locktime < limit

    def reorg(
        self,
        depth: int,
        replacement_blocks: int | None = None,
        exclude: Iterable[str] = (),
        to_script: bytes | None = None,
    ) -> list[str]:
        """Replace the last `depth` blocks with a longer fork (for tests of reorgs).

        Mines `replacement_blocks` (default depth + 1) on the block at tip - depth. The txs
        of the old branch, except those in `exclude`, are put in the fork's first block when
        still valid there (as a node returns them to its mempool); excluded ones become
        unconfirmed and stay out. Returns the fork's block hashes; the kernel switches to it
        because it has more work, and the index follows its disconnect/connect callbacks.
        """
        count = self._fork_length(depth, replacement_blocks)
        excluded = set(exclude)
        fork_height = self.tip_height() - depth
        old_txs: list[ParsedTx] = []
        for h in range(fork_height + 1, self.tip_height() + 1):
            old_txs.extend(self._index_block_txs(h)[1:])
        queue: list[ParsedTx] = []
        for tx in old_txs:  # block order: parents come before children
            if tx.txid in excluded or _depends_on(tx, excluded):
                excluded.add(tx.txid)
            else:
                queue.append(tx)
        queue += [q for q in self._queue if q.txid not in excluded]
        self._set_queue([])
        fork = self._mine_fork(depth, count, queue, to_script)
        # txs of the old branch that did not make it back are queued again
        confirmed = self._index.txs
        self._set_queue([tx for tx in queue if tx.txid not in confirmed])
        return fork

    def fork(
        self,
        depth: int,
        blocks: int | None = None,
        raw_txs: Sequence[bytes] = (),
        to_script: bytes | None = None,
    ) -> list[str]:
        """Mine a longer branch on the block `depth` below the tip; the kernel reorganizes to it.

        The branch has `blocks` blocks (default depth + 1); its first block holds exactly
        `raw_txs` and the others are empty. The old branch's transactions are *not* carried
        over (a devnet puts them back in its mempool). The queue is left alone. Raises
        BlockRejected (the tip unchanged) when the kernel refuses the branch.
        """
        count = self._fork_length(depth, blocks)
        try:
            txs = [parse_tx(bytes(raw)) for raw in raw_txs]
        except (TxParseError, KeyError) as exc:
            raise TransactionRejected(f"unparsable transaction: {exc}") from exc
        return self._mine_fork(depth, count, txs, to_script)

    def _fork_length(self, depth: int, blocks: int | None) -> int:
        if not 0 < depth <= self.tip_height():
            raise ValueError("depth must be within the chain")
        count = depth + 1 if blocks is None else blocks
        if count <= depth:
            raise ValueError("a reorg needs more blocks than it replaces")
        return count

    def _mine_fork(
        self, depth: int, count: int, first: list[ParsedTx], to_script: bytes | None
    ) -> list[str]:
        self._forks += 1
        fork_height = self.tip_height() - depth
        script = DEFAULT_COINBASE_SCRIPT if to_script is None else to_script
        prev = self._hashes[fork_height]
        times = list(self._times[: fork_height + 1])
        fork: list[str] = []
        mark = self._log.mark()
        for i in range(count):
            height = fork_height + 1 + i
            txs = first if i == 0 else []
            last = sorted(times[-11:])
            ntime = max(last[len(last) // 2] + 1, int(time.time()) + self._time_offset)
            # fees: inputs from the old branch may be unknown to the index at this point
            built = build_block(
                hex_to_hash(prev),
                height,
                ntime,
                txs,
                0,
                script,
                extra_nonce=height + (self._forks << 20),
            )
            times.append(ntime)
            prev = built.block_hash
            fork.append(built.block_hash)
            self._submit_side(built.raw, built.txs)
        if self._hashes[-1] != fork[-1]:
            raise BlockRejected(
                "the kernel did not switch to the fork: " + rejection_reason(self._log.since(mark)),
                fork[-1],
            )
        return fork

    def _submit_side(self, raw: bytes, txs: tuple[ParsedTx, ...]) -> None:
        chainman = self._require_open()
        block = pbk.Block(raw)
        self._known_blocks[str(block.block_hash)] = txs
        mark = self._log.mark()
        try:
            chainman.process_block(block)
        except pbk.ProcessBlockException as exc:
            raise BlockRejected(
                rejection_reason(self._log.since(mark)), str(block.block_hash)
            ) from exc
        finally:
            self._drain_pending()
        if self._journal is not None:
            self._journal.append(raw)

    def _index_block_txs(self, height: int) -> list[ParsedTx]:
        chainman = self._require_open()
        entry = chainman.get_active_chain().block_tree_entries[height]
        return parse_block_txs(bytes(chainman.blocks[entry]))

    def close(self) -> None:
        """Release the kernel (flushes its databases) and the temporary directory if any."""
        self._chainman = None
        gc.collect()  # destroy the kernel objects now: reopening needs the datadir lock
        if self._journal is not None:
            self._journal.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> KernelChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _depends_on(tx: ParsedTx, txids: set[str]) -> bool:
    return any(txin.prevout.txid in txids for txin in tx.inputs)
