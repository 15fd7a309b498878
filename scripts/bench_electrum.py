#!/usr/bin/env python3
"""A real Lightning peer side by side with ours, in the same run (section "electrum").

Electrum 4.3.4 (Debian's ``python3-electrum``, run by the system Python in a subprocess:
``scripts/electrum_peer_bench.py``) and Chenilles (this interpreter, the demo's embedded
ledgers, nodes on the in-process network) do the same shapes in alternating rounds, so
both see the same machine load:

- payments between two peers in one process, one hop and two hops (a forwarding node in
  the middle): p50 latency and sequential payments/s. Ours on Bitcoin channels (the same
  BOLT 3 commitments, HTLC transactions and revocations as Electrum's) and on EVM channels,
  each in memory and with our SQLite store (WAL, synchronous FULL: every commit fsynced);
- one channel state with 2 HTLCs (one each way), both sides: each side builds and signs
  the other's commitment and HTLC transactions, verifies its own, revokes its previous one
  and checks the peer's revocation.

Ratios are ours / Electrum's payments/s (and Electrum's / ours ms per state), from the
medians over rounds, and the median of the per-round ratios.

    .venv/bin/python scripts/bench_electrum.py [--quick] [--json out.json]

Electrum is never a dependency of the hub: ``apt-get install python3-electrum`` for this
benchmark only. Without it the section reports ``skipped`` with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_common
from bench_payments import FINAL_SLACK, build, wall_clock

from chenilles_hub.core import ChannelState, Htlc, SignedState
from chenilles_hub.core.model import AssetBalances
from chenilles_hub.core.routing import find_route
from chenilles_hub.demo import MAX_LOCK, SAT, Demo, _start_ledgers
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.routing_view import onion_hops, quotes_from, routing_graph

SCRIPTS = Path(__file__).resolve().parent
#: The interpreter that has Debian's python3-electrum (override for another install).
ELECTRUM_PYTHON = os.environ.get("CHENILLES_ELECTRUM_PYTHON", "/usr/bin/python3")
#: Electrum's two set-ups: its test harness (nothing written) and with its wallet file.
ELECTRUM, ELECTRUM_FILE = "electrum", "electrum wallet file"
#: Payments started together in the in-flight rounds (both sides batch them into shared
#: commitments: Electrum's htlc_switch, our per-channel queue).
IN_FLIGHT = 8
#: 10,000 sat per payment on both sides (Electrum's amounts are in msat).
AMOUNT_SAT = 10_000

#: What each side writes and signs per payment, beside what the run counts.
NOTES = {
    "electrum": (
        "Electrum's own two-peer test set-up: channels held in memory, peers joined by "
        "in-memory queues (no Noise transport), save_channel and the wallet's save_db do "
        "nothing, so nothing is written. Per hop and payment: update_add_htlc, "
        "commitment_signed + revoke_and_ack each way, update_fulfill_htlc, "
        "commitment_signed + revoke_and_ack each way (4 commitments signed with their HTLC "
        "signatures, 4 revoked). Its htlc_switch polls every 100 ms unless a "
        "revoke_and_ack wakes it."
    ),
    "electrum wallet file": (
        "The same, each node with a real Electrum WalletDB holding its channels and a "
        "WalletStorage: whenever Electrum saves a channel (after sending commitment_signed, "
        "sending and receiving revoke_and_ack) the whole db is dumped as JSON and written "
        "(temporary file, fsync, rename), as an Electrum wallet does; a real wallet's file "
        "also holds its on-chain history, so it is larger than here."
    ),
    "chenilles": (
        "Per hop and payment: a state adding the HTLC and a state settling it (each signed "
        "by both sides, on Bitcoin with both BOLT 3 commitments, their HTLC transactions "
        "and revocations); with SQLite every snapshot and secret is committed (fsynced) "
        "before a signature leaves, counted below as checkpoints per payment."
    ),
}


class ElectrumPeers:
    """The Electrum subprocess: one JSON command a line in, one answer a line out."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [ELECTRUM_PYTHON, str(SCRIPTS / "electrum_peer_bench.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tempfile.gettempdir(),  # not a directory with a module named like a stdlib one
        )
        self.version = self._answer()["ready"]

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"the Electrum peers stopped: {err.strip()[-400:]}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"Electrum: {answer['error']}")
        return answer

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, BrokenPipeError, ValueError):
            self.ask(cmd="quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def electrum_missing() -> str | None:
    """Why Electrum cannot run here, or ``None``."""
    try:
        out = subprocess.run(
            [ELECTRUM_PYTHON, "-c", "import electrum; print(electrum.version.ELECTRUM_VERSION)"],
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{ELECTRUM_PYTHON} cannot run: {exc}"
    if out.returncode != 0:
        return (
            f"{ELECTRUM_PYTHON} cannot import electrum (apt-get install python3-electrum): "
            f"{out.stderr.strip().splitlines()[-1:]}"
        )
    return None


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
        self.persists = directory is not None
        for node in self.nodes:
            if node.store is not None:
                self._count(node)

    def _count(self, node: Node) -> None:
        """Count the store's checkpoints (each one durable transaction)."""
        store = node.store
        assert store is not None
        inner = store.save_checkpoint

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.checkpoints += 1
            return inner(*args, **kwargs)

        store.save_checkpoint = counted  # type: ignore[method-assign]

    def versions(self) -> int:
        """Signed versions summed over the line's channels (each counted once)."""
        latest = {cid: c.machine.latest for n in self.nodes for cid, c in n.channels.items()}
        return sum(s.version for s in latest.values() if s is not None)

    def route(self, invoice: Any) -> list[Any]:
        """The payer's route for ``invoice``: part of a payment's time, as in Electrum."""
        network = self.demo.network
        route = find_route(
            routing_graph(network.nodes.values()),
            self.nodes[0].node_id,
            invoice.payee,
            invoice.amount,
            invoice.asset,
            now=self.clock(),
            final_lead=invoice.final_lead + FINAL_SLACK,
            max_lock=MAX_LOCK,
            source_asset=self.source,
        )
        return onion_hops(route, quotes_from(network.nodes, route))

    def pay(self, n: int) -> list[float]:
        payer, payee = self.nodes[0], self.nodes[-1]
        network = self.demo.network
        out = []
        for _ in range(n):
            invoice = payee.invoice(self.amount, self.target)
            t0 = time.perf_counter()  # route finding counts, as it does in Electrum's time
            hops = self.route(invoice)
            payment = payer.pay_route(invoice, hops)
            network.run()
            out.append((time.perf_counter() - t0) * 1e3)
            if payment.status != "succeeded":
                raise RuntimeError(f"payment {payment.status}: {payment.reason}")
        return out

    def burst(self, k: int, n: int) -> list[float]:
        """``n`` times ``k`` payments started together: seconds until all ``k`` succeeded.

        Driven as the node server drives a node (``chenilles_hub/node/runtime/server.py``):
        what arrived together is handled as one job with one checkpoint, and what the job
        sends leaves only after that checkpoint (:func:`run_grouped`)."""
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
            run_grouped(self.nodes)
            out.append(time.perf_counter() - t0)
            if not all(p.status == "succeeded" for p in payments):
                raise RuntimeError("a payment in a burst failed")
        return out

    def close(self) -> None:
        for node in self.nodes:
            if node.store is not None:
                node.store.close()


def run_grouped(nodes: list[Node]) -> None:
    """Deliver until quiet, in jobs: each round every node handles all the messages sent to
    it in the previous round with one checkpoint at the end (``autocommit`` off meanwhile),
    and what it sent in the round leaves only in the next one, after that checkpoint: the
    node server's work queue and group commit, without its sockets and threads."""
    by_id = {node.node_id: node for node in nodes}
    while True:
        inbox: dict[bytes, list[tuple[bytes, bytes]]] = {}
        for sender in nodes:
            outbox, sender.outbox = sender.outbox, []
            for peer, data in outbox:
                inbox.setdefault(peer, []).append((sender.node_id, data))
        if not inbox:
            return
        for peer, messages in inbox.items():
            node = by_id[peer]
            node.autocommit = False
            try:
                for sender_id, data in messages:
                    node.receive(sender_id, data)
            finally:
                node.autocommit = True
            node.checkpoint()


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


#: (name, chain of every hop, persisted in SQLite)
SHAPES = (
    ("bitcoin, memory", "bitcoin", False),
    ("bitcoin, sqlite", "bitcoin", True),
    ("evm, memory", "evm", False),
    ("evm, sqlite", "evm", True),
)


def _rate(latencies_ms: list[float]) -> float:
    return len(latencies_ms) / (sum(latencies_ms) / 1e3)


def run(quick: bool) -> dict[str, Any]:
    if quick:
        return measure(rounds=2, per_round=4, states_per_round=4, bursts_per_round=1)
    return measure(rounds=7, per_round=20, states_per_round=20, bursts_per_round=4)


def measure(
    rounds: int,
    per_round: int,
    states_per_round: int,
    bursts_per_round: int = 0,
    hop_counts: tuple[int, ...] = (1, 2),
    shapes: tuple[tuple[str, str, bool], ...] = SHAPES,
) -> dict[str, Any]:
    """``rounds`` alternating rounds: in each, Electrum and every one of our ``shapes`` make
    ``per_round`` sequential payments per hop count, then ``bursts_per_round`` times
    ``IN_FLIGHT`` payments at once, then each side signs ``states_per_round`` states.
    ``{"skipped": why}`` without Electrum."""
    missing = electrum_missing()
    if missing:
        return {"skipped": missing}
    ledgers = _start_ledgers(lambda _line: None)
    if ledgers is None:
        return {"error": "the EVM, Bitcoin and Solana backends are needed"}
    electrum = ElectrumPeers()
    tmp = tempfile.TemporaryDirectory(prefix="chenilles-bench-electrum-")
    lines: dict[tuple[int, str], Line] = {}
    try:
        demo = Demo(ledgers, lambda _line: None)
        clock = wall_clock(ledgers)
        for hops in hop_counts:
            for name, chain, persist in shapes:
                directory = Path(tmp.name) if persist else None
                tag = f"{chain}{hops}{'db' if persist else 'mem'}"
                lines[(hops, name)] = Line(demo, (chain,) * hops, directory, tag, clock)
        states = bitcoin_states(demo, clock)
        # warm-up: routes, caches, Electrum's first HTLC (not counted)
        for hops in hop_counts:
            for persist in (False, True):
                electrum.ask(cmd="pay", hops=hops, n=2, amount_sat=AMOUNT_SAT, persist=persist)
            for name, *_ in shapes:
                lines[(hops, name)].pay(2)
        electrum.ask(cmd="commit", n=2)
        states(2)

        samples: dict[str, list[list[float]]] = {}
        bursts: dict[str, list[list[float]]] = {}
        counted: dict[str, dict[str, float]] = {}

        def ours(hops: int, name: str) -> None:
            line = lines[(hops, name)]
            v0, c0 = line.versions(), line.checkpoints
            key = f"chenilles {name}, {hops} hop"
            samples.setdefault(key, []).append(line.pay(per_round))
            c = counted.setdefault(key, {"payments": 0, "signed_states": 0, "checkpoints": 0})
            c["payments"] += per_round
            c["signed_states"] += line.versions() - v0
            # the payee's invoice is written before a payment's clock starts: not counted
            c["checkpoints"] += line.checkpoints - c0 - (per_round if line.persists else 0)

        def ours_burst(hops: int, name: str) -> None:
            key = f"chenilles {name}, {hops} hop, {IN_FLIGHT} in flight"
            line = lines[(hops, name)]
            v0, c0 = line.versions(), line.checkpoints
            bursts.setdefault(key, []).append(line.burst(IN_FLIGHT, bursts_per_round))
            c = counted.setdefault(key, {"payments": 0, "signed_states": 0, "checkpoints": 0})
            c["payments"] += IN_FLIGHT * bursts_per_round
            c["signed_states"] += line.versions() - v0
            # the payee's invoices are written before a burst's clock starts: not counted
            invoices = IN_FLIGHT * bursts_per_round if line.persists else 0
            c["checkpoints"] += line.checkpoints - c0 - invoices

        def theirs_burst(hops: int) -> None:
            # with its wallet file Electrum is slow: one burst a round
            for label, persist, n in (
                (ELECTRUM, False, bursts_per_round),
                (ELECTRUM_FILE, True, 1),
            ):
                key = f"{label}, {hops} hop, {IN_FLIGHT} in flight"
                answer = electrum.ask(
                    cmd="burst", hops=hops, k=IN_FLIGHT, n=n, amount_sat=AMOUNT_SAT, persist=persist
                )
                bursts.setdefault(key, []).append(answer["s"])
                c = counted.setdefault(
                    key, {"payments": 0, "commitments_signed": 0, "wallet_file_writes": 0}
                )
                c["payments"] += IN_FLIGHT * n
                c["commitments_signed"] += answer["commitments"]
                c["wallet_file_writes"] += answer["writes"]

        def theirs(hops: int) -> None:
            for label, persist, n in (
                (ELECTRUM, False, per_round),
                (ELECTRUM_FILE, True, max(2, per_round // 4)),
            ):
                answer = electrum.ask(
                    cmd="pay", hops=hops, n=n, amount_sat=AMOUNT_SAT, persist=persist
                )
                key = f"{label}, {hops} hop"
                samples.setdefault(key, []).append(answer["ms"])
                c = counted.setdefault(
                    key, {"payments": 0, "commitments_signed": 0, "wallet_file_writes": 0}
                )
                c["payments"] += n
                c["commitments_signed"] += answer["commitments"]
                c["wallet_file_writes"] += answer["writes"]

        for r in range(rounds):
            # alternate who goes first, so neither side always meets the other's leftovers
            order = (theirs, None) if r % 2 == 0 else (None, theirs)
            for hops in hop_counts:
                for side in order:
                    if side is theirs:
                        theirs(hops)
                    else:
                        for name, *_ in shapes:
                            ours(hops, name)
                if bursts_per_round:
                    for side in order:
                        if side is theirs:
                            theirs_burst(hops)
                        else:
                            for name, *_ in shapes:
                                ours_burst(hops, name)
            for side in order:
                if side is theirs:
                    answer = electrum.ask(cmd="commit", n=states_per_round)
                    samples.setdefault("electrum state", []).append(answer["ms"])
                else:
                    samples.setdefault("chenilles bitcoin state", []).append(
                        states(states_per_round)
                    )
        out = summarise(samples, counted, hop_counts, shapes)
        if bursts_per_round:
            out["in_flight"] = summarise_bursts(bursts, counted, hop_counts, shapes)
        out.update(
            rounds=rounds,
            payments_per_round=per_round,
            amount_sat=AMOUNT_SAT,
            electrum_version=electrum.version,
            notes=NOTES,
            machine=bench_common.machine(),
        )
        return out
    finally:
        electrum.close()
        for line in lines.values():
            line.close()
        tmp.cleanup()
        for backend in ledgers.all:
            close = getattr(backend, "close", None)
            if callable(close):
                close()


def summarise_bursts(
    bursts: dict[str, list[list[float]]],
    counted: dict[str, dict[str, float]],
    hop_counts: tuple[int, ...],
    shapes: tuple[tuple[str, str, bool], ...],
) -> dict[str, Any]:
    """payments/s with ``IN_FLIGHT`` started together, and ours / Electrum's."""

    def rate(chunk: list[float]) -> float:
        return IN_FLIGHT * len(chunk) / sum(chunk)

    out: dict[str, Any] = {
        "payments_in_flight": IN_FLIGHT,
        "driver": "grouped: one checkpoint per node per round of messages (the server's jobs)",
        "payments_per_s": {},
        "per_payment": {},
        "ratios": {},
    }
    for key, chunks in bursts.items():
        per_burst = [IN_FLIGHT / s for chunk in chunks for s in chunk]
        out["payments_per_s"][key] = bench_common.summary(per_burst, 1)
        c = counted[key]
        out["per_payment"][key] = {
            what: round(c[what] / c["payments"], 2) for what in c if what != "payments"
        }
    for hops in hop_counts:
        for name, _, persist in shapes:
            mine_key = f"chenilles {name}, {hops} hop, {IN_FLIGHT} in flight"
            mine = bursts[mine_key]
            for label in [ELECTRUM, ELECTRUM_FILE] if persist else [ELECTRUM]:
                base_key = f"{label}, {hops} hop, {IN_FLIGHT} in flight"
                base = bursts[base_key]
                per_round = [rate(m) / rate(e) for m, e in zip(mine, base, strict=True)]
                e50 = out["payments_per_s"][base_key]["p50"]
                m50 = out["payments_per_s"][mine_key]["p50"]
                out["ratios"][f"{name}, {hops} hop, {IN_FLIGHT} in flight: ours / {label}"] = {
                    "of_medians": round(m50 / e50, 2),
                    "per_round": bench_common.summary(per_round, 2),
                }
    return out


def summarise(
    samples: dict[str, list[list[float]]],
    counted: dict[str, dict[str, float]],
    hop_counts: tuple[int, ...],
    shapes: tuple[tuple[str, str, bool], ...],
) -> dict[str, Any]:
    def flat(key: str) -> list[float]:
        return [x for chunk in samples[key] for x in chunk]

    payments: dict[str, Any] = {}
    for key in samples:
        if key.endswith("state"):
            continue
        rates = [_rate(chunk) for chunk in samples[key]]
        c = counted[key]
        entry: dict[str, Any] = {
            "latency_ms": bench_common.summary(flat(key), 2),
            "payments_per_s": bench_common.summary(rates, 1),
        }
        for what in ("signed_states", "checkpoints", "commitments_signed", "wallet_file_writes"):
            if what in c:
                entry[f"{what}_per_payment"] = round(c[what] / c["payments"], 2)
        payments[key] = entry
    ratios: dict[str, Any] = {}
    for hops in hop_counts:
        for name, _, persist in shapes:
            mine = samples[f"chenilles {name}, {hops} hop"]
            against = [ELECTRUM, ELECTRUM_FILE] if persist else [ELECTRUM]
            for label in against:
                base = samples[f"{label}, {hops} hop"]
                per_round_ratio = [_rate(m) / _rate(e) for m, e in zip(mine, base, strict=True)]
                ratios[f"{name}, {hops} hop: payments/s ours / {label}"] = {
                    "of_medians": round(
                        payments[f"chenilles {name}, {hops} hop"]["payments_per_s"]["p50"]
                        / payments[f"{label}, {hops} hop"]["payments_per_s"]["p50"],
                        2,
                    ),
                    "per_round": bench_common.summary(per_round_ratio, 2),
                }
    e_state, c_state = flat("electrum state"), flat("chenilles bitcoin state")
    per_round_state = [
        bench_common.pct(e, 50) / bench_common.pct(c, 50)
        for e, c in zip(samples["electrum state"], samples["chenilles bitcoin state"], strict=True)
    ]
    state = {
        "electrum_ms": bench_common.summary(e_state, 3),
        "chenilles_bitcoin_ms": bench_common.summary(c_state, 3),
        "ratio_electrum_over_ours": {
            "of_medians": round(bench_common.pct(e_state, 50) / bench_common.pct(c_state, 50), 2),
            "per_round": bench_common.summary(per_round_state, 2),
        },
    }
    return {
        "payments": payments,
        "ratios": ratios,
        "state_with_2_htlcs_both_sides": state,
    }


if __name__ == "__main__":
    bench_common.section_main(run, __doc__)
