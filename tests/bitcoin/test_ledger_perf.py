"""Throughput of the embedded chain (numbers printed with `pytest -s`; loose floors only)."""

from __future__ import annotations

import hashlib
import time

import coincurve
import pytest
from bitcoin.core import CMutableTransaction, COutPoint, CTxIn, CTxInWitness, CTxOut, CTxWitness, lx
from bitcoin.core.script import (
    OP_CHECKSIG,
    OP_DUP,
    OP_EQUALVERIFY,
    OP_HASH160,
    CScript,
    CScriptWitness,
)
from chenilles_bitcoin.ledger import KernelChain, OutPoint, Wallet, p2wpkh_script
from chenilles_bitcoin.ledger.wallet import hash160, segwit_v0_sighash, sign_digest

pytestmark = pytest.mark.bitcoin

KEY = hashlib.sha256(b"perf key").digest()
PUB = coincurve.PrivateKey(KEY).public_key.format()


def test_empty_blocks_per_second() -> None:
    with KernelChain() as chain:
        n = 1000
        t0 = time.perf_counter()
        chain.mine(n)
        dt = time.perf_counter() - t0
        assert chain.tip_height() == n
        print(f"\nempty blocks: {n / dt:.0f} blocks/s ({n} blocks in {dt:.2f} s)")
        assert n / dt > 100


def test_block_of_many_spends() -> None:
    n = 2000
    with KernelChain() as chain:
        wallet = Wallet(chain)
        wallet.fund(1)
        spk = p2wpkh_script(PUB)
        fan = wallet.build_payment([(spk, 10_000)] * n, fee=100_000)
        fan_txid = chain.broadcast(fan)
        chain.mine(1)
        script_code = bytes(
            CScript([OP_DUP, OP_HASH160, hash160(PUB), OP_EQUALVERIFY, OP_CHECKSIG])
        )
        t0 = time.perf_counter()
        raws = []
        for i in range(n):
            tx = CMutableTransaction(
                [CTxIn(COutPoint(lx(fan_txid), i))], [CTxOut(9_000, CScript(spk))], nVersion=2
            )
            sig = sign_digest(KEY, segwit_v0_sighash(tx, 0, script_code, 10_000))
            tx.wit = CTxWitness([CTxInWitness(CScriptWitness([sig, PUB]))])
            raws.append(bytes(tx.serialize()))
        t_sign = time.perf_counter() - t0
        t0 = time.perf_counter()
        txids = [chain.broadcast(r) for r in raws]
        t_queue = time.perf_counter() - t0
        t0 = time.perf_counter()
        chain.mine(1)
        t_mine = time.perf_counter() - t0
        assert all(chain.get_tx_confirmations(t) == 1 for t in txids)
        assert chain.find_spending_tx(OutPoint(fan_txid, n - 1)) == raws[-1]
        print(
            f"\n{n} P2WPKH spends: build+sign {n / t_sign:.0f} tx/s, broadcast "
            f"{n / t_queue:.0f} tx/s, mine one block (kernel validation + index) "
            f"{n / t_mine:.0f} tx/s ({t_mine * 1000:.0f} ms)"
        )
        assert n / t_mine > 200
