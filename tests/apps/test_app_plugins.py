"""Apps are plugins: installed ones are found through the ``chenilles.apps`` entry points
only, ``chenilles apps`` lists each with the chain families it ships on-chain code for
and the installed backends that can run it, and a third-party app installed with pip is
listed exactly like the example ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chenilles_hub import apps
from chenilles_hub.app_plugin import AppInfo
from chenilles_hub.core import AppRules

pytestmark = [pytest.mark.apps, pytest.mark.xdist_group("pip-install")]

CHENILLES = str(Path(sys.executable).with_name("chenilles"))


def _listed(env: dict[str, str] | None = None) -> dict[str, dict]:
    out = subprocess.run(
        [CHENILLES, "apps", "--json"], check=True, capture_output=True, text=True, env=env
    ).stdout
    return {row["name"]: row for row in json.loads(out)}


def test_example_apps_are_listed_with_their_chains() -> None:
    listed = _listed()
    for name in ("tictactoe", "escrow"):
        assert listed[name]["families"] == ["EVM", "Solana"]
        assert listed[name]["backends"] == ["evm", "solana"]  # bitcoin: no app support
        assert listed[name]["distribution"] == f"chenilles-app-{name} 0.1.0"
    out = subprocess.run([CHENILLES, "apps"], check=True, capture_output=True, text=True).stdout
    assert out.splitlines()[0].split()[:3] == ["NAME", "VERSION", "FAMILIES"]


def test_every_app_ships_rules_and_code_for_its_families() -> None:
    for plugin in apps.installed_apps(fresh=True):
        assert isinstance(plugin.info, AppInfo)
        assert isinstance(plugin.rules(), AppRules)
        assert plugin.rules().app_id == plugin.info.name
        for family in plugin.info.families:
            assert plugin.onchain_code(family)
        assert plugin.onchain_code("Bitcoin") is None
    assert set(apps.rules_by_id()) >= {"tictactoe", "escrow"}


def test_an_unknown_app_says_what_is_installed() -> None:
    with pytest.raises(apps.AppNotInstalled, match="tictactoe"):
        apps.app("chess")


def test_an_out_of_tree_app_installs_lists_and_uninstalls(tmp_path: Path) -> None:
    package = tmp_path / "chenilles-app-toy"
    module = package / "chenilles_app_toy"
    module.mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "chenilles-app-toy"
            version = "3.2.1"
            dependencies = ["chenilles-hub"]

            [project.entry-points."chenilles.apps"]
            toy = "chenilles_app_toy"
            """
        )
    )
    (module / "__init__.py").write_text(
        textwrap.dedent(
            """
            from chenilles_hub.app_plugin import AppInfo
            from chenilles_hub.hookspecs import hookimpl


            class Toy:
                info = AppInfo("toy", "3.2.1", ("EVM",), "third-party test")

                def rules(self):
                    raise NotImplementedError

                def onchain_code(self, family):
                    return b"\\x00" if family == "EVM" else None


            @hookimpl
            def chenilles_apps():
                return [Toy()]
            """
        )
    )
    # Installed into a directory of its own (--target), not into the shared .venv: tests
    # running meanwhile in other workers must never see a half-written third-party app.
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [
            *pip,
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(package),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *sys.path])}
    listed = _listed(env)
    assert listed["toy"]["version"] == "3.2.1"
    assert listed["toy"]["backends"] == ["evm"]
    assert listed["toy"]["distribution"] == "chenilles-app-toy 3.2.1"
    assert {"tictactoe", "escrow"} <= set(listed)
    # without its directory on the path (uninstalled), it is gone
    assert "toy" not in _listed()
