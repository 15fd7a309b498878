"""A P2WPKH wallet on any `BitcoinLedger`: finds its coins on the chain, pays with change.

Transactions are built with python-bitcoinlib (its script and BIP143 sighash code) and
signed with coincurve (libsecp256k1, RFC 6979 deterministic nonces, low-S DER), because
python-bitcoinlib itself signs through OpenSSL with random nonces. Whether a signature is
valid is decided by the kernel when the transaction is mined, never here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import coincurve
from bitcoin.core import (
    CMutableTransaction,
    COutPoint,
    CTxIn,
    CTxInWitness,
    CTxOut,
    CTxWitness,
    lx,
)
from bitcoin.core.script import (
    OP_0,
    OP_CHECKSIG,
    OP_DUP,
    OP_EQUALVERIFY,
    OP_HASH160,
    SIGHASH_ALL,
    SIGVERSION_WITNESS_V0,
    CScript,
    CScriptWitness,
    SignatureHash,
)

from .interface import BitcoinLedger, Coin, LedgerError, OutPoint
from .miner import COINBASE_MATURITY
from .txparse import encode_varint, parse_tx

#: sat/kvB paid when the ledger has no estimate (the embedded chain, a fresh regtest).
FALLBACK_FEE_RATE = 2_000
#: sat/kvB never gone below: Bitcoin Core's default minimum relay fee (1 sat/vB).
MIN_FEE_RATE = 1_000
#: Confirmation target asked of the fee estimator.
CONF_TARGET = 6
#: Bitcoin Core's dust threshold of a P2WPKH output at its 3 sat/vB dust relay fee:
#: change below it goes to the fee, as Core's wallet does.
P2WPKH_DUST = 294

# Upper bounds of a P2WPKH spend's weight, for fees (a 72-byte DER signature, worst case).
_TX_OVERHEAD_WU = 4 * (4 + 4 + 1 + 1) + 2  # version, locktime, counts; segwit marker and flag
_P2WPKH_INPUT_WU = 4 * (32 + 4 + 1 + 4) + (1 + 1 + 73 + 1 + 33)


def hash160(data: bytes) -> bytes:
    """RIPEMD160(SHA256(data)), via hashlib's OpenSSL (ripemd160 may be unavailable)."""
    sha = hashlib.sha256(data).digest()
    try:
        return hashlib.new("ripemd160", sha).digest()
    except ValueError:  # pragma: no cover - OpenSSL 3 without the legacy provider
        from bitcoin.core.contrib.ripemd160 import ripemd160

        return bytes(ripemd160(sha))


def p2wpkh_script(pubkey: bytes) -> bytes:
    """OP_0 <hash160(pubkey)>."""
    return bytes(CScript([OP_0, hash160(pubkey)]))


def p2wsh_script(witness_script: bytes) -> bytes:
    """OP_0 <sha256(witness_script)>."""
    return bytes(CScript([OP_0, hashlib.sha256(witness_script).digest()]))


def segwit_v0_sighash(
    tx: CMutableTransaction,
    index: int,
    script_code: bytes,
    amount: int,
    hashtype: int = SIGHASH_ALL,
) -> bytes:
    """BIP143 digest of input `index` (script_code: the witness script, or P2PKH for P2WPKH)."""
    return bytes(
        SignatureHash(
            CScript(script_code),
            tx,
            index,
            hashtype,
            amount=amount,
            sigversion=SIGVERSION_WITNESS_V0,
        )
    )


def sign_digest(secret: bytes, digest: bytes, hashtype: int = SIGHASH_ALL) -> bytes:
    """DER signature (RFC 6979, low-S) with the sighash type byte appended."""
    return coincurve.PrivateKey(secret).sign(digest, hasher=None) + bytes([hashtype])


def payment_weight(n_inputs: int, output_scripts: Sequence[bytes]) -> int:
    """Upper bound of the weight of a tx spending `n_inputs` P2WPKH coins to these outputs."""
    outputs = sum(4 * (8 + len(encode_varint(len(s))) + len(s)) for s in output_scripts)
    return _TX_OVERHEAD_WU + n_inputs * _P2WPKH_INPUT_WU + outputs


def fee_for(weight: int, rate_sat_per_kvb: int) -> int:
    """The fee of `weight` WU at a rate in sat/kvB, rounded up (vsize = ceil(weight / 4))."""
    vsize = -(-weight // 4)
    return -(-vsize * rate_sat_per_kvb // 1000)


class Wallet:
    """A single-key P2WPKH wallet that finds its coins on the chain itself.

    Its coins are what `ledger.scan_utxos` reports for its script (confirmed outputs of the
    active chain: scantxoutset over RPC, the UTXO index on the embedded chain). Nothing is
    remembered but the inputs of transactions it built and that are not confirmed yet
    (`reserved`), so the coins are right after a restart or a reorg, on either ledger. The
    scan is redone when the tip moves. Fees come from the ledger's estimate (or a fallback
    when it has none), never below `min_fee_rate`; change comes back to the wallet's script.
    Only confirmed coins are spent.
    """

    def __init__(
        self,
        ledger: BitcoinLedger,
        secret: bytes | None = None,
        *,
        min_fee_rate: int = MIN_FEE_RATE,
        fallback_fee_rate: int = FALLBACK_FEE_RATE,
        conf_target: int = CONF_TARGET,
    ) -> None:
        self.ledger = ledger
        self.secret = secret or hashlib.sha256(b"chenilles regtest wallet").digest()
        self.pubkey = coincurve.PrivateKey(self.secret).public_key.format(compressed=True)
        self.script_pubkey = p2wpkh_script(self.pubkey)
        self.min_fee_rate = min_fee_rate
        self.fallback_fee_rate = fallback_fee_rate
        self.conf_target = conf_target
        #: coins spent by transactions this wallet built that are not confirmed yet
        self.reserved: set[OutPoint] = set()
        self._coins: list[Coin] = []
        self._scanned_at: str | None = None

    # -- finding coins ------------------------------------------------------------------------

    def coins(self) -> list[Coin]:
        """Confirmed unspent outputs paying this wallet (rescanned when the tip moved)."""
        tip = self.ledger.tip_hash()
        if tip != self._scanned_at:
            self._coins = self.ledger.scan_utxos([self.script_pubkey])
            self._scanned_at = tip
            unspent = {c.outpoint for c in self._coins}
            self.reserved &= unspent  # a reserved coin that left the UTXO set is spent
        return list(self._coins)

    def rescan(self) -> None:
        """Forget the cached scan (the next call asks the ledger again)."""
        self._scanned_at = None

    def spendable(self) -> list[Coin]:
        """Coins that can be spent in the next block: mature and not reserved."""
        next_height = self.ledger.tip_height() + 1
        return [
            c
            for c in self.coins()
            if c.outpoint not in self.reserved
            and not (c.coinbase and next_height - c.height < COINBASE_MATURITY)
        ]

    def balance(self) -> int:
        """Value of this wallet's spendable coins."""
        return sum(c.value for c in self.spendable())

    def mine_to_self(self, n: int) -> list[str]:
        """Mine `n` blocks (regtest) paying the coinbase to this wallet."""
        return self.ledger.mine(n, to_script=self.script_pubkey)

    def fund(self, mature_coins: int = 1) -> None:
        """Mine enough blocks that `mature_coins` coinbase outputs can be spent."""
        self.mine_to_self(COINBASE_MATURITY - 1 + mature_coins)

    # -- paying -------------------------------------------------------------------------------

    def fee_rate(self) -> int:
        """sat/kvB to pay: the ledger's estimate (or the fallback), at least `min_fee_rate`."""
        estimate = self.ledger.estimate_fee_rate(self.conf_target)
        return max(self.min_fee_rate, self.fallback_fee_rate if estimate is None else estimate)

    def build_payment(
        self,
        outputs: Sequence[tuple[bytes, int]],
        fee: int | None = None,
        locktime: int = 0,
        *,
        min_fee: int = 0,
    ) -> bytes:
        """A signed tx paying `outputs` [(script_pubkey, value)] from this wallet, with change.

        `fee` fixes the fee; by default it is `fee_rate()` times the tx's (upper-bound)
        size, and at least `min_fee`. Coins are taken largest first. The inputs are reserved
        until they leave the UTXO set (or `release` is called for a tx never broadcast).
        """
        if any(v <= 0 for _, v in outputs) or not outputs:
            raise LedgerError("a payment needs outputs of positive value")
        rate = self.fee_rate() if fee is None else 0
        scripts = [s for s, _ in outputs]
        pay = sum(v for _, v in outputs)
        coins = sorted(self.spendable(), key=lambda c: (-c.value, c.outpoint))
        chosen: list[Coin] = []
        total = 0
        need = pay + (fee or 0)
        for coin in coins:
            chosen.append(coin)
            total += coin.value
            if fee is None:
                weight = payment_weight(len(chosen), [*scripts, self.script_pubkey])
                need = pay + max(min_fee, fee_for(weight, rate))
            if total >= need:
                break
        if total < need:
            raise LedgerError(f"wallet has {total} sat spendable, needs {need}")
        vout = [CTxOut(v, CScript(s)) for s, v in outputs]
        change = total - need
        if change >= P2WPKH_DUST:
            vout.append(CTxOut(change, CScript(self.script_pubkey)))
        tx = CMutableTransaction(
            [
                CTxIn(COutPoint(lx(c.outpoint.txid), c.outpoint.vout), nSequence=0xFFFFFFFE)
                for c in chosen
            ],
            vout,
            nLockTime=locktime,
            nVersion=2,
        )
        script_code = bytes(
            CScript([OP_DUP, OP_HASH160, hash160(self.pubkey), OP_EQUALVERIFY, OP_CHECKSIG])
        )
        witnesses = []
        for i, coin in enumerate(chosen):
            sig = sign_digest(self.secret, segwit_v0_sighash(tx, i, script_code, coin.value))
            witnesses.append(CTxInWitness(CScriptWitness([sig, self.pubkey])))
        tx.wit = CTxWitness(witnesses)
        self.reserved.update(c.outpoint for c in chosen)
        return bytes(tx.serialize())

    def release(self, raw_tx: bytes) -> None:
        """Unreserve the inputs of a tx this wallet built that will not be broadcast."""
        for txin in parse_tx(raw_tx).inputs:
            self.reserved.discard(txin.prevout)

    def fund_output(self, script_pubkey: bytes, value: int, fee: int | None = None) -> OutPoint:
        """Broadcast a tx paying `value` to `script_pubkey`; return the new outpoint.

        The tx is queued (or in the mempool): mine a block to confirm it.
        """
        raw = self.build_payment([(script_pubkey, value)], fee)
        try:
            txid = self.ledger.broadcast(raw)
        except LedgerError:
            self.release(raw)
            raise
        return OutPoint(txid, 0)
