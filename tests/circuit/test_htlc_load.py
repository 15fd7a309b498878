"""Payments under load on a real EVM (py-evm) and Solana program (LiteSVM): HTLCs beyond a
channel's slots wait for one instead of failing (on Solana, the ledger's eight), the waiting
line is bounded (``channel_busy``), and the payer's deadline fails a payment back -- its
money unlocked -- when the payee is offline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chenilles_hub.core import MAX_HTLCS, Asset, ChannelParams, ChannelState, SignedState
from chenilles_hub.core.errors import TooManyHtlcs
from chenilles_hub.node.hub import htlc_queue
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
from chenilles_hub.node.hub.htlc_queue import ChannelBusy
from chenilles_hub.node.hub.node import Node

from .world import World, plan

pytestmark = pytest.mark.circuit

ETH = 10**18


@pytest.fixture
def solana_world() -> Iterator[World]:
    from chenilles_solana.backend import embedded_backend

    backend = embedded_backend()
    yield World({backend.chain: backend}, backend)
    backend.close()


def three_nodes(world: World, funds: int = ETH) -> tuple[Asset, Node, Node, Node, bytes, bytes]:
    (backend,) = world.backends.values()
    eth = Asset(backend.chain, "native")
    alice = world.node("alice", [eth.chain])
    hub = world.node("hub", [eth.chain], ForwardingPolicy(fees={eth: FeePolicy(base=7)}))
    bob = world.node("bob", [eth.chain])
    c1 = world.open(alice, hub, eth.chain, {eth: (funds, 0)})
    c2 = world.open(hub, bob, eth.chain, {eth: (funds, 0)})
    return eth, alice, hub, bob, c1, c2


def test_a_burst_of_200_payments_beyond_the_htlc_slots_all_succeeds(world: World) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    _burst(world, 200, MAX_HTLCS, alice, hub, bob, c1, c2)
    paid = sum(1000 + i for i in range(200)) + 7 * 200  # with the hub's fees
    assert alice.channels[c1].machine.state.free(eth) == (ETH - paid, paid)


def test_a_burst_beyond_a_solana_channels_eight_htlcs_waits_for_the_ledgers_slots(
    solana_world: World,
) -> None:
    """The Solana program holds 8 HTLCs per state, fewer than the core's 32. The ledger's
    limit is a channel rule, so the ninth offer waits in the queue like the 33rd elsewhere.
    Before, the queue let 32 offers into one proposal and the program's authority refused to
    sign it after they had been taken from the queue: the burst's updates, settles and fails
    included, were lost, and the error escaped the node's event."""
    _, alice, hub, bob, c1, c2 = three_nodes(solana_world, 10**9)
    assert hub.channels[c2].machine.max_htlcs == 8
    _burst(solana_world, 40, 8, alice, hub, bob, c1, c2)


class _SignsAtMost:
    """An authority whose ledger holds fewer HTLCs than its backend's channel rules say: a
    backend's bug, which only its signing finds."""

    def __init__(self, inner: Any, most: int) -> None:
        self.inner, self.most = inner, most

    def sign(self, params: ChannelParams, state: ChannelState, prev: SignedState | None) -> bytes:
        if len(state.htlcs) > self.most:
            raise TooManyHtlcs(f"this ledger holds at most {self.most} HTLCs")
        signature: bytes = self.inner.sign(params, state, prev)
        return signature

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_backend_refusing_to_sign_what_its_rules_allow_loses_no_update(world: World) -> None:
    """The node's backstop when a backend refuses to sign a state its channel rules allow:
    the batch goes back to the queue, the channel waits and says why, and nothing fails or
    escapes the node. Once the backend signs again and the channel moves, every payment
    goes through. Before, the batch was taken from the queue and lost."""
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    machine = hub.channels[c2].machine
    honest = machine._authority
    machine._authority = _SignsAtMost(honest, 4)  # type: ignore[assignment]
    invoices = [bob.invoice(1000 + i, eth) for i in range(8)]
    lead = invoices[0].final_lead
    payments = [
        alice.pay_route(inv, plan(world, alice, [(hub, c1), (bob, c2)], inv.amount, eth, lead))
        for inv in invoices
    ]
    world.network.run()
    stuck = hub.channels[c2]
    assert "refused to sign" in stuck.last_error and "too_many_htlcs" in stuck.last_error
    waiting = len(stuck.queue)  # the first offer went alone; the next ones were refused
    assert waiting > 4 and {type(u).__name__ for u in stuck.queue} == {"AddHtlc"}
    assert [p.status for p in payments].count("pending") == waiting  # none failed
    machine._authority = honest  # the backend signs again; the channel moves (a reconnect)
    world.network.silence(bob)
    world.network.revive(bob)
    world.network.run()
    assert [p.status for p in payments] == ["succeeded"] * 8


def _burst(
    world: World, count: int, slots: int, alice: Node, hub: Node, bob: Node, c1: bytes, c2: bytes
) -> None:
    """Pay ``count`` invoices alice -> hub -> bob at once: each succeeds, no channel ever
    locks more than ``slots`` HTLCs, and every channel ends with nothing locked or queued."""
    asset = alice.channels[c1].machine.params.assets[0]
    invoices = [bob.invoice(1000 + i, asset) for i in range(count)]
    lead = invoices[0].final_lead
    payments = [
        alice.pay_route(inv, plan(world, alice, [(hub, c1), (bob, c2)], inv.amount, asset, lead))
        for inv in invoices
    ]
    assert len(alice.channels[c1].queue) > slots  # most of them wait for a slot
    most = 0

    def watch() -> bool:  # one message at a time: the HTLCs locked never exceed the slots
        nonlocal most
        most = max(most, *(len(c.machine.state.htlcs) for c in hub.channels.values()))
        return False

    world.network.run_until(watch, limit=1_000_000)
    world.network.run()
    assert [p.status for p in payments] == ["succeeded"] * count
    assert most <= slots
    sent = sum(1000 + i for i in range(count))
    assert bob.channels[c2].machine.state.free(asset)[1] == sent
    assert not alice.channels[c1].queue and not hub.channels[c2].queue
    assert not alice.channels[c1].machine.state.htlcs and not hub.channels[c2].machine.state.htlcs
    assert "too_many_htlcs" not in " ".join(p.reason for p in payments)


def test_a_full_waiting_line_refuses_at_once_with_channel_busy(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    monkeypatch.setattr(htlc_queue, "MAX_WAITING_HTLCS", 5)
    alice.peer_disconnected(hub.node_id)  # nothing can be signed: offers wait
    lead = bob.final_lead(eth)
    invoices = [bob.invoice(1000, eth) for _ in range(6)]
    hops = [plan(world, alice, [(hub, c1), (bob, c2)], 1000, eth, lead) for _ in invoices]
    for invoice, route in zip(invoices[:5], hops[:5], strict=True):
        alice.pay_route(invoice, route)
    with pytest.raises(ChannelBusy) as refused:
        alice.pay_route(invoices[5], hops[5])
    assert refused.value.code == "channel_busy"
    assert invoices[5].payment_hash not in alice.payments  # nothing recorded, nothing locked
    assert alice.channels[c1].machine.state.free(eth) == (ETH, 0)


def test_a_forward_beyond_the_waiting_line_fails_back_with_channel_busy(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    monkeypatch.setattr(htlc_queue, "MAX_WAITING_HTLCS", 3)
    hub.peer_disconnected(bob.node_id)
    world.network.silence(bob)
    lead = bob.final_lead(eth)
    invoices = [bob.invoice(1000, eth) for _ in range(4)]
    payments = [
        alice.pay_route(inv, plan(world, alice, [(hub, c1), (bob, c2)], 1000, eth, lead))
        for inv in invoices
    ]
    world.network.run()
    assert [p.status for p in payments] == ["pending"] * 3 + ["failed"]
    assert payments[3].reason.startswith("channel_busy")
    assert len(hub.channels[c2].queue) == 3


def test_an_offline_payee_fails_the_payment_back_within_the_payers_timeout(
    world: World,
) -> None:
    eth, alice, hub, bob, c1, c2 = three_nodes(world)
    world.network.silence(bob)
    hub.peer_disconnected(bob.node_id)  # the hub's link to bob is down
    invoice = bob.invoice(5000, eth)
    hops = plan(world, alice, [(hub, c1), (bob, c2)], invoice.amount, eth, invoice.final_lead)
    timeout = 40
    deadline = world.now() + timeout
    payment = alice.pay_quoted(invoice, hops, deadline)
    world.network.run()
    assert payment.status == "pending"
    assert alice.channels[c1].machine.state.htlcs  # alice's money is locked at the hub
    assert len(hub.channels[c2].queue) == 1  # the hub's HTLC to bob waits for him
    world.advance(timeout - 5)  # before the hub's deadline: it still waits
    assert payment.status == "pending"
    world.advance(5)
    assert world.now() <= deadline + 1
    assert payment.status == "failed" and payment.reason.startswith("payment_timeout")
    assert alice.channels[c1].machine.state.free(eth) == (ETH, 0)  # unlocked
    assert not alice.channels[c1].machine.state.htlcs
    assert not hub.channels[c2].queue and not hub.channels[c2].machine.state.htlcs
