"""The conformance suite on the Bitcoin backend: a fresh regtest chain validated by
libbitcoinkernel per test. Bitcoin's differences (one funder, a penalty instead of a
refutation) come from its ``BackendInfo``, not from this module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend

from chenilles_hub.testing import BackendConformance

pytestmark = pytest.mark.bitcoin


class TestBitcoinConformance(BackendConformance):
    @pytest.fixture
    def conformance_backend(self) -> Iterator[BitcoinBackend]:
        backend = embedded_backend()
        try:
            yield backend
        finally:
            close = getattr(backend.ledger, "close", None)
            if close is not None:
                close()
