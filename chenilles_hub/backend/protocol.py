"""``ChainBackend``: the duties docs/design.md section 4 lists, as one typed protocol made of
the roles in ``roles.py``, and ``BackendFactory``, what a plugin registers.

The node talks to chains only through this protocol, and finds implementations only
through the plugin manager (``chenilles_hub.plugins``), so a backend installed from PyPI by
a third party is indistinguishable from a built-in one.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..core import Asset
from .roles import AppEnforcer, ChainRules, ChainSource, Enforcer, FeeEstimator, Keys, TestLedger
from .types import AssetInfo, BackendInfo

#: The roles every backend plays, in the order docs/writing-a-backend.md presents them.
REQUIRED_ROLES: tuple[type, ...] = (
    ChainSource,
    Keys,
    Enforcer,
    FeeEstimator,
    ChainRules,
    TestLedger,
    AppEnforcer,
)


@runtime_checkable
class ChainBackend(
    ChainSource, Keys, Enforcer, FeeEstimator, ChainRules, TestLedger, AppEnforcer, Protocol
):
    """One ledger, as the node sees it: every required role, on one object per chain.
    ``info`` says what the chain can do (``BackendInfo``), ``chain`` is its CAIP-2 id."""

    info: BackendInfo
    chain: str


def role_methods(role: type) -> tuple[str, ...]:
    """The methods a role asks for, as declared in its class body."""
    return tuple(n for n, v in vars(role).items() if callable(v) and not n.startswith("_"))


def missing_methods(backend: object) -> dict[str, list[str]]:
    """What ``backend`` lacks, per role (``{"Enforcer": ["refund_htlc"]}``; empty when it is
    complete). ``isinstance(b, ChainBackend)`` only answers yes or no; this says which
    method of which role a plugin author still has to write, before the node first calls
    it in the middle of a dispute."""
    missing: dict[str, list[str]] = {}
    for attribute in ("info", "chain"):
        if not hasattr(backend, attribute):
            missing.setdefault("ChainBackend", []).append(attribute)
    for role in REQUIRED_ROLES:
        absent = [m for m in role_methods(role) if not callable(getattr(backend, m, None))]
        if absent:
            missing[role.__name__] = absent
    return missing


def asset_info(backend: ChainBackend, asset: Asset) -> AssetInfo:
    """The backend's ``asset_info(asset)`` (an optional method), else the token's name
    (the backend's family for the native coin) in base units."""
    describe = getattr(backend, "asset_info", None)
    if callable(describe):
        info = describe(asset)
        if isinstance(info, AssetInfo):
            return info
    symbol = backend.info.family if asset.token == "native" else asset.token[:12]
    return AssetInfo(symbol)


class BackendFactory(Protocol):
    """What a plugin registers: metadata, plus a way to build ledger instances."""

    info: BackendInfo

    def embedded(self, **options: Any) -> ChainBackend:
        """A backend on the embedded default ledger (tests, demo)."""
        ...

    def connect(self, url: str, **options: Any) -> ChainBackend:
        """A backend on a real node at ``url``. A restarting node passes ``from_block``
        (where its event feed was): take it, or the node leaves the chain unavailable
        rather than miss events (docs/writing-a-backend.md)."""
        ...

    # Optional: ``config_keys(embedded: bool) -> frozenset[str]``, the keys a
    # ``[chains.NAME]`` table may give ``embedded``/``connect`` (besides the node's own:
    # backend, url, embedded, account_key(_file), confirmations). With it, the node refuses
    # a misspelt key at start and suggests the closest; a factory without it is not checked.
