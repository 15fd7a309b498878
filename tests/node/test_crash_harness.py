"""The crash harness in CI: ``kill -9`` at every step of a channel's life (open, funding,
transfers, HTLCs fulfilled and failed, cooperative close, dispute), on SQLite and PostgreSQL
(EVM on anvil), and on the Bitcoin and Solana devnet ledgers (processes, real RPC).

The bounded part kills ``CHENILLES_CRASH_HARNESS_KILLS`` times per store (default 10; 16 per
store took 4.5 min for both on a shared 2-core machine); the long run (marker ``slow``)
kills 120 times per store over several seeds. Bitcoin and Solana kill
``CHENILLES_CRASH_DEVNET_KILLS`` times each (default 6), 20 each in the ``slow`` variant.
``scripts/crash_harness.py`` runs any number standalone. What is checked after every kill
and restart is in :mod:`tests.node.crash_harness`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pytest

from . import require_postgres
from .crash_chains import ChainUnderTest, EvmUnderTest, chain_under_test
from .crash_harness import LEASE_TTL, CrashHarness, StoreKind
from .test_server_harness import AnvilChain, anvil

pytestmark = [pytest.mark.node, pytest.mark.adversarial, pytest.mark.xdist_group("crash-harness")]
__all__ = ["anvil"]

KILLS = int(os.environ.get("CHENILLES_CRASH_HARNESS_KILLS", "10"))
DEVNET_KILLS = int(os.environ.get("CHENILLES_CRASH_DEVNET_KILLS", "6"))


def _run(chain: ChainUnderTest, tmp_path: Path, store: StoreKind, seed: int, kills: int) -> None:
    dsn = require_postgres() if store == "postgres" else None
    harness = CrashHarness(tmp_path / "nodes", chain, store, seed, postgres_dsn=dsn, log=print)
    tally = harness.run(kills)
    print(f"\n{chain.kind} {store} seed {seed}: {tally.summary()}")
    assert tally.total >= kills
    # the channel's life was hit at its ends, and the dead node's disk read after each
    # kill during an update (the live peer's signed versions were all on it)
    assert "open" in tally.kills and {"close", "dispute"} & set(tally.kills)
    updates = sum(tally.kills.get(step, 0) for step in ("transfer", "pay", "fail"))
    assert tally.disk_checks >= updates
    if store == "postgres":  # the killed leader's lease is taken at once, not waited out
        assert max(tally.restarts) < LEASE_TTL / 4


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_kill_9_at_every_step_of_a_channels_life_loses_nothing(
    anvil: AnvilChain, tmp_path: Path, store: StoreKind
) -> None:
    _run(EvmUnderTest(anvil), tmp_path, store, seed=11, kills=KILLS)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("CHENILLES_SLOW_TESTS"), reason="long variant: CHENILLES_SLOW_TESTS=1"
)
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_two_hundred_times_over_seeds_and_stores(
    anvil: AnvilChain, tmp_path: Path, store: StoreKind, seed: int
) -> None:
    _run(EvmUnderTest(anvil), tmp_path, store, seed=seed, kills=40)


@pytest.mark.devnet
@pytest.mark.parametrize("kind", ["bitcoin", "solana"])
def test_kill_9_on_the_bitcoin_and_solana_devnets_loses_nothing(
    tmp_path: Path, kind: Literal["bitcoin", "solana"]
) -> None:
    """The same episodes between node processes on a devnet ledger (a process speaking the
    chain's RPC): Bitcoin's single-funder channels, Solana's program, their fees."""
    with chain_under_test(kind, tmp_path / "devnet") as chain:
        _run(chain, tmp_path, "sqlite", seed=5, kills=DEVNET_KILLS)


@pytest.mark.slow
@pytest.mark.devnet
@pytest.mark.skipif(
    not os.environ.get("CHENILLES_SLOW_TESTS"), reason="long variant: CHENILLES_SLOW_TESTS=1"
)
@pytest.mark.parametrize("kind", ["bitcoin", "solana"])
def test_kill_9_twenty_times_on_each_devnet(
    tmp_path: Path, kind: Literal["bitcoin", "solana"]
) -> None:
    with chain_under_test(kind, tmp_path / "devnet") as chain:
        _run(chain, tmp_path, "sqlite", seed=6, kills=20)
