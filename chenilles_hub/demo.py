"""``chenilles demo``: one hub, a user per chain, payments that cross every installed chain.

Every installed backend starts its embedded ledger (``chenilles_hub.sandbox``; with the
in-tree ones: EVM on py-evm, Bitcoin on a regtest chain validated by libbitcoinkernel,
Solana's program in LiteSVM, and any chain a plugin adds). A hub opens channels on each.
The payer (Alice, on the first chain where both sides of a channel may deposit) pays a
user on every other chain in every asset that chain holds; a payment the payee refuses is
refunded on every hop; Alice goes silent in the middle of a circuit, so the hub's watcher
enforces its claim on her chain; every channel to a payee is closed cooperatively and paid
out on-chain. Amounts and exchange rates are derived from what each ledger's test accounts
hold and printed in each asset's own units (``ChainBackend.asset_info``). Every balance is
checked, and the command exits 0 only if each is what it must be.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from . import plugins
from .backend import ChainBackend
from .demo_scenario import run_scenario
from .demo_world import Demo, DemoFailure, Ledgers, rate_for
from .sandbox import MAX_LOCK, Sandbox

WEI, SAT, LAMPORT = 10**18, 10**8, 10**9  # base units per ETH, BTC, SOL (scripts use them)
USERS = ("bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan")

__all__ = ["MAX_LOCK", "Demo", "DemoFailure", "Ledgers", "rate_for", "run_demo", "scenario"]


def _start_ledgers(out: Callable[[str], None]) -> Ledgers | None:
    """The embedded ledger of every installed backend, through the sandbox."""

    def started(name: str, backend: ChainBackend, took: float) -> None:
        out(
            f"  {name:10s} {backend.chain:28s} embedded ledger up in {took:.1f}s "
            f"({backend.info.description})"
        )

    if not plugins.installed_backends(fresh=True):
        out("  no backend is installed (`chenilles backends`)")
        return None
    box = Sandbox.start(on_start=started)
    if len(box.backends) < 2:
        out(f"  the demo needs two chains at least; found {sorted(box.backends)}")
        box.close()
        return None
    return Ledgers(*box.backends.values())


def run_demo(out: Callable[[str], None] = click.echo) -> int:
    out("Chenilles: one hub, every installed chain, atomic cross-chain payments\n")
    out("== embedded ledgers (each runs its chain's real execution or consensus code)")
    ledgers = _start_ledgers(out)
    if ledgers is None:
        return 1
    try:
        demo = Demo(ledgers, out)
        scenario(demo)
    finally:
        for backend in ledgers.all:
            close = getattr(backend, "close", None)
            if callable(close):
                close()
    out("\n== on-chain transactions")
    for label, receipt in demo.receipts:
        out(
            f"  {label:34s} {receipt.operation:20s} {receipt.cost:>8} {receipt.cost_unit:3s} "
            f"fee {demo.fmt(receipt.fee, receipt.fee_asset)}"
        )
    if demo.failures:
        out(f"\nFAILED: {len(demo.failures)} balance(s) not as expected: {demo.failures}")
        return 1
    out("\nevery balance is what it must be")
    return 0


def _payer_chain(ledgers: Ledgers) -> ChainBackend:
    """Alice's chain: the first where both sides of a channel may deposit (in-tree: EVM),
    so the hub could fund its side too; else the first."""
    for backend in ledgers.all:
        if not backend.info.single_funder:
            return backend
    return ledgers.all[0]


def scenario(demo: Demo) -> None:
    run_scenario(demo, _payer_chain(demo.ledgers), USERS)
