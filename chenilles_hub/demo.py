"""``chenilles demo``: one hub, three users, three chains, payments that cross them.

Every installed backend starts its embedded ledger (EVM: py-evm; Bitcoin: a regtest chain
validated by libbitcoinkernel; Solana: our program in LiteSVM). A hub opens and funds
channels on each; Alice pays in ETH and Bob receives BTC, Carol receives SOL and an SPL
token; a payment the payee refuses is refunded on every hop; and Alice goes silent in the
middle of a circuit, so the hub's watcher enforces its claim on-chain. Every balance is
checked, and the command exits 0 only if each is what it must be.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click

from . import plugins
from .backend import ChainBackend, TxReceipt
from .circuit.invoice import ROUTE_SLACK, Invoice
from .circuit.quote import Rate
from .core import Asset
from .core.routing import find_route
from .identity import NodeIdentity
from .node.hub.forwarding import FeePolicy, ForwardingPolicy
from .node.hub.network import InProcessNetwork
from .node.hub.node import Node
from .node.hub.records import Payment
from .node.hub.routing_view import onion_hops, quotes_from, routing_graph

WEI, SAT, LAMPORT = 10**18, 10**8, 10**9  # base units per ETH, BTC, SOL
TOKEN_UNIT = 10**6  # the SPL test token has 6 decimals
MAX_LOCK = 3 * 86400


class DemoFailure(AssertionError):
    pass


@dataclass
class Ledgers:
    evm: ChainBackend
    bitcoin: ChainBackend
    solana: ChainBackend

    @property
    def all(self) -> tuple[ChainBackend, ...]:
        return (self.evm, self.bitcoin, self.solana)

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
        for backend in dict.fromkeys(self.all):
            model = backend.time_model()
            for _ in range(model.finality_depth):
                backend.advance_time(max(1, model.block_interval_ms // 1000))
        self.sync_clocks()


class Demo:
    def __init__(self, ledgers: Ledgers, out: Callable[[str], None]) -> None:
        self.ledgers = ledgers
        self.out = out
        self.network = InProcessNetwork()
        self.eth = Asset(ledgers.evm.chain, "native")
        self.btc = Asset(ledgers.bitcoin.chain, "native")
        self.sol = Asset(ledgers.solana.chain, "native")
        token = [a for a in ledgers.solana.assets() if a.token != "native"]
        self.token = token[0]
        self.failures: list[str] = []
        self.receipts: list[tuple[str, TxReceipt]] = []

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
        self.network.sync_chains(dict.fromkeys(self.ledgers.all))
        (channel_id,) = set(a.channels) - before
        channel = a.channels[channel_id]
        if not channel.active:
            raise DemoFailure(f"channel {a.name}-{b.name} on {chain} did not open")
        for receipt in channel.receipts:
            self.receipts.append((f"{a.name}: fund {chain}", receipt))
        what = ", ".join(f"{_fmt(amount, asset)}" for asset, (amount, _) in deposits.items())
        self.out(f"  {a.name} -> {b.name} on {chain}: funded with {what}")
        self.ledgers.sync_clocks()
        return channel_id

    # --- checks ---------------------------------------------------------------------------

    def wallets(self, nodes: Sequence[Node]) -> dict[tuple[str, Asset], int]:
        """On-chain balances of every node's account, per asset it can hold."""
        return {
            (node.name, asset): node.backends[chain].balance(account, asset)
            for node in nodes
            for chain, account in node.accounts.items()
            for asset in node.backends[chain].assets()
        }

    def print_wallets(
        self, before: dict[tuple[str, Asset], int], after: dict[tuple[str, Asset], int]
    ) -> None:
        self.out(f"  {'node':6s} {'asset':10s} {'before':>26s} {'after':>26s} {'change':>22s}")
        for (name, asset), amount in before.items():
            label = _unit(asset)
            change = after[(name, asset)] - amount
            self.out(
                f"  {name:6s} {label:10s} {amount:>26d} {after[(name, asset)]:>26d} {change:>+22d}"
            )

    def expect(self, what: str, got: object, want: object) -> None:
        mark = "ok " if got == want else "BAD"
        self.out(f"    [{mark}] {what}: {got}" + ("" if got == want else f" (expected {want})"))
        if got != want:
            self.failures.append(what)

    def channel_balances(self, node: Node, channel_id: bytes, asset: Asset) -> tuple[int, ...]:
        return node.channels[channel_id].machine.state.free(asset)

    # --- paying -----------------------------------------------------------------------------

    def pay(self, payer: Node, invoice: Invoice, payer_asset: Asset) -> Payment:
        graph = routing_graph(self.network.nodes.values())
        route = find_route(
            graph,
            payer.node_id,
            invoice.payee,
            invoice.amount,
            invoice.asset,
            now=self.ledgers.now(),
            final_lead=invoice.final_lead + ROUTE_SLACK,
            max_lock=MAX_LOCK,
            source_asset=payer_asset,
        )
        hops = onion_hops(route, quotes_from(self.network.nodes, route))
        path = " -> ".join(
            f"{_fmt(h.amount, h.asset)} (expires in {h.expiry - self.ledgers.now()}s)" for h in hops
        )
        self.out(f"    route: {path}")
        started = time.perf_counter()
        payment = payer.pay_route(invoice, hops)
        self.network.run()
        self.out(f"    payment {payment.status} in {1000 * (time.perf_counter() - started):.1f} ms")
        return payment


def _unit(asset: Asset) -> str:
    family = asset.chain.split(":")[0]
    if asset.token == "native":
        return {"eip155": "wei", "bip122": "sat", "solana": "lamport"}[family]
    return "token" if family == "solana" else "erc20"


def _fmt(amount: int, asset: Asset) -> str:
    if asset.token == "native":
        unit, scale = {"eip155": ("ETH", WEI), "bip122": ("BTC", SAT), "solana": ("SOL", LAMPORT)}[
            asset.chain.split(":")[0]
        ]
        return f"{amount / scale:.8f} {unit} ({amount} base units)"
    return f"{amount / TOKEN_UNIT:.2f} TOKEN ({amount} base units)"


def _start_ledgers(out: Callable[[str], None]) -> Ledgers | None:
    by_family: dict[str, ChainBackend] = {}
    for factory in plugins.installed_backends(fresh=True):
        started = time.perf_counter()
        backend = factory.embedded()
        by_family[factory.info.family] = backend
        out(
            f"  {factory.info.name:8s} {backend.chain:28s} embedded ledger up in "
            f"{time.perf_counter() - started:.1f}s ({factory.info.description})"
        )
    if not {"EVM", "Bitcoin", "Solana"} <= set(by_family):
        out(f"  the demo needs the EVM, Bitcoin and Solana backends; found {sorted(by_family)}")
        return None
    return Ledgers(by_family["EVM"], by_family["Bitcoin"], by_family["Solana"])


def run_demo(out: Callable[[str], None] = click.echo) -> int:
    out("Chenilles: one hub, three chains, atomic cross-chain payments\n")
    out("== embedded ledgers (each runs its chain's real execution or consensus code)")
    ledgers = _start_ledgers(out)
    if ledgers is None:
        return 1
    try:
        demo = Demo(ledgers, out)
        scenario(demo)
    finally:
        for backend in ledgers.all:
            close = getattr(backend, "close", None)
            if callable(close):
                close()
    out("\n== on-chain transactions")
    for label, receipt in demo.receipts:
        out(
            f"  {label:34s} {receipt.operation:20s} {receipt.cost:>8} {receipt.cost_unit:3s} "
            f"fee {_fmt(receipt.fee, receipt.fee_asset)}"
        )
    if demo.failures:
        out(f"\nFAILED: {len(demo.failures)} balance(s) not as expected: {demo.failures}")
        return 1
    out("\nevery balance is what it must be")
    return 0


def scenario(demo: Demo) -> None:
    out, ledgers = demo.out, demo.ledgers
    eth, btc, sol, token = demo.eth, demo.btc, demo.sol, demo.token
    # The hub's book: 1 BTC = 20 ETH, 1 ETH = 100 SOL, 1 ETH = 3000 TOKEN; fees per asset.
    hub_policy = ForwardingPolicy(
        fees={
            btc: FeePolicy(base=100, ppm=1000),
            sol: FeePolicy(base=10_000, ppm=1000),
            token: FeePolicy(base=1_000, ppm=1000),
        },
        rates={
            (eth, btc): Rate(SAT, 20 * WEI),
            (eth, sol): Rate(100 * LAMPORT, WEI),
            (eth, token): Rate(3000 * TOKEN_UNIT, WEI),
        },
    )
    out("\n== nodes and channels")
    hub = demo.node("hub", ledgers.all, hub_policy)
    alice = demo.node("alice", [ledgers.evm], ForwardingPolicy())
    bob = demo.node("bob", [ledgers.bitcoin], ForwardingPolicy())
    carol = demo.node("carol", [ledgers.solana], ForwardingPolicy())
    ledgers.sync_clocks()
    nodes = (alice, hub, bob, carol)
    start = demo.wallets(nodes)
    c_alice = demo.open(alice, hub, ledgers.evm.chain, {eth: (5 * WEI, 0)})
    c_bob = demo.open(hub, bob, ledgers.bitcoin.chain, {btc: (SAT // 2, 0)})
    c_carol = demo.open(hub, carol, ledgers.solana.chain, {sol: (50 * LAMPORT, 0)})
    c_carol_token = demo.open(hub, carol, ledgers.solana.chain, {token: (10_000 * TOKEN_UNIT, 0)})

    out("\n== 1. Alice pays in ETH on EVM, Bob receives 0.01 BTC on Bitcoin")
    invoice = bob.invoice(SAT // 100, btc, description="coffee beans")
    payment = demo.pay(alice, invoice, eth)
    demo.expect("payment", payment.status, "succeeded")
    sent_eth = payment.sent
    want_eth = Rate(SAT, 20 * WEI).required_input(
        SAT // 100 + 100 + -(-(SAT // 100) * 1000 // 10**6)
    )
    demo.expect("Alice paid (wei)", sent_eth, want_eth)
    demo.expect(
        "Alice/hub on EVM",
        demo.channel_balances(alice, c_alice, eth),
        (5 * WEI - want_eth, want_eth),
    )
    demo.expect(
        "hub/Bob on Bitcoin",
        demo.channel_balances(bob, c_bob, btc),
        (SAT // 2 - SAT // 100, SAT // 100),
    )

    out("\n== 2. Alice pays in ETH, Carol receives 2 SOL and 150 TOKEN on Solana")
    before = demo.channel_balances(alice, c_alice, eth)
    p_sol = demo.pay(alice, carol.invoice(2 * LAMPORT, sol), eth)
    p_tok = demo.pay(alice, carol.invoice(150 * TOKEN_UNIT, token), eth)
    demo.expect("payments", (p_sol.status, p_tok.status), ("succeeded", "succeeded"))
    demo.expect(
        "hub/Carol SOL", demo.channel_balances(carol, c_carol, sol), (48 * LAMPORT, 2 * LAMPORT)
    )
    demo.expect(
        "hub/Carol TOKEN",
        demo.channel_balances(carol, c_carol_token, token),
        (9_850 * TOKEN_UNIT, 150 * TOKEN_UNIT),
    )
    demo.expect(
        "Alice paid exactly what the hops asked",
        before[0] - demo.channel_balances(alice, c_alice, eth)[0],
        p_sol.sent + p_tok.sent,
    )

    out("\n== 3. A payment Bob refuses (he cancelled the invoice): refunded on every hop")
    before_alice = demo.channel_balances(alice, c_alice, eth)
    before_bob = demo.channel_balances(bob, c_bob, btc)
    cancelled = bob.invoice(SAT // 200, btc)
    del bob.invoices[cancelled.payment_hash]
    failed = demo.pay(alice, cancelled, eth)
    demo.expect("payment", failed.status, "failed")
    out(f"    reason: {failed.reason}")
    demo.expect("Alice/hub unchanged", demo.channel_balances(alice, c_alice, eth), before_alice)
    demo.expect("hub/Bob unchanged", demo.channel_balances(bob, c_bob, btc), before_bob)
    demo.expect(
        "no HTLC left locked",
        [len(n.channels[c].machine.state.htlcs) for n, c in ((alice, c_alice), (hub, c_bob))],
        [0, 0],
    )

    out("\n== 4. Alice goes silent mid-circuit; the hub enforces its claim on EVM on-chain")
    invoice = bob.invoice(SAT // 50, btc)
    graph_payment_started = demo.channel_balances(hub, c_bob, btc)
    hops_before = len(hub.journal)
    route_payment = demo_pay_then_silence(demo, alice, hub, invoice, c_bob)
    demo.expect(
        "Bob was paid off-chain",
        demo.channel_balances(bob, c_bob, btc)[1],
        graph_payment_started[1] + SAT // 50,
    )
    locked = hub.channels[c_alice].machine.state.htlcs
    demo.expect("hub's incoming HTLC from Alice still locked", len(locked), 1)
    hub_account = hub.accounts[ledgers.evm.chain]
    hub_before = ledgers.evm.balance(hub_account, eth)
    alice_account = alice.accounts[ledgers.evm.chain]
    alice_before = ledgers.evm.balance(alice_account, eth)  # silent from here: spends nothing
    receipts_before = len(hub.channels[c_alice].receipts)
    for _ in range(80):
        ledgers.advance(600)
        demo.network.sync_chains(ledgers.all)
        if hub.channels[c_alice].status == "closed":
            break
    for line in hub.journal[hops_before:]:
        if any(word in line for word in ("force-closed", "claimed", "concluded", "registered")):
            out(f"    hub: {line}")
    spent = sum(r.fee for r in hub.channels[c_alice].receipts[receipts_before:])
    for receipt in hub.channels[c_alice].receipts[receipts_before:]:
        demo.receipts.append(("hub: enforce on EVM", receipt))
    hub_free = hub.channels[c_alice].machine.state.free(eth)[1]
    demo.expect(
        "hub withdrew its balance plus the claimed HTLC, minus gas",
        ledgers.evm.balance(hub_account, eth) - hub_before,
        hub_free + route_payment + 0 - spent,
    )

    out("\n   Alice comes back online: the hub's conclusion already paid her share")
    alice_channel = alice.channels[c_alice]
    receipt = ledgers.evm.withdraw(alice_channel.params, 0, alice_account, eth)
    demo.receipts.append(("alice: withdraw after dispute", receipt))
    demo.expect(
        "Alice received her full balance of the latest state, minus gas",
        ledgers.evm.balance(alice_account, eth) - alice_before,
        hub.channels[c_alice].machine.state.free(eth)[0] - receipt.fee,
    )

    out("\n== 5. Cooperative closes pay out on-chain; Bob and Carol withdraw to their wallets")
    closes = (
        (bob, c_bob, btc, ledgers.bitcoin),
        (carol, c_carol, sol, ledgers.solana),
        (carol, c_carol_token, token, ledgers.solana),
    )
    for peer, channel_id, asset, backend in closes:
        mark = len(hub.channels[channel_id].receipts)
        account = peer.accounts[asset.chain]
        wallet_before = backend.balance(account, asset)
        hub.close(channel_id)
        demo.network.run()
        demo.expect(f"hub-{peer.name} on {asset.chain}", hub.channels[channel_id].status, "closed")
        for receipt in hub.channels[channel_id].receipts[mark:]:
            demo.receipts.append((f"hub: close {asset.chain}", receipt))
        receipt = backend.withdraw(peer.channels[channel_id].params, 1, account, asset)
        demo.receipts.append((f"{peer.name}: withdraw", receipt))
        owed = peer.channels[channel_id].machine.state.free(asset)[1]
        fee = receipt.fee if receipt.fee_asset == asset else 0
        demo.expect(
            f"{peer.name} received on-chain (minus its own fee)",
            backend.balance(account, asset) - wallet_before,
            owed - fee,
        )

    out("\n== on-chain wallets, before and after (base units; fees and test funding included)")
    demo.print_wallets(start, demo.wallets(nodes))


def demo_pay_then_silence(
    demo: Demo, alice: Node, hub: Node, invoice: Invoice, c_bob: bytes
) -> int:
    """Pay, but cut Alice off as soon as the hub has forwarded (her HTLC is irrevocable)."""
    graph = routing_graph(demo.network.nodes.values())
    route = find_route(
        graph,
        alice.node_id,
        invoice.payee,
        invoice.amount,
        invoice.asset,
        now=demo.ledgers.now(),
        final_lead=invoice.final_lead + ROUTE_SLACK,
        max_lock=MAX_LOCK,
        source_asset=demo.eth,
    )
    alice.pay_route(invoice, onion_hops(route, quotes_from(demo.network.nodes, route)))
    demo.network.run_until(
        lambda: bool(hub.channels[c_bob].queue or hub.channels[c_bob].machine.pending)
    )
    demo.network.silence(alice)
    demo.network.run()
    return route[0].amount
