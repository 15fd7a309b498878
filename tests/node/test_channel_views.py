"""A channel's life cycle as the operator sees it (``channel_view``), in one process on an
embedded EVM ledger: confirmations counted on the chain, ``abandon`` of a channel whose funds
never left (and the peer's late messages refused), a channel whose chain is gone
quarantined at restore and back once it returns, a dispute's deadline in chain time. About
5 s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.core import Asset
from chenilles_hub.node.api.channel_views import channel_view, quarantined_view
from chenilles_hub.node.hub.funding import NotAbandonable
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.store.sqlite import SQLiteStore

from ..circuit.world import World, confirm

pytestmark = pytest.mark.node
ETH = 10**18


@pytest.fixture
def world() -> Any:
    backend = embedded_backend()
    try:
        yield World({backend.chain: backend}, backend)
    finally:
        backend.close()


def _eth(world: World) -> Asset:
    return Asset(world.clock_backend.chain, "native")


def test_an_opening_channel_counts_its_confirmations_on_the_chain(world: World) -> None:
    chain = world.clock_backend.chain
    alice, bob = world.node("alice", [chain]), world.node("bob", [chain])
    alice.open_channel(bob.node_id, chain, {_eth(world): (ETH, 0)}, 600)
    world.network.run()
    (channel_id,) = alice.channels
    need = alice.ctx.depth(chain)
    assert need >= 2
    seen = []
    for _ in range(need):
        view = channel_view(alice, alice.channels[channel_id])
        if view["status"] == "active":
            break
        assert view["confirmations"]["need"] == need
        assert f"{need} confirmations needed" in view["waiting"]
        seen.append(view["confirmations"]["have"])
        world.clock_backend.advance_time(1)
        world.sync()
    assert seen == list(range(1, need))  # in the tip block, then one deeper per block
    assert channel_view(alice, alice.channels[channel_id])["status"] == "active"


def test_a_channel_whose_funds_never_left_is_abandoned_and_stays_so(world: World) -> None:
    chain = world.clock_backend.chain
    alice, bob = world.node("alice", [chain]), world.node("bob", [chain])
    account = alice.accounts[chain]
    before = world.clock_backend.balance(account, _eth(world))
    alice.open_channel(bob.node_id, chain, {_eth(world): (ETH, 0)}, 600)
    # Stop the world once the channel exists on Alice's side, before Bob signed version 0.
    assert world.network.run_until(lambda: bool(alice.channels))
    (channel_id,) = alice.channels
    alice.abandon(channel_id)
    view = channel_view(alice, alice.channels[channel_id])
    assert view["status"] == "abandoned" and view["waiting"] == ""
    world.network.run()  # Bob's late answers: refused, nothing is deposited
    world.sync()
    assert alice.channels[channel_id].status == "abandoned"
    assert world.clock_backend.balance(account, _eth(world)) == before
    assert "abandoned" in alice.channels[channel_id].last_error  # why it was refused


def test_a_funded_or_active_channel_is_never_abandoned(world: World) -> None:
    chain = world.clock_backend.chain
    alice, bob = world.node("alice", [chain]), world.node("bob", [chain])
    alice.open_channel(bob.node_id, chain, {_eth(world): (ETH, 0)}, 600)
    world.network.run()  # funded, not yet deep enough: still opening
    (channel_id,) = alice.channels
    assert alice.channels[channel_id].status == "opening"
    for node in (alice, bob):  # ours sent; on Bob's side: the chain holds a deposit
        with pytest.raises(NotAbandonable):
            node.abandon(channel_id)
        assert node.channels[channel_id].status == "opening"
    confirm(world)
    with pytest.raises(NotAbandonable, match="active"):
        alice.abandon(channel_id)


def test_a_channel_of_a_chain_no_longer_configured_is_quarantined(
    world: World, tmp_path: Path
) -> None:
    chain = world.clock_backend.chain
    store = SQLiteStore(tmp_path / "alice.sqlite")
    alice, bob = world.node("alice", [chain], store=store), world.node("bob", [chain])
    channel_id = world.open(alice, bob, chain, {_eth(world): (ETH, 0)})
    alice.checkpoint()
    blind = Node(
        identity=alice.identity,
        backends={},
        accounts={},
        clock=world.now,
        name="alice",
        policy=alice.policy,
        store=store,
    )
    blind.restore()  # does not raise: the channel is set aside
    assert not blind.channels
    (entry,) = blind.quarantined.values()
    assert entry.channel_id == channel_id and entry.status == "active"
    assert f"its chain {chain} is not configured" in entry.reason
    blind.checkpoint()  # and left as it is in the store
    alice = world.restart(alice, store)
    assert alice.channels[channel_id].status == "active" and not alice.quarantined


def test_a_channel_of_an_unavailable_chain_is_quarantined_saying_where_to_look(
    world: World, tmp_path: Path
) -> None:
    """A chain configured but set aside at start (its backend could not resume the event
    feed, ``build_chains``): its channels wait in quarantine, and say why and where."""
    chain = world.clock_backend.chain
    store = SQLiteStore(tmp_path / "alice.sqlite")
    alice, bob = world.node("alice", [chain], store=store), world.node("bob", [chain])
    channel_id = world.open(alice, bob, chain, {_eth(world): (ETH, 0)})
    alice.checkpoint()
    restarted = Node(
        identity=alice.identity,
        backends={},
        accounts={},
        clock=world.now,
        name="alice",
        policy=alice.policy,
        store=store,
        unavailable={chain: "[chains.evm]: the evm backend's connect() refused from_block=9"},
    )
    restarted.restore()
    (entry,) = restarted.quarantined.values()
    assert entry.channel_id == channel_id
    view = quarantined_view(entry)
    assert view["status"] == "quarantined"
    assert f"its chain {chain} is unavailable" in view["last_error"]
    assert "unavailable_chains in `chenilles node info`" in view["last_error"]


def test_a_dispute_shows_its_deadline_in_chain_time(world: World) -> None:
    chain = world.clock_backend.chain
    alice, bob = world.node("alice", [chain]), world.node("bob", [chain])
    channel_id = world.open(alice, bob, chain, {_eth(world): (ETH, 0)}, challenge=600)
    world.network.silence(bob)
    alice.force_close(channel_id)
    world.sync()
    view = channel_view(alice, alice.channels[channel_id])
    assert view["status"] == "disputed"
    deadline = view["deadline"]
    assert deadline["chain_time"] - deadline["chain_now"] == deadline["seconds_left"]
    assert 0 < deadline["seconds_left"] <= 600
    assert f"ends at chain time {deadline['chain_time']}" in view["waiting"]
    world.advance(601)
    confirm(world)
    assert channel_view(alice, alice.channels[channel_id])["status"] == "closed"
