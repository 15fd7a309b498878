"""The demo's world: its ledgers and clocks, its nodes and channels, payments and checks
(``chenilles demo``: demo.py runs it, demo_scenario.py tells the story)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import gcd

from .backend import ChainBackend, TxReceipt, asset_info
from .circuit.invoice import Invoice
from .circuit.quote import Rate
from .core import Asset
from .core.routing import RouteHop
from .identity import NodeIdentity
from .node.hub.forwarding import ForwardingPolicy
from .node.hub.network import InProcessNetwork
from .node.hub.node import Node
from .node.hub.records import Payment
from .node.hub.routing_view import invoice_route, onion_hops, quotes_from, routing_graph
from .sandbox import MAX_LOCK


class DemoFailure(AssertionError):
    pass


class Ledgers:
    """The embedded ledgers of a demo (one backend per chain), and their clocks."""

    def __init__(self, *backends: ChainBackend) -> None:
        self.all: tuple[ChainBackend, ...] = tuple({b.chain: b for b in backends}.values())

    def family(self, family: str) -> ChainBackend:
        for backend in self.all:
            if backend.info.family == family:
                return backend
        raise KeyError(f"no {family} ledger among {[b.chain for b in self.all]}")

    @property
    def evm(self) -> ChainBackend:  # scripts/bench_payments.py
        return self.family("EVM")

    @property
    def bitcoin(self) -> ChainBackend:
        return self.family("Bitcoin")

    def now(self) -> int:
        return max(b.now() for b in self.all)

    def sync_clocks(self) -> None:
        """Bring every ledger's clock up to the latest one (Bitcoin moves in whole blocks),
        as wall time would in a real deployment."""
        for _ in range(4):
            target = self.now()
            behind = [(b, target - b.now()) for b in self.all if b.now() < target]
            if not behind:
                return
            for backend, gap in behind:
                backend.advance_time(gap)

    def advance(self, seconds: int) -> None:
        for backend in self.all:
            backend.advance_time(seconds)
        self.sync_clocks()

    def confirm(self) -> None:
        """Let every ledger produce the blocks a deposit needs to be final (a node's
        default confirmation depth), as a real chain does while its users wait."""
        for backend in self.all:
            model = backend.time_model()
            for _ in range(model.finality_depth):
                backend.advance_time(max(1, model.block_interval_ms // 1000))
        self.sync_clocks()


@dataclass
class Demo:
    ledgers: Ledgers
    out: Callable[[str], None]
    network: InProcessNetwork = field(default_factory=InProcessNetwork)
    failures: list[str] = field(default_factory=list)
    receipts: list[tuple[str, TxReceipt]] = field(default_factory=list)

    @property
    def eth(self) -> Asset:  # scripts/bench_payments.py
        return Asset(self.ledgers.evm.chain, "native")

    @property
    def btc(self) -> Asset:
        return Asset(self.ledgers.bitcoin.chain, "native")

    def backend(self, asset: Asset) -> ChainBackend:
        return next(b for b in self.ledgers.all if b.chain == asset.chain)

    def fmt(self, amount: int, asset: Asset) -> str:
        return asset_info(self.backend(asset), asset).format(amount)

    # --- set-up ---------------------------------------------------------------------------

    def node(self, name: str, backends: Sequence[ChainBackend], policy: ForwardingPolicy) -> Node:
        node = Node(
            identity=NodeIdentity(),
            backends={b.chain: b for b in backends},
            accounts={b.chain: b.create_account(fund=True) for b in backends},
            clock=self.ledgers.now,
            name=name,
            policy=policy,
        )
        self.network.add(node)
        return node

    def open(self, a: Node, b: Node, chain: str, deposits: dict[Asset, tuple[int, int]]) -> bytes:
        before = set(a.channels)
        a.open_channel(b.node_id, chain, deposits, challenge_duration=3600)
        self.network.run()
        self.ledgers.confirm()  # the nodes use a channel once the chain shows its deposits
        self.network.sync_chains(self.ledgers.all)
        (channel_id,) = set(a.channels) - before
        channel = a.channels[channel_id]
        if not channel.active:
            raise DemoFailure(f"channel {a.name}-{b.name} on {chain} did not open")
        for receipt in channel.receipts:
            self.receipts.append((f"{a.name}: fund {chain}", receipt))
        what = ", ".join(self.fmt(amount, asset) for asset, (amount, _) in deposits.items())
        self.out(f"  {a.name} -> {b.name} on {chain}: funded with {what}")
        self.ledgers.sync_clocks()
        return channel_id

    # --- checks ---------------------------------------------------------------------------

    def wallets(self, nodes: Sequence[Node]) -> dict[tuple[str, Asset], int]:
        return {
            (node.name, asset): node.backends[chain].balance(account, asset)
            for node in nodes
            for chain, account in node.accounts.items()
            for asset in node.backends[chain].assets()
        }

    def print_wallets(
        self, before: dict[tuple[str, Asset], int], after: dict[tuple[str, Asset], int]
    ) -> None:
        self.out(f"  {'node':6s} {'unit':12s} {'before':>26s} {'after':>26s} {'change':>22s}")
        for (name, asset), amount in before.items():
            label = asset_info(self.backend(asset), asset).unit[:12]
            change = after[(name, asset)] - amount
            self.out(
                f"  {name:6s} {label:12s} {amount:>26d} {after[(name, asset)]:>26d} {change:>+22d}"
            )

    def expect(self, what: str, got: object, want: object) -> None:
        mark = "ok " if got == want else "BAD"
        self.out(f"    [{mark}] {what}: {got}" + ("" if got == want else f" (expected {want})"))
        if got != want:
            self.failures.append(what)

    def channel_balances(self, node: Node, channel_id: bytes, asset: Asset) -> tuple[int, ...]:
        return node.channels[channel_id].machine.state.free(asset)

    # --- paying -----------------------------------------------------------------------------

    def route(self, payer: Node, invoice: Invoice, payer_asset: Asset) -> tuple[RouteHop, ...]:
        graph = routing_graph(self.network.nodes.values())
        route = invoice_route(
            graph,
            payer.node_id,
            invoice,
            now=self.ledgers.now(),
            max_lock=MAX_LOCK,
            source_asset=payer_asset,
        )
        return route

    def pay(self, payer: Node, invoice: Invoice, payer_asset: Asset) -> Payment:
        route = self.route(payer, invoice, payer_asset)
        hops = onion_hops(route, quotes_from(self.network.nodes, route))
        path = " -> ".join(
            f"{self.fmt(h.amount, h.asset)} (expires in {h.expiry - self.ledgers.now()}s)"
            for h in hops
        )
        self.out(f"    route: {path}")
        started = time.perf_counter()
        payment = payer.pay_route(invoice, hops)
        self.network.run()
        self.out(f"    payment {payment.status} in {1000 * (time.perf_counter() - started):.1f} ms")
        return payment


def rate_for(amount_out: int, cost_in: int) -> Rate:
    """The hub's rate that makes ``amount_out`` cost ``cost_in``, in lowest terms."""
    divisor = gcd(amount_out, cost_in)
    return Rate(amount_out // divisor, cost_in // divisor)
