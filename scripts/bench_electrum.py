#!/usr/bin/env python3
"""A real Lightning peer side by side with ours, in the same run (section "electrum").

Electrum 4.3.4 (Debian's ``python3-electrum``, run by the system Python in a subprocess:
``scripts/electrum_peer_bench.py``) and Chenilles (this interpreter, the demo's embedded
ledgers, nodes on the in-process network) do the same shapes in alternating rounds, so
both see the same machine load:

- payments between two peers in one process, one hop and two hops (a forwarding node in
  the middle): p50 latency and sequential payments/s, then 8 payments at once. Electrum in
  its test set-up (nothing written) and with its wallet file (Electrum's WalletDB and
  WalletStorage: JSON, fsync, rename at every channel save). Ours on Bitcoin channels (the
  same BOLT 3 commitments, HTLC transactions and revocations as Electrum's) and on EVM
  channels, each in memory and with our SQLite store (WAL, synchronous FULL: every commit
  fsynced) (``bench_electrum_ours.py``; summaries in ``bench_electrum_report.py``);
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
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import bench_common
from bench_electrum_ours import (
    AMOUNT_SAT,
    ELECTRUM,
    ELECTRUM_FILE,
    IN_FLIGHT,
    SHAPES,
    Line,
    bitcoin_states,
)
from bench_electrum_report import summarise, summarise_bursts
from bench_payments import wall_clock

from chenilles_hub.demo import Demo, _start_ledgers

SCRIPTS = Path(__file__).resolve().parent
#: The interpreter that has Debian's python3-electrum (override for another install).
ELECTRUM_PYTHON = os.environ.get("CHENILLES_ELECTRUM_PYTHON", "/usr/bin/python3")

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
        "and revocations); on Bitcoin each update is propose, accept, ack (the ack carries "
        "the revocation), on EVM propose and accept (a newer version wins a dispute, "
        "nothing to revoke). With SQLite every snapshot and secret is committed (fsynced) "
        "before a signature leaves, counted below as checkpoints per payment (durable, and "
        "relaxed: nothing leaves after them, synced by the next durable one)."
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
            v0, c0, r0 = line.versions(), line.checkpoints, line.relaxed
            key = f"chenilles {name}, {hops} hop"
            samples.setdefault(key, []).append(line.pay(per_round))
            c = counted.setdefault(
                key, {"payments": 0, "signed_states": 0, "checkpoints": 0, "relaxed_checkpoints": 0}
            )
            c["payments"] += per_round
            c["relaxed_checkpoints"] += line.relaxed - r0
            c["signed_states"] += line.versions() - v0
            # the payee's invoice is written before a payment's clock starts: not counted
            c["checkpoints"] += line.checkpoints - c0 - (per_round if line.persists else 0)

        def ours_burst(hops: int, name: str) -> None:
            key = f"chenilles {name}, {hops} hop, {IN_FLIGHT} in flight"
            line = lines[(hops, name)]
            v0, c0, r0 = line.versions(), line.checkpoints, line.relaxed
            bursts.setdefault(key, []).append(line.burst(IN_FLIGHT, bursts_per_round))
            c = counted.setdefault(
                key, {"payments": 0, "signed_states": 0, "checkpoints": 0, "relaxed_checkpoints": 0}
            )
            c["payments"] += IN_FLIGHT * bursts_per_round
            c["relaxed_checkpoints"] += line.relaxed - r0
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


if __name__ == "__main__":
    bench_common.section_main(run, __doc__)
