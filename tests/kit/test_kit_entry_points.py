"""The kit as a third party meets it: the pytest plugin's command-line path, and the
docs' own example distribution (docs/writing-a-backend.md, section 1) built with pip."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chenilles_hub.testing import BackendConformance

pytestmark = pytest.mark.solana

ROOT = Path(__file__).resolve().parents[2]
SUITE_SIZE = sum(name.startswith("test_") for name in dir(BackendConformance))
CHENILLES = str(Path(sys.executable).with_name("chenilles"))


def _pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_plugin_runs_the_suite_on_an_installed_backend_by_name(tmp_path: Path) -> None:
    run = _pytest(
        "--pyargs",
        "chenilles_hub.testing.test_conformance",
        "--chenilles-backend",
        "solana",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    # every test ran but the reorg test (LiteSVM has no forks: BackendInfo.reorgs)
    assert f"{SUITE_SIZE - 1} passed, 1 skipped" in run.stdout, run.stdout[-500:]


def test_without_a_backend_the_suite_is_skipped_and_bad_options_are_refused(
    tmp_path: Path,
) -> None:
    run = _pytest("--pyargs", "chenilles_hub.testing.test_conformance", cwd=tmp_path)
    assert run.returncode == 0 and f"{SUITE_SIZE} skipped" in run.stdout
    bad = _pytest(
        "--pyargs",
        "chenilles_hub.testing.test_conformance",
        "--chenilles-backend",
        "solana",
        "--chenilles-option",
        "no-equals-sign",
        cwd=tmp_path,
    )
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stdout + bad.stderr


def test_the_docs_example_distribution_builds_installs_and_is_listed(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "writing-a-backend.md").read_text()
    section = text[text.index("## 1. The distribution") : text.index("### The factory's")]
    toml = re.search(r"```toml\n(.*?)```", section, re.S)
    plugin = re.search(r"```python\n(.*?)```", section, re.S)
    assert toml is not None and plugin is not None
    project = tmp_path / "chenilles-mychain"
    (project / "chenilles_mychain").mkdir(parents=True)
    (project / "pyproject.toml").write_text(toml.group(1))
    (project / "chenilles_mychain" / "__init__.py").write_text("")
    (project / "chenilles_mychain" / "plugin.py").write_text(plugin.group(1))
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            *("-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"),
            *("--no-build-isolation", "--target", str(target), str(project)),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *sys.path])}
    out = subprocess.run(
        [CHENILLES, "backends", "--json"], check=True, capture_output=True, text=True, env=env
    ).stdout
    listed = {row["name"]: row for row in json.loads(out)}
    assert listed["mychain"]["distribution"] == "chenilles-mychain 0.1.0"
    assert listed["mychain"]["family"] == "MyChain"
