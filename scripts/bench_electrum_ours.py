"""Our side of the Electrum section (``scripts/bench_electrum.py``): nodes in a line on the
demo's embedded ledgers, paying one at a time or in bursts driven like the node server,
and the Bitcoin authority's work per state on a channel of its own."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_payments import FINAL_SLACK, build

from chenilles_hub.core import ChannelState, Htlc, SignedState
from chenilles_hub.core.model import AssetBalances
from chenilles_hub.demo import MAX_LOCK, SAT, Demo
from chenilles_hub.node.hub.gossip import own_announcement
from chenilles_hub.node.hub.graph_view import GraphView
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.routing_view import invoice_route, onion_hops, quotes_from

#: Electrum's two set-ups: its test harness (nothing written) and with its wallet file.
ELECTRUM, ELECTRUM_FILE = "electrum", "electrum wallet file"
#: Payments started together in the in-flight rounds (both sides batch them into shared
#: commitments: Electrum's htlc_switch, our per-channel queue).
IN_FLIGHT = 8
#: 10,000 sat per payment on both sides (Electrum's amounts are in msat).
AMOUNT_SAT = 10_000

#: (name, chain of every hop, persisted in SQLite)
SHAPES = (
    ("bitcoin, memory", "bitcoin", False),
    ("bitcoin, sqlite", "bitcoin", True),
    ("evm, memory", "evm", False),
    ("evm, sqlite", "evm", True),
)


class Line:
    """Our nodes in a line, paying from the first to the last."""

    def __init__(
        self, demo: Demo, chains: tuple[str, ...], directory: Path | None, tag: str, clock: Any
    ) -> None:
        self.demo, self.clock = demo, clock
        self.nodes, _, self.target = build(
            demo, chains, directory, tag, clock, btc_deposit=SAT // 10
        )
        self.source = self.target  # one chain per line
        self.amount = AMOUNT_SAT if self.target == demo.btc else 10**15
        self.checkpoints = 0
        #: Relaxed checkpoints (nothing left after them: synced with the next durable one).
        self.relaxed = 0
        self.persists = directory is not None
        for node in self.nodes:
            if node.store is not None:
                self._count(node)
        #: The payer's view of the network, kept between payments as a node server keeps
        #: it: the others' channels as they announced them, its own read fresh each time.
        self.view = GraphView()
        for node in self.nodes[1:]:
            self.view.accept(node.node_id, own_announcement(node))

    def _count(self, node: Node) -> None:
        """Count the store's durable checkpoints (each one fsynced transaction) and, apart,
        the relaxed ones (``Store.save_checkpoint(durable=False)``: no fsync of their own)."""
        store = node.store
        assert store is not None
        inner = store.save_checkpoint

        def counted(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("durable", True):
                self.checkpoints += 1
            else:
                self.relaxed += 1
            return inner(*args, **kwargs)

        store.save_checkpoint = counted  # type: ignore[method-assign]

    def versions(self) -> int:
        """Signed versions summed over the line's channels (each counted once)."""
        latest = {cid: c.machine.latest for n in self.nodes for cid, c in n.channels.items()}
        return sum(s.version for s in latest.values() if s is not None)

    def route(self, invoice: Any) -> list[Any]:
        """The payer's route for ``invoice``: part of a payment's time, as in Electrum.
        Planned as the node server plans it (``api.operations.plan_route``): on the graph
        it keeps, with the bound it keeps for its own payments."""
        network = self.demo.network
        payer = self.nodes[0]
        route = invoice_route(
            self.view.graph(payer),
            payer.node_id,
            invoice,
            now=self.clock(),
            max_lock=MAX_LOCK,
            source_asset=self.source,
            slack=FINAL_SLACK,
            strategy="cached",
        )
        return onion_hops(route, quotes_from(network.nodes, route))

    def pay(self, n: int) -> list[float]:
        """``n`` payments one at a time, in milliseconds each. Messages are delivered as the
        node server handles them (``InProcessNetwork.run_in_jobs``): what a peer sent
        together (an Accept and the next proposal, in one socket write) is one job with one
        checkpoint."""
        payer, payee = self.nodes[0], self.nodes[-1]
        out = []
        for _ in range(n):
            invoice = payee.invoice(self.amount, self.target)
            t0 = time.perf_counter()  # route finding counts, as it does in Electrum's time
            hops = self.route(invoice)
            payment = payer.pay_route(invoice, hops)
            self.demo.network.run_in_jobs(self.nodes)
            out.append((time.perf_counter() - t0) * 1e3)
            if payment.status != "succeeded":
                raise RuntimeError(f"payment {payment.status}: {payment.reason}")
        return out

    def burst(self, k: int, n: int) -> list[float]:
        """``n`` times ``k`` payments started together: seconds until all ``k`` succeeded.

        Driven as the node server drives a node (``chenilles_hub/node/runtime/server.py``):
        what arrived together is handled as one job with one checkpoint, and what the job
        sends leaves only after that checkpoint (``InProcessNetwork.run_in_jobs``)."""
        payer, payee = self.nodes[0], self.nodes[-1]
        out = []
        for _ in range(n):
            invoices = [payee.invoice(self.amount, self.target) for _ in range(k)]
            t0 = time.perf_counter()
            todo = [(invoice, self.route(invoice)) for invoice in invoices]
            payer.autocommit = False
            try:
                payments = [payer.pay_route(invoice, hops) for invoice, hops in todo]
            finally:
                payer.autocommit = True
            payer.checkpoint()
            self.demo.network.run_in_jobs(self.nodes)
            out.append(time.perf_counter() - t0)
            if not all(p.status == "succeeded" for p in payments):
                raise RuntimeError("a payment in a burst failed")
        return out

    def close(self) -> None:
        for node in self.nodes:
            if node.store is not None:
                node.store.close()


def bitcoin_states(demo: Demo, clock: Callable[[], int]) -> Callable[[int], list[float]]:
    """ms per state with 2 HTLCs, both sides, on a Bitcoin channel of its own (never paid on):
    both sign, both verify, both revoke the previous version and check the peer's revocation.
    The authorities are fresh from the backend, as a node gets them when it opens a channel."""
    line = Line(demo, ("bitcoin",), None, "states", clock)
    line.pay(1)  # the payee gets a balance, so an HTLC can go each way
    a, b = line.nodes
    (cid,) = a.channels
    ca, cb = a.channels[cid], b.channels[cid]
    auth = (
        ca.backend.authority(ca.params, ca.account, ca.me),
        cb.backend.authority(cb.params, cb.account, cb.me),
    )
    params = ca.params
    latest = ca.machine.latest
    assert latest is not None and ca.me == 0
    state0 = latest.state
    btc = demo.btc
    free = state0.free(btc)
    amount = AMOUNT_SAT // 2
    htlcs = tuple(
        Htlc(
            id=i,
            payer=i,
            asset=btc,
            amount=amount,
            payment_hash=hashlib.sha256(b"bench htlc %d" % i).digest(),
            expiry=clock() + 3600,
            native_expiry=500,
        )
        for i in (0, 1)
    )
    balances = (AssetBalances(btc, (free[0] - amount, free[1] - amount)),)
    previous = latest

    def rounds(n: int) -> list[float]:
        nonlocal previous
        out = []
        for _ in range(n):
            state = ChannelState(cid, previous.version + 1, balances, htlcs)
            t0 = time.perf_counter()
            sig0 = auth[0].sign(params, state, previous)
            sig1 = auth[1].sign(params, state, previous)
            ok = auth[1].verify(params, state, 0, sig0, previous)
            ok &= auth[0].verify(params, state, 1, sig1, previous)
            rev0 = auth[0].revoke(params, previous)
            rev1 = auth[1].revoke(params, previous)
            ok &= auth[1].verify_revocation(params, previous, 0, rev0)
            ok &= auth[0].verify_revocation(params, previous, 1, rev1)
            out.append((time.perf_counter() - t0) * 1e3)
            if not ok:
                raise RuntimeError("a Bitcoin state or revocation did not verify")
            previous = SignedState(state, (sig0, sig1))
        return out

    return rounds
