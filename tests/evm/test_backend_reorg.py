"""The EVM event stream notices reorgs; holdings count deposits at depth; the chain's clock.

A snapshot and revert (eth-tester ``revert_to_snapshot``, anvil ``evm_revert``) puts the
chain back to an earlier block; the blocks mined on from there differ from the ones the
stream read: a reorg, as the backend sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chenilles_evm.backend import EvmBackend, connect_backend, embedded_backend
from chenilles_evm.ledgers import anvil_ledger
from web3.types import RPCEndpoint

from chenilles_hub.backend import Funded, NewBlock, Registered, Reorged
from chenilles_hub.core import Transfer

from .test_backend_channel import open_channel

pytestmark = pytest.mark.evm

ETH = 10**18


@pytest.fixture(params=["ethtester", "anvil"])
def fresh(request: pytest.FixtureRequest) -> Iterator[EvmBackend]:
    """A backend on a ledger of its own (a revert must not touch other tests' chains)."""
    if request.param == "ethtester":
        backend = embedded_backend()
        yield backend
        backend.close()
        return
    ledger = anvil_ledger()
    try:
        yield connect_backend(ledger.url, deploy=True)  # type: ignore[attr-defined]
    finally:
        ledger.stop()


def snapshot(backend: EvmBackend) -> Any:
    if backend._ledger is not None:
        return backend._ledger.tester.take_snapshot()  # type: ignore[attr-defined]
    return backend.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]


def revert(backend: EvmBackend, snap: Any) -> None:
    if backend._ledger is not None:
        backend._ledger.tester.revert_to_snapshot(snap)  # type: ignore[attr-defined]
    else:
        assert backend.w3.provider.make_request(RPCEndpoint("evm_revert"), [snap])["result"]


def reorged_registration(fresh: EvmBackend) -> tuple[Any, Any, str]:
    """A funded channel whose registration a reorg took away (three blocks mined on the
    fork): the channel, its asset and the registration's txid."""
    eth = fresh.assets()[0]
    ch = open_channel(fresh, {eth: (ETH, 0)})
    assert Funded(ch.cid, eth, 0, ETH) in fresh.poll_events()
    snap = snapshot(fresh)
    latest = ch.update(0, Transfer(eth, 10))
    registered = fresh.register(ch.params, latest, ch.accounts[0])
    assert Registered in {type(e) for e in fresh.poll_events()}
    revert(fresh, snap)  # the registration's block is gone
    for _ in range(3):
        fresh.advance_time(12)
    return ch, eth, registered.txid


def test_a_reorg_is_reported_with_the_touched_channels_surviving_history(
    fresh: EvmBackend,
) -> None:
    ch, eth, registered = reorged_registration(fresh)
    events = fresh.poll_events()
    reorg = events[0]
    assert isinstance(reorg, Reorged) and reorg.txids == (registered,)
    assert reorg.depth >= 1
    # then what the chain holds now for that channel: its deposit, and no registration
    assert Funded(ch.cid, eth, 0, ETH) in events
    assert not any(isinstance(e, Registered) for e in events)
    assert isinstance(events[-1], NewBlock)
    fresh.advance_time(12)
    assert all(isinstance(e, NewBlock) for e in fresh.poll_events())  # nothing twice


def test_holdings_count_only_deposits_at_the_asked_depth(fresh: EvmBackend) -> None:
    eth = fresh.assets()[0]
    ch = open_channel(fresh, {eth: (ETH, ETH // 2)})  # the deposits' blocks are the tip's
    assert fresh.holdings(ch.params, 1)[eth] == [ETH, ETH // 2]
    assert fresh.holdings(ch.params, 2)[eth] == [ETH, 0]  # b's is in the tip block
    assert fresh.holdings(ch.params, 3)[eth] == [0, 0]
    fresh.advance_time(12)
    assert fresh.holdings(ch.params, 2)[eth] == [ETH, ETH // 2]
    token = fresh.assets()[1]
    assert token not in fresh.holdings(ch.params, 1)  # only the channel's assets
    final = ch.update(0, Transfer(eth, 1))
    fresh.register(ch.params, final, ch.accounts[0])
    fresh.advance_time(200)
    fresh.conclude(ch.params, ch.accounts[0])
    assert fresh.holdings(ch.params, 1)[eth] == [0, 0]  # concluded: nothing held


def test_next_block_time_is_what_the_next_block_carries(fresh: EvmBackend) -> None:
    before = fresh.next_block_time()
    assert before >= fresh.now()
    eth = fresh.assets()[0]
    receipt = fresh.faucet(fresh.create_account(fund=False), eth, 1)
    assert receipt.block is not None
    mined = int(fresh.w3.eth.get_block(receipt.block)["timestamp"])
    assert mined >= before


def test_an_endpoint_failing_for_a_moment_is_not_taken_for_a_reorg(fresh: EvmBackend) -> None:
    """The stream compares the hash it saw at its last tip with the chain's: an endpoint
    that fails to answer that read (a dropped connection, a timeout) says nothing about the
    chain. The poll fails and is tried again; no ``Reorged`` comes of it (a false reorg
    makes the node forget what its watcher did and re-check every deposit)."""
    eth = fresh.assets()[0]
    ch = open_channel(fresh, {eth: (ETH, 0)})
    assert Funded(ch.cid, eth, 0, ETH) in fresh.poll_events()
    fresh.advance_time(12)
    eth_api: Any = fresh.w3.eth
    get_block = eth_api.get_block

    def unreachable_for_numbers(block: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(block, int):  # the stream's check of a block it saw
            raise ConnectionError("the endpoint dropped the connection")
        return get_block(block, *args, **kwargs)

    eth_api.get_block = unreachable_for_numbers
    try:
        with pytest.raises(ConnectionError):
            fresh.poll_events()
    finally:
        eth_api.get_block = get_block
    events = fresh.poll_events()
    assert not [e for e in events if isinstance(e, Reorged)], events
    assert not [e for e in events if isinstance(e, Funded)], events  # nothing read twice
    assert isinstance(events[-1], NewBlock)


def test_a_reorg_read_that_fails_half_way_is_reported_at_the_next_poll(
    fresh: EvmBackend,
) -> None:
    """The stream finds the fork, then reads the touched channels' history and the new
    logs: if one of those reads fails, the poll must change nothing, or the next poll,
    its record of the forked blocks already dropped, would never report the reorg (and the
    node would go on believing a registration or a deposit the chain no longer has)."""
    ch, eth, registered = reorged_registration(fresh)
    eth_api: Any = fresh.w3.eth
    get_logs = eth_api.get_logs

    def dropped(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the endpoint dropped the connection")

    eth_api.get_logs = dropped
    try:
        with pytest.raises(ConnectionError):
            fresh.poll_events()
    finally:
        eth_api.get_logs = get_logs
    events = fresh.poll_events()
    reorg = events[0]
    assert isinstance(reorg, Reorged) and reorg.txids == (registered,), events
    assert Funded(ch.cid, eth, 0, ETH) in events
    assert not any(isinstance(e, Registered) for e in events)
