"""Backends are plugins: installed ones are found through entry points only, and a
third-party backend installed with pip is listed exactly like a built-in one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chenilles_hub import plugins
from chenilles_hub.backend import BackendInfo

pytestmark = pytest.mark.core

CHENILLES = str(Path(sys.executable).with_name("chenilles"))


def _listed() -> dict[str, dict]:
    out = subprocess.run(
        [CHENILLES, "backends", "--json"], check=True, capture_output=True, text=True
    ).stdout
    return {row["name"]: row for row in json.loads(out)}


def test_builtin_backends_are_listed_by_the_cli() -> None:
    listed = _listed()
    assert {"evm", "bitcoin", "solana"} <= set(listed)
    assert listed["evm"]["distribution"].startswith("chenilles-evm ")
    assert listed["bitcoin"]["family"] == "Bitcoin"
    assert any(c.startswith("solana:") for c in listed["solana"]["chains"])


def test_human_readable_table() -> None:
    out = subprocess.run([CHENILLES, "backends"], check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "FAMILY", "VERSION"]
    assert {line.split()[0] for line in lines[1:]} >= {"evm", "bitcoin", "solana"}


def test_unknown_backend_lookup_says_what_is_installed() -> None:
    with pytest.raises(plugins.UnknownBackend, match="evm"):
        plugins.backend("no-such-chain")


def test_every_factory_carries_its_metadata() -> None:
    for factory in plugins.installed_backends(fresh=True):
        assert isinstance(factory.info, BackendInfo)
        assert factory.info.version and factory.info.chains


# A third-party backend, generated, installed, listed, run through the conformance suite and
# the hub: tests/kit/test_out_of_tree_backend.py.
