"""The demo's story, generic over the chains present (``chenilles demo``; see demo.py).

Amounts come from what each ledger's fresh test accounts hold (a hub deposits a hundredth
of its balance of each asset, Alice a twentieth of hers), and the hub's exchange rates
are set so that every payment costs Alice about the same share of her deposit: the story
is the same whatever the chains' units, and each line is checked to the base unit.
"""

from __future__ import annotations

from collections.abc import Sequence

from .backend import ChainBackend
from .circuit.invoice import Invoice
from .circuit.quote import Rate
from .core import Asset
from .demo_world import Demo, rate_for
from .node.hub.forwarding import FeePolicy, ForwardingPolicy
from .node.hub.node import Node
from .node.hub.routing_view import onion_hops, quotes_from

#: Payments in the story (one per payee asset, the refused one and the silent one).
_SHARE = 16


def run_scenario(demo: Demo, payer_backend: ChainBackend, users: Sequence[str]) -> None:
    out, ledgers = demo.out, demo.ledgers
    payees = [b for b in ledgers.all if b.chain != payer_backend.chain][: len(users)]
    coin = Asset(payer_backend.chain, "native")

    out("\n== nodes and channels")
    hub = demo.node("hub", ledgers.all, ForwardingPolicy())
    alice = demo.node("alice", [payer_backend], ForwardingPolicy())
    people = {
        b.chain: demo.node(name, [b], ForwardingPolicy())
        for name, b in zip(users, payees, strict=False)
    }
    held = {  # what the hub's fresh test accounts hold: its deposits are a hundredth
        asset: backend.balance(hub.accounts[backend.chain], asset)
        for backend in ledgers.all
        for asset in backend.assets()
    }
    alice_deposit = payer_backend.balance(alice.accounts[coin.chain], coin) // 20
    cost = alice_deposit // _SHARE
    targets = [(b, a) for b in payees if b.chain in people for a in b.assets() if held[a] >= 5000]
    amounts = {a: held[a] // 100 // 50 for _, a in targets}
    fees = {a: FeePolicy(base=max(1, amounts[a] // 1000), ppm=1000) for _, a in targets}
    rates = {(coin, a): rate_for(amounts[a], cost) for _, a in targets}
    hub.policy = ForwardingPolicy(fees=fees, rates=rates)
    for _, asset in targets:
        out(f"  the hub's book: {demo.fmt(cost, coin)} buys {demo.fmt(amounts[asset], asset)}")
    ledgers.sync_clocks()
    nodes = (alice, hub, *people.values())
    start = demo.wallets(nodes)
    c_alice = demo.open(alice, hub, payer_backend.chain, {coin: (alice_deposit, 0)})
    channels: dict[Asset, bytes] = {}
    for backend, asset in targets:
        deposit = held[asset] // 100
        channels[asset] = demo.open(
            hub, people[backend.chain], backend.chain, {asset: (deposit, 0)}
        )

    first_chain = targets[0][0].chain
    steps = (
        ("1", f"Alice pays in {coin}; the first other chain's user receives each of its assets"),
        ("2", "Alice pays the user of every other chain, in each of its assets"),
    )
    for (number, title), chosen in zip(
        steps,
        (
            [t for t in targets if t[0].chain == first_chain],
            [t for t in targets if t[0].chain != first_chain],
        ),
        strict=True,
    ):
        out(f"\n== {number}. {title}")
        _pay_each(demo, alice, coin, c_alice, people, channels, amounts, fees, rates, chosen)

    first_backend, first = targets[0]
    bob = people[first_backend.chain]
    c_bob = channels[first]

    out(f"\n== 3. A payment {bob.name} refuses (he cancelled the invoice): refunded on every hop")
    before_alice = demo.channel_balances(alice, c_alice, coin)
    before_bob = demo.channel_balances(bob, c_bob, first)
    cancelled = bob.invoice(amounts[first] // 2, first)
    del bob.invoices[cancelled.payment_hash]
    failed = demo.pay(alice, cancelled, coin)
    demo.expect("payment", failed.status, "failed")
    out(f"    reason: {failed.reason}")
    demo.expect("Alice/hub unchanged", demo.channel_balances(alice, c_alice, coin), before_alice)
    demo.expect(f"hub/{bob.name} unchanged", demo.channel_balances(bob, c_bob, first), before_bob)
    demo.expect(
        "no HTLC left locked",
        [len(n.channels[c].machine.state.htlcs) for n, c in ((alice, c_alice), (hub, c_bob))],
        [0, 0],
    )

    out(f"\n== 4. Alice goes silent mid-circuit; the hub enforces its claim on {coin.chain}")
    invoice = bob.invoice(amounts[first], first)
    started = demo.channel_balances(hub, c_bob, first)
    journal_mark = len(hub.journal)
    in_flight = _pay_then_silence(demo, alice, hub, invoice, c_bob, coin)
    demo.expect(
        f"{bob.name} was paid off-chain",
        demo.channel_balances(bob, c_bob, first)[1],
        started[1] + amounts[first],
    )
    demo.expect(
        "hub's incoming HTLC from Alice still locked",
        len(hub.channels[c_alice].machine.state.htlcs),
        1,
    )
    hub_account, alice_account = hub.accounts[coin.chain], alice.accounts[coin.chain]
    hub_before = payer_backend.balance(hub_account, coin)
    alice_before = payer_backend.balance(alice_account, coin)  # silent from here
    receipts_mark = len(hub.channels[c_alice].receipts)
    for _ in range(80):
        ledgers.advance(600)
        demo.network.sync_chains(ledgers.all)
        if hub.channels[c_alice].status == "closed":
            break
    for line in hub.journal[journal_mark:]:
        if any(word in line for word in ("force-closed", "claimed", "concluded", "registered")):
            out(f"    hub: {line}")
    enforced = hub.channels[c_alice].receipts[receipts_mark:]
    for receipt in enforced:
        demo.receipts.append((f"hub: enforce on {coin.chain}", receipt))
    spent = sum(r.fee for r in enforced if r.fee_asset == coin)
    demo.expect(
        "hub withdrew its balance plus the claimed HTLC, minus fees",
        payer_backend.balance(hub_account, coin) - hub_before,
        hub.channels[c_alice].machine.state.free(coin)[1] + in_flight - spent,
    )

    out("\n   Alice comes back online and collects her share of the latest state")
    alice_channel = alice.channels[c_alice]
    receipt = payer_backend.withdraw(alice_channel.params, 0, alice_account, coin)
    demo.receipts.append(("alice: withdraw after dispute", receipt))
    demo.expect(
        "Alice received her full balance of the latest state, minus fees",
        payer_backend.balance(alice_account, coin) - alice_before,
        hub.channels[c_alice].machine.state.free(coin)[0] - receipt.fee,
    )

    out("\n== 5. Cooperative closes pay out on-chain; every payee withdraws to its wallet")
    for backend, asset in targets:
        peer, channel_id = people[backend.chain], channels[asset]
        mark = len(hub.channels[channel_id].receipts)
        account = peer.accounts[backend.chain]
        wallet_before = backend.balance(account, asset)
        hub.close(channel_id)
        demo.network.run()
        demo.expect(
            f"hub-{peer.name} on {backend.chain}", hub.channels[channel_id].status, "closed"
        )
        for receipt in hub.channels[channel_id].receipts[mark:]:
            demo.receipts.append((f"hub: close {backend.chain}", receipt))
        receipt = backend.withdraw(peer.channels[channel_id].params, 1, account, asset)
        demo.receipts.append((f"{peer.name}: withdraw", receipt))
        owed = peer.channels[channel_id].machine.state.free(asset)[1]
        own_fee = receipt.fee if receipt.fee_asset == asset else 0
        demo.expect(
            f"{peer.name} received {asset.token[:12]} on-chain (minus its own fee)",
            backend.balance(account, asset) - wallet_before,
            owed - own_fee,
        )

    out("\n== on-chain wallets, before and after (base units; fees and test funding included)")
    demo.print_wallets(start, demo.wallets(nodes))


def _pay_then_silence(
    demo: Demo, alice: Node, hub: Node, invoice: Invoice, c_bob: bytes, coin: Asset
) -> int:
    """Pay, but cut Alice off as soon as the hub has forwarded (her HTLC is irrevocable)."""
    route = demo.route(alice, invoice, coin)
    alice.pay_route(invoice, onion_hops(route, quotes_from(demo.network.nodes, route)))
    demo.network.run_until(
        lambda: bool(hub.channels[c_bob].queue or hub.channels[c_bob].machine.pending)
    )
    demo.network.silence(alice)
    demo.network.run()
    return route[0].amount


def _pay_each(
    demo: Demo,
    alice: Node,
    coin: Asset,
    c_alice: bytes,
    people: dict[str, Node],
    channels: dict[Asset, bytes],
    amounts: dict[Asset, int],
    fees: dict[Asset, FeePolicy],
    rates: dict[tuple[Asset, Asset], Rate],
    targets: list[tuple[ChainBackend, Asset]],
) -> None:
    """Alice pays one invoice per (chain, asset) of ``targets``; each checked to the unit."""
    for backend, asset in targets:
        payee = people[backend.chain]
        demo.out(f"  -> {payee.name} receives {demo.fmt(amounts[asset], asset)} on {backend.chain}")
        before_alice = demo.channel_balances(alice, c_alice, coin)
        before = demo.channel_balances(payee, channels[asset], asset)
        payment = demo.pay(alice, payee.invoice(amounts[asset], asset, description="demo"), coin)
        demo.expect("payment", payment.status, "succeeded")
        fee = fees[asset]
        want = rates[(coin, asset)].required_input(
            amounts[asset] + fee.base + -(-amounts[asset] * fee.ppm // 10**6)
        )
        demo.expect("Alice paid (base units)", payment.sent, want)
        demo.expect(
            "Alice/hub channel",
            demo.channel_balances(alice, c_alice, coin),
            (before_alice[0] - want, before_alice[1] + want),
        )
        demo.expect(
            f"hub/{payee.name} channel",
            demo.channel_balances(payee, channels[asset], asset),
            (before[0] - amounts[asset], before[1] + amounts[asset]),
        )
