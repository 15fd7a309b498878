"""The Solana devnet server as the tests run it: a separate process on a free port.

Started exactly as the hub will start it (the plugin's ``devnet_command``), waited for on
its ready line, stopped by pid. Requests go over real HTTP.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from chenilles_solana.plugin import SolanaBackendFactory


class DevnetProc:
    """One server process on ``datadir``."""

    def __init__(self, datadir: Path, slot_ms: int = 50) -> None:
        self.datadir = datadir
        self.slot_ms = slot_ms
        argv = SolanaBackendFactory().devnet_command(str(datadir), "127.0.0.1", 0, slot_ms / 1000)
        self.log = datadir.parent / f"{datadir.name}.stderr"
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until ready (or the process died)
        if not line:
            self.proc.wait(10)
            raise RuntimeError(f"devnet did not start: {self.log.read_text()}")
        self.ready: dict[str, Any] = json.loads(line)
        self.url: str = self.ready["url"]
        parsed = urlparse(self.url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 0
        self._ids = 0

    # --- raw HTTP -----------------------------------------------------------------------

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request("POST", "/", body, {"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def raw(self, method: str, params: Any = None) -> dict[str, Any]:
        """The whole JSON-RPC response document."""
        self._ids += 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids, "method": method}
        if params is not None:
            request["params"] = params
        status, body = self.post(json.dumps(request).encode())
        assert status == 200, (status, body)
        return json.loads(body)

    def text(self, method: str, params: Any = None) -> str:
        """The response as text (for solders' ``Resp.from_json`` parsers)."""
        return json.dumps(self.raw(method, params))

    def call(self, method: str, params: Any = None) -> Any:
        """The result, or AssertionError with the error response."""
        doc = self.raw(method, params)
        assert "error" not in doc, doc
        return doc["result"]

    def error(self, method: str, params: Any = None) -> dict[str, Any]:
        doc = self.raw(method, params)
        assert "error" in doc, doc
        assert "result" not in doc
        return doc["error"]

    def wait_slot(self, slot: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while True:
            now = self.call("getSlot")
            if now >= slot:
                return now
            assert time.monotonic() < deadline, f"slot {slot} not reached (at {now})"
            time.sleep(self.slot_ms / 1000)

    # --- process life -------------------------------------------------------------------

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        code = self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def kill9(self) -> int:
        return self.stop(signal.SIGKILL)
