"""Two real node processes over loopback: signed updates and payments per second.

Starts anvil (npm @foundry-rs/anvil) and two ``chenilles node start`` processes with SQLite
stores (WAL, synchronous FULL) talking over the encrypted TCP transport, opens EVM channels
between them and drives them through the HTTP API:

- **direct transfers** (``POST /v1/channels/{id}/transfers``, answered once the signed state
  carrying the transfer is held by both sides): one at a time (latency), then many in
  flight over several channels (throughput). Transfers that arrive while a channel's
  proposal is in flight go out together in its next state, so both the transfers/s and the
  signed states/s (read from the channels' versions) are reported;
- **payments** (invoice, HTLC add, settle: ``POST /v1/payments`` with ``wait``), sequential
  and with several in flight.

The signature bound (sign + verify of one EVM state per side) is measured in the same run,
and the CPU each process spent (from /proc) is reported per signed state.

    .venv/bin/python scripts/bench_nodes.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bench_common
from bench_updates import signature_bound

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.node.test_server_harness import (  # noqa: E402  (the harness the node tests use)
    ETH,
    NATIVE,
    AnvilChain,
    NodeProc,
    make_node,
    open_channel,
    pay,
)

#: Chain polling as a production node would (the tests poll every 0.2 s to be quick).
NODE_TIMING = "tick_interval = 2.0\nannounce_interval = 30.0"


def _anvil() -> AnvilChain:
    from chenilles_evm.backend import connect_backend
    from chenilles_evm.ledgers import anvil_ledger

    ledger = anvil_ledger()
    url = ledger.url  # type: ignore[attr-defined]
    deployer = connect_backend(url, deploy=True)
    keys = ["0x" + bytes(a.key).hex() for a in ledger.accounts]
    token = next(a.token for a in deployer.assets() if a.token != "native")
    return AnvilChain(
        url, deployer.adjudicator.address, int(ledger.w3.eth.block_number), keys, ledger, token
    )


def _read_stat(stat: Path) -> tuple[str, list[str]] | None:
    """A ``/proc/.../stat`` file's command name and the fields after it (``None`` if the
    process or thread ended meanwhile). The name may hold spaces and parentheses: it ends
    at the last ``)``."""
    try:
        raw = stat.read_text(errors="replace")
    except OSError:
        return None
    return raw[raw.index("(") + 1 : raw.rindex(")")], raw.rsplit(")", 1)[1].split()


def _cpu_of(fields: list[str]) -> float:
    """User + system CPU seconds from a stat file's fields after the name (14 and 15 of
    ``proc(5)``)."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int, *, group: bool = False) -> float:
    """User + system CPU seconds process ``pid`` (with ``group``: every process of the
    group it leads, e.g. anvil and the npm wrapper that started it) used so far."""
    used = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        read = _read_stat(stat)
        if read is None:
            continue
        fields = read[1]
        pgid = int(fields[2])  # field 5 of /proc/PID/stat
        if (group and pgid == pid) or int(stat.parent.name) == pid:
            used += _cpu_of(fields)
    return used


def _thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds each thread of node process ``pid`` used so far, summed by the thread's
    name in the operating system: the node names its worker ``node``, its ``writer`` and
    its chains' read threads ``fetch-NAME``; the main thread runs the event loop (sockets
    and the API). A thread that ended between two readings is missing from the second:
    the threads of a round may add up to a little less than the process's figure."""
    used: dict[str, float] = {}
    process_name = Path(f"/proc/{pid}/comm").read_text(errors="replace").strip()
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        read = _read_stat(stat)
        if read is None:
            continue
        name, fields = read
        if int(stat.parent.name) == pid:
            name = "event loop"
        elif name == process_name:
            name = "other"  # a thread the node does not name (asyncio's executor's)
        used[name] = used.get(name, 0.0) + _cpu_of(fields)
    return used


def _versions(node: NodeProc, channels: list[str]) -> int:
    return sum(node.api.get(f"/v1/channels/{c}")["version"] for c in channels)


async def _transfers(
    node: NodeProc, channels: list[str], total: int, in_flight: int, per_request: int
) -> float:
    """``total`` transfers of 1 wei spread round-robin over ``channels``: ``in_flight``
    requests at a time, each carrying ``per_request`` transfers (1: the per-channel
    endpoint; more: ``POST /v1/transfers``). Returns the seconds it took; every transfer
    must come back with a version."""
    import aiohttp

    token = (node.data_dir / "api.token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{node.api_port}"
    sent = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while sent < total:
            count = min(per_request, total - sent)
            picked = [channels[(sent + i) % len(channels)] for i in range(count)]
            sent += count
            if per_request == 1:
                url, body = f"{base}/v1/channels/{picked[0]}/transfers", {"amount": 1}
            else:
                items = [{"channel_id": c, "amount": 1} for c in picked]
                url, body = f"{base}/v1/transfers", {"transfers": items}
            async with session.post(url, json=body) as response:
                answer = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"transfer failed: {response.status} {answer}")
                if per_request > 1 and any("version" not in a for a in answer["transfers"]):
                    raise RuntimeError(f"a transfer failed: {answer}")

    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(in_flight)))
        return time.perf_counter() - started


#: Sign + verify rounds of the bound measured just before and just after each throughput
#: round (~0.1 s each). On a shared VM the bound moves by a third between runs and within
#: one; the ratio of a round is taken against the bound around it.
ROUND_BOUND_SAMPLES = 1000


def _round_bound() -> int:
    return int(
        signature_bound("evm_secp256k1", ROUND_BOUND_SAMPLES)["bound_updates_per_s_per_side"]
    )


#: What ``/metrics`` says of a node's load (``Pipeline.load``) and its jobs and writes.
_LOAD_METRICS = (
    "chenilles_worker_busy_seconds_total",
    "chenilles_worker_cpu_seconds_total",
    "chenilles_job_items_total",
    "chenilles_receive_batches_total",
    "chenilles_checkpoint_write_seconds_total",
    "chenilles_checkpoint_writes_total",
)


def _load(node: NodeProc) -> dict[str, float]:
    text = node.api.get("/metrics")
    return {
        name: float(value)
        for name, value in (line.split()[:2] for line in text.splitlines() if line.strip())
        if name in _LOAD_METRICS
    }


def _load_in(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, Any]:
    """A node's load over a round, from its ``/metrics`` before and after: the share of the
    round its worker was in a job (and used CPU there), frames and calls per job, and the
    mean write (ms)."""
    delta = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in _LOAD_METRICS}
    jobs = delta["chenilles_receive_batches_total"]
    writes = delta["chenilles_checkpoint_writes_total"]
    return {
        "worker_busy_share": round(delta["chenilles_worker_busy_seconds_total"] / seconds, 3),
        "worker_cpu_share": round(delta["chenilles_worker_cpu_seconds_total"] / seconds, 3),
        "jobs": int(jobs),
        "items_per_job": round(delta["chenilles_job_items_total"] / jobs, 1) if jobs else None,
        "writes": int(writes),
        "write_ms": (
            round(1000 * delta["chenilles_checkpoint_write_seconds_total"] / writes, 3)
            if writes
            else None
        ),
    }


def _wait_until_idle(pids: Iterable[int], timeout: float = 3.0) -> None:
    """Wait until the processes stop using CPU (their last writes after a round): the bound
    measured after a round must not compete with them for a core."""
    deadline = time.monotonic() + timeout
    pids = list(pids)
    last = sum(_cpu_seconds(pid) for pid in pids)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = sum(_cpu_seconds(pid) for pid in pids)
        if now - last < 0.005:  # under 5 % of a core over the interval
            return
        last = now


def _throughput(
    alice: NodeProc,
    bob: NodeProc,
    anvil_pid: int,
    load: tuple[int, int, int],
    total: int,
    channels: list[str],
) -> dict[str, Any]:
    """One round of ``load`` (channels, requests in flight, transfers per request):
    signed states/s, the CPU each process spent per state, and the ratio to the signature
    bound measured around the round (while the nodes are idle)."""
    count, flight, per_request = load
    bound_before = _round_bound()
    channels = channels[:count]
    before = _versions(alice, channels)
    pids = {
        "alice": alice.process.pid,  # type: ignore[union-attr]
        "bob": bob.process.pid,  # type: ignore[union-attr]
        "anvil": anvil_pid,
    }
    # (the scrapes of /metrics fall outside the CPU counted)
    load_before = {"alice": _load(alice), "bob": _load(bob)}
    cpu_before = {name: _cpu_seconds(pid, group=name == "anvil") for name, pid in pids.items()}
    nodes = ("alice", "bob")
    threads_before = {name: _thread_cpu_seconds(pids[name]) for name in nodes}
    driver_before = time.process_time()
    elapsed = asyncio.run(_transfers(alice, channels, total, flight, per_request))
    driver = time.process_time() - driver_before
    cpu = {
        name: _cpu_seconds(pid, group=name == "anvil") - cpu_before[name]
        for name, pid in pids.items()
    }
    threads = {
        name: {
            thread: used - threads_before[name].get(thread, 0.0)
            for thread, used in _thread_cpu_seconds(pids[name]).items()
        }
        for name in nodes
    }
    load_after = {"alice": _load(alice), "bob": _load(bob)}
    states = _versions(alice, channels) - before
    assert _versions(bob, channels) - before == states, "both sides hold every state"
    _wait_until_idle(pids.values())
    bound_after = _round_bound()
    bound = (bound_before + bound_after) / 2
    return {
        "channels": len(channels),
        "requests_in_flight": flight,
        "transfers_per_request": per_request,
        "transfers": total,
        "seconds": round(elapsed, 3),
        "transfers_per_s": round(total / elapsed),
        "signed_states": states,
        "signed_states_per_s": round(states / elapsed),
        "transfers_per_state": round(total / states, 2),
        "cpu_ms_per_state": {
            **{name: round(1000 * used / states, 3) for name, used in cpu.items()},
            "driver": round(1000 * driver / states, 3),
        },
        # where each node's CPU went: the worker (``node``), the ``writer``, the event loop
        "cpu_ms_per_state_by_thread": {
            name: {
                thread: round(1000 * used / states, 3)
                for thread, used in sorted(threads[name].items())
                if used > 0
            }
            for name in nodes
        },
        "cpu_cores_busy": round((sum(cpu.values()) + driver) / elapsed, 2),
        # each node's worker and writer over the round, from its /metrics (Pipeline.load)
        "load": {name: _load_in(load_before[name], load_after[name], elapsed) for name in nodes},
        "signature_bound_around": {"before": bound_before, "after": bound_after},
        "ratio_to_bound": round(states / elapsed / bound, 3),
    }


def run(quick: bool) -> dict[str, Any]:
    sequential = 30 if quick else 200
    payments = 40 if quick else 300
    #: (channels, requests in flight, transfers per request): one transfer per request on
    #: one channel, then many channels with one transfer per channel per bulk request,
    #: with more requests in flight so that queued transfers share states.
    loads = (
        [(1, 1, 1), (8, 16, 1), (32, 2, 32), (32, 8, 32)]
        if quick
        else [(1, 1, 1), (16, 32, 1), (128, 2, 128), (128, 4, 128), (128, 16, 128)]
    )
    per_load = 800 if quick else 8000
    bound = signature_bound("evm_secp256k1", 300 if quick else 2000)
    chain = _anvil()
    anvil_pid = chain.ledger.process.pid
    result: dict[str, Any] = {"signature_bound_evm": bound}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        alice = make_node(base, "alice", chain, 2)
        bob = make_node(base, "bob", chain, 3)
        alice.timing = bob.timing = NODE_TIMING
        alice.peers = [bob]
        try:
            bob.start(wait=False)
            alice.start(wait=False)
            bob.wait_ready()
            alice.wait_ready()
            channels = [open_channel(alice, bob, ETH) for _ in range(max(c for c, *_ in loads))]

            latencies = []
            client = alice.api
            for _ in range(sequential):
                started = time.perf_counter()
                client.post(f"/v1/channels/{channels[0]}/transfers", {"amount": 1})
                latencies.append(1000 * (time.perf_counter() - started))
            result["transfer_latency_ms"] = bench_common.summary(latencies, 2)

            result["transfer_throughput"] = [
                _throughput(alice, bob, anvil_pid, load, per_load, channels) for load in loads
            ]

            latencies = []
            for _ in range(sequential // 2):
                started = time.perf_counter()
                assert pay(alice, bob, 1000)["status"] == "succeeded"
                latencies.append(1000 * (time.perf_counter() - started))
            result["payment_latency_ms"] = bench_common.summary(latencies, 2)
            result["payment_parts_ms"] = _payment_parts(alice, bob, sequential // 2)
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                outcomes = list(pool.map(lambda _: pay(alice, bob, 1000), range(payments)))
            elapsed = time.perf_counter() - started
            ok = sum(r["status"] == "succeeded" for r in outcomes)
            result["payments_8_in_flight"] = {
                "payments": payments,
                "succeeded": ok,
                "payments_per_s": round(ok / elapsed, 1),
                "note": "each payment: an invoice from the payee, then add + settle HTLC",
            }
        finally:
            alice.stop()
            bob.stop()
            chain.ledger.stop()
    best = max(result["transfer_throughput"], key=lambda r: r["signed_states_per_s"])
    result["best"] = {
        "signed_states_per_s": best["signed_states_per_s"],
        "transfers_per_s": max(r["transfers_per_s"] for r in result["transfer_throughput"]),
    }
    return result


def _payment_parts(alice: NodeProc, bob: NodeProc, n: int) -> dict[str, Any]:
    """What a payment through the API is made of, each part timed on its own (p50 etc.,
    ms): a bare API round trip (``GET /v1/info``), the payee's invoice, and the payer's
    ``POST /v1/payments`` with ``wait`` (the channel protocol between the two processes,
    plus one round trip). In one process the same payment costs what
    ``bench_electrum``'s "evm, sqlite, 1 hop" line reports."""
    parts: dict[str, list[float]] = {"api_round_trip": [], "invoice": [], "payment": []}
    for _ in range(n):
        started = time.perf_counter()
        alice.api.get("/v1/info")
        parts["api_round_trip"].append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        invoice = bob.api.post("/v1/invoices", {"amount": 1000, "asset": NATIVE})
        parts["invoice"].append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        paid = alice.api.post("/v1/payments", {"invoice": invoice["invoice"], "wait": True})
        parts["payment"].append(1000 * (time.perf_counter() - started))
        if paid["status"] != "succeeded":
            raise RuntimeError(f"payment {paid['status']}: {paid}")
    return {name: bench_common.summary(xs, 2) for name, xs in parts.items()}


if __name__ == "__main__":
    bench_common.section_main(run, __doc__)
