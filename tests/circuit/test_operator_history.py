"""What an operator reads and changes at run time, on a real EVM (py-evm) market: a
cross-asset payment shows its fee, the hub's forwards and fees earned by time range, routes
that cannot be found say why, cancelled invoices fail the HTLC, and fees and rates set at
run time survive a restart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.circuit.quote import Rate
from chenilles_hub.core import Asset
from chenilles_hub.node.api import operations as ops
from chenilles_hub.node.api.operations import ApiError
from chenilles_hub.node.hub import history
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
from chenilles_hub.node.hub.gossip import Announcement
from chenilles_hub.node.hub.graph_view import GraphView
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.operator_settings import rate_in_whole_units, whole_unit_rate
from chenilles_hub.node.hub.routing_view import routing_graph
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World

pytestmark = pytest.mark.circuit

ETH = 10**18
TOKENS = 10**22
AMOUNT = 3 * 10**15
MAX_LOCK = 30 * 86400


@dataclass
class Market:
    world: World
    alice: Node
    hub: Node
    bob: Node
    eth: Asset
    token: Asset
    c1: bytes
    c2: bytes
    hub_store: SQLiteStore
    bob_store: SQLiteStore

    def graph(self) -> GraphView:
        """What Alice knows: the hub's announcement (its edges and rates)."""
        view = GraphView()
        hub_graph = routing_graph([self.hub])
        view.accept(
            self.hub.node_id,
            Announcement(
                tuple(hub_graph.edges),
                tuple(hub_graph.rates.values()),
                tuple(hub_graph.time_models.items()),
            ),
        )
        return view


@pytest.fixture(name="market")
def _market(tmp_path: Any) -> Iterator[Market]:
    backend = embedded_backend()
    world = World({backend.chain: backend}, backend)
    eth, token = backend.assets()
    chain = backend.chain
    policy = ForwardingPolicy(fees={token: FeePolicy(base=1_000)}, rates={(eth, token): Rate(3, 1)})
    hub_store = SQLiteStore(tmp_path / "hub.sqlite")
    bob_store = SQLiteStore(tmp_path / "bob.sqlite")
    alice = world.node("alice", [chain])
    hub = world.node("hub", [chain], policy, store=hub_store)
    bob = world.node("bob", [chain], store=bob_store)
    c1 = world.open(alice, hub, chain, {eth: (ETH, 0)})
    c2 = world.open(hub, bob, chain, {token: (TOKENS, 0)})
    yield Market(world, alice, hub, bob, eth, token, c1, c2, hub_store, bob_store)
    hub_store.close()
    bob_store.close()
    backend.close()


def test_a_cross_asset_payment_shows_its_fee_and_the_hub_its_forward(market: Market) -> None:
    start = market.world.now()
    invoice = market.bob.invoice(AMOUNT, market.token)
    started = ops.pay(market.alice, market.graph(), invoice, MAX_LOCK, None)
    assert started["fee"] == 1_000 and started["fee_asset"] == str(market.token)
    assert started["route"]["fees"] == {str(market.token): 1_000}
    market.world.network.run()
    view = ops.payment_view(market.alice.payments[invoice.payment_hash])
    assert view["status"] == "succeeded", view["reason"]
    assert view["fee"] == 1_000 and view["fee_asset"] == str(market.token)  # not None
    assert [h["fee"] for h in view["route"]["hops"]] == [0, 1_000]
    assert view["sent_asset"] == str(market.eth) and view["asset"] == str(market.token)

    done = history.forwards(market.hub_store, since=start)
    assert done["count"] == 1
    (row,) = done["forwards"]
    assert (row["in_asset"], row["out_asset"]) == (str(market.eth), str(market.token))
    assert row["out_amount"] == AMOUNT and row["fee"] == 1_000
    assert done["totals"] == [
        {"asset": str(market.token), "forwards": 1, "fees": 1_000, "volume": AMOUNT}
    ]
    later = history.forwards(market.hub_store, since=market.world.now() + 1)
    assert later["count"] == 0 and later["totals"] == []
    assert history.forwards(market.hub_store, until=start - 1)["count"] == 0


def test_a_route_that_cannot_be_found_says_why(market: Market) -> None:
    invoice = market.bob.invoice(AMOUNT, market.token)
    market.hub.set_rate(market.eth, market.token, None)  # the hub stopped converting
    with pytest.raises(ApiError) as no_rate:
        ops.plan_route(market.alice, market.graph(), invoice, MAX_LOCK)
    assert no_rate.value.code == "no_rate"
    assert "no hub converts" in no_rate.value.message
    market.hub.set_rate(market.eth, market.token, Rate(3, 1))
    too_big = market.bob.invoice(TOKENS + 1, market.token)
    with pytest.raises(ApiError) as capacity:
        ops.plan_route(market.alice, market.graph(), too_big, MAX_LOCK)
    assert capacity.value.code == "insufficient_capacity"
    assert str(TOKENS) in capacity.value.message


def test_a_cancelled_invoice_fails_the_htlc_and_stays_cancelled(market: Market) -> None:
    invoice = market.bob.invoice(AMOUNT, market.token)
    market.bob.cancel_invoice(invoice.payment_hash)
    assert ops.invoice_view(market.bob, invoice)["status"] == "cancelled"
    ops.pay(market.alice, market.graph(), invoice, MAX_LOCK, None)
    market.world.network.run()
    payment = market.alice.payments[invoice.payment_hash]
    assert payment.status == "failed" and "invoice_cancelled" in payment.reason
    assert market.alice.channels[market.c1].machine.state.free(market.eth) == (ETH, 0)
    assert market.hub.channels[market.c2].machine.state.free(market.token) == (TOKENS, 0)
    reborn = market.world.restart(market.bob, market.bob_store)
    assert ops.invoice_view(reborn, invoice)["status"] == "cancelled"


def test_fees_and_rates_set_at_run_time_survive_a_restart(market: Market) -> None:
    rate = whole_unit_rate("0.5", 18, 18)
    market.hub.set_fee(market.token, 5, 10)
    market.hub.set_rate(market.eth, market.token, rate)
    config_policy = ForwardingPolicy(fees={market.token: FeePolicy(base=1_000)})
    reborn = Node(
        identity=market.hub.identity,
        backends=market.hub.backends,
        accounts=market.hub.accounts,
        clock=market.world.now,
        name="hub",
        policy=config_policy,  # what the config file says
        store=market.hub_store,
    )
    reborn.restore()
    assert reborn.policy.fees == {market.token: FeePolicy(5, 10)}  # the operator's, not config's
    assert reborn.policy.rates == {(market.eth, market.token): Rate(1, 2)}
    assert reborn.payment_flow.policy is reborn.policy
    quote = reborn.quote(market.eth, market.token, 1_000_000)
    assert quote.amount_in == 2 * (1_000_000 + 5 + 10)  # the new rate and fee price quotes


def test_rates_are_written_in_whole_units_with_each_assets_decimals() -> None:
    # 1 ETH (18 decimals) buys 0.05 BTC (8 decimals): 5e6 sat for 1e18 wei.
    rate = whole_unit_rate("0.05", 18, 8)
    assert rate == Rate(1, 200_000_000_000)
    assert rate.convert(10**18) == 5_000_000
    assert rate_in_whole_units(rate, 18, 8) == "0.05"
    assert whole_unit_rate("2000", 18, 6) == Rate(1, 500_000_000)  # 1 ETH = 2000 USDC
    for bad in ("0", "-1", "abc", "1e-400"):
        with pytest.raises(Exception, match="rate"):
            whole_unit_rate(bad, 18, 8)


def test_what_a_channels_transactions_cost_survives_a_restart(market: Market) -> None:
    """The receipts (fees, rent) of a channel's transactions are the operator's books: a
    node restarted (after a crash) still lists them, and they are in the payout checks of
    the crash harness on Bitcoin and Solana (it found them lost at every restart)."""
    booked = market.hub.channels[market.c2].receipts
    assert booked and {r.operation for r in booked} == {"fund"} and all(r.fee for r in booked)
    reborn = market.world.restart(market.hub, market.hub_store)
    assert reborn.channels[market.c2].receipts == booked
    reborn.close(market.c2)
    market.world.network.run()
    market.world.sync()
    after = market.world.restart(reborn, market.hub_store)
    assert after.channels[market.c2].receipts[: len(booked)] == booked
    assert len(after.channels[market.c2].receipts) > len(booked)  # the close's too
