"""A peer cannot offer an HTLC under an id that is the hub's to give.

A node keeps each HTLC, its forward link and its watcher duty by channel and HTLC id, and
gives its own HTLCs the ids of its parity (participant p of n: p modulo n). Nothing checked
the peer's ids: Mallory could offer an HTLC under the id the hub would give its next HTLC on
the same channel. Forwarding a payment to Mallory then wrote the hub's outgoing HTLC over
her incoming one in the hub's tables; once Dave downstream settled, the hub found nothing to
collect upstream and Mallory's HTLC expired back to her: the hub paid, and was never paid.
The node's machines now refuse such an id (``HtlcPolicy.ids_by_payer``, ``ForeignHtlcId``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from chenilles_hub.core import AddHtlc, Htlc, HtlcPolicy

from .hub_line import HubLine as Line
from .world import World

pytestmark = [pytest.mark.circuit]


def offer_from_alice(line: Line, htlc_id: int) -> None:
    """Alice proposes to the hub, on their channel, an HTLC of hers under ``htlc_id``."""
    channel = line.alice.channels[line.c1]
    now = line.world.now()
    htlc = Htlc(
        htlc_id,
        channel.me,
        line.eth,
        1000,
        hashlib.sha256(htlc_id.to_bytes(8, "big")).digest(),
        now + 7200,
        channel.backend.native_expiry(now + 7200),
    )
    line.alice._run(channel, channel.machine.propose((AddHtlc(htlc),), now))


def test_a_peer_offering_an_htlc_under_the_hubs_next_id_is_refused(
    world: World, tmp_path: Path
) -> None:
    line = Line(world, tmp_path / "hub.sqlite")
    hub_side = line.hub.channels[line.c1]
    parties = len(hub_side.params.participants)
    hubs_next = parties * hub_side.next_htlc_seq + hub_side.me

    # Alice's node as Mallory's: her machine numbers HTLCs as she likes.
    mallory = line.alice.channels[line.c1]
    mallory.machine._policy = HtlcPolicy(min_lead=60, ids_by_payer=False)
    offer_from_alice(line, hubs_next)
    world.network.run()

    assert hub_side.machine.state.htlc(hubs_next) is None
    assert (line.c1, hubs_next) not in line.hub.htlcs
    assert "foreign_htlc_id" in hub_side.last_error
    # The channel goes on: the hub's next HTLC takes that id, and payments flow.
    payment = line.pay(line.bob)
    world.network.run()
    assert payment.status == "succeeded"


def test_an_id_a_peer_locked_before_the_rule_is_never_given_to_an_htlc_of_ours(
    world: World, tmp_path: Path
) -> None:
    """A store from before the rule may hold a peer's HTLC under one of our ids: the hub
    skips it when it numbers its own, rather than offer an HTLC the core refuses as a
    duplicate (and, failing it, forget the peer's in its tables)."""
    line = Line(world, tmp_path / "hub.sqlite")
    hub_side = line.hub.channels[line.c1]
    parties = len(hub_side.params.participants)
    hubs_next = parties * hub_side.next_htlc_seq + hub_side.me
    lenient = HtlcPolicy(min_lead=60, ids_by_payer=False)  # as both sides were before
    strict, hub_side.machine._policy = hub_side.machine._policy, lenient
    mallory = line.alice.channels[line.c1]
    mallory.machine._policy = lenient
    offer_from_alice(line, hubs_next)
    # locked under our id (until the hub fails it: it carries no onion)
    assert world.network.run_until(lambda: hub_side.machine.state.htlc(hubs_next) is not None)
    hub_side.machine._policy = strict  # upgraded
    assert hub_side.allocate_htlc_id() == hubs_next + parties
