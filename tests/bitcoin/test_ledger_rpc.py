"""BitcoindRpcLedger, our bitcoind client, against the devnet server (a real process).

The devnet speaks bitcoind's JSON-RPC over a kernel-validated chain, so this exercises the
real path: auth (password and cookie), exact amounts, Core's errors as TransactionRejected,
scantxoutset, estimatesmartfee, the block scan behind find_spending_tx and events, reorgs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chenilles_bitcoin.ledger import (
    BitcoindRpcLedger,
    EventKind,
    OutPoint,
    RpcError,
    TransactionRejected,
    Utxo,
    Wallet,
)
from chenilles_bitcoin.ledger.rpc_client import btc_to_sat
from chenilles_bitcoin.ledger.txparse import parse_tx

from .devnet_harness import KEY, SPK, Devnet, running, spend

pytestmark = [pytest.mark.bitcoin, pytest.mark.devnet]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    datadir: Path = tmp_path_factory.mktemp("ledger-rpc") / "node"
    yield from running(datadir, "--rpcuser", "alice", "--rpcpassword", "s3cret")


@pytest.fixture(scope="module")
def rpc(devnet: Devnet) -> BitcoindRpcLedger:
    ledger = BitcoindRpcLedger(devnet.url, "alice", "s3cret")
    ledger.mine(101, to_script=SPK)  # generatetodescriptor raw(<script>)
    return ledger


def test_reads_and_auth(devnet: Devnet, rpc: BitcoindRpcLedger) -> None:
    assert rpc.tip_height() == 101
    assert rpc.tip_hash() == devnet.rpc("getbestblockhash")
    assert rpc.tip_time() >= rpc.median_time_past()
    by_cookie = BitcoindRpcLedger(devnet.url, cookie_file=devnet.cookie_file)
    assert by_cookie.tip_height() == 101
    with pytest.raises(RpcError) as info:
        BitcoindRpcLedger(devnet.url, "alice", "wrong").tip_height()
    assert info.value.code == 401
    with pytest.raises(RpcError, match="cannot reach"):
        BitcoindRpcLedger("http://127.0.0.1:9", timeout=2).tip_height()
    with pytest.raises(RpcError) as info:
        rpc.call("nosuchmethod")
    assert info.value.code == -32601 and info.value.message == "Method not found"


def test_utxos_amounts_and_scan(rpc: BitcoindRpcLedger) -> None:
    coins = rpc.scan_utxos([SPK])
    assert len(coins) == 101 and all(c.coinbase and c.value == 5_000_000_000 for c in coins)
    first = coins[0]
    assert rpc.get_utxo(first.outpoint) == Utxo(first.value, SPK, first.height)
    assert rpc.get_utxo(OutPoint("dd" * 32, 1)) is None
    assert rpc.get_raw_tx("bb" * 32) is None
    assert btc_to_sat("20999999.97690001") == 2_099_999_997_690_001
    assert btc_to_sat("0.00000001") == 1
    with pytest.raises(ValueError):
        btc_to_sat("0.000000001")
    doc = b'{"result": {"value": 20999999.97690001}, "error": null, "id": 1}'
    assert btc_to_sat(BitcoindRpcLedger.parse_response("x", doc)["value"]) == 2_099_999_997_690_001


def test_broadcast_errors_fee_estimate_and_wallet(rpc: BitcoindRpcLedger) -> None:
    assert rpc.estimate_fee_rate(6) is None  # no transaction yet: Core's "errors" answer
    wallet = Wallet(rpc, KEY)
    assert wallet.balance() == 2 * 5_000_000_000  # the two mature coinbases, found by scan
    with pytest.raises(TransactionRejected) as info:
        rpc.broadcast(wallet.build_payment([(SPK, 100)]))
    assert info.value.reason == "dust"
    wallet.reserved.clear()
    op = wallet.fund_output(bytes.fromhex("0014" + "42" * 20), 1_000_000)
    assert rpc.get_raw_tx(op.txid) is not None and rpc.get_tx_confirmations(op.txid) is None
    rpc.mine(1)
    assert rpc.get_tx_confirmations(op.txid) == 1
    fee_rate = rpc.estimate_fee_rate(6)
    # the wallet paid its fallback 2 sat/vB; the estimate is what recent blocks paid
    assert fee_rate is not None and 1_990 <= fee_rate <= 2_000
    with pytest.raises(TransactionRejected, match="bad-txns-inputs-missingorspent"):
        ghost = wallet.coins()[0]._replace(outpoint=OutPoint("ab" * 32, 0))
        rpc.broadcast(spend([ghost], [(SPK, 10_000)]))


def test_events_spends_and_reorg(devnet: Devnet, rpc: BitcoindRpcLedger) -> None:
    rpc.poll_events()
    tip = rpc.tip_height()
    coin = next(c for c in rpc.scan_utxos([SPK]) if c.coinbase and tip + 1 - c.height >= 100)
    raw = spend([coin], [(SPK, coin.value - 1_000)])
    txid = rpc.broadcast(raw)
    (block,) = rpc.mine(1)
    events = rpc.poll_events()
    assert [e.kind for e in events] == [
        EventKind.BLOCK_CONNECTED,
        EventKind.TX_CONFIRMED,
        EventKind.TX_CONFIRMED,
    ]
    assert events[2].txid == txid and events[0].block_hash == block
    assert rpc.find_spending_tx(coin.outpoint) == raw
    assert rpc.get_block_txids(block)[1] == txid
    # a branch that spends the same coin elsewhere replaces the block
    thief = spend([coin], [(bytes.fromhex("0014" + "42" * 20), coin.value - 2_000)])
    devnet.rpc("chenilles_reorg", 1, 2, [thief.hex()])
    events = rpc.poll_events()
    kinds = [e.kind for e in events]
    assert (
        kinds.count(EventKind.BLOCK_DISCONNECTED) == 1
        and kinds.count(EventKind.BLOCK_CONNECTED) == 2
    )
    assert any(e.kind is EventKind.TX_UNCONFIRMED and e.txid == txid for e in events)
    assert rpc.find_spending_tx(coin.outpoint) == thief
    assert rpc.get_tx_confirmations(txid) is None
    # nor read from the ledger's cache of recent blocks: gone from the chain and from the
    # mempool (a claim reorged out this way reads as unsent, and is sent again)
    assert rpc.get_raw_tx(txid) is None
    assert rpc.get_tx_confirmations(parse_tx(thief).txid) == 2
