"""The pytest plugin (entry point ``pytest11: chenilles``) that ships the conformance suite.

It registers the ``conformance`` marker and gives a default ``conformance_backend``
fixture: the installed backend named by ``--chenilles-backend``, on its embedded ledger, or
on the node at ``--chenilles-url`` through ``connect`` (``--chenilles-option KEY=VALUE``
passes options, values parsed as JSON where they parse). A backend's own test module
overrides the fixture to choose its ledgers itself. Imports stay inside the fixture so
that every pytest run in an environment with the hub installed stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chenilles", "Chenilles backend conformance")
    group.addoption(
        "--chenilles-backend",
        metavar="NAME",
        help="run the conformance suite on this installed backend (`chenilles backends`)",
    )
    group.addoption(
        "--chenilles-url",
        metavar="URL",
        help="use the backend's connect(URL) instead of its embedded ledger",
    )
    group.addoption(
        "--chenilles-option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="an option for embedded()/connect() (repeatable; VALUE is JSON if it parses)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: the backend conformance suite (chenilles_hub.testing)"
    )


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"--chenilles-option takes KEY=VALUE, not {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@pytest.fixture
def conformance_backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh backend for one test, from the command line's choice."""
    from .. import plugins

    name = request.config.getoption("--chenilles-backend")
    if not name:
        pytest.skip("no backend chosen: pass --chenilles-backend NAME or override the fixture")
    factory = plugins.backend(name)
    url = request.config.getoption("--chenilles-url")
    options = _options(request.config.getoption("--chenilles-option"))
    backend = factory.connect(url, **options) if url else factory.embedded(**options)
    try:
        yield backend
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()


@pytest.fixture
def conformance_reorg() -> None:
    """How the suite reorganizes the chain (``chenilles_hub.testing.ReorgHook``): none by
    default, so the reorg test is skipped. A backend whose chain has reorgs
    (``BackendInfo.reorgs``) overrides it with a hook on its test ledger."""
    return None
