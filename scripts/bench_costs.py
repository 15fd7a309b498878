#!/usr/bin/env python3
"""On-chain costs per operation (section 4 of scripts/bench.py), by calling the backends'
own cost code: ``scripts/evm_gas_table.py`` (gas, eth-tester and anvil),
``tests/bitcoin/test_backend_weights.py`` (weight of mined transactions) and
``scripts/solana_costs.py`` (compute units, fees, transaction sizes in LiteSVM).

    .venv/bin/python scripts/bench_costs.py [--json out.json]
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from typing import Any

import bench_common

BOLT3 = {
    "commitment, 0 HTLCs": 724,
    "commitment, 2 HTLCs": 724 + 2 * 172,
    "HTLC-timeout": 663,
    "HTLC-success": 703,
}
EVM_ANCHORS = {
    "deposit ETH (first)": {"nitro_fund": 46_500, "raiden_deposit": 57_000},
    "register": {"nitro_challenge": 113_000, "raiden_close": 123_000},
    "refute (register newer)": {"nitro_checkpoint": 74_000},
    "conclude": {"raiden_settle": 116_000},
    "= cooperative exit (close, pays both)": {"nitro_cooperative_exit": 112_000},
    "= non-coop exit (reg + concl, pays both)": {"nitro_noncooperative_exit": 195_000},
}


def _table_rows(text: str) -> list[list[str]]:
    """Cells of the Markdown table rows in ``text`` (header and separator rows skipped)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in ("transaction", "operation"):
            continue
        rows.append(cells)
    return rows


def evm_gas() -> dict[str, Any]:
    import evm_gas_table
    from chenilles_evm.ledgers import anvil_binary, anvil_ledger, make_ledger

    out: dict[str, Any] = {"anchors": EVM_ANCHORS}
    kinds = ["ethtester"]
    try:
        anvil_binary()
        kinds.append("anvil")
    except Exception as error:
        out["anvil"] = f"not measured: {error}"
    for kind in kinds:
        # anvil on Prague like py-evm, as evm_gas_table.py does (EIP-7702 receivers)
        ledger = anvil_ledger(hardfork="prague") if kind == "anvil" else make_ledger(kind)
        with ledger:
            out[kind] = evm_gas_table.measure(ledger)
    return out


def bitcoin_weights() -> dict[str, Any]:
    from tests.bitcoin.test_backend_harness import fresh_backend
    from tests.bitcoin.test_backend_weights import test_weights_of_every_transaction

    buffer = io.StringIO()
    backends = fresh_backend()
    backend = next(backends)
    try:
        with contextlib.redirect_stdout(buffer):
            test_weights_of_every_transaction(backend)
    finally:
        with contextlib.suppress(StopIteration):
            next(backends)
    measured = {
        cells[0]: {"weight_wu": int(cells[1]), "fee_sat_at_1000_sat_per_kw": int(cells[2])}
        for cells in _table_rows(buffer.getvalue())
    }
    for name, expected in BOLT3.items():
        if name in measured:
            measured[name]["bolt3_expected_wu"] = expected
    return measured


def solana_costs() -> dict[str, Any]:
    import solana_costs as sc

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        sc.main()
    text = buffer.getvalue()
    ops: dict[str, Any] = {}
    sizes: dict[str, list[str]] = {}
    for cells in _table_rows(text):
        if cells[0].isdigit():
            sizes[f"{cells[0]} assets"] = cells[1:]
        elif len(cells) == 4:
            ops[cells[0]] = {
                "compute_units": int(cells[1]),
                "fee_lamports": int(cells[2]),
                "tx_bytes": int(cells[3]),
            }
    program = re.search(r"program: (\d+) bytes", text)
    return {
        "operations": ops,
        "register_tx_bytes_by_assets_then_htlcs_0_to_8": sizes,
        "program_bytes": int(program.group(1)) if program else None,
        "tx_limit_bytes": 1232,
    }


def run(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fn in (
        ("evm_gas", evm_gas),
        ("bitcoin_weight", bitcoin_weights),
        ("solana", solana_costs),
    ):
        t0 = time.perf_counter()
        try:
            out[name] = fn()
        except Exception as error:
            out[name] = {"error": f"{type(error).__name__}: {error}"}
        out[name + "_seconds"] = round(time.perf_counter() - t0, 1)
    return out


if __name__ == "__main__":
    bench_common.section_main(run, __doc__)
