"""Third-party compatibility: python-bitcoinlib's ``bitcoin.rpc.Proxy`` against the devnet.

python-bitcoinlib is an independent bitcoind client: it parses headers, blocks and
transactions from the hex the server returns, amounts with Decimal, and maps Core's error
codes to its own exceptions, so a shape we got wrong fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import bitcoin
import bitcoin.rpc
import pytest
from bitcoin.core import (
    COIN,
    CMutableTransaction,
    COutPoint,
    CTxIn,
    CTxInWitness,
    CTxOut,
    CTxWitness,
    lx,
)
from bitcoin.core.script import (
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
from bitcoin.wallet import CBitcoinAddress
from chenilles_bitcoin.ledger.wallet import hash160, sign_digest

from .devnet_harness import KEY, PUB, SPK, Devnet, running

pytestmark = [pytest.mark.bitcoin, pytest.mark.devnet]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    datadir: Path = tmp_path_factory.mktemp("devnet-clients") / "node"
    yield from running(datadir, "--rpcuser", "bob", "--rpcpassword", "pw")


@pytest.fixture(scope="module")
def proxy(devnet: Devnet) -> Iterator[bitcoin.rpc.Proxy]:
    bitcoin.SelectParams("regtest")
    host, port = devnet.ready["host"], devnet.ready["port"]
    p = bitcoin.rpc.Proxy(service_url=f"http://bob:pw@{host}:{port}")
    yield p
    p.close()
    bitcoin.SelectParams("mainnet")


def test_python_bitcoinlib_proxy(devnet: Devnet, proxy: bitcoin.rpc.Proxy) -> None:
    address = CBitcoinAddress.from_scriptPubKey(CScript(SPK))
    hashes = list(proxy.generatetoaddress(101, address))
    assert len(hashes) == 101
    assert proxy.getblockcount() == 101
    assert proxy.getbestblockhash() == hashes[-1]
    assert proxy.getblockhash(1) == hashes[0]
    block = proxy.getblock(hashes[0])  # CBlock parsed from the hex
    assert block.GetHash() == hashes[0] and len(block.vtx) == 1
    assert block.vtx[0].vout[0].nValue == 50 * COIN
    header = proxy.getblockheader(hashes[0], True)
    assert header["height"] == 1 and header["nextblockhash"] == hashes[1]
    # a transaction built with python-bitcoinlib (its BIP 143 sighash; coincurve signs)
    cb = block.vtx[0]
    tx = CMutableTransaction(
        [CTxIn(COutPoint(cb.GetTxid(), 0), nSequence=0xFFFFFFFE)],
        [CTxOut(50 * COIN - 10_000, CScript(SPK))],
        nVersion=2,
    )
    script_code = CScript([OP_DUP, OP_HASH160, hash160(PUB), OP_EQUALVERIFY, OP_CHECKSIG])
    digest = SignatureHash(
        script_code, tx, 0, SIGHASH_ALL, amount=50 * COIN, sigversion=SIGVERSION_WITNESS_V0
    )
    tx.wit = CTxWitness([CTxInWitness(CScriptWitness([sign_digest(KEY, digest), PUB]))])
    txid = proxy.sendrawtransaction(tx)
    assert txid == tx.GetTxid()
    assert proxy.getrawmempool() == [txid]
    fetched = proxy.getrawtransaction(txid)
    assert fetched.GetTxid() == txid
    out = proxy.gettxout(COutPoint(txid, 0))
    assert out["txout"].nValue == 50 * COIN - 10_000 and out["confirmations"] == 0
    (mined,) = proxy.generatetoaddress(1, address)
    verbose = proxy.getrawtransaction(txid, True)
    assert verbose["blockhash"] == mined and verbose["confirmations"] == 1
    assert proxy.gettxout(COutPoint(txid, 0))["confirmations"] == 1
    # Core's error codes become python-bitcoinlib's exceptions
    with pytest.raises(IndexError):
        proxy.getblockhash(10_000)
    with pytest.raises(IndexError):
        proxy.getrawtransaction(lx("00" * 32))
    with pytest.raises(IndexError):
        proxy.gettxout(COutPoint(txid, 7))
    with pytest.raises(bitcoin.rpc.JSONRPCError) as info:
        proxy.sendrawtransaction(tx)
    assert info.value.error["code"] == -27
    bogus = CMutableTransaction([CTxIn(COutPoint(lx("ab" * 32), 0))], [CTxOut(1_000, CScript(SPK))])
    with pytest.raises(bitcoin.rpc.JSONRPCError) as info:
        proxy.sendrawtransaction(bogus)
    assert info.value.error["code"] == -25
    assert proxy.call("getblockcount") == 102


def test_raw_proxy_and_batches(devnet: Devnet, proxy: bitcoin.rpc.Proxy) -> None:
    raw = bitcoin.rpc.RawProxy(
        service_url=f"http://{devnet.cookie()}@127.0.0.1:{devnet.ready['port']}"
    )
    info = raw.getblockchaininfo()
    assert info["blocks"] == proxy.getblockcount()
    replies = raw._batch(
        [
            {"method": "getblockcount", "params": [], "id": 1},
            {"method": "getblockhash", "params": [0], "id": 2},
        ]
    )
    assert [r["id"] for r in replies] == [1, 2] and replies[0]["result"] == info["blocks"]
    raw.close()
