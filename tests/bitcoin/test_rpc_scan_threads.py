"""The RPC ledger's block scan from two threads at once: each block reported once, in order.

A node reads its chains off its own thread (``EventFetcher``): the Bitcoin backend's
``fetch_events`` runs the ledger's ``poll_events`` (a block scan) on a thread of its own,
while the node's thread may scan too (``find_spending_tx`` before a penalty, ``mine`` on a
development chain). Two scans at once would both take the same new block: reported twice
(the watcher would see a funding twice), or a scan's dictionaries changed under the other.
Here against the Bitcoin devnet server, a real ledger process, over real sockets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from chenilles_bitcoin.ledger import BitcoindRpcLedger, EventKind, LedgerEvent, OutPoint

from .devnet_harness import Devnet, running

pytestmark = [pytest.mark.bitcoin, pytest.mark.devnet]

BLOCKS = 40


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    datadir: Path = tmp_path_factory.mktemp("rpc-scan-threads") / "node"
    yield from running(datadir)


def test_scans_from_two_threads_report_each_block_once_in_order(devnet: Devnet) -> None:
    ledger = BitcoindRpcLedger(devnet.url, cookie_file=devnet.cookie_file)
    try:
        ledger.poll_events()  # the feed starts at the tip
        start = ledger.tip_height()
        events: list[LedgerEvent] = []
        errors: list[BaseException] = []
        mining = threading.Event()
        mining.set()

        def poll_meanwhile() -> None:  # the node's fetch thread
            try:
                while mining.is_set():
                    events.extend(ledger.poll_events())
            except BaseException as exc:  # reported by the test's thread
                errors.append(exc)

        poller = threading.Thread(target=poll_meanwhile)
        poller.start()
        try:
            for _ in range(BLOCKS):  # the node's thread: each mine() and lookup scans
                ledger.mine(1)
                ledger.find_spending_tx(OutPoint("00" * 32, 0))
        finally:
            mining.clear()
            poller.join(60)
        assert not errors, errors
        events.extend(ledger.poll_events())
        connected = [e.height for e in events if e.kind is EventKind.BLOCK_CONNECTED]
        assert connected == list(range(start + 1, start + BLOCKS + 1))
        confirmed = [e.txid for e in events if e.kind is EventKind.TX_CONFIRMED]
        assert len(confirmed) == len(set(confirmed)) >= BLOCKS  # a coinbase a block, once
    finally:
        ledger.close()
