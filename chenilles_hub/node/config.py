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

DEFAULT_LISTEN = ("127.0.0.1", 9735)
DEFAULT_API = ("127.0.0.1", 9736)


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid (the message says where)."""


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
class FeeConfig:
    asset: str
    base: int
    ppm: int


@dataclass(frozen=True)
class RateConfig:
    asset_in: str
    asset_out: str
    numerator: int
    denominator: int


@dataclass(frozen=True)
class OpenPolicyConfig:
    """``[policy.open]``: the operator's consent to channels peers open (see
    ``hub/open_policy.py``). Safe defaults: we deposit nothing into a channel a peer opens,
    challenge durations 10 minutes to 2 weeks, two pending requests per peer, 64 in all,
    each dropped after 2 minutes or when its peer disconnects."""

    accept: bool = True
    #: (asset as ``token@chain``, the most we deposit into one channel a peer opens)
    deposits: tuple[tuple[str, int], ...] = ()
    min_challenge: int = 600
    max_challenge: int = 14 * 86400
    max_pending_per_peer: int = 2
    max_pending: int = 64
    pending_timeout: int = 120


@dataclass(frozen=True)
class PeerPolicyConfig:
    """``[policy.peers]``: a peer whose messages are refused or fail ``max_faults`` times
    within ``fault_window`` seconds is disconnected and banned for ``ban_seconds`` (it may
    not connect, and is not dialled, until then)."""

    max_faults: int = 20
    fault_window: float = 60.0
    ban_seconds: float = 600.0


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


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key)
    if value is not None and not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: wrong type {type(value).__name__}")
    return value


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

    node = _table(raw, "node")
    known = {"node", "api", "store", "peers", "chains", "policy", "log", "backup"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown section(s) {sorted(unknown)} (known: {sorted(known)})")
    name = _get(node, "name", str, "node") or config_path.stem
    data_dir = resolve(_get(node, "data_dir", str, "node"), base / "data")
    listen = parse_address(_get(node, "listen", str, "node") or "127.0.0.1:9735", "node.listen")
    identity_file = resolve(_get(node, "identity_file", str, "node"), data_dir / "identity.seed")

    api = _table(raw, "api")
    api_addr = parse_address(_get(api, "listen", str, "api") or "127.0.0.1:9736", "api.listen")
    token_file = resolve(_get(api, "token_file", str, "api"), data_dir / "api.token")
    tls = api.get("tls", "auto")
    if tls not in ("auto", True, False):
        raise ConfigError('api.tls: true, false or "auto" (TLS unless on loopback)')
    cert_file = _get(api, "cert_file", str, "api")
    key_file = _get(api, "key_file", str, "api")
    backup = _table(raw, "backup")
    backup_file = _get(backup, "file", str, "backup")
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
    unknown_backup = set(backup) - {"file", "auto", "interval"}
    if unknown_backup:
        raise ConfigError(f"[backup]: unknown key(s) {sorted(unknown_backup)}")

    store = _table(raw, "store")
    kind = _get(store, "kind", str, "store") or "sqlite"
    if kind not in ("sqlite", "postgres"):
        raise ConfigError(f"store.kind must be sqlite or postgres, not {kind!r}")
    dsn = _get(store, "dsn", str, "store")
    if kind == "postgres" and not dsn:
        raise ConfigError("store.kind = postgres needs store.dsn")

    peers: list[PeerConfig] = []
    raw_peers = raw.get("peers", [])
    if not isinstance(raw_peers, list):
        raise ConfigError("peers must be an array of tables ([[peers]])")
    for index, peer in enumerate(raw_peers):
        where = f"peers[{index}]"
        node_hex = _get(peer, "node_id", str, where)
        address = _get(peer, "address", str, where)
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
    for chain_name, table in _table(raw, "chains").items():
        where = f"chains.{chain_name}"
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table")
        table = dict(table)
        backend = table.pop("backend", chain_name)
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

    policy = _table(raw, "policy")
    fees = tuple(
        FeeConfig(str(f["asset"]), int(f.get("base", 0)), int(f.get("ppm", 0)))
        for f in policy.get("fees", [])
    )
    rates = tuple(
        RateConfig(
            str(r["asset_in"]), str(r["asset_out"]), int(r["numerator"]), int(r["denominator"])
        )
        for r in policy.get("rates", [])
    )

    open_policy = _open_policy(policy)
    peer_policy = _peer_policy(policy)

    log = _table(raw, "log")
    log_format = _get(log, "format", str, "log") or "text"
    if log_format not in ("text", "json"):
        raise ConfigError("log.format must be text or json")
    log_file = _get(log, "file", str, "log")

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
        postgres_schema=_get(store, "schema", str, "store"),
        lease_ttl=float(_get(store, "lease_ttl", (int, float), "store") or 10.0),
        peers=tuple(peers),
        chains=tuple(chains),
        fees=fees,
        rates=rates,
        tick_interval=float(_get(node, "tick_interval", (int, float), "node") or 1.0),
        announce_interval=float(_get(node, "announce_interval", (int, float), "node") or 2.0),
        reconnect_min=float(_get(node, "reconnect_min", (int, float), "node") or 0.1),
        reconnect_max=float(_get(node, "reconnect_max", (int, float), "node") or 5.0),
        accept_unknown_peers=bool(node.get("accept_unknown_peers", True)),
        log_format=log_format,
        log_level=(_get(log, "level", str, "log") or "INFO").upper(),
        log_file=resolve(log_file, Path()) if log_file else None,
        max_lock=int(_get(node, "max_lock", int, "node") or 3 * 86400),
        open_policy=open_policy,
        peer_policy=peer_policy,
        api_tls="on" if tls is True else "off" if tls is False else "auto",
        tls_cert_file=resolve(cert_file, Path()) if cert_file else None,
        tls_key_file=resolve(key_file, Path()) if key_file else None,
        backup_file=resolve(backup_file, Path()) if backup_file else None,
        backup_auto=backup_auto,
        backup_interval=float(backup_interval),
    )


def _subtable(policy: dict[str, Any], key: str, known: set[str]) -> dict[str, Any]:
    table = policy.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[policy.{key}] must be a table")
    unknown = set(table) - known
    if unknown:
        raise ConfigError(
            f"[policy.{key}]: unknown key(s) {sorted(unknown)} (known: {sorted(known)})"
        )
    return table


def _bounded_int(table: dict[str, Any], key: str, where: str, default: int, low: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**63:
        raise ConfigError(f"{where}.{key}: an integer from {low}, not {value!r}")
    return value


def _open_policy(policy: dict[str, Any]) -> OpenPolicyConfig:
    where = "policy.open"
    default = OpenPolicyConfig()
    table = _subtable(
        policy,
        "open",
        {
            "accept",
            "deposit",
            "min_challenge",
            "max_challenge",
            "max_pending_per_peer",
            "max_pending",
            "pending_timeout",
        },
    )
    accept = table.get("accept", True)
    if not isinstance(accept, bool):
        raise ConfigError(f"{where}.accept must be true or false")
    deposits = []
    entries = table.get("deposit", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}.deposit must be an array of tables ([[policy.open.deposit]])")
    for index, entry in enumerate(entries):
        at = f"{where}.deposit[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"asset", "max"}:
            raise ConfigError(f'{at}: a table with asset = "token@chain" and max = <base units>')
        asset = entry.get("asset")
        if not isinstance(asset, str) or "@" not in asset:
            raise ConfigError(f"{at}.asset: an asset written token@chain")
        limit = entry.get("max")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit < 2**256:
            raise ConfigError(f"{at}.max: an integer amount in base units")
        deposits.append((asset, limit))
    result = OpenPolicyConfig(
        accept=accept,
        deposits=tuple(deposits),
        min_challenge=_bounded_int(table, "min_challenge", where, default.min_challenge, 1),
        max_challenge=_bounded_int(table, "max_challenge", where, default.max_challenge, 1),
        max_pending_per_peer=_bounded_int(
            table, "max_pending_per_peer", where, default.max_pending_per_peer, 0
        ),
        max_pending=_bounded_int(table, "max_pending", where, default.max_pending, 0),
        pending_timeout=_bounded_int(table, "pending_timeout", where, default.pending_timeout, 1),
    )
    if result.min_challenge > result.max_challenge:
        raise ConfigError(f"{where}: min_challenge is above max_challenge")
    return result


def _peer_policy(policy: dict[str, Any]) -> PeerPolicyConfig:
    where = "policy.peers"
    default = PeerPolicyConfig()
    table = _subtable(policy, "peers", {"max_faults", "fault_window", "ban_seconds"})
    values: dict[str, float] = {}
    for key in ("fault_window", "ban_seconds"):
        value = table.get(key, getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
            raise ConfigError(f"{where}.{key}: a number of seconds, not {value!r}")
        values[key] = float(value)
    return PeerPolicyConfig(
        max_faults=_bounded_int(table, "max_faults", where, default.max_faults, 1),
        fault_window=values["fault_window"],
        ban_seconds=values["ban_seconds"],
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
