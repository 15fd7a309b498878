"""The conformance suite on the Bitcoin backend: a fresh regtest chain validated by
libbitcoinkernel per test. Bitcoin's differences (one funder, a penalty instead of a
refutation) come from its ``BackendInfo``, not from this module."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend
from chenilles_bitcoin.ledger import KernelChain

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

    @pytest.fixture
    def conformance_reorg(self, conformance_backend: BitcoinBackend) -> KernelReorg:
        return KernelReorg(conformance_backend)


class KernelReorg:
    """Reorgs on the kernel-validated chain: a longer branch from an earlier block."""

    def __init__(self, backend: BitcoinBackend) -> None:
        assert isinstance(backend.ledger, KernelChain)
        self.chain = backend.ledger

    def mark(self) -> object:
        return self.chain.tip_height()

    def reorg(self, mark: object, drop: Sequence[str]) -> None:
        assert isinstance(mark, int)
        depth = self.chain.tip_height() - mark
        self.chain.reorg(depth=depth, replacement_blocks=depth + 1, exclude=list(drop))
