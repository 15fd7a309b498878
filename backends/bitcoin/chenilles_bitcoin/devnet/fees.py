"""estimatesmartfee for a devnet: what recent blocks' transactions paid.

Bitcoin Core estimates by watching how long mempool transactions of each fee rate took to
confirm. On a devnet there is no competition for block space: every transaction that meets
the relay minimum is in the next block, whatever it pays, so waiting times say nothing and
Core's method would answer its floor forever. What a wallet asking for an estimate wants to
know here is what others pay, so the estimate is the median fee rate (sat/kvB, fee*1000 /
vsize, rounded down) of the non-coinbase transactions in the last `WINDOW` blocks (newest
first, at most `MAX_SAMPLES` of them), raised to the minimum relay fee. It does not depend on
the confirmation target. With no such transaction it answers as Core does without data:
``{"errors": ["Insufficient data or no feerate found"], "blocks": 0}``.
"""

from __future__ import annotations

from ..ledger.kernel_chain import KernelChain
from ..ledger.txparse import parse_block_txs
from .policy import MIN_RELAY_FEE

WINDOW = 100
MAX_SAMPLES = 1_000


class FeeEstimator:
    """Fee rates of recent blocks, read from the kernel's blocks and undo data."""

    def __init__(self, chain: KernelChain) -> None:
        self.chain = chain
        self._rates: dict[str, list[int]] = {}  # block hash -> fee rates (content is fixed)

    def block_rates(self, block_hash: str) -> list[int]:
        """sat/kvB of each non-coinbase transaction of a block."""
        cached = self._rates.get(block_hash)
        if cached is not None:
            return cached
        txs = parse_block_txs(self.chain.raw_block(block_hash))[1:]
        spent = self.chain.spent_outputs(block_hash)
        rates = []
        for tx, coins in zip(txs, spent, strict=True):
            fee = sum(value for value, _ in coins) - sum(o.value for o in tx.outputs)
            rates.append(fee * 1000 // tx.vsize)
        if len(self._rates) > 4 * WINDOW:
            self._rates.clear()
        self._rates[block_hash] = rates
        return rates

    def estimate(self) -> int | None:
        """The median recent fee rate in sat/kvB (at least the relay minimum), or None."""
        samples: list[int] = []
        tip = self.chain.tip_height()
        for height in range(tip, max(0, tip - WINDOW), -1):
            samples.extend(self.block_rates(self.chain.block_hash(height)))
            if len(samples) >= MAX_SAMPLES:
                break
        if not samples:
            return None
        samples.sort()
        return max(MIN_RELAY_FEE, samples[len(samples) // 2])
