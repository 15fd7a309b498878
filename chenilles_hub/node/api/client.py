"""A small synchronous client of the node API (the CLI uses it; so can scripts).

Standard library only (``http.client``), so the CLI starts fast and needs nothing the node
does not. Proxy variables (``HTTP_PROXY``, ...) are not used: the API is reached directly.

One connection is kept per thread and reused (HTTP/1.1 keep-alive): a script or a CLI wait
loop pays the TCP connect, and over TLS the handshake, once instead of at every call
(``GET /v1/info`` on loopback, alternating per request on one node: 2.77 ms with a new
connection, 1.66 ms reused; with TLS the handshake costs more than the call). A kept
connection is never used to *resend* a request: before each reuse the client checks that
the node has not closed it (a restart), and drops it after ``IDLE_SECONDS`` unused (the
node keeps an idle connection for an hour). Only a ``GET`` whose kept connection turns out
closed (reset, or closed without an answer) is sent again, on a new one; any other failure,
a timeout included, is reported and nothing is repeated: the node may have acted on a
``POST`` (a payment, a transfer), and a node too slow to answer gets no second copy.
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
import time
import urllib.parse
import weakref
from typing import Any

#: A connection unused for longer is closed rather than reused.
IDLE_SECONDS = 15.0
#: Failures that say a kept connection was closed by the node before it answered: the
#: request was not taken, so a ``GET`` may go again on a new connection.
_CLOSED = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    http.client.RemoteDisconnected,
)


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
    """Calls a node's API. Safe to share between threads (each has its own connection,
    closed when the thread has ended); ``close`` (or ``with``, or dropping the client)
    closes every connection it opened: call it when no request is in flight."""

    def __init__(
        self, url: str, token: str, timeout: float = 30.0, cafile: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        try:
            parts = urllib.parse.urlsplit(self.url)
            port = parts.port
        except ValueError as exc:  # a port that is not a number
            parts, port = urllib.parse.urlsplit(""), None
            self._invalid: str | None = str(exc)
        else:
            self._invalid = None
        if self._invalid is None and (parts.scheme not in ("http", "https") or not parts.hostname):
            self._invalid = f"not an http:// or https:// URL: {self.url!r}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = port
        self._prefix = parts.path
        #: An ``https`` API is trusted through exactly this certificate (the node's
        #: self-signed ``api.cert``): pinned, not the system's authorities.
        self.context: ssl.SSLContext | None = None
        if cafile is not None:
            self.context = ssl.create_default_context(cafile=cafile)
            self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._local = threading.local()
        self._lock = threading.Lock()
        #: each thread's connection, to close it once the thread has ended
        self._open: dict[threading.Thread, http.client.HTTPConnection] = {}
        weakref.finalize(self, _close_all, self._open, self._lock)

    # --- calls ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._invalid is not None:
            raise ApiCallError(0, "unreachable", f"node API at {self.url}: {self._invalid}")
        connection, reused = self._connection()
        try:
            status, kind, raw = self._exchange(connection, method, path, data, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._discard(connection)
            if not (reused and method == "GET" and isinstance(exc, _CLOSED)):
                raise self._unreachable(exc) from None
            connection, _ = self._connection()  # the node closed it unasked: send again
            try:
                status, kind, raw = self._exchange(connection, method, path, data, headers)
            except (OSError, http.client.HTTPException) as again:
                self._discard(connection)
                raise self._unreachable(again) from None
        self._local.held = (connection, time.monotonic())
        if not 200 <= status < 300:  # the node never redirects: a 3xx is not its answer
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
        """Close every connection this client opened, in any thread (none may be in the
        middle of a request)."""
        _close_all(self._open, self._lock)
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
            ended = [t for t in self._open if not t.is_alive()]
            for thread in ended:  # their threads are gone: nobody will use them again
                self._open.pop(thread).close()
            self._open[threading.current_thread()] = connection
        return connection, False

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        with self._lock:
            if self._open.get(threading.current_thread()) is connection:
                del self._open[threading.current_thread()]

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
        poller = select.poll()  # not select.select: no limit on the descriptor's number
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _close_all(
    connections: dict[threading.Thread, http.client.HTTPConnection], lock: threading.Lock
) -> None:
    with lock:
        held = list(connections.values())
        connections.clear()
    for connection in held:
        connection.close()


__all__ = ["IDLE_SECONDS", "ApiCallError", "NodeClient"]
