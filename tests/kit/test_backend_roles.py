"""The backend protocol as roles (chain source, keys, enforcer, fee estimator, rules, test
ledger, apps): they partition ``ChainBackend``, and an incomplete backend is refused at the
node's start with the role and method it lacks, not met as an AttributeError later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chenilles_hub import plugins
from chenilles_hub.backend import REQUIRED_ROLES, ChainBackend, missing_methods, role_methods
from chenilles_hub.node.config import ConfigError, load_config
from chenilles_hub.node.runtime import bootstrap

pytestmark = pytest.mark.core


def test_the_roles_partition_the_protocol() -> None:
    seen: dict[str, str] = {}
    for role in REQUIRED_ROLES:
        assert role in ChainBackend.__mro__, role
        for method in role_methods(role):
            assert method not in seen, f"{method} in {seen.get(method)} and {role.__name__}"
            seen[method] = role.__name__
    own = [n for n, v in vars(ChainBackend).items() if callable(v) and not n.startswith("_")]
    assert own == [], "ChainBackend declares methods outside its roles"
    assert len(seen) >= 25


def test_missing_methods_names_the_role() -> None:
    class Partial:
        info = object()
        chain = "x:1"

        def __getattr__(self, name: str) -> Any:
            if name in ("refund_htlc", "estimate_fee"):
                raise AttributeError(name)
            return lambda *a, **k: None

    assert missing_methods(Partial()) == {
        "Enforcer": ["refund_htlc"],
        "FeeEstimator": ["estimate_fee"],
    }


class _WithoutRefund:
    """A real EVM backend on its embedded chain, minus one method: a plugin half-written."""

    def __init__(self, inner: ChainBackend) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "refund_htlc":
            raise AttributeError(name)
        return getattr(self._inner, name)


class _Factory:
    def __init__(self, real: Any) -> None:
        self._real = real
        self.info = real.info

    def embedded(self, **options: Any) -> Any:
        return _WithoutRefund(self._real.embedded(**options))


def test_the_node_refuses_an_incomplete_backend_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = _Factory(plugins.backend("evm"))
    monkeypatch.setattr(bootstrap.plugins, "backend", lambda name: factory)
    path = tmp_path / "node.toml"
    path.write_text('[chains.eth]\nbackend = "evm"\nembedded = true\n')
    config = load_config(path)
    with pytest.raises(ConfigError) as refused:
        bootstrap.build_chains(config)
    message = str(refused.value)
    assert "[chains.eth]" in message and "Enforcer: refund_htlc" in message
    assert "writing-a-backend.md" in message
