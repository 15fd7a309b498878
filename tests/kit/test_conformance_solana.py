"""The conformance suite on the Solana backend: the channel program in LiteSVM."""

from __future__ import annotations

import pytest
from chenilles_solana.backend import SolanaBackend, embedded_backend

from chenilles_hub.testing import BackendConformance

pytestmark = pytest.mark.solana


class TestSolanaConformance(BackendConformance):
    @pytest.fixture
    def conformance_backend(self) -> SolanaBackend:
        return embedded_backend(start_time=1_750_000_000)
