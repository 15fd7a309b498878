"""The devnet survives its process: SIGTERM, the stop method and kill -9 keep the chain and
the mempool; interval mining; the ready file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from chenilles_bitcoin.devnet.__main__ import parse_args
from chenilles_bitcoin.devnet.addresses import script_to_address
from chenilles_bitcoin.ledger import BitcoindRpcLedger, RpcError

from .devnet_harness import SPK, Devnet, spend

pytestmark = [pytest.mark.bitcoin, pytest.mark.devnet]

ADDRESS = script_to_address(SPK)


def test_restart_and_kill_keep_chain_and_mempool(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    devnet = Devnet(datadir).start()
    try:
        assert json.loads((datadir / "ready.json").read_text())["url"] == devnet.url
        devnet.rpc("generatetoaddress", 101, ADDRESS)
        coin = devnet.ledger().scan_utxos([SPK])
        mature = [c for c in coin if 102 - c.height >= 100]
        pending = spend(mature[:1], [(SPK, mature[0].value - 1_000)])
        txid = devnet.rpc("sendrawtransaction", pending.hex())
        tip = devnet.rpc("getbestblockhash")
        assert devnet.stop() == 0  # SIGTERM: a clean shutdown
        assert not (datadir / ".cookie").exists() and not (datadir / "ready.json").exists()

        devnet = Devnet(datadir).start()
        assert devnet.rpc("getbestblockhash") == tip and devnet.rpc("getrawmempool") == [txid]
        (mined,) = devnet.rpc("generatetoaddress", 1, ADDRESS)
        second = spend(mature[1:2], [(SPK, mature[1].value - 1_000)])
        txid2 = devnet.rpc("sendrawtransaction", second.hex())
        devnet.kill()  # kill -9: nothing flushed by the kernel since the last clean stop

        devnet = Devnet(datadir).start()
        assert devnet.rpc("getbestblockhash") == mined
        assert devnet.rpc("getblockcount") == 102
        assert devnet.rpc("getrawtransaction", txid, True)["confirmations"] == 1
        assert devnet.rpc("getrawmempool") == [txid2]
        assert devnet.rpc("generatetoaddress", 1, ADDRESS)
        assert devnet.rpc("getrawmempool") == []
        assert devnet.rpc("stop") == "Bitcoin Core stopping"
        assert devnet.proc is not None and devnet.proc.wait(30) == 0
    finally:
        devnet.kill()


def test_interval_mining_and_cookie_rotation(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    devnet = Devnet(datadir, "--block-time", "0.2", "--coinbase-address", ADDRESS).start()
    try:
        first_cookie = devnet.cookie()
        deadline = time.monotonic() + 20
        while devnet.rpc("getblockcount") < 3:
            assert time.monotonic() < deadline, "no block mined on the interval"
            time.sleep(0.1)
        block = devnet.rpc("getblock", devnet.rpc("getblockhash", 1), 2)
        assert block["tx"][0]["vout"][0]["scriptPubKey"]["address"] == ADDRESS
        devnet.stop()
        devnet = Devnet(datadir).start()
        assert devnet.cookie() != first_cookie  # a new secret every start, as bitcoind
        user, password = first_cookie.split(":", 1)
        with pytest.raises(RpcError) as info:
            BitcoindRpcLedger(devnet.url, user, password).call("getblockcount")
        assert info.value.code == 401
    finally:
        devnet.kill()


def test_bad_command_lines_exit_with_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--datadir", str(tmp_path)]
    for extra in (["--rpcuser", "u"], ["--block-time", "-1"], ["--coinbase-address", "nope"]):
        with pytest.raises(SystemExit) as info:
            parse_args(base + extra)
        assert info.value.code == 2 and "usage" in capsys.readouterr().err, extra
