"""Turning a config into the node's parts: identity, API token, chains and store.

Kept apart from the server so that each piece can be built (and tested) without an event
loop, and so the server never names a backend: chains come from the plugin manager.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chenilles_hub import apps, plugins
from chenilles_hub.backend import Account, ChainBackend, missing_methods
from chenilles_hub.circuit.quote import Rate
from chenilles_hub.core import Asset, parse_asset
from chenilles_hub.identity import NodeIdentity

from ..config import (
    CHAIN_KEYS,
    ChainConfig,
    ConfigError,
    NodeConfig,
    unknown_key_error,
    write_secret,
)
from ..hub.forwarding import FeePolicy, ForwardingPolicy
from ..hub.open_policy import OpenPolicy
from ..store.base import Store
from .files import PRIVATE_FILE, private_dir, private_file, store_files, tighten

log = logging.getLogger("chenilles.node")


def _check_private(path: Path) -> None:
    """A secret found readable by others is made private (and the fix logged)."""
    tighten(path, PRIVATE_FILE)


def load_identity(path: Path) -> NodeIdentity:
    """The node's ed25519 identity; the seed file is created (mode 0600) on first start."""
    if path.exists():
        _check_private(path)
        text = path.read_text().strip()
        try:
            seed = bytes.fromhex(text)
        except ValueError:
            raise ConfigError(f"{path}: the identity seed must be 64 hex digits") from None
        if len(seed) != 32:
            raise ConfigError(f"{path}: the identity seed must be 32 bytes")
        return NodeIdentity.from_seed(seed)
    identity = NodeIdentity()
    write_secret(path, identity.seed.hex().encode() + b"\n")
    log.info("created a new node identity in %s", path)
    return identity


def load_token(path: Path) -> str:
    """The API bearer token; created (mode 0600, 256 random bits) on first start."""
    if path.exists():
        _check_private(path)
        token = path.read_text().strip()
        if len(token) < 16:
            raise ConfigError(f"{path}: the API token is too short (16 characters at least)")
        return token
    token = secrets.token_urlsafe(32)
    write_secret(path, token.encode() + b"\n")
    return token


def build_policy(config: NodeConfig) -> ForwardingPolicy:
    try:
        fees = {parse_asset(f.asset): FeePolicy(f.base, f.ppm) for f in config.fees}
        rates = {
            (parse_asset(r.asset_in), parse_asset(r.asset_out)): Rate(r.numerator, r.denominator)
            for r in config.rates
        }
    except ValueError as exc:
        raise ConfigError(f"[policy]: {exc}") from None
    return ForwardingPolicy(fees=fees, rates=rates)


def build_member_stakes(config: NodeConfig) -> dict[Asset, int]:
    """``[[policy.peers.stake]]``: the least a peer's own deposit in each asset must be for
    its channel to make it a member (``Node.is_member``)."""
    try:
        return {parse_asset(asset): least for asset, least in config.peer_policy.stakes}
    except ValueError as exc:
        raise ConfigError(f"[policy.peers]: {exc}") from None


def stake_problems(config: NodeConfig, chains: Chains) -> list[str]:
    """Each ``[[policy.peers.stake]]`` asset that none of the node's chains holds. An asset
    not named asks no stake, so a misspelt one (an EVM token's address in other case, a
    chain's name for its id) would turn the stake off without a word; refused instead. A
    configured chain the node runs without (``unavailable``) is not judged."""
    down = {u.chain for u in chains.unavailable.values()}
    problems = []
    for asset in build_member_stakes(config):
        backend = chains.backends.get(asset.chain)
        if backend is None:
            if asset.chain not in down:
                known = ", ".join(sorted(chains.backends)) or "none"
                problems.append(
                    f"[policy.peers] stake: {asset} is on no chain of this node (chains: {known})"
                )
        elif asset not in (held := backend.assets()):
            known = ", ".join(str(a) for a in held)
            problems.append(
                f"[policy.peers] stake: {asset} is not an asset of {asset.chain} "
                f"(its assets: {known})"
            )
    return problems


def build_open_policy(config: NodeConfig) -> OpenPolicy:
    """``[policy.open]`` as the node applies it."""
    open_ = config.open_policy
    try:
        deposits = {parse_asset(asset): limit for asset, limit in open_.deposits}
    except ValueError as exc:
        raise ConfigError(f"[policy.open]: {exc}") from None
    return OpenPolicy(
        accept=open_.accept,
        max_remote_deposit=deposits,
        min_challenge=open_.min_challenge,
        max_challenge=open_.max_challenge,
        max_pending_per_peer=open_.max_pending_per_peer,
        max_pending=open_.max_pending,
        pending_timeout=open_.pending_timeout,
    )


@dataclass(frozen=True)
class UnavailableChain:
    """A configured chain the node runs without: its backend could not resume the event
    feed where the node stopped (see ``build_chains``). ``chain`` is its chain id."""

    name: str
    chain: str
    backend: str
    error: str


@dataclass
class Chains:
    backends: dict[str, ChainBackend]
    accounts: dict[str, Account]
    #: chain name (``[chains.NAME]``) -> chain id
    names: dict[str, str]
    #: chain name -> why that configured chain is not in use (never in ``names``)
    unavailable: dict[str, UnavailableChain] = field(default_factory=dict)

    def close(self) -> None:
        for backend in self.backends.values():
            close: Callable[[], None] | None = getattr(backend, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # a closing ledger must not stop the others closing
                    log.exception("closing the %s backend failed", backend.chain)


def build_chains(config: NodeConfig, store: Store | None = None) -> Chains:
    """Connect every configured backend and load its account.

    A chain reached by URL resumes its event feed at the block remembered in the store
    (``chain-origin/<name>``) unless ``from_block`` is configured, so events that happened
    while the node was down are still seen by the watcher.

    A backend whose ``connect`` refuses that ``from_block`` (one written before the
    contract said it must take it) does not stop the node: its channels on other chains
    need their watcher. Nor is it used without ``from_block``: its feed would start at the
    tip and miss what happened while the node was down (a registration to answer, a
    preimage to claim). The chain is set aside as unavailable, with the reason; its
    channels are quarantined by the restore and the operator reads why in ``node info``.
    Whether ``from_block`` is the cause is found by connecting once more without it (that
    connection is closed unused); a chain that cannot connect at all is a ``ConfigError``
    as on a first start.
    """
    backends: dict[str, ChainBackend] = {}
    accounts: dict[str, Account] = {}
    names: dict[str, str] = {}
    unavailable: dict[str, UnavailableChain] = {}
    for chain in config.chains:
        try:
            factory = plugins.backend(chain.backend)
        except plugins.UnknownBackend as exc:
            raise ConfigError(f"[chains.{chain.name}]: {exc}") from None
        options: dict[str, Any] = dict(chain.options)
        check_chain_keys(factory, chain.name, chain.embedded, options)
        try:
            if chain.embedded:
                backend = factory.embedded(**options)
            else:
                assert chain.url is not None
                origin = store.get_setting(f"chain-origin/{chain.name}") if store else None
                if origin is not None and "from_block" not in options:
                    options["from_block"] = int(origin)
                    try:
                        backend = factory.connect(chain.url, **options)
                    except Exception as exc:
                        unavailable[chain.name] = _resume_refused(chain, factory, options, exc)
                        log.error(
                            "%s",
                            unavailable[chain.name].error,
                            extra={"chain_unavailable": chain.name},
                        )
                        continue
                else:
                    backend = factory.connect(chain.url, **options)
        except ConfigError:
            raise
        except Exception as exc:  # the backend's own words: a wrong option, the RPC down...
            where = "the embedded ledger" if chain.embedded else chain.url
            raise ConfigError(f"[chains.{chain.name}]: cannot use {where}: {_reason(exc)}") from exc
        check_roles(backend, chain.name, chain.backend)
        if chain.embedded and backend.info.supports_apps:
            _deploy_apps(backend)
        if chain.account_key:
            from_key = getattr(backend, "account_from_key", None)
            if from_key is None:
                raise ConfigError(
                    f"[chains.{chain.name}]: the {chain.backend} backend cannot load an account key"
                )
            try:
                accounts[backend.chain] = from_key(chain.account_key)
            except Exception as exc:
                raise ConfigError(
                    f"[chains.{chain.name}]: the account key is not one: {_reason(exc)}"
                ) from exc
        else:
            accounts[backend.chain] = backend.create_account(fund=True)
        if backend.chain in backends:
            other = next(n for n, c in names.items() if c == backend.chain)
            raise ConfigError(
                f"[chains.{chain.name}] and [chains.{other}] are the same chain "
                f"({backend.chain}): a node keeps one connection per chain"
            )
        backends[backend.chain] = backend
        names[chain.name] = backend.chain
    return Chains(backends, accounts, names, unavailable)


def _resume_refused(
    chain: ChainConfig, factory: Any, options: dict[str, Any], refused: Exception
) -> UnavailableChain:
    """What a ``connect`` that failed with the node's ``from_block`` means: if it succeeds
    without it, the backend cannot resume its feed (an unavailable chain, said in words
    the operator can act on); if it fails again, the chain is unreachable or misconfigured
    (``ConfigError``, as on a first start)."""
    assert chain.url is not None
    without = {k: v for k, v in options.items() if k != "from_block"}
    try:
        probe = factory.connect(chain.url, **without)
    except Exception as exc:
        raise ConfigError(f"[chains.{chain.name}]: cannot use {chain.url}: {_reason(exc)}") from exc
    chain_id = str(getattr(probe, "chain", "") or chain.name)
    close: Callable[[], None] | None = getattr(probe, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("closing the %s backend's probe connection failed", chain.name)
    error = (
        f"[chains.{chain.name}]: the {chain.backend} backend's connect() refused "
        f"from_block={options['from_block']} ({type(refused).__name__}: "
        f"{_reason(refused)[:120]}). Without it the event feed would not resume where the "
        "node stopped and could miss what happened while it was down, so the chain is not "
        "used and its channels are quarantined. Install a version of the backend whose "
        "connect() takes from_block (docs/writing-a-backend.md), then restart the node"
    )
    return UnavailableChain(chain.name, chain_id, chain.backend, error)


def check_roles(backend: object, name: str, backend_name: str) -> None:
    """Refuse, at start, a backend that lacks a method of a role the node will call (a
    third-party plugin still being written): better one line now than an AttributeError
    in the middle of a dispute."""
    missing = missing_methods(backend)
    if missing:
        lacks = "; ".join(f"{role}: {', '.join(methods)}" for role, methods in missing.items())
        raise ConfigError(
            f"[chains.{name}]: the {backend_name} backend is incomplete ({lacks}); "
            "see docs/writing-a-backend.md, section 2"
        )


def check_chain_keys(factory: object, name: str, embedded: bool, options: dict[str, Any]) -> None:
    """Refuse a key the backend does not take (``adjudicatr``), suggesting the closest, when
    the backend says which it takes (``BackendFactory.config_keys``)."""
    config_keys: Callable[[bool], frozenset[str]] | None = getattr(factory, "config_keys", None)
    if config_keys is None:
        return
    known = set(config_keys(embedded)) | set(CHAIN_KEYS)
    for key in options:
        if key not in known:
            raise unknown_key_error(key, known, f"chains.{name}")


def _reason(exc: BaseException) -> str:
    """One line for the operator: the innermost cause's message (a connection refused deep
    inside an HTTP library says more than the wrapper around it)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        inner = exc.__cause__ or exc.__context__
        assert inner is not None
        if not str(inner):
            break
        exc = inner
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _deploy_apps(backend: ChainBackend) -> None:
    """An embedded ledger gets the on-chain rule of every installed app that ships one for
    its family. A chain reached by URL binds apps already deployed there instead, from its
    config table (``[chains.<name>.apps]``: app id = contract address / program id)."""
    for plugin in apps.installed_apps():
        code = plugin.onchain_code(backend.info.family)
        if code is not None:
            backend.use_app(plugin.info.name, code=code)


def open_store(config: NodeConfig) -> Store:
    """The configured store; a SQLite file (and its WAL, shared memory and lock files) is
    created 0600 and tightened if found looser: it holds preimages and signed states."""
    private_dir(config.data_dir)
    if config.store == "postgres":
        from ..store.postgres import PostgresStore  # imports psycopg: only when configured

        assert config.postgres_dsn is not None
        return PostgresStore(config.postgres_dsn, schema=config.postgres_schema)
    from ..store.sqlite import SQLiteStore

    for path in (config.sqlite_path, store_files(config.sqlite_path)[-1]):
        private_file(path)  # SQLite then creates the WAL and -shm with the database's mode
    store = SQLiteStore(config.sqlite_path)
    for path in store_files(config.sqlite_path):
        tighten(path, PRIVATE_FILE)
    return store


def holder_id() -> str:
    """Who holds a leader lease: host, process and a random part (a restart is a new holder)."""
    return f"{os.uname().nodename}/{os.getpid()}/{secrets.token_hex(4)}"
