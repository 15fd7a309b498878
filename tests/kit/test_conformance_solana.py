"""The conformance suite on the Solana backend: the channel program in LiteSVM, and the
same program behind the devnet server's JSON-RPC (the connect path)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chenilles_solana.backend import SolanaBackend, connect_backend, embedded_backend

from chenilles_hub.testing import BackendConformance
from tests.solana.devnet_harness import DevnetProc

pytestmark = pytest.mark.solana


class TestSolanaConformance(BackendConformance):
    @pytest.fixture
    def conformance_backend(self) -> SolanaBackend:
        return embedded_backend(start_time=1_750_000_000)


@pytest.fixture(scope="module")
def _devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetProc]:
    proc = DevnetProc(tmp_path_factory.mktemp("solana-devnet") / "data", slot_ms=50)
    yield proc
    assert proc.stop() == 0


class TestSolanaConnectConformance(BackendConformance):
    """The connect path: the backend over the devnet server's Solana JSON-RPC (solana-py),
    as a node uses it; time moves through the server's devnetAdvanceClock."""

    @pytest.fixture
    def conformance_backend(self, _devnet: DevnetProc) -> Iterator[SolanaBackend]:
        backend = connect_backend(
            _devnet.url,
            chain="solana:localnet",
            program_id=_devnet.ready["program_id"],
            test_mint=_devnet.ready["test_mint"],
            mint_authority=_devnet.ready["test_mint_authority"],
            # the suite's duos share one devnet: each backend's feed starts now, as a node's
            # does after its first start
            from_block=_devnet.call("getSlot"),
        )
        yield backend
        backend.close()

    @pytest.mark.xfail(
        strict=False,
        reason="open, intermittent: over the devnet RPC the channel account's payouts are "
        "right (the conclusion refunds the payer), yet in some runs the suite's wallet "
        "accounting finds the payer one HTLC short (issue 16's note)",
    )
    def test_htlc_refunded_after_its_expiry_not_before(
        self, conformance_backend: SolanaBackend
    ) -> None:
        super().test_htlc_refunded_after_its_expiry_not_before(conformance_backend)
