"""Updates queued for a peer that does not answer are parked, and move again when it does.

After every event a node proposes what its channels have queued (``Proposals.flush``). It
visited every channel with a queue, including those that could not move: their peer went
silent with our proposal unanswered, is offline, or holds every HTLC slot. Anyone can leave
a hub that way (pay through it to a peer that then goes silent), and each such channel cost
every later payment through the hub a visit per event. Such a channel is now parked
(``NodeContext.parked``) until it moves: any event of its machine, a change of its status,
its peer's reconnection. These tests hold the hub to the other half of that bargain: a
parked queue always moves again, and is failed upstream when its channel goes on-chain.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .hub_line import HubLine as Line
from .world import World

pytestmark = [pytest.mark.circuit]


def test_a_queue_waiting_for_a_silent_peer_is_parked_and_moves_when_it_answers(
    world: World, tmp_path: Path
) -> None:
    line = Line(world, tmp_path / "hub.sqlite")
    payments = line.stuck_at_carol(6)  # the first offer is unanswered, five wait behind it
    hub = line.hub
    assert line.c3 in hub.ctx.parked and line.c3 not in hub.ctx.queued
    assert len(hub.channels[line.c3].queue) == 5

    # A payment to Bob goes through while Carol's channel stays parked.
    bob = line.pay(line.bob)
    world.network.run()
    assert bob.status == "succeeded"
    assert line.c3 not in hub.ctx.queued

    world.network.revive(line.carol)  # she reconnects: both sides reestablish
    assert [p.status for p in payments] == ["succeeded"] * 6
    assert not hub.channels[line.c3].queue
    hub.flush()
    assert line.c3 not in hub.ctx.parked and line.c3 not in hub.ctx.queued


def test_a_queue_parked_for_an_offline_peer_moves_when_it_reconnects(
    world: World, tmp_path: Path
) -> None:
    """The peer's link went down (the node knows it is offline): its queue is parked, not
    proposed, and goes out once the peer reconnects."""
    line = Line(world, tmp_path / "hub.sqlite")
    hub = line.hub
    hub.peer_disconnected(line.carol.node_id)
    payment = line.pay(line.carol)
    world.network.run()
    assert line.c3 in hub.ctx.parked and line.c3 not in hub.ctx.queued
    assert payment.status == "pending"
    hub.reestablish(line.carol.node_id)
    line.carol.reestablish(hub.node_id)
    world.network.run()
    assert payment.status == "succeeded"


def test_a_parked_queue_is_failed_upstream_once_its_channel_goes_on_chain(
    world: World, tmp_path: Path
) -> None:
    """Carol stays silent and the hub takes the channel on-chain: the offers that never
    left the hub are failed back to Alice with the hub's next event (not when Carol next
    speaks, which may be never), so the upstream HTLCs do not run to their expiry and take
    Alice's channel on-chain too."""
    line = Line(world, tmp_path / "hub.sqlite")
    payments = line.stuck_at_carol(4)
    hub = line.hub
    assert line.c3 in hub.ctx.parked
    hub.force_close(line.c3)
    assert hub.channels[line.c3].status in ("disputed", "closed")
    hub.flush()  # what the hub's next event does, whatever it is
    world.network.run()
    assert not hub.channels[line.c3].queue
    # the three that waited behind the first are failed back; the first is on-chain now
    assert [p.status for p in payments[1:]] == ["failed"] * 3
    assert line.c3 not in hub.ctx.parked
