"""The conformance suite on the EVM backend, on both of its paths: ``embedded`` (eth-tester,
py-evm in process) and ``connect`` (anvil's JSON-RPC, as a node reaches a chain); one fresh
adjudicator per test on a ledger shared by the module, reorgs made by reverting snapshots."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pytest
from chenilles_evm.backend import EvmBackend, connect_backend, embedded_backend
from chenilles_evm.ledgers import Ledger, anvil_binary, make_ledger
from web3.types import RPCEndpoint

from chenilles_hub.testing import BackendConformance

pytestmark = pytest.mark.evm


@pytest.fixture(scope="module")
def _ledger() -> Iterator[Ledger]:
    ledger = make_ledger("ethtester")
    yield ledger
    ledger.stop()


@pytest.fixture(scope="module")
def _anvil_ledger() -> Iterator[Ledger]:
    try:
        anvil_binary()
    except FileNotFoundError:
        if os.environ.get("CHENILLES_REQUIRE_ANVIL"):
            pytest.fail("anvil not installed (run `npm ci`)")
        pytest.skip("anvil not installed (run `npm ci`)")
    ledger = make_ledger("anvil")
    yield ledger
    ledger.stop()


class TestEvmConformance(BackendConformance):
    @pytest.fixture
    def conformance_backend(self, _ledger: Ledger) -> EvmBackend:
        return embedded_backend(ledger=_ledger)

    @pytest.fixture
    def conformance_reorg(self, conformance_backend: EvmBackend) -> SnapshotReorg:
        return SnapshotReorg(conformance_backend)


class SnapshotReorg:
    """A snapshot reverted (eth-tester's, or anvil's ``evm_snapshot``/``evm_revert``): the
    blocks mined on from it differ from the ones the backend's event stream read, which is a
    reorg as the backend sees it."""

    def __init__(self, backend: EvmBackend) -> None:
        self.backend = backend

    def mark(self) -> object:
        if self.backend._ledger is not None:
            return self.backend._ledger.tester.take_snapshot()  # type: ignore[attr-defined]
        return self._rpc("evm_snapshot", [])

    def reorg(self, mark: object, drop: Sequence[str]) -> None:
        # everything after the mark leaves the chain; a longer branch is mined
        if self.backend._ledger is not None:
            self.backend._ledger.tester.revert_to_snapshot(mark)  # type: ignore[attr-defined]
        else:
            assert self._rpc("evm_revert", [mark]) is True
        for _ in range(3):
            self.backend.advance_time(1)

    def _rpc(self, method: str, args: list[object]) -> object:
        return self.backend.w3.provider.make_request(RPCEndpoint(method), args)["result"]


class TestEvmConnectConformance(BackendConformance):
    """The connect path: the backend over anvil's JSON-RPC, as a node uses it."""

    @pytest.fixture
    def conformance_backend(self, _anvil_ledger: Ledger) -> EvmBackend:
        return connect_backend(_anvil_ledger.url, deploy=True)  # type: ignore[attr-defined]

    @pytest.fixture
    def conformance_reorg(self, conformance_backend: EvmBackend) -> SnapshotReorg:
        return SnapshotReorg(conformance_backend)
