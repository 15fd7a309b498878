"""The README's main command, end to end: ``chenilles demo`` on the three embedded ledgers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chenilles_hub.demo import run_demo

pytestmark = pytest.mark.circuit


def test_the_demo_checks_every_balance_and_exits_zero() -> None:
    lines: list[str] = []
    assert run_demo(lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "[BAD]" not in text
    for step in ("== 1.", "== 2.", "== 3.", "== 4.", "== 5."):
        assert step in text
    assert "claimed HTLC" in text and "force-closed" in text
    assert "every balance is what it must be" in text


def test_the_cli_entry_point_runs_it() -> None:
    chenilles = str(Path(sys.executable).with_name("chenilles"))
    done = subprocess.run([chenilles, "demo"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "every balance is what it must be" in done.stdout
