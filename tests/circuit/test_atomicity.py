"""Atomicity of a 3-hop cross-chain circuit when one party goes silent.

Alice pays on EVM through two hubs (H1 forwards on EVM, H2 converts ETH into BTC) to Bob on
Bitcoin, all on the embedded ledgers. A party goes silent at a given step; time passes and
the honest parties' watchers act on-chain. Whatever happens, an honest forwarding hub never
ends with its outgoing HTLC paid and its incoming one refunded, and the payer's payment
ends succeeded (Bob holds the money) or failed (every honest hop refunded).
"""

from __future__ import annotations

import pytest

from chenilles_hub import plugins
from chenilles_hub.circuit.invoice import ROUTE_SLACK
from chenilles_hub.circuit.quote import Rate
from chenilles_hub.core import Asset
from chenilles_hub.core.routing import find_route
from chenilles_hub.demo import Ledgers
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
from chenilles_hub.node.hub.network import InProcessNetwork
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.routing_view import onion_hops, quotes_from, routing_graph

pytestmark = pytest.mark.circuit

WEI, SAT = 10**18, 10**8


class Circuit:
    def __init__(self) -> None:
        families = {f.info.family: f for f in plugins.installed_backends(fresh=True)}
        evm, btc = families["EVM"].embedded(), families["Bitcoin"].embedded()
        self.ledgers = Ledgers(evm, btc, evm)  # no Solana leg in this circuit
        self.chains = (evm, btc)
        self.eth, self.btc = Asset(evm.chain, "native"), Asset(btc.chain, "native")
        self.net = InProcessNetwork()
        hub_book = ForwardingPolicy(
            fees={self.btc: FeePolicy(100, 1000), self.eth: FeePolicy(10**12, 100)},
            rates={(self.eth, self.btc): Rate(SAT, 20 * WEI)},
        )
        self.alice = self.node("alice", [evm], ForwardingPolicy())
        self.h1 = self.node("h1", [evm], hub_book)
        self.h2 = self.node("h2", [evm, btc], hub_book)
        self.bob = self.node("bob", [btc], ForwardingPolicy())
        self.ledgers.sync_clocks()
        self.c1 = self.open(self.alice, self.h1, self.eth, 5 * WEI)
        self.c2 = self.open(self.h1, self.h2, self.eth, 5 * WEI)
        self.c3 = self.open(self.h2, self.bob, self.btc, SAT // 2)

    def node(self, name: str, backends: list, policy: ForwardingPolicy) -> Node:
        node = Node(
            identity=NodeIdentity(),
            backends={b.chain: b for b in backends},
            accounts={b.chain: b.create_account(fund=True) for b in backends},
            clock=self.ledgers.now,
            name=name,
            policy=policy,
        )
        self.net.add(node)
        return node

    def open(self, a: Node, b: Node, asset: Asset, amount: int) -> bytes:
        before = set(a.channels)
        a.open_channel(b.node_id, asset.chain, {asset: (amount, 0)}, 3600)
        self.net.run()
        self.ledgers.confirm()  # deposits at the chains' confirmation depth
        self.net.sync_chains(self.chains)
        (channel_id,) = set(a.channels) - before
        assert a.channels[channel_id].active
        return channel_id

    def pay(self, amount_sat: int):  # type: ignore[no-untyped-def]
        invoice = self.bob.invoice(amount_sat, self.btc)
        route = find_route(
            routing_graph(self.net.nodes.values()),
            self.alice.node_id,
            self.bob.node_id,
            amount_sat,
            self.btc,
            now=self.ledgers.now(),
            final_lead=invoice.final_lead + ROUTE_SLACK,
            max_lock=5 * 86400,
            source_asset=self.eth,
        )
        assert len(route) == 3
        hops = onion_hops(route, quotes_from(self.net.nodes, route))
        return self.alice.pay_route(invoice, hops), invoice

    def let_time_pass(self, rounds: int = 40, step: int = 900) -> None:
        for _ in range(rounds):
            self.ledgers.advance(step)
            self.net.sync_chains(self.chains)

    def outcome(self, node: Node, channel_id: bytes, payment_hash: bytes) -> str:
        """How the HTLC with this hash ended in this channel, from ``node``'s records."""
        text = "\n".join(node.journal)
        channel = node.channels[channel_id]
        locked = [h for h in channel.machine.state.htlcs if h.payment_hash == payment_hash]
        if locked and channel.status in ("active", "closing"):
            return "locked"
        return text  # the caller inspects the node's account of what happened


def honest(circuit: Circuit, silent: Node) -> list[Node]:
    return [n for n in (circuit.alice, circuit.h1, circuit.h2, circuit.bob) if n is not silent]


@pytest.mark.parametrize(
    ("who", "step"),
    [("bob", 6), ("h2", 4), ("h2", 10), ("h1", 3), ("h1", 12), ("alice", 8)],
)
def test_a_silent_party_never_costs_an_honest_one(who: str, step: int) -> None:
    circuit = Circuit()
    silent = getattr(circuit, who)
    payment, invoice = circuit.pay(SAT // 100)
    delivered = 0

    def reached() -> bool:
        return circuit.net.delivered >= delivered + step

    delivered = circuit.net.delivered
    circuit.net.run_until(reached)
    circuit.net.silence(silent)
    circuit.net.run()
    circuit.let_time_pass()

    bob_paid = invoice.payment_hash in circuit.bob.paid_invoices
    for node in honest(circuit, silent):
        # No honest node is left with a live HTLC of this payment in a channel it still
        # considers open: everything was resolved off-chain or taken on-chain.
        for channel in node.channels.values():
            live = [
                h for h in channel.machine.state.htlcs if h.payment_hash == invoice.payment_hash
            ]
            if live and channel.status == "active":
                pytest.fail(f"{node.name} still has a live HTLC in an open channel")
    if who != "alice":
        assert payment.status in ("succeeded", "failed")
        if payment.status == "failed":
            assert not bob_paid or who in ("h1", "h2"), "Bob paid but Alice refunded"
    # An honest hub whose outgoing HTLC was paid got paid upstream too.
    for hub in (circuit.h1, circuit.h2):
        if hub is silent:
            continue
        journal = "\n".join(hub.journal)
        lost = "failing upstream HTLC" in journal and invoice.payment_hash in hub.preimages
        assert not lost, f"{hub.name} was paid downstream but failed upstream"
