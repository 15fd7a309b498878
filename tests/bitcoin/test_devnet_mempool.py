"""The devnet's mempool: Core's reject reasons and codes, chains, blocks, reorgs.

Every refused transaction must leave the mempool and the chain as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from chenilles_bitcoin.devnet.addresses import script_to_address
from chenilles_bitcoin.ledger import Coin, OutPoint, RpcError
from chenilles_bitcoin.ledger.txparse import parse_tx

from .devnet_harness import SPK, Devnet, running, spend

pytestmark = [pytest.mark.bitcoin, pytest.mark.devnet]

ADDRESS = script_to_address(SPK)
OTHER = bytes.fromhex("0014" + "42" * 20)
OP_TRUE = b"\x51"


class Funds:
    """Mature coinbase coins of KEY, handed out one at a time."""

    def __init__(self, devnet: Devnet) -> None:
        self.devnet = devnet
        devnet.rpc("generatetoaddress", 130, ADDRESS)
        tip = devnet.rpc("getblockcount")
        coins = devnet.ledger().scan_utxos([SPK])
        self.coins = [c for c in coins if c.coinbase and tip + 1 - c.height >= 100]
        self.young = [c for c in coins if c.coinbase and tip + 1 - c.height < 100]

    def take(self) -> Coin:
        return self.coins.pop(0)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    datadir: Path = tmp_path_factory.mktemp("devnet-mempool") / "node"
    yield from running(datadir)


@pytest.fixture(scope="module")
def funds(devnet: Devnet) -> Funds:
    return Funds(devnet)


def rejected(devnet: Devnet, raw: bytes) -> tuple[int, str]:
    """sendrawtransaction's error, after checking it changed nothing."""
    pool, tip = devnet.rpc("getrawmempool"), devnet.rpc("getbestblockhash")
    with pytest.raises(RpcError) as info:
        devnet.rpc("sendrawtransaction", raw.hex())
    assert devnet.rpc("getrawmempool") == pool and devnet.rpc("getbestblockhash") == tip
    return info.value.code, info.value.message


def test_reject_reasons(devnet: Devnet, funds: Funds) -> None:
    coin = funds.take()
    v = coin.value
    assert rejected(devnet, spend([coin], [(SPK, 100)])) == (-26, "dust")
    assert rejected(devnet, spend([coin], [(SPK, v)])) == (-26, "min relay fee not met, 0 < 110")
    tip = devnet.rpc("getblockcount")
    assert rejected(devnet, spend([coin], [(SPK, v - 1000)], locktime=tip + 5)) == (
        -26,
        "non-final",
    )
    ghost = Coin(OutPoint("ab" * 32, 0), 10_000, SPK, 1, False)
    assert rejected(devnet, spend([ghost], [(SPK, 9_000)])) == (
        -25,
        "bad-txns-inputs-missingorspent",
    )
    assert rejected(devnet, spend([coin], [(SPK, v + 1)])) == (
        -26,
        "bad-txns-in-belowout, value in (50.00) < value out (50.00000001)",
    )
    assert rejected(devnet, spend([coin], [(OP_TRUE, v - 1000)])) == (-26, "scriptpubkey")
    big_data = b"\x6a\x4c\x51" + b"\x00" * 81  # OP_RETURN with 84 bytes in all
    assert rejected(devnet, spend([coin], [(SPK, v - 1000), (big_data, 0)])) == (
        -26,
        "scriptpubkey",
    )
    assert rejected(devnet, spend([coin], [(SPK, v - 1000)], version=4)) == (-26, "version")
    young = funds.young[0]
    code, message = rejected(devnet, spend([young], [(SPK, young.value - 1000)]))
    assert code == -26 and message.startswith(
        "bad-txns-premature-spend-of-coinbase, tried to spend"
    )
    # a signature by the wrong key: the kernel's script verifier refuses it
    code, message = rejected(devnet, spend([coin], [(SPK, v - 1000)], key=b"\x01" * 32))
    assert code == -26 and message.startswith("mandatory-script-verify-flag-failed (")
    # BIP 68: a relative lock of 200 blocks on a coin not that deep
    assert rejected(devnet, spend([coin], [(SPK, v - 1000)], sequence=200)) == (
        -26,
        "non-BIP68-final",
    )
    # a fee above maxfeerate (0.10 BTC/kvB by default): -25 and Core's message
    code, message = rejected(devnet, spend([coin], [(SPK, v - 50_000_000)]))
    assert code == -25 and message.startswith("Fee exceeds maximum configured by user")
    # ... which testmempoolaccept reports as max-fee-exceeded, and maxfeerate 0 lifts
    high = spend([coin], [(SPK, v - 50_000_000)]).hex()
    assert devnet.rpc("testmempoolaccept", [high])[0]["reject-reason"] == "max-fee-exceeded"
    assert devnet.rpc("testmempoolaccept", [high], 0)[0]["allowed"] is True
    # OP_RETURN up to 83 bytes is standard, and a coinbase is never accepted
    data = b"\x6a\x4c\x50" + b"\x00" * 80
    ok = devnet.rpc("testmempoolaccept", [spend([coin], [(SPK, v - 1000), (data, 0)]).hex()])[0]
    assert ok["allowed"] is True and ok["fees"]["base"] == Decimal("0.00001000")
    block = devnet.rpc("getblock", devnet.rpc("getblockhash", 5))
    cb = devnet.rpc("getrawtransaction", block["tx"][0])
    assert devnet.rpc("testmempoolaccept", [cb])[0]["reject-reason"] == "coinbase"
    assert rejected(devnet, bytes.fromhex(cb)) == (-27, "Transaction outputs already in utxo set")


def test_mempool_chain_conflict_and_block_order(devnet: Devnet, funds: Funds) -> None:
    coin = funds.take()
    parent = spend([coin], [(SPK, 1_000_000_000), (SPK, coin.value - 1_000_000_000 - 2_000)])
    pid = devnet.rpc("sendrawtransaction", parent.hex())
    assert devnet.rpc("sendrawtransaction", parent.hex()) == pid  # idempotent, as Core
    assert devnet.rpc("testmempoolaccept", [parent.hex()])[0]["reject-reason"] == (
        "txn-already-in-mempool"
    )
    first = Coin(OutPoint(pid, 0), 1_000_000_000, SPK, 0, False)
    child = spend([first], [(OTHER, 999_999_000)])
    cid = devnet.rpc("sendrawtransaction", child.hex())
    double = spend([first], [(OTHER, 999_998_000)])
    assert rejected(devnet, double) == (-26, "txn-mempool-conflict")
    entry = devnet.rpc("getmempoolentry", cid)
    assert entry["depends"] == [pid] and entry["ancestorcount"] == 2
    assert entry["fees"]["base"] == Decimal("0.00001000")
    assert devnet.rpc("getmempoolentry", pid)["spentby"] == [cid]
    assert set(devnet.rpc("getrawmempool", True)) == {pid, cid}
    # gettxout sees the mempool unless told not to
    assert devnet.rpc("gettxout", pid, 0) is None  # spent by the child
    assert devnet.rpc("gettxout", cid, 0)["confirmations"] == 0
    assert devnet.rpc("gettxout", cid, 0, False) is None
    assert devnet.rpc("gettxout", coin.outpoint.txid, coin.outpoint.vout) is None
    assert devnet.rpc("gettxout", coin.outpoint.txid, coin.outpoint.vout, False) is not None
    assert devnet.rpc("getrawtransaction", cid) == child.hex()
    # one block takes both, parent first
    (block_hash,) = devnet.rpc("generatetoaddress", 1, ADDRESS)
    txids = devnet.rpc("getblock", block_hash)["tx"]
    assert txids[1:] == [pid, cid] and devnet.rpc("getrawmempool") == []
    # the coinbase claimed both fees
    cb = devnet.rpc("getblock", block_hash, 2)["tx"][0]
    assert cb["vout"][0]["value"] == Decimal("50.00003000")
    # after confirmation: a double spend is a missing input, a resend is already in chain
    assert rejected(devnet, double) == (-25, "bad-txns-inputs-missingorspent")
    assert rejected(devnet, parent) == (-27, "Transaction outputs already in utxo set")
    assert devnet.rpc("getrawtransaction", cid, 2)["fee"] == Decimal("0.00001000")
    # what was paid shows in the estimate (median of recent fee rates, BTC/kvB)
    estimate = devnet.rpc("estimatesmartfee", 3)
    assert estimate["blocks"] == 3 and estimate["feerate"] >= Decimal("0.00001000")


def test_package_and_chain_limit(devnet: Devnet, funds: Funds) -> None:
    coin = funds.take()
    parent = spend([coin], [(SPK, coin.value - 1_000)])
    ptx = parse_tx(parent)
    child = spend(
        [Coin(OutPoint(ptx.txid, 0), coin.value - 1_000, SPK, 0, False)],
        [(SPK, coin.value - 2_000)],
    )
    res = devnet.rpc("testmempoolaccept", [parent.hex(), child.hex()])
    assert [r["allowed"] for r in res] == [True, True]
    assert devnet.rpc("getrawmempool") == []  # a test only
    # 25 in a chain are accepted, the 26th is too long a chain
    prev, value = coin, coin.value
    for i in range(26):
        value -= 200
        raw = spend([prev], [(SPK, value)])
        if i == 25:
            code, message = rejected(devnet, raw)
            assert code == -26 and message.startswith("too-long-mempool-chain")
            break
        txid = devnet.rpc("sendrawtransaction", raw.hex())
        prev = Coin(OutPoint(txid, 0), value, SPK, 0, False)
    assert len(devnet.rpc("getrawmempool")) == 25
    devnet.rpc("generatetoaddress", 1, ADDRESS)
    assert devnet.rpc("getrawmempool") == []


def test_reorg_reinstates_and_evicts(devnet: Devnet, funds: Funds) -> None:
    a_coin = funds.take()
    a = spend([a_coin], [(SPK, a_coin.value - 1_000)])
    aid = devnet.rpc("sendrawtransaction", a.hex())
    devnet.rpc("generatetoaddress", 1, ADDRESS)
    b = spend(
        [Coin(OutPoint(aid, 0), a_coin.value - 1_000, SPK, 0, False)], [(SPK, a_coin.value - 2_000)]
    )
    bid = devnet.rpc("sendrawtransaction", b.hex())
    # the block holding A is replaced: A returns to the mempool, its child B stays
    tip = devnet.rpc("getblockcount")
    res = devnet.rpc("chenilles_reorg", 1)
    assert len(res["disconnected"]) == 1 and len(res["connected"]) == 2
    assert res["reinstated"] == [aid] and res["evicted"] == []
    assert devnet.rpc("getblockcount") == tip + 1
    assert devnet.rpc("getrawmempool") == [aid, bid]
    assert devnet.rpc("getrawtransaction", aid, True).get("confirmations") is None
    # a branch that double-spends A's coin evicts A and its child B
    thief = spend([a_coin], [(OTHER, a_coin.value - 5_000)])
    res = devnet.rpc("chenilles_reorg", 1, 2, [thief.hex()])
    assert [e["txid"] for e in res["evicted"]] == [aid, bid]
    assert res["evicted"][0]["reason"] == "bad-txns-inputs-missingorspent"
    assert devnet.rpc("getrawmempool") == []
    thief_id = parse_tx(thief).txid
    assert devnet.rpc("getrawtransaction", thief_id, True)["confirmations"] == 2
    # a branch the kernel refuses (spends a coin that does not exist) leaves the tip alone
    tip_hash = devnet.rpc("getbestblockhash")
    ghost = spend([Coin(OutPoint("cd" * 32, 0), 10_000, SPK, 1, False)], [(SPK, 9_000)])
    with pytest.raises(RpcError) as info:
        devnet.rpc("chenilles_reorg", 1, 2, [ghost.hex()])
    assert info.value.code == -25 and "bad-txns-inputs-missingorspent" in info.value.message
    assert devnet.rpc("getbestblockhash") == tip_hash
    with pytest.raises(RpcError) as info:
        devnet.rpc("chenilles_reorg", 10_000)
    assert info.value.code == -8


def test_submitblock_and_generateblock(devnet: Devnet, funds: Funds) -> None:
    built = devnet.rpc("generateblock", ADDRESS, [], False)
    raw = bytes.fromhex(built["hex"])
    broken = bytearray(raw)
    broken[40] ^= 1  # merkle root
    assert devnet.rpc("submitblock", bytes(broken).hex()) is not None
    assert devnet.rpc("submitblock", raw.hex()) is None
    assert devnet.rpc("getbestblockhash") == built["hash"]
    assert devnet.rpc("submitblock", raw.hex()) == "duplicate"
    with pytest.raises(RpcError) as info:
        devnet.rpc("submitblock", "00")
    assert info.value.code == -22
    # generateblock mines exactly what it is given, mempool txids or raw, consensus only
    coin = funds.take()
    in_pool = spend([coin], [(SPK, coin.value - 1_000)])
    txid = devnet.rpc("sendrawtransaction", in_pool.hex())
    other = funds.take()
    nonstandard = spend(
        [other], [(OP_TRUE, other.value - 1_000)]
    )  # relay policy: no; consensus: yes
    block = devnet.rpc("generateblock", ADDRESS, [txid, nonstandard.hex()])
    assert devnet.rpc("getblock", block["hash"])["tx"][1:] == [txid, parse_tx(nonstandard).txid]
    assert devnet.rpc("getrawmempool") == []
    bad = spend([other], [(SPK, other.value - 1_000)])  # spent just now
    with pytest.raises(RpcError) as info:
        devnet.rpc("generateblock", ADDRESS, [bad.hex()])
    assert info.value.code == -25 and info.value.message.startswith("TestBlockValidity failed")


def test_unconfirmed_spend_of_evicted_parent_is_not_left_behind(
    devnet: Devnet, funds: Funds
) -> None:
    """A block that spends a mempool tx's input (from outside) evicts it and its children."""
    coin = funds.take()
    mine = spend([coin], [(SPK, coin.value - 1_000)])
    mid = devnet.rpc("sendrawtransaction", mine.hex())
    kid = spend(
        [Coin(OutPoint(mid, 0), coin.value - 1_000, SPK, 0, False)], [(SPK, coin.value - 2_000)]
    )
    devnet.rpc("sendrawtransaction", kid.hex())
    rival = spend([coin], [(OTHER, coin.value - 3_000)])
    devnet.rpc("generateblock", ADDRESS, [rival.hex()])
    assert devnet.rpc("getrawmempool") == []
