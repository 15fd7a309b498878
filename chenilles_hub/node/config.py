"""The node's configuration file (TOML), parsed once into typed, validated values.

Everything an operator sets lives in one file so a node can be rebuilt from it and its data
directory alone. Relative paths are taken relative to the file, so a config and its data
directory can be moved together. Secrets (the identity seed, the API token, chain keys) are
never written in the config itself by default: they live in files with mode 0600.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config_checks import ConfigError, check_keys, get, table_of, unknown_key_error
from .config_policy import (
    VIRTUAL_REQUEST_TIMEOUT,
    FeeConfig,
    OpenPolicyConfig,
    PeerPolicyConfig,
    RateConfig,
    parse_policy,
)

__all__ = [
    "ChainConfig",
    "ConfigError",
    "FeeConfig",
    "NodeConfig",
    "OpenPolicyConfig",
    "PeerConfig",
    "PeerPolicyConfig",
    "RateConfig",
    "check_keys",
    "load_config",
    "parse_address",
    "unknown_key_error",
    "write_secret",
]

DEFAULT_LISTEN = ("127.0.0.1", 9735)
DEFAULT_API = ("127.0.0.1", 9736)


@dataclass(frozen=True)
class PeerConfig:
    node_id: bytes
    host: str
    port: int


@dataclass(frozen=True)
class ChainConfig:
    """One chain: embedded (a ledger inside this process) or a node reached by ``url``.

    ``name`` is the table's name (``[chains.NAME]``); ``backend`` the plugin that serves it
    (``backend = "evm"``; by default the name itself), so one node can have several chains of
    one family (two EVM networks, say)."""

    name: str
    backend: str
    embedded: bool
    url: str | None
    #: the account's private key (hex), or None: an embedded ledger funds a fresh account
    account_key: str | None
    options: dict[str, Any]
    #: blocks a deposit (and a conclusion) must be deep before the node relies on it;
    #: None: the backend's finality depth (its ``TimeModel``)
    confirmations: int | None = None


@dataclass(frozen=True)
class NodeConfig:
    path: Path
    name: str
    data_dir: Path
    listen_host: str
    listen_port: int
    api_host: str
    api_port: int
    token_file: Path
    identity_file: Path
    store: str  # "sqlite" or "postgres"
    postgres_dsn: str | None
    postgres_schema: str | None
    lease_ttl: float
    peers: tuple[PeerConfig, ...]
    chains: tuple[ChainConfig, ...]
    fees: tuple[FeeConfig, ...] = ()
    rates: tuple[RateConfig, ...] = ()
    tick_interval: float = 1.0
    announce_interval: float = 2.0
    reconnect_min: float = 0.1
    reconnect_max: float = 5.0
    accept_unknown_peers: bool = True
    log_format: str = "text"
    log_level: str = "INFO"
    log_file: Path | None = None
    max_lock: int = 3 * 86400
    open_policy: OpenPolicyConfig = field(default_factory=OpenPolicyConfig)
    peer_policy: PeerPolicyConfig = field(default_factory=PeerPolicyConfig)
    virtual_request_timeout: int = VIRTUAL_REQUEST_TIMEOUT
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``[api] tls``: "auto" (TLS unless the API listens on loopback), "on" or "off"
    api_tls: str = "auto"
    #: The API's self-signed certificate and its key (created on first start with TLS)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: ``[backup] file``: the static channel backup, rewritten after each open and close
    #: (``auto = false``: only on ``chenilles backup export``)
    backup_file: Path | None = None
    backup_auto: bool = True
    #: ``[backup] interval``: also rewrite the backup when a channel's state changed, at
    #: most once per this many seconds (0: only on opens and closes)
    backup_interval: float = 0.0

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "node.pid"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "node.sqlite"

    @property
    def api_uses_tls(self) -> bool:
        """TLS when asked, and by default whenever the API is reachable off this machine."""
        if self.api_tls == "auto":
            return not is_loopback(self.api_host)
        return self.api_tls == "on"

    @property
    def cert_path(self) -> Path:
        return self.tls_cert_file or self.data_dir / "api.cert"

    @property
    def key_path(self) -> Path:
        return self.tls_key_file or self.data_dir / "api.key"

    @property
    def backup_path(self) -> Path:
        return self.backup_file or self.data_dir / "channels.backup"

    @property
    def api_url(self) -> str:
        host = self.api_host if ":" not in self.api_host else f"[{self.api_host}]"
        if host in ("0.0.0.0", "[::]"):  # listening everywhere: reach it on this machine
            host = "127.0.0.1"
        return f"{'https' if self.api_uses_tls else 'http'}://{host}:{self.api_port}"

    def read_token(self) -> str:
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the API token {self.token_file}: {exc}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text: str, where: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{where}: expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


#: The keys each table may hold; anything else is refused with the closest key suggested
#: (a typo such as ``listn`` must not leave the node on its default port unnoticed).
SECTIONS = ("node", "api", "store", "peers", "chains", "policy", "log", "backup")
NODE_KEYS = (
    "name",
    "data_dir",
    "listen",
    "identity_file",
    "tick_interval",
    "announce_interval",
    "reconnect_min",
    "reconnect_max",
    "accept_unknown_peers",
    "max_lock",
)
API_KEYS = ("listen", "token_file", "tls", "cert_file", "key_file")
BACKUP_KEYS = ("file", "auto", "interval")
STORE_KEYS = ("kind", "dsn", "schema", "lease_ttl")
LOG_KEYS = ("format", "level", "file")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PEER_KEYS = ("node_id", "address")
POLICY_KEYS = ("fees", "rates", "open", "peers", "virtual")
#: What the node itself reads from ``[chains.NAME]``; the rest goes to the backend, which
#: says what it takes (``BackendFactory.config_keys``, checked in ``runtime/bootstrap``).
CHAIN_KEYS = ("backend", "url", "embedded", "account_key", "account_key_file", "confirmations")


def load_config(path: str | os.PathLike[str]) -> NodeConfig:
    config_path = Path(path).resolve()
    try:
        raw = tomllib.loads(config_path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {config_path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    base = config_path.parent

    def resolve(value: str | None, default: Path) -> Path:
        return default if value is None else (base / value).resolve()

    for section in raw:
        if section not in SECTIONS:
            raise unknown_key_error(section, SECTIONS, "the config's top level")
    node = table_of(raw, "node", NODE_KEYS)
    name = get(node, "name", str, "node") or config_path.stem
    data_dir = resolve(get(node, "data_dir", str, "node"), base / "data")
    listen = parse_address(get(node, "listen", str, "node") or "127.0.0.1:9735", "node.listen")
    identity_file = resolve(get(node, "identity_file", str, "node"), data_dir / "identity.seed")

    api = table_of(raw, "api", API_KEYS)
    api_addr = parse_address(get(api, "listen", str, "api") or "127.0.0.1:9736", "api.listen")
    token_file = resolve(get(api, "token_file", str, "api"), data_dir / "api.token")
    tls = api.get("tls", "auto")
    if tls not in ("auto", True, False):
        raise ConfigError('api.tls: true, false or "auto" (TLS unless on loopback)')
    cert_file = get(api, "cert_file", str, "api")
    key_file = get(api, "key_file", str, "api")
    backup = table_of(raw, "backup", BACKUP_KEYS)
    backup_file = get(backup, "file", str, "backup")
    backup_auto = backup.get("auto", True)
    if not isinstance(backup_auto, bool):
        raise ConfigError("backup.auto must be true or false")
    backup_interval = backup.get("interval", 0)
    if (
        isinstance(backup_interval, bool)
        or not isinstance(backup_interval, int | float)
        or not 0 <= backup_interval <= 86400
    ):
        raise ConfigError("backup.interval: seconds, 0 (only on opens and closes) to 86400")

    store = table_of(raw, "store", STORE_KEYS)
    kind = get(store, "kind", str, "store") or "sqlite"
    if kind not in ("sqlite", "postgres"):
        raise ConfigError(f"store.kind must be sqlite or postgres, not {kind!r}")
    dsn = get(store, "dsn", str, "store")
    if kind == "postgres" and not dsn:
        raise ConfigError("store.kind = postgres needs store.dsn")

    peers: list[PeerConfig] = []
    raw_peers = raw.get("peers", [])
    if not isinstance(raw_peers, list):
        raise ConfigError("peers must be an array of tables ([[peers]])")
    for index, peer in enumerate(raw_peers):
        where = f"peers[{index}]"
        if not isinstance(peer, dict):
            raise ConfigError(f"{where}: a table with node_id and address ([[peers]])")
        check_keys(peer, PEER_KEYS, where)
        node_hex = get(peer, "node_id", str, where)
        address = get(peer, "address", str, where)
        if not node_hex or not address:
            raise ConfigError(f"{where}: node_id and address are required")
        try:
            node_id = bytes.fromhex(node_hex)
        except ValueError:
            raise ConfigError(f"{where}.node_id is not hex") from None
        if len(node_id) != 32:
            raise ConfigError(f"{where}.node_id must be 32 bytes (64 hex digits)")
        host, port = parse_address(address, f"{where}.address")
        peers.append(PeerConfig(node_id, host, port))

    chains: list[ChainConfig] = []
    for chain_name, table in table_of(raw, "chains").items():
        where = f"chains.{chain_name}"
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table")
        table = dict(table)
        backend = table.pop("backend", chain_name)
        for key, expected in (("url", str), ("embedded", bool), ("account_key", str)):
            get(table, key, expected, where)
        get(table, "account_key_file", str, where)
        if not isinstance(backend, str) or not backend:
            raise ConfigError(f"{where}.backend: the name of an installed backend")
        url = table.pop("url", None)
        embedded = table.pop("embedded", url is None)
        key = table.pop("account_key", None)
        key_file = table.pop("account_key_file", None)
        if key_file is not None:
            try:
                key = (base / str(key_file)).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{where}.account_key_file: {exc}") from None
        if not embedded and not url:
            raise ConfigError(f"{where}: set url = ... or embedded = true")
        if not embedded and not key:
            raise ConfigError(f"{where}: a chain reached by url needs account_key(_file)")
        confirmations = table.pop("confirmations", None)
        if confirmations is not None and (
            isinstance(confirmations, bool)
            or not isinstance(confirmations, int)
            or not 1 <= confirmations <= 10_000
        ):
            raise ConfigError(f"{where}.confirmations must be a whole number of blocks, 1 or more")
        chains.append(
            ChainConfig(chain_name, backend, bool(embedded), url, key, table, confirmations)
        )

    policy = parse_policy(table_of(raw, "policy", POLICY_KEYS))

    log = table_of(raw, "log", LOG_KEYS)
    log_format = get(log, "format", str, "log") or "text"
    if log_format not in ("text", "json"):
        raise ConfigError(f"log.format must be text or json, not {log_format!r}")
    log_file = get(log, "file", str, "log")
    log_level = (get(log, "level", str, "log") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"log.level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    accept_unknown = get(node, "accept_unknown_peers", bool, "node")

    return NodeConfig(
        path=config_path,
        name=name,
        data_dir=data_dir,
        listen_host=listen[0],
        listen_port=listen[1],
        api_host=api_addr[0],
        api_port=api_addr[1],
        token_file=token_file,
        identity_file=identity_file,
        store=kind,
        postgres_dsn=dsn,
        postgres_schema=get(store, "schema", str, "store"),
        lease_ttl=float(get(store, "lease_ttl", (int, float), "store") or 10.0),
        peers=tuple(peers),
        chains=tuple(chains),
        fees=policy.fees,
        rates=policy.rates,
        tick_interval=float(get(node, "tick_interval", (int, float), "node") or 1.0),
        announce_interval=float(get(node, "announce_interval", (int, float), "node") or 2.0),
        reconnect_min=float(get(node, "reconnect_min", (int, float), "node") or 0.1),
        reconnect_max=float(get(node, "reconnect_max", (int, float), "node") or 5.0),
        accept_unknown_peers=True if accept_unknown is None else accept_unknown,
        log_format=log_format,
        log_level=log_level,
        log_file=resolve(log_file, Path()) if log_file else None,
        max_lock=int(get(node, "max_lock", int, "node") or 3 * 86400),
        open_policy=policy.open_policy,
        peer_policy=policy.peer_policy,
        virtual_request_timeout=policy.virtual_request_timeout,
        api_tls="on" if tls is True else "off" if tls is False else "auto",
        tls_cert_file=resolve(cert_file, Path()) if cert_file else None,
        tls_key_file=resolve(key_file, Path()) if key_file else None,
        backup_file=resolve(backup_file, Path()) if backup_file else None,
        backup_auto=backup_auto,
        backup_interval=float(backup_interval),
    )


def write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 atomically (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
