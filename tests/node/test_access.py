"""Access to a node: scoped API tokens, TLS off loopback, private file modes.

Against real ``chenilles node start`` processes (anvil), a third-party HTTPS client
(``requests``) for TLS, and the real SQLite files for the modes.
"""

from __future__ import annotations

import json
import logging
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from chenilles_hub.node.api.auth import PUBLIC, ROUTE_SCOPES, TokenBook, grants, required_scope
from chenilles_hub.node.api.http import build_app
from chenilles_hub.node.config import ConfigError, load_config
from chenilles_hub.node.runtime.bootstrap import load_identity, load_token, open_store
from chenilles_hub.node.runtime.files import secure_data_dir

from .test_server_harness import NATIVE, AnvilChain, NodeProc, anvil, make_node

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-processes")]
__all__ = ["anvil"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- scopes ----------------------------------------------------------------------------------


def test_every_served_route_declares_its_scope() -> None:
    app = build_app(object())  # type: ignore[arg-type]
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert served - PUBLIC == set(ROUTE_SCOPES)
    # nothing that moves money or changes the node is below admin, but managing invoices
    for (method, path), scope in ROUTE_SCOPES.items():
        if method != "GET" and path not in (
            "/v1/invoices",
            "/v1/invoices/{payment_hash}/cancel",
            "/v1/route",
        ):
            assert scope == "admin", (method, path)
    assert required_scope("POST", "/v1/some-new-route") == "admin"
    assert grants("invoices", "readonly") and not grants("invoices", "admin")


def test_a_token_is_stored_as_its_digest_only() -> None:
    saved: dict[str, bytes] = {}
    book = TokenBook("admin-token-xxxxxxxxxxxxxxxx")
    token, record = book.create("invoices", "shop", saved.__setitem__)
    (value,) = saved.values()
    secret = token.split("_", 2)[2]  # the secret is base64url: it may hold "_" itself
    assert secret and token.encode() not in value and secret.encode() not in value
    fresh = TokenBook("admin-token-xxxxxxxxxxxxxxxx")
    fresh.load(list(saved.items()))
    assert fresh.scope_of(token) == "invoices"
    assert fresh.scope_of(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert fresh.scope_of(f"chn1_{record.id}_") is None and fresh.scope_of("") is None
    assert fresh.scope_of("admin-token-xxxxxxxxxxxxxxxx") == "admin"
    assert book.revoke(record.id, saved.__setitem__) and not book.revoke(record.id, print)
    fresh.load(list(saved.items()))
    assert fresh.scope_of(token) is None


def _call(node: NodeProc, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    answer = requests.request(
        method,
        f"http://127.0.0.1:{node.api_port}{path}",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
        timeout=30,
    )
    return answer.status_code, answer.json()


#: (method, path, body, what it answers once allowed) per route class
ROUTE_CLASSES = [
    ("readonly", "GET", "/v1/info", None, 200),
    ("readonly", "GET", "/v1/channels", None, 200),
    ("invoices", "POST", "/v1/invoices", {"amount": 1000, "asset": NATIVE}, 201),
    # an admin route with a bad body: allowed means it gets as far as checking the body
    ("admin", "POST", "/v1/channels", {}, 400),
    ("admin", "POST", "/v1/payments", {}, 400),
    ("admin", "GET", "/v1/tokens", None, 200),
    ("admin", "GET", "/v1/backup", None, 200),
]


def test_each_scope_against_each_route_class(anvil: AnvilChain, tmp_path: Path) -> None:
    node = make_node(tmp_path, "scoped", anvil, 6)
    node.start()
    try:
        tokens = {"admin": (node.data_dir / "api.token").read_text().strip()}
        created = json.loads(
            node.cli("token", "create", "--scope", "readonly", "--label", "ro", "--json").stdout
        )
        assert created["scope"] == "readonly" and created["token"].startswith("chn1_")
        tokens["readonly"] = created["token"]
        created = node.api.post("/v1/tokens", {"scope": "invoices", "label": "shop"})
        tokens["invoices"] = created["token"]
        checked = 0
        for scope, token in tokens.items():
            for needed, method, path, body, allowed in ROUTE_CLASSES:
                status, answer = _call(node, token, method, path, body)
                if grants(scope, needed):  # type: ignore[arg-type]
                    assert status == allowed, (scope, method, path, answer)
                else:
                    assert status == 403, (scope, method, path, answer)
                    error = answer["error"]
                    assert error["code"] == "forbidden" and needed in error["message"]
                checked += 1
        assert checked == 3 * len(ROUTE_CLASSES)
        listed = node.api.get("/v1/tokens")
        assert {r["scope"] for r in listed} == {"readonly", "invoices"}
        assert all("token" not in r for r in listed)
        # the store holds no token, only digests
        raw = b"".join(p.read_bytes() for p in node.data_dir.glob("node.sqlite*"))
        assert tokens["readonly"].encode() not in raw and tokens["invoices"].encode() not in raw
        # revoked: refused at once; the others still work
        readonly = next(r["id"] for r in listed if r["scope"] == "readonly")
        assert "True" in node.cli("token", "revoke", readonly).stdout
        assert _call(node, tokens["readonly"], "GET", "/v1/info")[0] == 401
        assert _call(node, tokens["invoices"], "GET", "/v1/info")[0] == 200
        status, answer = _call(node, tokens["admin"], "POST", "/v1/tokens", {"scope": "root"})
        assert (status, answer["error"]["code"]) == (400, "bad_scope")
        # tokens survive a restart (loaded from the store)
        node.stop()
        node.start()
        assert (
            _call(node, tokens["invoices"], "POST", "/v1/invoices", ROUTE_CLASSES[2][3])[0] == 201
        )
        assert _call(node, tokens["readonly"], "GET", "/v1/info")[0] == 401
    finally:
        node.stop()


# --- TLS -------------------------------------------------------------------------------------


def _wait_https(url: str, cert: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cert.exists():
            try:
                health = requests.get(url + "/health", verify=str(cert), timeout=2)
                if health.ok and health.json()["role"] == "leader":
                    return
            except requests.RequestException:
                pass
        time.sleep(0.05)
    raise TimeoutError(f"no HTTPS API at {url}")


def test_api_off_loopback_is_tls_only_with_a_pinned_certificate(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    node = make_node(tmp_path, "remote", anvil, 7)
    node.data_dir.chmod(0o755)  # an operator's data dir made with a loose umask
    (node.data_dir / "identity.seed").chmod(0o644)
    node.write_config()
    text = node.config_path.read_text()
    node.config_path.write_text(
        text.replace(f'listen = "127.0.0.1:{node.api_port}"', f'listen = "0.0.0.0:{node.api_port}"')
    )
    node.write_config = lambda: None  # type: ignore[method-assign]
    node.start(wait=False)
    try:
        cert = node.data_dir / "api.cert"
        url = f"https://127.0.0.1:{node.api_port}"
        _wait_https(url, cert)
        token = (node.data_dir / "api.token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        info = requests.get(url + "/v1/info", headers=auth, verify=str(cert), timeout=10)
        assert info.json()["node_id"] == node.node_id
        with pytest.raises(requests.exceptions.SSLError):  # not signed by a system CA
            requests.get(url + "/v1/info", headers=auth, timeout=10)
        with pytest.raises(requests.exceptions.ConnectionError):  # plaintext is refused
            requests.get(f"http://127.0.0.1:{node.api_port}/v1/info", headers=auth, timeout=10)
        # the CLI finds the certificate in the data dir and pins it
        assert json.loads(node.cli("node", "info", "--json").stdout)["node_id"] == node.node_id
        # files: the key and every secret 0600, the data dir 0700, the loose ones fixed
        assert _mode(node.data_dir) == 0o700
        for name in ("api.key", "identity.seed", "api.token", "node.sqlite", "node.sqlite-wal"):
            assert _mode(node.data_dir / name) == 0o600, name
        assert "was accessible to others" in node.log_tail(200)
        assert "stopped" in node.cli("node", "stop").stdout
    finally:
        node.stop()


# --- file modes ------------------------------------------------------------------------------


def test_existing_loose_files_are_made_private_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_path = tmp_path / "hub.toml"
    config_path.write_text('[node]\ndata_dir = "data"\n')
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    config = load_config(config_path)
    load_identity(config.identity_file)
    load_token(config.token_file)
    assert _mode(config.identity_file) == _mode(config.token_file) == 0o600
    store = open_store(config)  # a fresh store: created 0600, never world-readable
    store.set_setting("x", b"1")
    store.close()
    assert _mode(data) == 0o700
    for path in data.glob("node.sqlite*"):
        assert _mode(path) == 0o600, path
    for path in (config.identity_file, config.token_file, *data.glob("node.sqlite*")):
        path.chmod(0o644)
    data.chmod(0o755)
    with caplog.at_level(logging.WARNING, "chenilles.node"):
        load_identity(config.identity_file)
        load_token(config.token_file)
        open_store(config).close()
    assert _mode(data) == 0o700
    for path in (config.identity_file, config.token_file, *data.glob("node.sqlite*")):
        assert _mode(path) == 0o600, path
    fixed = [r.getMessage() for r in caplog.records if "was accessible to others" in r.message]
    assert len(fixed) >= 4
    # the TLS key and the channel backup, found loose, are fixed at start the same way
    for path in (config.key_path, config.backup_path):
        path.write_bytes(b"secret")
        path.chmod(0o640)
    data.chmod(0o711)
    secure_data_dir(data, [config.key_path, config.backup_path, tmp_path / "absent"])
    assert _mode(data) == 0o700
    assert _mode(config.key_path) == _mode(config.backup_path) == 0o600


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[api]\ntls = "maybe"\n', "api.tls"),
        ("[backup]\ninterval = -1\n", "backup.interval"),
        ("[backup]\nauto = 1\n", "backup.auto"),
        ('[backup]\nfiel = "x"\n', "unknown key"),
    ],
)
def test_access_and_backup_settings_are_checked(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_tls_is_on_off_loopback_unless_the_operator_says_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    cases = [
        ('listen = "127.0.0.1:9"', "http://127.0.0.1:9"),
        ('listen = "[::1]:9"', "http://[::1]:9"),
        ('listen = "0.0.0.0:9"', "https://127.0.0.1:9"),
        ('listen = "10.1.2.3:9"', "https://10.1.2.3:9"),
        ('listen = "10.1.2.3:9"\ntls = false', "http://10.1.2.3:9"),
        ('listen = "127.0.0.1:9"\ntls = true', "https://127.0.0.1:9"),
    ]
    for api, url in cases:
        path.write_text(f"[api]\n{api}\n")
        assert load_config(path).api_url == url, api
