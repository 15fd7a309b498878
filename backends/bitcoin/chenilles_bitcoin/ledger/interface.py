"""The ledger interface the Bitcoin backend talks to, and its shared types.

A *ledger* is a chain seen by its clients as one centralized process (docs/design.md, section 1).
Two implementations share this interface: `KernelChain`, an embedded regtest chain whose every
block is validated by Bitcoin Core's consensus library, and `BitcoindRpcLedger`, a client of a
real bitcoind. The backend and the watcher must not be able to tell them apart.

Identifiers are display hex strings (as bitcoind prints them): txids and block hashes.
Amounts are int satoshi. Heights are ints; the genesis block is height 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, Protocol, runtime_checkable


class OutPoint(NamedTuple):
    """A reference to a transaction output: (txid in display hex, output index)."""

    txid: str
    vout: int

    def __str__(self) -> str:
        return f"{self.txid}:{self.vout}"


class Utxo(NamedTuple):
    """An unspent output on the active chain: value, scriptPubKey and confirmation height."""

    value: int
    script_pubkey: bytes
    height: int


class Coin(NamedTuple):
    """An unspent output found by `scan_utxos`: where it is, what it holds, how it was made.

    `coinbase` matters to wallets: a coinbase output is spendable only 100 blocks deep.
    """

    outpoint: OutPoint
    value: int
    script_pubkey: bytes
    height: int
    coinbase: bool


class LedgerError(Exception):
    """Base class of the errors a ledger raises."""


class TransactionRejected(LedgerError):
    """A transaction was refused: at broadcast (obviously invalid) or by the kernel in a block.

    `reason` is the text the ledger (or Bitcoin Core) gave; `txid` names the transaction when
    it is known.
    """

    def __init__(self, reason: str, txid: str | None = None) -> None:
        self.reason = reason
        self.txid = txid
        super().__init__(f"transaction {txid or '?'} rejected: {reason}")


class BlockRejected(LedgerError):
    """The kernel refused a block; the tip did not move. `reason` is Bitcoin Core's text."""

    def __init__(self, reason: str, block_hash: str | None = None) -> None:
        self.reason = reason
        self.block_hash = block_hash
        super().__init__(f"block {block_hash or '?'} rejected: {reason}")


class EventKind(Enum):
    """What happened on the ledger."""

    BLOCK_CONNECTED = "block_connected"
    BLOCK_DISCONNECTED = "block_disconnected"
    TX_CONFIRMED = "tx_confirmed"
    TX_UNCONFIRMED = "tx_unconfirmed"  # its block left the active chain (reorg)


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One ledger event. `txid` is set for TX_* events; `height` and `block_hash` always."""

    kind: EventKind
    height: int
    block_hash: str
    txid: str | None = None


EventCallback = Callable[[LedgerEvent], None]


@runtime_checkable
class BitcoinLedger(Protocol):
    """What the Bitcoin backend and its watcher need from a chain.

    Timelocks: the embedded chain cannot move the wall clock (Bitcoin Core's kernel reads
    it; there is no mocktime), so Chenilles uses height-based CLTV and CSV throughout.
    """

    def tip_height(self) -> int:
        """Height of the active chain's tip."""
        ...

    def tip_hash(self) -> str:
        """Hash of the active chain's tip."""
        ...

    def tip_time(self) -> int:
        """nTime of the tip block (unix seconds)."""
        ...

    def block_header(self, block_hash: str) -> tuple[int, int]:
        """Height and nTime of a known block: read with its hash, so the two belong to the
        block the hash names even if the tip moves meanwhile. KeyError if unknown."""
        ...

    def ancestor_headers(self, block_hash: str, count: int) -> list[tuple[int, int]]:
        """Height and nTime of the ``count`` blocks before a block of the active chain,
        parent first (fewer at genesis): the tips a reader one or two blocks behind saw.
        KeyError if the block is unknown or not on the active chain."""
        ...

    def median_time_past(self) -> int:
        """Median nTime of the last 11 blocks: what time-based locks are compared with."""
        ...

    def broadcast(self, raw_tx: bytes) -> str:
        """Submit a transaction for the next block; return its txid.

        Raises `TransactionRejected` for obviously invalid transactions (unparsable, coinbase,
        spending an output already spent by a queued or confirmed transaction, unknown inputs).
        """
        ...

    def mine(self, n: int = 1, to_script: bytes | None = None) -> list[str]:
        """Mine `n` blocks (regtest), paying the coinbase to `to_script`; return their hashes."""
        ...

    def get_tx_confirmations(self, txid: str) -> int | None:
        """Confirmations of `txid` on the active chain; None when unknown or unconfirmed."""
        ...

    def get_block_txids(self, block_hash: str) -> list[str]:
        """Txids of a known block, coinbase first."""
        ...

    def get_raw_tx(self, txid: str) -> bytes | None:
        """Serialized transaction if the ledger knows it (confirmed or queued)."""
        ...

    def get_utxo(self, outpoint: OutPoint) -> Utxo | None:
        """The unspent output at `outpoint` on the active chain, or None."""
        ...

    def find_spending_tx(self, outpoint: OutPoint) -> bytes | None:
        """The confirmed transaction on the active chain that spent `outpoint`, or None.

        A watcher uses it to learn HTLC preimages and to spot revoked commitments.
        """
        ...

    def scan_utxos(self, scripts: Sequence[bytes]) -> list[Coin]:
        """Every unspent output of the active chain paying one of `scripts` (confirmed only).

        How a wallet finds its coins: the chain's UTXO set is the truth, so the answer is
        right after a restart or a reorg without any state of the wallet's own.
        """
        ...

    def estimate_fee_rate(self, conf_target: int = 6) -> int | None:
        """A fee rate in sat/kvB expected to confirm within `conf_target` blocks, or None
        when the ledger has no estimate (the caller then uses its own fallback)."""
        ...

    def poll_events(self) -> list[LedgerEvent]:
        """Events since the last poll, oldest first."""
        ...

    def requeue_events(self, events: list[LedgerEvent]) -> None:
        """Put back ``events``, taken by the last poll whose caller could not use them:
        the next poll returns them first (nothing the scan found is ever lost)."""
        ...

    def subscribe(self, callback: EventCallback) -> None:
        """Call `callback` for every future event, synchronously, in order."""
        ...
