"""`chenilles demo --processes` end to end: exit status 0 only when every wallet is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import chenilles

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet-demo")]


def test_the_processes_demo_ends_with_every_balance_exact(tmp_path: Path) -> None:
    result = chenilles("demo", "--processes", "--dir", str(tmp_path / "devnet"), timeout=900)
    assert result.returncode == 0
    assert "every balance is what it must be" in result.stdout
    assert "WRONG" not in result.stdout
    # one dispute per chain, each concluded
    assert result.stdout.count(" registers ") >= 3
