"""The conformance suite on the Bitcoin backend, on both of its paths: ``embedded`` (a
fresh regtest chain validated by libbitcoinkernel per test) and ``connect`` (the devnet
server's bitcoind JSON-RPC, as a node reaches a chain). Bitcoin's differences (one funder,
a penalty instead of a refutation) come from its ``BackendInfo``, not from this module."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend
from chenilles_bitcoin.devnet.role import FAUCET_FILE
from chenilles_bitcoin.ledger import BitcoindRpcLedger, KernelChain
from chenilles_bitcoin.plugin import BitcoinBackendFactory

from chenilles_hub import plugins
from chenilles_hub.testing import BackendConformance
from tests.bitcoin.devnet_harness import Devnet, running

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


@pytest.fixture(scope="module")
def _devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """One devnet server process for the module, its faucet provisioned as `chenilles
    devnet` does: 120 early coinbases (50 BTC each, before regtest's first halving)."""
    datadir = tmp_path_factory.mktemp("bitcoin-devnet") / "node"
    server = running(datadir)
    devnet = next(server)
    try:
        BitcoinBackendFactory().devnet_provision(devnet.url, str(datadir), 0, 0.0)
        yield devnet
    finally:
        server.close()  # stops the process


@pytest.mark.devnet
class TestBitcoinConnectConformance(BackendConformance):
    """The connect path: ``connect(url, ...)`` through the plugin, as a node builds it, on
    the devnet server's bitcoind JSON-RPC (a real process on a real socket).

    The devnet mines on demand, so the options are the ones a regtest devnet needs:
    ``auto_mine`` (each action is mined, as anvil does), ``height_clock`` (the devnet's
    block times follow the wall clock; timelocks judge heights, so ``advance_time`` mines
    blocks and the clock moves ``block_interval`` a block) and ``faucet_key_file`` (new
    accounts are paid from the faucet's early coinbases: regtest's subsidy halves every
    150 blocks and the suite mines hundreds). Reorgs: the devnet's ``chenilles_reorg``
    (a longer branch without the dropped transactions, which go back to its mempool;
    the kernel cannot ``invalidateblock``)."""

    @pytest.fixture
    def conformance_backend(self, _devnet: Devnet) -> BitcoinBackend:
        backend = plugins.backend("bitcoin").connect(
            _devnet.url,
            cookie_file=str(_devnet.cookie_file),
            auto_mine=True,
            height_clock=True,
            faucet_key_file=str(_devnet.datadir / FAUCET_FILE),
        )
        assert isinstance(backend, BitcoinBackend)
        assert isinstance(backend.ledger, BitcoindRpcLedger)
        return backend

    @pytest.fixture
    def conformance_reorg(self, conformance_backend: BitcoinBackend) -> DevnetReorg:
        return DevnetReorg(conformance_backend)


class DevnetReorg:
    """Reorgs over RPC: the devnet's ``chenilles_reorg`` replaces the blocks after the
    mark with a longer branch; the dropped transactions go back to its mempool, unmined."""

    def __init__(self, backend: BitcoinBackend) -> None:
        assert isinstance(backend.ledger, BitcoindRpcLedger)
        self.rpc = backend.ledger

    def mark(self) -> object:
        return self.rpc.tip_height()

    def reorg(self, mark: object, drop: Sequence[str]) -> None:
        assert isinstance(mark, int)
        depth = self.rpc.tip_height() - mark
        result = self.rpc.call("chenilles_reorg", depth, depth + 1)
        assert len(result["disconnected"]) == depth and len(result["connected"]) == depth + 1
        assert set(drop) <= set(self.rpc.call("getrawmempool")), "a dropped tx was mined"
