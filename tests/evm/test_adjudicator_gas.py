"""Gas per operation on both ledgers (table printed in the pytest summary), with ceilings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.evm

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evm_gas_table.py"

# generous ceilings: a regression guard, not a target
CEILINGS = {
    "deposit ETH (first)": 60_000,
    "deposit ERC-20 (first)": 95_000,
    "concludeCooperative": 130_000,
    "withdraw ETH": 50_000,
    "register": 115_000,
    "refute (register newer)": 80_000,
    "conclude": 100_000,
    "revealPreimage": 50_000,
    "progress (escrow app)": 110_000,
}


def _load_script():
    spec = importlib.util.spec_from_file_location("evm_gas_table", _SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gas_per_operation(ledger, record_gas) -> None:
    gas = _load_script().measure(ledger)
    for op, used in gas.items():
        record_gas(ledger, op, used)
    for op, ceiling in CEILINGS.items():
        assert gas[op] <= ceiling, (op, gas[op])
