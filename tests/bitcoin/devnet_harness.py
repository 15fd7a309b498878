"""Start the Bitcoin devnet server as a separate process and talk to it (test helper).

The server is the real thing (``python -m chenilles_bitcoin.devnet`` on a real socket);
this module only launches it, waits for its ready line and offers a raw HTTP poster for
the protocol tests. Each test module starts one server (``scope="module"``).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coincurve
from bitcoin.core import CMutableTransaction, COutPoint, CTxIn, CTxInWitness, CTxOut, CTxWitness, lx
from bitcoin.core.script import (
    OP_CHECKSIG,
    OP_DUP,
    OP_EQUALVERIFY,
    OP_HASH160,
    CScript,
    CScriptWitness,
)
from chenilles_bitcoin.ledger import BitcoindRpcLedger, Coin
from chenilles_bitcoin.ledger.wallet import hash160, p2wpkh_script, segwit_v0_sighash, sign_digest

READY_TIMEOUT = 60.0


class Devnet:
    """One devnet server process in `datadir`."""

    def __init__(self, datadir: Path, *args: str) -> None:
        self.datadir = datadir
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.ready: dict[str, Any] = {}

    def start(self) -> Devnet:
        cmd = [sys.executable, "-m", "chenilles_bitcoin.devnet", "--datadir", str(self.datadir)]
        cmd += ["--port", "0", *self.args]
        log = (self.datadir.parent / f"{self.datadir.name}.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not ready:
                self.kill()
                raise TimeoutError("the devnet did not print its ready line")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the devnet exited: {self.proc.wait()}")
            line += chunk
        self.ready = json.loads(line)
        assert self.ready["ready"] is True
        self.url = self.ready["url"]
        return self

    @property
    def cookie_file(self) -> Path:
        return self.datadir / ".cookie"

    def cookie(self) -> str:
        return self.cookie_file.read_text()

    def ledger(self, **kw: Any) -> BitcoindRpcLedger:
        return BitcoindRpcLedger(self.url, cookie_file=self.cookie_file, **kw)

    def rpc(self, method: str, *params: Any) -> Any:
        return self.ledger().call(method, *params)

    def post(
        self,
        body: bytes | str,
        auth: str | None = "cookie",
        headers: dict[str, str] | None = None,
        path: str = "/",
        method: str = "POST",
    ) -> tuple[int, dict[str, str], bytes]:
        """A raw HTTP request: (status, headers, body)."""
        host, port = self.ready["host"], self.ready["port"]
        conn = http.client.HTTPConnection(host, port, timeout=30)
        h = {"Content-Type": "application/json"} | (headers or {})
        if auth == "cookie":
            auth = self.cookie()
        if auth is not None:
            h["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
        conn.request(method, path, body if isinstance(body, bytes) else body.encode(), h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, dict(resp.getheaders()), data

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def running(datadir: Path, *args: str) -> Iterator[Devnet]:
    """A started devnet, stopped (or killed) afterwards: the body of module fixtures."""
    devnet = Devnet(datadir, *args).start()
    try:
        yield devnet
    finally:
        if devnet.proc is not None and devnet.proc.poll() is None:
            try:
                devnet.stop()
            except subprocess.TimeoutExpired:
                devnet.kill()


KEY = hashlib.sha256(b"devnet test key").digest()
PUB = coincurve.PrivateKey(KEY).public_key.format()
SPK = p2wpkh_script(PUB)


def spend(
    coins: list[Coin],
    outputs: list[tuple[bytes, int]],
    key: bytes = KEY,
    *,
    sequence: int = 0xFFFFFFFE,
    locktime: int = 0,
    version: int = 2,
) -> bytes:
    """A signed tx spending P2WPKH `coins` of `key` to `outputs` (no change, no checks)."""
    pub = coincurve.PrivateKey(key).public_key.format()
    tx = CMutableTransaction(
        [CTxIn(COutPoint(lx(c.outpoint.txid), c.outpoint.vout), nSequence=sequence) for c in coins],
        [CTxOut(v, CScript(s)) for s, v in outputs],
        nLockTime=locktime,
        nVersion=version,
    )
    code = bytes(CScript([OP_DUP, OP_HASH160, hash160(pub), OP_EQUALVERIFY, OP_CHECKSIG]))
    tx.wit = CTxWitness(
        [
            CTxInWitness(
                CScriptWitness([sign_digest(key, segwit_v0_sighash(tx, i, code, c.value)), pub])
            )
            for i, c in enumerate(coins)
        ]
    )
    return bytes(tx.serialize())
