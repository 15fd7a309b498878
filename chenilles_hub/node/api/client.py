"""A small synchronous client of the node API (the CLI uses it; so can scripts).

Standard library only (``http.client``), so the CLI starts fast and needs nothing the node
does not.

One connection is kept per thread and reused (HTTP/1.1 keep-alive): a script or a CLI wait
loop pays the TCP connect, and over TLS the handshake, once instead of at every call
(``GET /v1/info`` on loopback: 1.35 ms with a new connection, 0.77 ms reused; with TLS the
handshake costs more than the call). A kept connection is never used to *resend* a
request: before each reuse the client checks that the node has not closed it (a restart,
the server's idle timeout), and drops it after ``IDLE_SECONDS`` unused, well inside the
node's own keep-alive timeout (aiohttp's 75 s). Only a ``GET`` that fails on a reused
connection is sent again, on a new one; any other request that fails is reported as
unreachable and never repeated: the node may have acted on it (a payment, a transfer).
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
import time
import urllib.parse
from typing import Any

#: A connection unused for longer is closed rather than reused.
IDLE_SECONDS = 15.0


class ApiCallError(Exception):
    """The API answered with an error (``status``, ``code``) or could not be reached
    (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str, hint: str = "") -> None:
        super().__init__(f"{code}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint


class NodeClient:
    """Calls a node's API. Safe to share between threads (each has its own connection);
    ``close`` (or ``with``) closes every connection it opened."""

    def __init__(
        self, url: str, token: str, timeout: float = 30.0, cafile: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path
        #: An ``https`` API is trusted through exactly this certificate (the node's
        #: self-signed ``api.cert``): pinned, not the system's authorities.
        self.context: ssl.SSLContext | None = None
        if cafile is not None:
            self.context = ssl.create_default_context(cafile=cafile)
            self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    # --- calls ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        connection, reused = self._connection()
        try:
            status, kind, raw = self._exchange(connection, method, path, data, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._discard(connection)
            if not (reused and method == "GET"):
                raise self._unreachable(exc) from None
            connection, _ = self._connection()  # a GET is safe to send again
            try:
                status, kind, raw = self._exchange(connection, method, path, data, headers)
            except (OSError, http.client.HTTPException) as again:
                self._discard(connection)
                raise self._unreachable(again) from None
        self._local.held = (connection, time.monotonic())
        if status >= 400:
            try:
                error = json.loads(raw)["error"]
                code, message = str(error["code"]), str(error["message"])
                hint = str(error.get("hint") or "")
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ApiCallError(status, "http_error", raw.decode(errors="replace")) from None
            raise ApiCallError(status, code, message, hint)
        if "json" in kind:
            return json.loads(raw)
        return raw.decode()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body or {})

    def close(self) -> None:
        """Close every connection this client opened, in any thread."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()
        self._local.held = None

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- connections ----------------------------------------------------------------------

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        path: str,
        data: bytes | None,
        headers: dict[str, str],
    ) -> tuple[int, str, bytes]:
        connection.request(method, self._prefix + path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, response.getheader("Content-Type", ""), raw

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection and whether it is a reused one: a kept connection if
        it is recent and the node has not closed it, else a new one."""
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            kept, last_used = held
            if time.monotonic() - last_used < IDLE_SECONDS and _still_open(kept):
                return kept, True
            self._discard(kept)
        connection: http.client.HTTPConnection
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self.context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        with self._lock:
            self._open.add(connection)
        return connection, False

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        with self._lock:
            self._open.discard(connection)

    def _unreachable(self, exc: BaseException) -> ApiCallError:
        return ApiCallError(0, "unreachable", f"node API at {self.url}: {exc or repr(exc)}")


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """Whether a kept connection can carry a request: connected, and nothing to read (an
    idle HTTP/1.1 connection is silent; a readable one was closed by the node, or holds
    bytes nobody asked for)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


__all__ = ["IDLE_SECONDS", "ApiCallError", "NodeClient"]
