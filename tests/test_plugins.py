"""Backends are plugins: installed ones are found through entry points only, and a
third-party backend installed with pip is listed exactly like a built-in one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
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


def test_an_out_of_tree_backend_installs_lists_and_uninstalls(tmp_path: Path) -> None:
    package = tmp_path / "chenilles-toychain"
    module = package / "chenilles_toychain"
    module.mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "chenilles-toychain"
            version = "9.8.7"
            dependencies = ["chenilles-hub"]

            [project.entry-points."chenilles.backends"]
            toychain = "chenilles_toychain"
            """
        )
    )
    (module / "__init__.py").write_text(
        textwrap.dedent(
            """
            from chenilles_hub.backend import BackendInfo
            from chenilles_hub.hookspecs import hookimpl


            class ToyFactory:
                info = BackendInfo("toychain", "9.8.7", "Toy", ("toy:1",), "third-party test")

                def embedded(self, **options):
                    raise NotImplementedError

                def connect(self, url, **options):
                    raise NotImplementedError


            @hookimpl
            def chenilles_backends():
                return [ToyFactory()]
            """
        )
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", str(package)],
        check=True,
        capture_output=True,
    )
    try:
        listed = _listed()
        assert listed["toychain"]["version"] == "9.8.7"
        assert listed["toychain"]["distribution"] == "chenilles-toychain 9.8.7"
        assert {"evm", "bitcoin", "solana"} <= set(listed)
    finally:
        subprocess.run([*pip, "uninstall", "-y", "chenilles-toychain"], check=True)
    assert "toychain" not in _listed()
