"""A virtual channel across two chains: Alice's ledger channel on EVM (eth-tester, py-evm),
Bob's on Solana (LiteSVM), the hub a member of both.

The same harness as the one-chain tests (harness.py), with what two chains change: each
ledger channel has its own relayer on its own chain, the two chains' clocks are kept
together (the watch loop jumps both), Bob's V key is a secp256k1 key of his own (his
Solana key is ed25519; V's states are signed as both chains can check them), and the
transactions are counted on both chains: EVM blocks, and every transaction the Solana
backend sends through its LiteSVM ledger.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from chenilles_app_virtual import rules

from chenilles_hub import apps
from chenilles_hub.backend import ChainBackend
from chenilles_hub.core import Asset

from .harness import DEPOSIT, Ledger, World, ledger


def app_backend(family: str) -> ChainBackend:
    """An embedded backend of ``family`` with the ``virtual`` app's own on-chain code."""
    backend: ChainBackend
    if family == "EVM":
        from chenilles_evm.backend import embedded_backend

        backend = embedded_backend()
    else:
        from chenilles_solana.backend import embedded_backend as solana_backend

        backend = solana_backend()
    plugin = next(p for p in apps.installed_apps() if p.info.name == rules.APP_ID)
    backend.use_app(rules.APP_ID, code=plugin.onchain_code(backend.info.family))
    return backend


@dataclass
class CrossWorld(World):
    """Alice and the hub on EVM (L_A), the hub and Bob on Solana (L_B)."""

    solana: Any = None
    hub_sol: Any = None
    relayer_sol: Any = None
    bob_v_key: bytes = b""
    solana_sends: int = 0

    def now(self) -> int:
        t = self.backend.now()
        behind = t - self.solana.now()
        if behind > 0:
            self.solana.advance_time(behind)
        return max(t, self.solana.now())

    def advance_time(self, seconds: int) -> None:
        self.backend.advance_time(seconds)
        self.now()

    def relayer_of(self, lg: Ledger) -> Any:
        return self.relayer_sol if lg.backend is self.solana else self.relayer

    def v_keys(self) -> tuple[bytes, bytes]:
        return self.alice.key, self.bob_v_key

    def balance(self, who: str) -> int:
        if who in ("bob", "hub_sol"):
            return int(self.solana.balance(getattr(self, who), Asset(self.solana.chain, "native")))
        return super().balance(who)

    def gained(self) -> dict[str, int]:
        return {w: self.balance(w) - self.start[w] for w in ("alice", "hub", "hub_sol", "bob")}

    def transactions_since(self, block: int) -> int:
        """EVM transactions after ``block`` plus every Solana transaction sent so far."""
        return super().transactions_since(block) + self.solana_sends

    def withdraw_solana(self) -> None:
        """Solana pays a concluded channel out on withdraw (the relayer pays the fee)."""
        native = Asset(self.solana.chain, "native")
        for me in (0, 1):
            self.solana.withdraw(self.lb.params, me, self.relayer_sol, native)


def cross_world(evm: ChainBackend, solana: ChainBackend) -> CrossWorld:
    alice, hub, relayer = (evm.create_account() for _ in range(3))
    hub_sol, bob, relayer_sol = (solana.create_account() for _ in range(3))
    bob_v_key = secrets.token_bytes(32)
    la = ledger(evm, (alice, hub), ("alice", "hub"))
    # Bob declared his V key to the hub (with V's terms): both their machines know it
    lb = ledger(solana, (hub_sol, bob), ("hub", "bob"), v_keys={1: bob_v_key})
    for lg in (la, lb):
        native = Asset(lg.backend.chain, "native")
        for i, a in enumerate(lg.accounts):
            lg.backend.fund(lg.params, i, a, native, DEPOSIT)
    w = CrossWorld(
        evm,
        alice,
        hub,
        bob,
        relayer,
        la,
        lb,
        solana=solana,
        hub_sol=hub_sol,
        relayer_sol=relayer_sol,
        bob_v_key=bob_v_key,
    )
    w.now()  # the two clocks together from here on
    w.start = {n: w.balance(n) for n in ("alice", "hub", "hub_sol", "bob")}
    ledger_ = solana.ledger  # type: ignore[attr-defined]
    send = ledger_.send

    def counted(*args: Any, **kwargs: Any) -> Any:
        w.solana_sends += 1
        return send(*args, **kwargs)

    ledger_.send = counted
    return w
