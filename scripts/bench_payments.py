#!/usr/bin/env python3
"""Multi-hop payment latency and throughput through hubs (section 2 of scripts/bench.py).

The demo's set-up (``chenilles_hub.demo``: the three embedded ledgers, nodes on the
in-process network, routes from ``find_route``), with a SQLite store (WAL, synchronous
FULL) for every node. Latency is the time from ``pay_route`` until every node is quiet
(every hop settled, the preimage back at the payer, the last acknowledgements written);
the route is computed before the clock starts and reported apart. Messages are delivered
as the node server handles them (``InProcessNetwork.run_in_jobs``): what a node received
together is one job with one checkpoint.

    .venv/bin/python scripts/bench_payments.py [--quick] [--json out.json]
"""

from __future__ import annotations

import itertools
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_common
from bench_scale import add_channels

from chenilles_hub.circuit.quote import Rate
from chenilles_hub.core import Asset
from chenilles_hub.demo import MAX_LOCK, SAT, WEI, Demo, Ledgers, _start_ledgers
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
from chenilles_hub.node.hub.journal import NODE_STATE_KEY
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.routing_view import (
    invoice_route,
    onion_hops,
    quotes_from,
    routing_graph,
)
from chenilles_hub.node.store.sqlite import SQLiteStore

#: (name, chain of each hop's channel as "evm" / "bitcoin")
CONFIGS = [
    ("evm->evm, 2 hops", ("evm", "evm")),
    ("evm->btc, 2 hops", ("evm", "bitcoin")),
    ("evm->evm, 3 hops", ("evm", "evm", "evm")),
    ("evm->btc, 3 hops", ("evm", "evm", "bitcoin")),
]

ANCHORS = {
    "lnd_payments_per_s": "33-48 (Bottlepay benchmark)",
    "eclair_ms_per_multihop_payment": 75,
    "go_nitro_ms_to_first_payment_disk_sync": 247,
    "target_3hop_crosschain_p50_ms": 25,
}


#: Idle channels on the first hub of the "hub with idle channels" line (full run).
IDLE_CHANNELS = 100_000

#: Seconds the payer adds to the invoice's final lead. The router sets the last expiry to
#: exactly ``now + final_lead`` and the payee demands exactly that on arrival, so with a clock
#: that ticks (wall time, unlike the demo's frozen ledger clock) a payment that crosses a
#: second boundary would be refused without it.
FINAL_SLACK = 60


def wall_clock(ledgers: Ledgers) -> Callable[[], int]:
    """Wall time anchored at the ledgers' time: what a node server uses. (The demo's clock,
    ``Ledgers.now``, queries three ledgers per call; it is measured apart.)"""
    base, wall0 = ledgers.now(), time.time()
    return lambda: base + int(time.time() - wall0)


def build(
    demo: Demo,
    chains: tuple[str, ...],
    directory: Path | None,
    tag: str,
    clock: Callable[[], int],
    btc_deposit: int = 2 * SAT,
) -> tuple[list[Node], Asset, Asset]:
    """Nodes in a line, a channel on ``chains[i]`` between node i and i+1; a SQLite store
    (WAL, synchronous FULL) per node in ``directory``, or none (in memory) without one.
    (The embedded regtest chain's block reward halves every 150 blocks: a run that opens
    many Bitcoin channels deposits less.)"""
    ledgers = demo.ledgers
    by_name = {"evm": ledgers.evm, "bitcoin": ledgers.bitcoin}
    eth, btc = demo.eth, demo.btc
    asset = {"evm": eth, "bitcoin": btc}
    policy = ForwardingPolicy(
        fees={eth: FeePolicy(base=1000, ppm=100), btc: FeePolicy(base=100, ppm=1000)},
        rates={(eth, btc): Rate(SAT, 20 * WEI)},
    )
    nodes: list[Node] = []
    for i in range(len(chains) + 1):
        names = {chains[j] for j in (i - 1, i) if 0 <= j < len(chains)}
        backends = [by_name[n] for n in sorted(names)]
        node = Node(
            identity=NodeIdentity(),
            backends={b.chain: b for b in backends},
            accounts={b.chain: b.create_account(fund=True) for b in backends},
            clock=clock,
            name=f"{tag}-{i}",
            policy=policy if 0 < i < len(chains) else ForwardingPolicy(),
            store=SQLiteStore(directory / f"{tag}-{i}.sqlite") if directory else None,
        )
        demo.network.add(node)
        nodes.append(node)
    for i, chain in enumerate(chains):
        a = asset[chain]
        amount = 50 * WEI if chain == "evm" else btc_deposit
        demo.open(nodes[i], nodes[i + 1], by_name[chain].chain, {a: (amount, 0)})
    return nodes, eth, asset[chains[-1]]


def onion_route(
    demo: Demo,
    graph: Any,
    payer: Node,
    invoice: Any,
    source: Asset,
    clock: Callable[[], int],
) -> list[Any]:
    """The payer's route for ``invoice`` on ``graph``, with the converting hubs' quotes."""
    route = invoice_route(
        graph,
        payer.node_id,
        invoice,
        now=clock(),
        max_lock=MAX_LOCK,
        source_asset=source,
        slack=FINAL_SLACK,
    )
    return onion_hops(route, quotes_from(demo.network.nodes, route))


def timed_payment(demo: Demo, nodes: list[Node], invoice: Any, hops: list[Any], name: str) -> float:
    """Milliseconds from the first node's ``pay_route`` until the line is quiet."""
    t0 = time.perf_counter()
    payment = nodes[0].pay_route(invoice, hops)
    demo.network.run_in_jobs(nodes)
    elapsed = (time.perf_counter() - t0) * 1e3
    if payment.status != "succeeded":
        raise RuntimeError(f"{name}: payment {payment.status}: {payment.reason}")
    return elapsed


def one_config(
    demo: Demo,
    name: str,
    chains: tuple[str, ...],
    sequential: int,
    concurrent_rounds: int,
    directory: Path,
    clock: Callable[[], int],
) -> dict[str, Any]:
    nodes, source, target = build(demo, chains, directory, name.replace(" ", ""), clock)
    payer, payee = nodes[0], nodes[-1]
    amount = SAT // 10_000 if target == demo.btc else 10**15  # 10k sat / 0.001 ETH

    def route_for(invoice: Any) -> tuple[list[Any], float]:
        t0 = time.perf_counter()
        graph = routing_graph(demo.network.nodes.values())
        hops = onion_route(demo, graph, payer, invoice, source, clock)
        return hops, (time.perf_counter() - t0) * 1e3

    latencies, route_ms = [], []
    for _ in range(3):  # warm-up
        invoice = payee.invoice(amount, target)
        hops, _ = route_for(invoice)
        payer.pay_route(invoice, hops)
        demo.network.run_in_jobs(nodes)
    for _ in range(sequential):
        invoice = payee.invoice(amount, target)
        hops, r_ms = route_for(invoice)
        route_ms.append(r_ms)
        latencies.append(timed_payment(demo, nodes, invoice, hops, name))
    assert len(hops) == len(chains)
    batch = 8
    throughput = []
    for _ in range(concurrent_rounds):
        todo = []
        for _ in range(batch):
            invoice = payee.invoice(amount, target)
            todo.append((invoice, route_for(invoice)[0]))
        t0 = time.perf_counter()
        payments = [payer.pay_route(inv, hops) for inv, hops in todo]
        demo.network.run_in_jobs(nodes)
        throughput.append(batch / (time.perf_counter() - t0))
        assert all(p.status == "succeeded" for p in payments)
    quarter = max(1, len(latencies) // 4)
    hub = nodes[1]
    assert hub.store is not None
    state = hub.store.get_setting(NODE_STATE_KEY) or b""
    result = {
        "hops": len(chains),
        "chains": list(chains),
        "latency_ms": bench_common.summary(latencies, 2),
        "latency_first_quarter_p50_ms": round(bench_common.pct(latencies[:quarter], 50), 2),
        "latency_last_quarter_p50_ms": round(bench_common.pct(latencies[-quarter:], 50), 2),
        "sequential_payments_per_s": round(1e3 / bench_common.pct(latencies, 50), 1),
        "concurrent_8_payments_per_s": bench_common.summary(throughput, 1),
        "route_ms": bench_common.summary(route_ms, 2),
        "hub_node_state_bytes_at_end": len(state),
        "payments_made": 3 + sequential + batch * concurrent_rounds,
    }
    for node in nodes:
        assert node.store is not None
        node.store.close()
    return result


def restart_with_idle_channels(
    demo: Demo, node: Node, path: Path, n: int, clock: Callable[[], int]
) -> Node:
    """Stop ``node``, add ``n`` idle EVM channels to its store and start it again from the
    store (``Node.restore``), reconnected to its peers."""
    assert node.store is not None
    node.store.close()
    evm = demo.ledgers.evm.chain
    with SQLiteStore(path) as store:
        add_channels(
            store,
            n,
            evm,
            node.accounts[evm].chain_key,
            random.Random(3),
            guards=True,
            deployment=node.backends[evm].deployment,  # as the node's own records say
        )
    store = SQLiteStore(path)  # opened again, as a restarted node opens it
    reborn = Node(
        identity=node.identity,
        backends=node.backends,
        accounts=node.accounts,
        clock=clock,
        name=node.name,
        policy=node.policy,
        store=store,
    )
    reborn.restore()
    demo.network.add(reborn)
    demo.network.revive(reborn)
    demo.network.run_in_jobs()
    return reborn


Line = tuple[list[Node], Asset, Asset, Any]


def close_stores(demo: Demo, lines: dict[str, Line]) -> None:
    """Stop the lines' nodes: off the network (a later line's chain sync would tick them,
    and they would write to a closed store), then close their SQLite stores."""
    for nodes, *_ in lines.values():
        for node in nodes:
            demo.network.remove(node)
            assert node.store is not None
            node.store.close()


def alternate(
    demo: Demo,
    lines: dict[str, Line],
    other: str,
    rounds: int,
    per_round: int,
    clock: Callable[[], int],
) -> tuple[dict[str, list[float]], list[float]]:
    """Rounds of ``per_round`` payments on the "plain" line and the ``other`` one in turn
    (after 3 each to warm up): every latency per line, and each round's ratio of the
    ``other`` line's p50 to the plain one's."""

    def pay(label: str, count: int) -> list[float]:
        nodes, source, target, graph = lines[label]
        amount = SAT // 10_000 if target == demo.btc else 10**15
        out = []
        for _ in range(count):
            invoice = nodes[-1].invoice(amount, target)
            hops = onion_route(demo, graph, nodes[0], invoice, source, clock)
            out.append(timed_payment(demo, nodes, invoice, hops, f"{other} line"))
        return out

    samples: dict[str, list[float]] = {"plain": [], other: []}
    per_round_ratio = []
    for label in samples:
        pay(label, 3)  # warm-up
    for _ in range(rounds):
        p50 = {}
        for label in samples:
            xs = pay(label, per_round)
            samples[label] += xs
            p50[label] = bench_common.pct(xs, 50)
        per_round_ratio.append(p50[other] / p50["plain"])
    return samples, per_round_ratio


def idle_channels(
    demo: Demo,
    chains: tuple[str, ...],
    idle: int,
    rounds: int,
    per_round: int,
    directory: Path,
    clock: Callable[[], int],
) -> dict[str, Any]:
    """Does a payment through a hub slow down with the channels it holds? Two lines of the
    same shape in one run, alternating rounds of ``per_round`` payments: one whose hubs
    hold only the line's channels, one whose first hub also holds ``idle`` idle channels
    (restored from its store, as after a restart). Per-event work that scales with the
    hub's channels (scans, whole-state writes) shows as a ratio above 1."""
    lines: dict[str, Line] = {}
    for label, n in (("plain", 0), ("idle", idle)):
        tag = f"idle{n}"
        nodes, source, target = build(demo, chains, directory, tag, clock)
        # The payer's graph: the line's channels, taken once. (Rebuilding it from every
        # channel of the nodes before each payment would walk the idle channels too, and
        # leave the caches cold for the payment timed next: routing is measured apart.)
        graph = routing_graph(nodes)
        if n:
            nodes[1] = restart_with_idle_channels(
                demo, nodes[1], directory / f"{tag}-1.sqlite", n, clock
            )
        lines[label] = (nodes, source, target, graph)

    samples, per_round_ratio = alternate(demo, lines, "idle", rounds, per_round, clock)
    hub = lines["idle"][0][1]
    result = {
        "chains": list(chains),
        "idle_channels_on_first_hub": idle,
        "hub_channels": len(hub.channels),
        "hub_guarded_channels": len(hub.watcher.guarded),
        "latency_ms_plain": bench_common.summary(samples["plain"], 2),
        "latency_ms_with_idle_channels": bench_common.summary(samples["idle"], 2),
        "ratio_idle_over_plain_per_round": bench_common.summary(per_round_ratio, 3),
    }
    close_stores(demo, lines)
    return result


#: The line whose first hub holds idle channels or HTLCs in flight, and the plain one beside.
HUB_LINE = ("evm", "evm", "bitcoin")

#: Side pairs of each "hub holding HTLCs" line in a full run: each pair's outgoing channel
#: has its 32 HTLC slots used, so 8 pairs hold 256 forwards. Its set-up opens channels on
#: py-evm, whose log queries grow with the chain: at the end of a full run, after the other
#: lines, the offline line's former 32 pairs had not set up in 17 minutes, and the peer
#: line (a third channel per pair) with 16 pairs not in 15. The 21st session's run with
#: 1,024 forwards is in docs/performance-history.md.
HELD_PAIRS = 8
#: The results' key of each "hub holding HTLCs" line: who holds them (``hold_forwards``)
#: and the side pairs of the full run.
HELD_LINES = {
    "hub_with_htlcs_in_flight": ("offline", HELD_PAIRS),
    "hub_with_htlcs_held_by_peer": ("peer", HELD_PAIRS),
}


def hold_forwards(
    demo: Demo, hub: Node, pairs: int, clock: Callable[[], int], *, held_by: str = "offline"
) -> int:
    """Make ``hub`` hold ``pairs`` x 32 forwards in flight, as a stranger can at will. Per
    pair, a payer's channel into the hub and:

    * ``held_by="offline"``: the hub's channel to a payee that went offline once its
      invoices were issued (the hub's HTLCs wait, queued, in the hub);
    * ``held_by="peer"``: the hub's channel to a relay that signs the hub's HTLCs and
      holds them, its own next peer (the payee) being offline: the hub's watcher owes a
      refund duty for each.

    Every channel is opened first: an opening moves the chain's clock on (its
    confirmations), which would take the HTLCs already held towards their expiry and the
    hub on-chain. Returns the forwards held."""
    evm = demo.ledgers.evm

    def new_node(role: str, k: int, policy: ForwardingPolicy) -> Node:
        node = Node(
            identity=NodeIdentity(),
            backends={evm.chain: evm},
            accounts={evm.chain: evm.create_account(fund=True)},
            clock=clock,
            name=f"{hub.name}-{role}{k}",
            policy=policy,
        )
        demo.network.add(node)
        return node

    lines = []
    for k in range(pairs):
        path = [new_node("payer", k, ForwardingPolicy()), hub]
        if held_by == "peer":
            path.append(new_node("relay", k, hub.policy))
        path.append(new_node("offline", k, ForwardingPolicy()))
        for a, b in itertools.pairwise(path):
            demo.open(a, b, evm.chain, {demo.eth: (WEI // 10, 0)})
        lines.append(path)
    for path in lines:
        payer, payee = path[0], path[-1]
        graph = routing_graph(path)
        invoices = [payee.invoice(10**12, demo.eth) for _ in range(32)]
        demo.network.silence(payee)
        for invoice in invoices:
            payer.pay_route(invoice, onion_route(demo, graph, payer, invoice, demo.eth, clock))
        demo.network.run_in_jobs()
    return len(hub.links_by_out)


def in_flight(
    demo: Demo,
    chains: tuple[str, ...],
    pairs: int,
    rounds: int,
    per_round: int,
    directory: Path,
    clock: Callable[[], int],
    held_by: str = "offline",
) -> dict[str, Any]:
    """Does a payment through a hub slow down with the HTLCs it holds in flight? Two lines
    of the same shape, alternating rounds: one whose first hub holds nothing else, one
    whose first hub holds ``pairs`` x 32 forwards stuck at offline peers, or signed and
    held by its next peer (``hold_forwards``). Per-event work that scales with what is in
    flight (a whole-state write, a copy or a walk per message) shows as a ratio above 1."""
    lines: dict[str, Line] = {}
    held = 0
    for label in ("plain", "held"):
        nodes, source, target = build(demo, chains, directory, f"{held_by}-{label}", clock)
        if label == "held":
            held = hold_forwards(demo, nodes[1], pairs, clock, held_by=held_by)
        lines[label] = (nodes, source, target, routing_graph(nodes))

    samples, per_round_ratio = alternate(demo, lines, "held", rounds, per_round, clock)
    hub = lines["held"][0][1]
    assert hub.store is not None
    result = {
        "chains": list(chains),
        "held_by": held_by,
        "forwards_held_by_first_hub": held,
        "htlcs_held_by_first_hub": len(hub.htlcs),
        "watcher_duties_of_first_hub": sum(1 for _ in hub.ctx.watcher.htlc_duties()),
        "hub_node_state_bytes": len(hub.store.get_setting(NODE_STATE_KEY) or b""),
        "latency_ms_plain": bench_common.summary(samples["plain"], 2),
        "latency_ms_with_htlcs_held": bench_common.summary(samples["held"], 2),
        "ratio_held_over_plain_per_round": bench_common.summary(per_round_ratio, 3),
    }
    close_stores(demo, lines)
    return result


#: Coinbases mined to the Bitcoin faucet at the start of a run (50 BTC each, early heights).
FAUCET_COINS = 20


def bitcoin_faucet(bitcoin: Any) -> None:
    """Pay new Bitcoin accounts from early coinbases. Without a faucet, each
    ``create_account(fund=True)`` mines a coinbase and 100 blocks to mature it, and regtest's
    subsidy halves every 150 blocks: the full run's lines (some 14 funded accounts) had
    exhausted it, and a 2 BTC deposit failed with 0.78 BTC in the account. One block per
    account from here on."""
    faucet = bitcoin.create_account(fund=False)
    faucet.wallet.fund(mature_coins=FAUCET_COINS)
    bitcoin.faucet = faucet


def demo_clock_cost(ledgers: Ledgers, calls: int = 200) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        ledgers.now()
    return round((time.perf_counter() - t0) / calls * 1e6, 1)


def run(quick: bool) -> dict[str, Any]:
    sequential = 40 if quick else 300
    rounds = 3 if quick else 20
    ledgers = _start_ledgers(lambda _line: None)
    if ledgers is None:
        return {"error": "the EVM, Bitcoin and Solana backends are needed"}
    out: dict[str, Any] = {"machine": bench_common.machine(), "anchors": ANCHORS}
    try:
        bitcoin_faucet(ledgers.bitcoin)
        demo = Demo(ledgers, lambda _line: None)
        clock = wall_clock(ledgers)
        with tempfile.TemporaryDirectory(prefix="chenilles-bench-") as tmp:
            out["configs"] = {
                name: one_config(demo, name, chains, sequential, rounds, Path(tmp), clock)
                for name, chains in CONFIGS
                if not quick or len(chains) == 3 or chains == ("evm", "evm")
            }
            # Lines of 3 hops, EVM -> EVM -> Bitcoin, in alternating rounds.
            rounds: dict[str, Any] = {
                "rounds": 2 if quick else 5,
                "per_round": 20 if quick else 40,
                "directory": Path(tmp),
                "clock": clock,
            }
            out["hub_with_idle_channels"] = idle_channels(
                demo, HUB_LINE, idle=1_000 if quick else IDLE_CHANNELS, **rounds
            )
            for key, (held_by, pairs) in HELD_LINES.items():
                out[key] = in_flight(
                    demo, HUB_LINE, pairs=4 if quick else pairs, held_by=held_by, **rounds
                )
        out["demo_clock_us_per_call"] = demo_clock_cost(ledgers)
    finally:
        for backend in ledgers.all:
            close = getattr(backend, "close", None)
            if callable(close):
                close()
    return out


if __name__ == "__main__":
    bench_common.section_main(run, __doc__)
