"""BitcoindRpcLedger against a local HTTP server answering canned JSON-RPC.

No bitcoind is available here, so this checks only the boundary: request building (JSON-RPC
1.0, basic auth), response parsing (exact amounts, errors), the block scan that gives
`find_spending_tx` and reorg events. It does not imitate a chain's validity rules.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from chenilles_bitcoin.ledger import (
    BitcoindRpcLedger,
    EventKind,
    OutPoint,
    RpcError,
    TransactionRejected,
    Utxo,
)
from chenilles_bitcoin.ledger.rpc_client import btc_to_sat

pytestmark = pytest.mark.bitcoin

Handler = Callable[[list[Any]], Any]


class CannedNode:
    """Answers each method from a table; records every request."""

    def __init__(self) -> None:
        self.methods: dict[str, Handler] = {}
        self.requests: list[tuple[dict[str, Any], str | None]] = []
        node = self

        class _H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                node.requests.append((body, self.headers.get("Authorization")))
                fn = node.methods.get(body["method"])
                if fn is None:
                    status, doc = (
                        404,
                        {
                            "result": None,
                            "id": body["id"],
                            "error": {"code": -32601, "message": "Method not found"},
                        },
                    )
                else:
                    try:
                        status, doc = (
                            200,
                            {"result": fn(body["params"]), "error": None, "id": body["id"]},
                        )
                    except RpcFailure as exc:
                        status, doc = (
                            500,
                            {
                                "result": None,
                                "id": body["id"],
                                "error": {"code": exc.code, "message": exc.msg},
                            },
                        )
                raw = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()


class RpcFailure(Exception):
    def __init__(self, code: int, msg: str) -> None:
        self.code, self.msg = code, msg


@pytest.fixture
def node() -> Iterator[CannedNode]:
    n = CannedNode()
    yield n
    n.server.shutdown()
    n.server.server_close()


def test_request_format_auth_and_simple_calls(node: CannedNode) -> None:
    node.methods["getblockcount"] = lambda p: 321
    node.methods["getbestblockhash"] = lambda p: "aa" * 32
    node.methods["getblockheader"] = lambda p: {
        "time": 1700000000,
        "mediantime": 1699999000,
        "height": 321,
    }
    rpc = BitcoindRpcLedger(node.url, "alice", "s3cret")
    assert rpc.tip_height() == 321
    assert rpc.tip_time() == 1700000000
    assert rpc.median_time_past() == 1699999000
    body, auth = node.requests[0]
    assert body["jsonrpc"] == "1.0" and body["method"] == "getblockcount" and body["params"] == []
    assert auth == "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert node.requests[2][0]["params"] == ["aa" * 32]
    assert len({r[0]["id"] for r in node.requests}) == len(node.requests)


def test_cookie_auth(node: CannedNode, tmp_path: Any) -> None:
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:abc123\n")
    node.methods["getblockcount"] = lambda p: 1
    BitcoindRpcLedger(node.url, cookie_file=cookie).tip_height()
    assert node.requests[0][1] == "Basic " + base64.b64encode(b"__cookie__:abc123").decode()


def test_errors(node: CannedNode) -> None:
    def reject(p: list[Any]) -> Any:
        raise RpcFailure(-26, "mandatory-script-verify-flag-failed (Signature must be zero)")

    def unknown(p: list[Any]) -> Any:
        raise RpcFailure(-5, "No such mempool or blockchain transaction")

    node.methods["sendrawtransaction"] = reject
    node.methods["getrawtransaction"] = unknown
    rpc = BitcoindRpcLedger(node.url)
    with pytest.raises(TransactionRejected, match="mandatory-script-verify-flag-failed"):
        rpc.broadcast(b"\x02\x00")
    assert node.requests[0][0]["params"] == ["0200"]
    assert rpc.get_raw_tx("bb" * 32) is None
    with pytest.raises(RpcError, match="Method not found") as info:
        rpc.call("nosuchmethod")
    assert info.value.code == -32601
    with pytest.raises(RpcError, match="cannot reach"):
        BitcoindRpcLedger("http://127.0.0.1:9", timeout=2).tip_height()


def test_utxo_amounts_are_exact(node: CannedNode) -> None:
    # 0.1 + 0.2 style amounts must not go through float
    node.methods["gettxout"] = lambda p: {
        "bestblock": "cc" * 32,
        "confirmations": 3,
        "value": 20999999.97690001,
        "scriptPubKey": {"hex": "0014" + "11" * 20},
    }
    node.methods["getblockheader"] = lambda p: {"height": 500}
    rpc = BitcoindRpcLedger(node.url)
    assert rpc.get_utxo(OutPoint("dd" * 32, 1)) == Utxo(
        2_099_999_997_690_001, bytes.fromhex("0014" + "11" * 20), 498
    )
    assert node.requests[0][0]["params"] == ["dd" * 32, 1, False]
    node.methods["gettxout"] = lambda p: None
    assert rpc.get_utxo(OutPoint("dd" * 32, 1)) is None
    assert btc_to_sat("0.00000001") == 1
    with pytest.raises(ValueError):
        btc_to_sat("0.000000001")


def test_fee_estimate(node: CannedNode) -> None:
    node.methods["estimatesmartfee"] = lambda p: {"feerate": 0.00012345, "blocks": p[0]}
    rpc = BitcoindRpcLedger(node.url)
    assert rpc.estimate_fee_rate(3) == 13  # 12345 sat/kvB -> 12.345 -> 13 sat/vB
    node.methods["estimatesmartfee"] = lambda p: {"errors": ["Insufficient data"], "blocks": 0}
    assert rpc.estimate_fee_rate(3, fallback_sat_vb=5) == 5


def _block(height: int, tag: str, txs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"hash": f"{tag}{height:02d}".ljust(64, "0"), "height": height, "tx": txs}


def test_scan_spends_events_and_reorg(node: CannedNode) -> None:
    coinbase = {"txid": "c0" * 32, "hex": "00", "vin": [{"coinbase": "51"}]}
    spend = {"txid": "5e" * 32, "hex": "02deadbeef", "vin": [{"txid": "f0" * 32, "vout": 1}]}
    chain = [_block(0, "a", [coinbase]), _block(1, "a", [coinbase])]
    blocks = {b["hash"]: b for b in chain}
    node.methods["getblockcount"] = lambda p: len(chain) - 1
    node.methods["getblockhash"] = lambda p: chain[p[0]]["hash"]
    node.methods["getblock"] = lambda p: (
        blocks[p[0]] if p[1] == 2 else {"tx": [t["txid"] for t in blocks[p[0]]["tx"]]}
    )
    rpc = BitcoindRpcLedger(node.url)
    assert rpc.poll_events() == []  # the first sync sets the baseline silently
    assert rpc.find_spending_tx(OutPoint("f0" * 32, 1)) is None

    b2 = _block(2, "a", [coinbase, spend])
    chain.append(b2)
    blocks[b2["hash"]] = b2
    assert rpc.find_spending_tx(OutPoint("f0" * 32, 1)) == bytes.fromhex("02deadbeef")
    events = rpc.poll_events()
    assert [e.kind for e in events] == [
        EventKind.BLOCK_CONNECTED,
        EventKind.TX_CONFIRMED,
        EventKind.TX_CONFIRMED,
    ]
    assert events[2].txid == "5e" * 32 and events[2].height == 2
    assert rpc.get_block_txids(b2["hash"]) == ["c0" * 32, "5e" * 32]

    # reorg: blocks 1 and 2 replaced by b1, b2, b3 without the spend
    del chain[1:]
    for h in (1, 2, 3):
        b = _block(h, "b", [coinbase])
        chain.append(b)
        blocks[b["hash"]] = b
    events = rpc.poll_events()
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.BLOCK_DISCONNECTED) == 2
    assert kinds.count(EventKind.BLOCK_CONNECTED) == 3
    assert any(e.kind is EventKind.TX_UNCONFIRMED and e.txid == "5e" * 32 for e in events)
    assert events[0].kind is EventKind.BLOCK_DISCONNECTED and events[0].height == 2
    assert rpc.find_spending_tx(OutPoint("f0" * 32, 1)) is None


def test_mine_uses_raw_descriptor(node: CannedNode) -> None:
    node.methods["getdescriptorinfo"] = lambda p: {"descriptor": p[0] + "#abcdefgh"}
    node.methods["generatetodescriptor"] = lambda p: ["ee" * 32] * p[0]
    node.methods["getblockcount"] = lambda p: 0
    node.methods["getblockhash"] = lambda p: "ee" * 32
    node.methods["getblock"] = lambda p: {"tx": []}
    rpc = BitcoindRpcLedger(node.url, scan_depth=1)
    assert rpc.mine(2, to_script=bytes.fromhex("0014" + "22" * 20)) == ["ee" * 32] * 2
    gen = next(r[0] for r in node.requests if r[0]["method"] == "generatetodescriptor")
    assert gen["params"] == [2, "raw(0014" + "22" * 20 + ")#abcdefgh"]
