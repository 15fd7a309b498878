"""The conformance suite on the EVM backend: eth-tester (py-evm) in process, one fresh
adjudicator per test on a ledger shared by the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_evm.backend import EvmBackend, embedded_backend
from chenilles_evm.ledgers import Ledger, make_ledger

from chenilles_hub.testing import BackendConformance

pytestmark = pytest.mark.evm


@pytest.fixture(scope="module")
def _ledger() -> Iterator[Ledger]:
    ledger = make_ledger("ethtester")
    yield ledger
    ledger.stop()


class TestEvmConformance(BackendConformance):
    @pytest.fixture
    def conformance_backend(self, _ledger: Ledger) -> EvmBackend:
        return embedded_backend(ledger=_ledger)
