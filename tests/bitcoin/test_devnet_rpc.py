"""The devnet server's JSON-RPC boundary, as Bitcoin Core draws it: HTTP status codes,
JSON-RPC 1.0 / 2.0 / batches, auth, size cap, argument checks, and the chain methods' shapes.

One server process for the module (a real socket); requests are raw HTTP or our client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from chenilles_bitcoin.devnet.addresses import script_to_address
from chenilles_bitcoin.devnet.descriptors import add_checksum
from chenilles_bitcoin.ledger import RpcError

from .devnet_harness import PUB, SPK, Devnet, running

pytestmark = [pytest.mark.bitcoin, pytest.mark.devnet]

ADDRESS = script_to_address(SPK)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    datadir: Path = tmp_path_factory.mktemp("devnet-rpc") / "node"
    yield from running(datadir, "--rpcuser", "alice", "--rpcpassword", "s3cret")


def call(devnet: Devnet, body: object, **kw: object) -> tuple[int, object]:
    status, _, data = devnet.post(json.dumps(body), **kw)  # type: ignore[arg-type]
    return status, json.loads(data, parse_float=Decimal) if data else None


# -- protocol -------------------------------------------------------------------------------


def test_json_rpc_1_0_and_2_0_replies(devnet: Devnet) -> None:
    assert call(devnet, {"jsonrpc": "1.0", "id": 7, "method": "getblockcount"}) == (
        200,
        {"result": 0, "error": None, "id": 7},
    )
    assert call(devnet, {"jsonrpc": "2.0", "id": "a", "method": "getblockcount"}) == (
        200,
        {"jsonrpc": "2.0", "result": 0, "id": "a"},
    )
    # python-bitcoinlib sends {"version": "1.1"} without "jsonrpc": the legacy dialect
    assert call(devnet, {"version": "1.1", "id": 1, "method": "getblockcount", "params": []})[
        1
    ] == {
        "result": 0,
        "error": None,
        "id": 1,
    }


def test_errors_http_status_per_dialect(devnet: Devnet) -> None:
    # 1.0: errors are HTTP 500, unknown method 404, bad request object 400
    status, doc = call(devnet, {"id": 1, "method": "nosuchmethod"})
    assert status == 404 and doc == {
        "result": None,
        "error": {"code": -32601, "message": "Method not found"},
        "id": 1,
    }
    status, doc = call(devnet, {"id": 2, "method": "getblockhash", "params": [99]})
    assert status == 500 and doc["error"] == {"code": -8, "message": "Block height out of range"}
    assert call(devnet, {"id": 3, "method": 5})[0] == 400
    assert call(devnet, {"id": 4, "jsonrpc": "3.0", "method": "getblockcount"})[0] == 400
    # 2.0: HTTP 200 with the error object, no "result"
    status, doc = call(devnet, {"jsonrpc": "2.0", "id": 5, "method": "nosuchmethod"})
    assert status == 200 and doc == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": 5,
    }
    # 2.0 notification (no id): executed, answered 204 with no body
    assert call(devnet, {"jsonrpc": "2.0", "method": "getblockcount"}) == (204, None)


def test_batch(devnet: Devnet) -> None:
    status, doc = call(
        devnet,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "getblockcount"},
            {"jsonrpc": "2.0", "method": "getblockcount"},  # notification: no reply
            {"jsonrpc": "1.0", "id": 2, "method": "nosuchmethod"},
            "not an object",
            {"jsonrpc": "2.0", "id": 3, "method": "getblockhash", "params": {"height": 0}},
        ],
    )
    assert status == 200
    assert doc[0] == {"jsonrpc": "2.0", "result": 0, "id": 1}
    assert doc[1] == {
        "result": None,
        "error": {"code": -32601, "message": "Method not found"},
        "id": 2,
    }
    assert doc[2]["error"] == {"code": -32600, "message": "Invalid Request object"}
    assert doc[3]["result"] == devnet.rpc("getblockhash", 0)
    assert len(doc) == 4
    assert call(devnet, []) == (200, [])


def test_malformed_bodies(devnet: Devnet) -> None:
    for body in ("{bad", "", "[1,", '{"method": NaN}', "1" * 10 + "]"):
        status, _, data = devnet.post(body)
        assert status == 500, body
        assert json.loads(data)["error"] == {"code": -32700, "message": "Parse error"}
    status, _, data = devnet.post("42")
    assert status == 500 and json.loads(data)["error"]["message"] == "Top-level object parse error"
    status, _, data = devnet.post("[" * 100_000 + "]" * 100_000)  # nesting: refused, not a crash
    assert status == 500 and json.loads(data)["error"]["code"] == -32700
    assert devnet.rpc("getblockcount") == 0


def test_huge_body_refused_unread(devnet: Devnet) -> None:
    body = json.dumps({"method": "getblockcount", "params": ["x" * (9 * 1024 * 1024)]})
    status, _, _ = devnet.post(body)
    assert status == 413
    assert devnet.rpc("getblockcount") == 0


def test_auth(devnet: Devnet) -> None:
    status, headers, data = devnet.post('{"method":"getblockcount"}', auth=None)
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="jsonrpc"' and not data
    t0 = time.monotonic()
    assert devnet.post('{"method":"getblockcount"}', auth="__cookie__:wrong")[0] == 401
    assert time.monotonic() - t0 >= 0.2  # Core's delay against guessing
    assert devnet.post('{"method":"getblockcount"}', auth="alice:wrong")[0] == 401
    assert devnet.post('{"method":"getblockcount"}', auth="alice:s3cret")[0] == 200
    assert (
        devnet.post('{"method":"x"}', headers={"Authorization": "Bearer abc"}, auth=None)[0] == 401
    )
    assert (
        devnet.post('{"method":"x"}', headers={"Authorization": "Basic !!!"}, auth=None)[0] == 401
    )
    cookie = devnet.cookie()
    assert cookie.startswith("__cookie__:") and len(cookie.split(":")[1]) == 64
    assert devnet.cookie_file.stat().st_mode & 0o077 == 0
    assert devnet.post('{"method":"getblockcount"}', method="GET")[0] == 405
    assert devnet.post('{"method":"getblockcount"}', path="/rest/chaininfo.json")[0] == 404
    assert devnet.post('{"method":"getblockcount"}', path="/wallet/w")[0] == 200


def test_argument_checks(devnet: Devnet) -> None:
    def error(method: str, *params: object) -> tuple[int, str]:
        with pytest.raises(RpcError) as info:
            devnet.rpc(method, *params)
        return info.value.code, info.value.message

    assert error("getblockhash", "0") == (
        -3,
        "JSON value of type string is not of expected type number",
    )
    assert error("getblockheader", "00" * 32, 1)[0] == -3  # verbose is a bool
    code, usage = error("getblockhash")
    assert code == -1 and usage.startswith("getblockhash height")
    assert error("getblockcount", 1)[0] == -1
    assert error("getblockhash", 1.5) == (-1, "JSON integer out of range")
    assert error("getblock", "abc") == (-8, "blockhash must be of length 64 (not 3, for 'abc')")
    assert error("getblock", "zz" * 32)[0] == -8
    assert error("getblock", "00" * 32) == (-5, "Block not found")
    assert error("getrawtransaction", "00" * 32)[0] == -5
    assert error("gettxout", "00" * 32, "x")[0] == -3
    status, doc = call(devnet, {"id": 1, "method": "getblockhash", "params": {"heigth": 0}})
    assert status == 500 and doc["error"] == {
        "code": -8,
        "message": "Unknown named parameter heigth",
    }
    assert error("estimatesmartfee", 0)[0] == -8
    assert error("estimatesmartfee", 2, "fast")[0] == -8
    assert error("scantxoutset", "begin", [])[0] == -8
    assert error("scantxoutset", "start")[0] == -8
    assert error("scantxoutset", "start", ["wpkh(nothex)"])[0] == -5
    assert error("generatetoaddress", 1, "not-an-address") == (-5, "Error: Invalid address")
    assert error("sendrawtransaction", "zz")[0] == -22
    assert error("sendrawtransaction", "0200000000")[0] == -22
    assert error("sendrawtransaction", "00", True)[0] == -3  # maxfeerate is an amount
    assert error("getdescriptorinfo", "raw(deadbeef)#00000000")[0] == -5


def test_chain_reads(devnet: Devnet) -> None:
    ledger = devnet.ledger()
    hashes = devnet.rpc("generatetoaddress", 3, ADDRESS)
    assert len(hashes) == 3 and devnet.rpc("getbestblockhash") == hashes[-1]
    info = devnet.rpc("getblockchaininfo")
    assert (
        info["chain"] == "regtest" and info["blocks"] == 3 and info["bestblockhash"] == hashes[-1]
    )
    assert info["chainwork"] == f"{8:064x}"
    header = devnet.rpc("getblockheader", hashes[1])
    assert header["height"] == 2 and header["confirmations"] == 2
    assert header["previousblockhash"] == hashes[0] and header["nextblockhash"] == hashes[2]
    assert header["bits"] == "207fffff" and header["versionHex"] == "20000000"
    raw_header = devnet.rpc("getblockheader", hashes[1], False)
    assert len(raw_header) == 160
    raw_block = devnet.rpc("getblock", hashes[1], 0)
    assert raw_block.startswith(raw_header)
    block = devnet.rpc("getblock", hashes[1], 1)
    assert block["size"] == len(raw_block) // 2 and block["nTx"] == 1 == len(block["tx"])
    block2 = devnet.rpc("getblock", hashes[1], 2)
    coinbase = block2["tx"][0]
    assert coinbase["txid"] == block["tx"][0] and "coinbase" in coinbase["vin"][0]
    out = coinbase["vout"][0]
    assert out["value"] == Decimal("50.00000000") and out["scriptPubKey"]["address"] == ADDRESS
    assert out["scriptPubKey"]["type"] == "witness_v0_keyhash"
    assert devnet.rpc("getblock", hashes[1], True)["tx"] == block["tx"]  # bool verbosity
    tx = devnet.rpc("getrawtransaction", block["tx"][0], True)
    assert tx["blockhash"] == hashes[1] and tx["confirmations"] == 2
    in_block = devnet.rpc("getrawtransaction", block["tx"][0], 1, hashes[1])
    assert in_block["in_active_chain"] is True
    with pytest.raises(RpcError, match="No such transaction found in the provided block"):
        devnet.rpc("getrawtransaction", block["tx"][0], 1, hashes[0])
    # gettxout: exact amount, coinbase flag, confirmations; our client reads it back
    txout = devnet.rpc("gettxout", block["tx"][0], 0)
    assert txout["coinbase"] is True and txout["confirmations"] == 2
    assert ledger.get_utxo(ledger_outpoint(block["tx"][0])) == (5_000_000_000, SPK, 2)
    assert devnet.rpc("gettxout", block["tx"][0], 5) is None
    # the raw reply carries the amount as Core prints it: 8 decimals, no float
    _, _, data = devnet.post(
        json.dumps({"id": 1, "method": "gettxout", "params": [block["tx"][0], 0]})
    )
    assert b'"value":50.00000000' in data


def ledger_outpoint(txid: str) -> object:
    from chenilles_bitcoin.ledger import OutPoint

    return OutPoint(txid, 0)


def test_scantxoutset_descriptors(devnet: Devnet) -> None:
    # self-contained: under xdist this test may get a devnet of its own, so it mines its coins
    devnet.rpc("generatetoaddress", 2, ADDRESS)
    tip = devnet.rpc("getblockcount")
    by_addr = devnet.rpc("scantxoutset", "start", [f"addr({ADDRESS})"])
    by_raw = devnet.rpc("scantxoutset", "start", [{"desc": f"raw({SPK.hex()})"}])
    by_key = devnet.rpc("scantxoutset", "start", [add_checksum(f"wpkh({PUB.hex()})")])
    assert by_addr["success"] and by_addr["height"] == tip
    mine = len(by_addr["unspents"])
    assert mine >= 2 and mine == len(by_raw["unspents"]) == len(by_key["unspents"])
    assert by_addr["total_amount"] == sum(u["amount"] for u in by_addr["unspents"])
    u = by_key["unspents"][0]
    assert u["desc"].startswith(f"wpkh({PUB.hex()})#") and u["coinbase"] is True
    assert u["scriptPubKey"] == SPK.hex() and u["amount"] == Decimal("50.00000000")
    assert devnet.rpc("scantxoutset", "status") is None
    assert devnet.rpc("scantxoutset", "abort") is False
    # our client's scan_utxos is scantxoutset with raw() descriptors
    coins = devnet.ledger().scan_utxos([SPK])
    assert sorted(c.value for c in coins) == sorted(
        int(u["amount"] * 100_000_000) for u in by_addr["unspents"]
    )


def test_descriptors_and_generation(devnet: Devnet) -> None:
    info = devnet.rpc("getdescriptorinfo", "raw(DEADBEEF)")
    assert info["descriptor"] == "raw(deadbeef)#89f8spxm"  # BIP 380's test vector
    assert info["issolvable"] is False and info["isrange"] is False
    before = devnet.rpc("getblockcount")
    devnet.rpc("generatetodescriptor", 1, info["descriptor"])
    block = devnet.rpc("generateblock", f"wpkh({PUB.hex()})", [])
    assert devnet.rpc("getbestblockhash") == block["hash"]
    unsent = devnet.rpc("generateblock", ADDRESS, [], False)
    assert "hex" in unsent and devnet.rpc("getbestblockhash") == block["hash"]
    assert devnet.rpc("getblockcount") == before + 2
    with pytest.raises(RpcError) as e:
        devnet.rpc("generateblock", ADDRESS, ["11" * 32])
    assert e.value.code == -5 and "not in mempool" in e.value.message


def test_node_info_methods(devnet: Devnet) -> None:
    net = devnet.rpc("getnetworkinfo")
    assert net["version"] >= 280000 and net["connections"] == 0
    assert net["relayfee"] == Decimal("0.00001000")
    assert isinstance(devnet.rpc("uptime"), int)
    assert devnet.rpc("estimatesmartfee", 6) == {
        "errors": ["Insufficient data or no feerate found"],
        "blocks": 0,
    }
    assert devnet.rpc("getrawmempool") == []
    assert devnet.rpc("getrawmempool", False, True)["txids"] == []
    assert devnet.rpc("getmempoolinfo")["size"] == 0
    assert "getblockcount" in devnet.rpc("help")
    assert devnet.rpc("validateaddress", ADDRESS)["isvalid"] is True
    assert devnet.rpc("validateaddress", "bcrt1qxyz")["isvalid"] is False
