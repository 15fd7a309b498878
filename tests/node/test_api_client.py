"""``NodeClient`` keeps one connection per thread, and never sends a request twice unless
it is a ``GET``.

Against a real HTTP/1.1 server (the standard library's, threaded) that counts connections
and requests and can close a connection, or drop one with a request unanswered: the
boundary this client is about. Its use against the node's own server is covered by every
test that drives a node through ``NodeProc.api`` (restarts included).
"""

from __future__ import annotations

import gc
import json
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chenilles_hub.node.api import client as client_module
from chenilles_hub.node.api.client import ApiCallError, NodeClient


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[str] = []
        self.closed = threading.Event()
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (a timeout) is what some tests do


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the handler closes
    disable_nagle_algorithm = True  # as the node's server (aiohttp) does
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.requests.append(f"{self.command} {self.path}")
        if self.path.startswith("/drop"):
            # read, then hang up without an answer: the request may have been acted on
            self.close_connection = True
            return
        if self.path.startswith("/slow"):
            time.sleep(1.0)  # longer than the client waits
        if self.path.startswith("/moved"):
            self.send_response(307)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/error"):
            payload = json.dumps({"error": {"code": "bad_thing", "message": "no", "hint": "h"}})
            self._send(400, payload.encode())
            return
        self._send(200, json.dumps({"path": self.path, "body": body.decode()}).encode())
        if self.path.startswith("/close"):
            # an idle connection the server closes (its keep-alive timeout, a restart),
            # without having said so in the answer
            self.close_connection = True

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    original = httpd.shutdown_request

    def shutdown_request(request: object) -> None:
        original(request)  # type: ignore[arg-type]
        httpd.closed.set()

    httpd.shutdown_request = shutdown_request  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _client(server: _Server) -> NodeClient:
    host, port = server.server_address[:2]
    return NodeClient(f"http://{host!s}:{port}", "token", timeout=5)


def test_calls_from_one_thread_share_one_connection(server: _Server) -> None:
    with _client(server) as client:
        for i in range(10):
            assert client.get(f"/v1/info?{i}")["path"] == f"/v1/info?{i}"
            assert client.post("/v1/transfers", {"i": i})["body"] == json.dumps({"i": i})
    assert len(server.requests) == 20
    assert server.connections == 1


def test_a_connection_the_node_closed_is_replaced_before_the_request_is_sent(
    server: _Server,
) -> None:
    with _client(server) as client:
        for i in range(5):
            server.closed.clear()
            assert client.post(f"/close/{i}", {"i": i})["path"] == f"/close/{i}"
            assert server.closed.wait(5)  # the node hung up after answering
    # each payment-like POST reached the node once, each on a new connection
    assert server.requests == [f"POST /close/{i}" for i in range(5)]
    assert server.connections == 5


def test_a_post_the_node_may_have_taken_is_never_sent_again(server: _Server) -> None:
    with _client(server) as client:
        client.get("/v1/info")  # a kept connection
        with pytest.raises(ApiCallError) as caught:
            client.post("/drop/pay", {"invoice": "x"})
        assert caught.value.status == 0 and caught.value.code == "unreachable"
        assert server.requests.count("POST /drop/pay") == 1
        # the client goes on with a new connection
        assert client.get("/v1/info")["path"] == "/v1/info"


def test_a_get_on_a_kept_connection_that_fails_is_sent_once_more(server: _Server) -> None:
    with _client(server) as client:
        client.get("/v1/info")
        with pytest.raises(ApiCallError) as caught:
            client.get("/drop/info")  # dropped on the kept connection, then on a new one
        assert caught.value.code == "unreachable"
    assert server.requests.count("GET /drop/info") == 2


def test_an_error_answer_keeps_its_code_and_the_connection(server: _Server) -> None:
    with _client(server) as client:
        with pytest.raises(ApiCallError) as caught:
            client.post("/error", {})
        assert (caught.value.status, caught.value.code, caught.value.hint) == (
            400,
            "bad_thing",
            "h",
        )
        client.get("/v1/info")
    assert server.connections == 1


def test_threads_each_use_their_own_connection(server: _Server) -> None:
    answers: dict[int, list[str]] = {}
    with _client(server) as client:

        def work(n: int) -> None:
            answers[n] = [client.post(f"/t{n}/{i}", {})["path"] for i in range(20)]

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == {n: [f"/t{n}/{i}" for i in range(20)] for n in range(6)}
    assert server.connections == 6


def test_a_connection_idle_too_long_is_not_reused(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "IDLE_SECONDS", 0.0)
    with _client(server) as client:
        for _ in range(3):
            client.get("/v1/info")
    assert server.connections == 3


def test_close_closes_every_threads_connection(server: _Server) -> None:
    client = _client(server)
    client.get("/v1/info")
    worker = threading.Thread(target=client.get, args=("/v1/info",))
    worker.start()
    worker.join()
    assert len(client._open) == 2
    client.close()
    assert not client._open
    assert client.get("/v1/info")["path"] == "/v1/info"  # usable again, on a new connection
    client.close()
    assert server.connections == 3


def test_a_get_that_timed_out_is_not_sent_again(server: _Server) -> None:
    """A node too slow to answer gets no second copy, and the caller waits one timeout."""
    host, port = server.server_address[:2]
    with NodeClient(f"http://{host!s}:{port}", "token", timeout=0.3) as client:
        client.get("/v1/info")  # a kept connection
        with pytest.raises(ApiCallError) as caught:
            client.get("/slow/backup")
        assert caught.value.code == "unreachable"
    assert server.requests.count("GET /slow/backup") == 1


def test_a_redirect_is_an_error_not_an_answer(server: _Server) -> None:
    """The node never redirects: a 3xx comes from something between (a proxy), and a
    payment it answered was not made."""
    with _client(server) as client:
        for call in (lambda: client.get("/moved"), lambda: client.post("/moved/pay", {})):
            with pytest.raises(ApiCallError) as caught:
                call()
            assert caught.value.status == 307


def test_a_url_that_is_not_http_is_an_error_of_the_call() -> None:
    for url in ("localhost:8080", "ftp://127.0.0.1:1", "http://127.0.0.1:port"):
        client = NodeClient(url, "token")
        with pytest.raises(ApiCallError) as caught:
            client.get("/v1/info")
        assert caught.value.status == 0 and caught.value.code == "unreachable", url


def test_the_connections_of_ended_threads_are_closed(server: _Server) -> None:
    with _client(server) as client:
        for _ in range(10):
            worker = threading.Thread(target=client.get, args=("/v1/info",))
            worker.start()
            worker.join()
        client.get("/v1/info")
        # the ten threads' connections were closed as this thread opened its own
        assert list(client._open) == [threading.current_thread()]


def test_a_client_dropped_without_close_closes_its_connection(server: _Server) -> None:
    client = _client(server)
    client.get("/v1/info")
    server.closed.clear()
    port = server.server_address[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert server.closed.wait(5)  # the server saw the connection end
    # closed by the client, not left to the garbage collector ("unclosed <socket ...
    # raddr=('127.0.0.1', port)>"; other tests' leftovers collected here are not ours)
    ours = [
        w
        for w in caught
        if issubclass(w.category, ResourceWarning) and f", {port})" in str(w.message)
    ]
    assert not ours, [str(w.message) for w in ours]
