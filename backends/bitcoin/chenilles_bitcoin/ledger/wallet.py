"""A funded P2WPKH wallet for tests and the demo, on any `BitcoinLedger`.

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

from .interface import BitcoinLedger, LedgerError, OutPoint
from .miner import COINBASE_MATURITY
from .txparse import parse_tx

DEFAULT_FEE = 1_000  # satoshi; the kernel checks no fee policy, only outputs <= inputs


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


class Wallet:
    """A single-key P2WPKH wallet that funds test outputs from mined coinbases."""

    def __init__(self, ledger: BitcoinLedger, secret: bytes | None = None) -> None:
        self.ledger = ledger
        self.secret = secret or hashlib.sha256(b"chenilles regtest wallet").digest()
        self.pubkey = coincurve.PrivateKey(self.secret).public_key.format(compressed=True)
        self.script_pubkey = p2wpkh_script(self.pubkey)
        self._coins: list[OutPoint] = []
        self._reserved: set[OutPoint] = set()

    def mine_to_self(self, n: int) -> list[str]:
        """Mine `n` blocks paying the coinbase to this wallet, and remember those outputs."""
        hashes = self.ledger.mine(n, to_script=self.script_pubkey)
        for h in hashes:
            self._coins.append(OutPoint(self.ledger.get_block_txids(h)[0], 0))
        return hashes

    def fund(self, mature_coins: int = 1) -> None:
        """Mine enough blocks that `mature_coins` coinbase outputs can be spent."""
        self.mine_to_self(COINBASE_MATURITY - 1 + mature_coins)

    def balance(self) -> int:
        """Value of this wallet's spendable outputs (mature, unspent, not reserved)."""
        utxos = (self.ledger.get_utxo(op) for op in self._spendable())
        return sum(u.value for u in utxos if u is not None)

    def _spendable(self) -> list[OutPoint]:
        next_height = self.ledger.tip_height() + 1
        out = []
        for op in self._coins:
            if op in self._reserved:
                continue
            utxo = self.ledger.get_utxo(op)
            if utxo is None:
                continue
            immature = next_height - utxo.height < COINBASE_MATURITY
            if immature and op.vout == 0 and self._is_coinbase(op):
                continue
            out.append(op)
        return out

    def _is_coinbase(self, op: OutPoint) -> bool:
        raw = self.ledger.get_raw_tx(op.txid)
        return raw is not None and parse_tx(raw).is_coinbase

    def build_payment(
        self, outputs: Sequence[tuple[bytes, int]], fee: int = DEFAULT_FEE, locktime: int = 0
    ) -> bytes:
        """A signed tx paying `outputs` [(script_pubkey, value)] from this wallet, with change."""
        need = sum(v for _, v in outputs) + fee
        chosen: list[tuple[OutPoint, int]] = []
        total = 0
        for op in self._spendable():
            utxo = self.ledger.get_utxo(op)
            assert utxo is not None
            chosen.append((op, utxo.value))
            total += utxo.value
            if total >= need:
                break
        if total < need:
            raise LedgerError(f"wallet has {total} sat spendable, needs {need}")
        vout = [CTxOut(v, CScript(s)) for s, v in outputs]
        change = total - need
        if change > 0:
            vout.append(CTxOut(change, CScript(self.script_pubkey)))
        tx = CMutableTransaction(
            [CTxIn(COutPoint(lx(op.txid), op.vout), nSequence=0xFFFFFFFE) for op, _ in chosen],
            vout,
            nLockTime=locktime,
            nVersion=2,
        )
        script_code = bytes(
            CScript([OP_DUP, OP_HASH160, hash160(self.pubkey), OP_EQUALVERIFY, OP_CHECKSIG])
        )
        witnesses = []
        for i, (_, value) in enumerate(chosen):
            sig = sign_digest(self.secret, segwit_v0_sighash(tx, i, script_code, value))
            witnesses.append(CTxInWitness(CScriptWitness([sig, self.pubkey])))
        tx.wit = CTxWitness(witnesses)
        for op, _ in chosen:
            self._reserved.add(op)
        raw = bytes(tx.serialize())
        if change > 0:
            self._coins.append(OutPoint(parse_tx(raw).txid, len(vout) - 1))
        return raw

    def fund_output(self, script_pubkey: bytes, value: int, fee: int = DEFAULT_FEE) -> OutPoint:
        """Broadcast a tx paying `value` to `script_pubkey`; return the new outpoint.

        The tx is queued: call `ledger.mine()` to confirm it (the kernel checks it then).
        """
        raw = self.build_payment([(script_pubkey, value)], fee)
        try:
            txid = self.ledger.broadcast(raw)
        except LedgerError:
            for txin in parse_tx(raw).inputs:
                self._reserved.discard(txin.prevout)
            raise
        return OutPoint(txid, 0)
