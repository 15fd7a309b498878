"""``holdings`` reads the channel account's deposits (LiteSVM: final at once, no forks);
``next_block_time`` is the Clock sysvar's time the program judges deadlines with."""

from __future__ import annotations

import pytest
from chenilles_solana.backend import SolanaBackend

from chenilles_hub.core import Close, Transfer

from .test_backend import SOL, T0, Pair, backend

pytestmark = pytest.mark.solana
__all__ = ["backend"]


def test_deposits_per_asset_and_participant_then_nothing_once_closed(
    backend: SolanaBackend,
) -> None:
    pair = Pair(backend)
    assert backend.holdings(pair.params, 32) == {pair.sol: [0, 0], pair.tok: [0, 0]}
    pair.open_and_fund()
    held = backend.holdings(pair.params, 32)
    assert held == {pair.sol: [2 * SOL, SOL], pair.tok: [500, 0]}
    assert backend.holdings(pair.params, 1) == held  # one answer at every depth: no forks
    pair.pay(0, Transfer(pair.sol, 1))
    final = pair.pay(0, Close())
    backend.close_cooperative(pair.params, final, pair.bob)
    assert backend.holdings(pair.params, 1) == {pair.sol: [0, 0], pair.tok: [0, 0]}


def test_next_block_time_is_the_clock_sysvar(backend: SolanaBackend) -> None:
    assert backend.next_block_time() == backend.now() == T0
    backend.advance_time(30)
    assert backend.next_block_time() == T0 + 30
