"""Payments between two node processes over the devnet ledgers: EVM, Bitcoin and Solana.

``chenilles devnet up`` starts the ledgers as separate processes speaking their chains' real
RPC (anvil; the Bitcoin devnet server, bitcoind's JSON-RPC over libbitcoinkernel; the
Solana devnet server, Solana's JSON-RPC over LiteSVM) and writes the node configs; two
``chenilles node start`` processes (SQLite stores) run from those configs. Alice opens one
channel per chain to Bob through the API, funded on the devnet chains and active once the
funding is confirmed, as a real node does. Then, per chain, in alternating rounds:

- sequential payments (invoice from Bob, ``POST /v1/payments`` with ``wait`` at Alice:
  HTLC add + settle): latency p50/p90/p99 and payments/s, and the same for plain transfers
  (``POST /v1/channels/{id}/transfers``);
- 8 payments in flight: payments/s;
- CPU per payment of each node process (from /proc);
- sequential payments again with *far* endpoints: every RPC request held ``FAR_DELAY``
  by the proxies (a hosted RPC provider's round trip), the same round as the near ones.
  A node reads its chains off its own thread (``EventFetcher``), so far endpoints should
  cost a payment only the RPC it makes itself (Bitcoin: none while its read of the tip
  is kept, docs/bitcoin.md "Time"), not the chains' polls; the JSON has how long each
  chain's last read took and how long it held the node's thread (``/metrics``).

The EVM channel (on anvil, what the ``nodes`` section measures) is the same-run baseline.
Payments are off-chain, so the ledgers should cost nothing more while they run: each node
reaches each ledger through its own counting proxy (scripts/rpc_counter.py, the devnet
servers keep no request counts), so the JSON says how often each node polls each chain and
which methods, during payments and while idle, beside each ledger process's CPU.

    .venv/bin/python scripts/bench_devnet.py [--quick] [--json out.json]
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_common
from rpc_counter import RpcCounter

from chenilles_hub.devnet.processes import CHENILLES, NodeProcess
from chenilles_hub.node.api.client import NodeClient

#: chain name in the devnet's configs -> (asset, deposit, amount per payment), in base
#: units. Bitcoin's amount keeps each HTLC above dust, so every state carries an HTLC
#: output with its own signature (BOLT 3), as a real payment does.
CHAINS: dict[str, tuple[str, int, int]] = {
    "evm": ("native@eip155:31337", 10**18, 10**12),
    "bitcoin": ("native@bip122:regtest", 10**8, 20_000),
    "solana": ("native@solana:localnet", 10**10, 10**6),
}
BASELINE = "evm"
IN_FLIGHT = 8
#: seconds every RPC request waits in the proxy in the far-endpoint payments
FAR_DELAY = 0.025


@dataclass
class Sizes:
    rounds: int
    sequential: int  # payments (and transfers) one at a time, per chain and round
    in_flight: int  # payments with IN_FLIGHT at a time, per chain and round
    idle_s: float  # the ledgers watched with no payment running
    far: int  # payments one at a time with far endpoints, per chain and round


QUICK = Sizes(rounds=1, sequential=20, in_flight=40, idle_s=3.0, far=20)
FULL = Sizes(rounds=3, sequential=100, in_flight=200, idle_s=10.0, far=60)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def cpu_seconds(pid: int, *, group: bool = False) -> float:
    """User + system CPU seconds of ``pid`` (with ``group``: every process of the group it
    leads: the devnet starts each ledger in its own session, e.g. npm's wrapper and anvil).

    Read from each process's CPU-time clock, in nanoseconds: /proc's counters move in
    10 ms ticks, coarser than a payment's CPU on a node.
    """
    pids = [pid]
    if group:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pid:
                pids.append(int(stat.parent.name))
    return sum(_process_cpu(p) for p in pids)


def _process_cpu(pid: int) -> float:
    """The CPU-time clock of another process (Linux: ``clock_getcpuclockid``'s encoding, the
    process-wide scheduler clock, which keeps the time of threads that have ended)."""
    try:
        return time.clock_gettime((~pid << 3) | 2)
    except OSError:  # the process has ended
        return 0.0


def with_p90(values: list[float]) -> dict[str, Any]:
    out = bench_common.summary(values, 2)
    out["p90"] = round(bench_common.pct(values, 90), 2)
    return out


class Net:
    """The devnet, its ledgers behind per-node counting proxies, Alice and Bob."""

    def __init__(self, root: Path) -> None:
        self.root = root
        up = subprocess.run(
            [*CHENILLES, "devnet", "up", "--dir", str(root), "--nodes", "alice,bob", "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if up.returncode != 0:
            raise RuntimeError(f"chenilles devnet up failed:\n{up.stdout}{up.stderr}")
        info = json.loads(up.stdout)
        self.ledgers: dict[str, dict[str, Any]] = {x["name"]: x for x in info["ledgers"]}
        self.nodes = {n: NodeProcess(n, Path(p)) for n, p in info["nodes"].items()}
        #: (ledger, node) -> the proxy that node reaches that ledger through
        self.proxies: dict[tuple[str, str], RpcCounter] = {}
        for name, node in self.nodes.items():
            text = node.config_path.read_text()
            for ledger, row in self.ledgers.items():
                proxy = RpcCounter(row["url"])
                self.proxies[ledger, name] = proxy
                text = text.replace(f'url = "{row["url"]}"', f'url = "{proxy.start()}"')
            node.config_path.write_text(text)
        self.tick_interval = float(self.nodes["alice"].config["node"]["tick_interval"])

    def clients(self) -> tuple[NodeClient, NodeClient]:
        return self.nodes["alice"].api, self.nodes["bob"].api

    def start_nodes(self) -> None:
        threads = [threading.Thread(target=n.start) for n in self.nodes.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for node in self.nodes.values():
            if node.process is None or node.process.poll() is not None:
                raise RuntimeError(f"{node.name} did not start:\n{node.log_tail()}")

    def open_channels(self) -> tuple[dict[str, str], dict[str, float]]:
        """One channel per chain, Alice -> Bob, each returned once both nodes call it
        active (its funding confirmed), and the seconds each took. Two at a time, Bitcoin's
        (6 confirmations) first: a node refuses a third pending open from one peer
        (``[policy.open]``'s default ``max_pending_per_peer``)."""
        alice, bob = self.nodes["alice"], self.nodes["bob"]
        alice.connect(bob)
        channels: dict[str, str] = {}
        seconds: dict[str, float] = {}
        errors: list[str] = []

        def open_one(chain: str) -> None:
            asset, deposit, _ = CHAINS[chain]
            started = time.perf_counter()
            try:
                channels[chain] = alice.open_channel(bob, asset, deposit)
            except Exception as exc:  # reported below with the node's log
                errors.append(f"{chain}: {exc!r}")
            seconds[chain] = round(time.perf_counter() - started, 2)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(open_one, sorted(CHAINS, key=lambda c: c != "bitcoin")))
        if errors:
            raise RuntimeError(f"opening failed: {errors}\n{alice.log_tail()}")
        return channels, seconds

    def watch(self) -> dict[str, Any]:
        """What the ledgers and nodes have used so far (CPU seconds, RPC counts)."""
        return {
            "t": time.perf_counter(),
            "cpu": {
                **{n: cpu_seconds(p.process.pid) for n, p in self.nodes.items() if p.process},
                **{
                    f"ledger:{k}": cpu_seconds(v["pid"], group=True)
                    for k, v in self.ledgers.items()
                },
            },
            "rpc": {f"{k[0]}:{k[1]}": p.snapshot() for k, p in self.proxies.items()},
        }

    def ledger_costs(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """Per ledger over a window: CPU cores busy, requests/s from each node, and per tick
        of the node's timer, and the methods called."""
        wall = after["t"] - before["t"]
        out: dict[str, Any] = {}
        for ledger in self.ledgers:
            key = f"ledger:{ledger}"
            row: dict[str, Any] = {
                "cpu_cores_busy": round((after["cpu"][key] - before["cpu"][key]) / wall, 4),
                "rpc_requests_per_s": {},
                "rpc_requests_per_tick": {},
                "calls": {},
            }
            for node in self.nodes:
                a, b = after["rpc"][f"{ledger}:{node}"], before["rpc"][f"{ledger}:{node}"]
                rate = (a["requests"] - b["requests"]) / wall
                row["rpc_requests_per_s"][node] = round(rate, 2)
                row["rpc_requests_per_tick"][node] = round(rate * self.tick_interval, 2)
                for method, count in a["calls"].items():
                    delta = count - b["calls"].get(method, 0)
                    if delta:
                        row["calls"][method] = row["calls"].get(method, 0) + delta
            out[ledger] = row
        return out

    def set_delay(self, seconds: float) -> None:
        """Every ledger as far as ``seconds`` a request, for both nodes."""
        for proxy in self.proxies.values():
            proxy.delay = seconds

    def chain_reads(self) -> dict[str, dict[str, float]]:
        """Alice's ``/metrics``: each chain's last read (off the node's thread) and how
        long its last poll held the node's thread, in ms; and how many chain clocks her
        watcher took with a read or read on the node's thread since she started."""
        text = str(self.nodes["alice"].api.get("/metrics"))
        out: dict[str, dict[str, float]] = {"fetch_ms": {}, "poll_ms": {}, "clock_reads": {}}
        for family, key, scale in (
            ("chenilles_chain_fetch_seconds", "fetch_ms", 1000),
            ("chenilles_chain_poll_seconds", "poll_ms", 1000),
            ("chenilles_watcher_clock_reads_total", "clock_reads", 1),
        ):
            for line in text.splitlines():
                if line.startswith(family + "{"):
                    label = line.split('"')[1]
                    out[key][label] = round(scale * float(line.rsplit(" ", 1)[1]), 2)
        return out

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
        subprocess.run(
            [*CHENILLES, "devnet", "down", "--dir", str(self.root)],
            capture_output=True,
            timeout=120,
            check=False,
        )
        for proxy in self.proxies.values():
            proxy.stop()


def pay(alice: NodeClient, bob: NodeClient, asset: str, amount: int) -> dict[str, Any]:
    """Bob's invoice, paid by Alice through her API; the payment as it ended."""
    invoice = bob.post("/v1/invoices", {"amount": amount, "asset": asset})
    result: dict[str, Any] = alice.post(
        "/v1/payments", {"invoice": invoice["invoice"], "wait": True}
    )
    while result["status"] == "pending":
        time.sleep(0.01)
        result = alice.get(f"/v1/payments/{result['payment_hash']}")
    return result


def _failure(result: dict[str, Any]) -> str | None:
    """Why a payment failed (None if it succeeded)."""
    if result["status"] == "succeeded":
        return None
    return str(result.get("reason") or result)


def one_round(net: Net, chain: str, channel: str, sizes: Sizes) -> dict[str, Any]:
    """Sequential payments, sequential transfers, then payments 8 in flight on ``chain``."""
    alice, bob = net.clients()
    asset, _, amount = CHAINS[chain]
    nodes = ("alice", "bob")
    out: dict[str, Any] = {"transfer_latencies_ms": []}
    before = net.watch()
    out["latencies_ms"], failures = sequential_payments(net, chain, sizes.sequential)
    after = net.watch()
    wall = after["t"] - before["t"]
    out["sequential_payments_per_s"] = sizes.sequential / wall
    out["cpu_ms_per_payment"] = {
        n: 1000 * (after["cpu"][n] - before["cpu"][n]) / sizes.sequential for n in nodes
    }
    out["ledgers"] = net.ledger_costs(before, after)
    for _ in range(sizes.sequential):
        started = time.perf_counter()
        alice.post(f"/v1/channels/{channel}/transfers", {"amount": amount})
        out["transfer_latencies_ms"].append(1000 * (time.perf_counter() - started))
    before = net.watch()
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        ended = list(pool.map(lambda _: pay(alice, bob, asset, amount), range(sizes.in_flight)))
    after = net.watch()
    in_flight_failures = [f for f in map(_failure, ended) if f]
    ok = sizes.in_flight - len(in_flight_failures)
    out["in_flight_payments_per_s"] = ok / (after["t"] - before["t"])
    out["cpu_ms_per_payment_in_flight"] = {
        n: 1000 * (after["cpu"][n] - before["cpu"][n]) / max(1, ok) for n in nodes
    }
    out["ledgers_in_flight"] = net.ledger_costs(before, after)
    out["far_latencies_ms"], far_failures, out["far_reads"] = far_payments(net, chain, sizes.far)
    out["failures"] = failures + in_flight_failures + far_failures
    return out


def sequential_payments(net: Net, chain: str, count: int) -> tuple[list[float], list[str]]:
    """``count`` payments one at a time on ``chain``: their latencies (ms) and failures."""
    alice, bob = net.clients()
    asset, _, amount = CHAINS[chain]
    latencies: list[float] = []
    failures: list[str] = []
    for _ in range(count):
        started = time.perf_counter()
        failure = _failure(pay(alice, bob, asset, amount))
        failures += [failure] if failure else []
        latencies.append(1000 * (time.perf_counter() - started))
    return latencies, failures


def far_payments(
    net: Net, chain: str, count: int
) -> tuple[list[float], list[str], dict[str, dict[str, float]]]:
    """``count`` payments one at a time while every ledger is ``FAR_DELAY`` away; their
    latencies, failures, and the chains' last reads as Alice's node saw them."""
    net.set_delay(FAR_DELAY)
    try:
        time.sleep(2 * net.tick_interval)  # every chain's poll already at the new pace
        latencies, failures = sequential_payments(net, chain, count)
        reads = net.chain_reads()
    finally:
        net.set_delay(0.0)
    return latencies, failures, reads


def median(values: list[float], digits: int = 2) -> float:
    return round(float(bench_common.summary(values, 6)["p50"]), digits)


def merge(rounds: list[dict[str, Any]], sizes: Sizes, chain: str) -> dict[str, Any]:
    """One chain's rounds: latencies pooled, rates and CPU as medians of the rounds."""
    asset, deposit, amount = CHAINS[chain]

    def pick(key: str) -> list[float]:
        return [r[key] for r in rounds]

    return {
        "asset": asset,
        "deposit": deposit,
        "amount": amount,
        "payments": sizes.rounds * (sizes.sequential + sizes.in_flight),
        "failed": sum(len(r["failures"]) for r in rounds),
        "failures": [f for r in rounds for f in r["failures"]][:10],
        "payment_latency_ms": with_p90([x for r in rounds for x in r["latencies_ms"]]),
        "sequential_payments_per_s": median(pick("sequential_payments_per_s"), 1),
        "transfer_latency_ms": with_p90([x for r in rounds for x in r["transfer_latencies_ms"]]),
        "far_endpoints": {
            "rpc_delay_ms": 1000 * FAR_DELAY,
            "payment_latency_ms": with_p90([x for r in rounds for x in r["far_latencies_ms"]]),
            "last_round_chain_reads": rounds[-1]["far_reads"],
        },
        f"payments_per_s_{IN_FLIGHT}_in_flight": median(pick("in_flight_payments_per_s"), 1),
        "per_round": {
            "sequential_payments_per_s": [round(x, 1) for x in pick("sequential_payments_per_s")],
            f"payments_per_s_{IN_FLIGHT}_in_flight": [
                round(x, 1) for x in pick("in_flight_payments_per_s")
            ],
        },
        "cpu_ms_per_payment": {
            n: median([r["cpu_ms_per_payment"][n] for r in rounds]) for n in ("alice", "bob")
        },
        f"cpu_ms_per_payment_{IN_FLIGHT}_in_flight": {
            n: median([r["cpu_ms_per_payment_in_flight"][n] for r in rounds])
            for n in ("alice", "bob")
        },
        # the last round's windows: every ledger, while this chain's payments ran
        "ledgers_during_sequential_payments": rounds[-1]["ledgers"],
        f"ledgers_during_{IN_FLIGHT}_in_flight": rounds[-1]["ledgers_in_flight"],
    }


def measure(sizes: Sizes) -> dict[str, Any]:
    result: dict[str, Any] = {"load_before": uptime(), "sizes": sizes.__dict__}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chenilles-bench-devnet-") as tmp:
        net = Net(Path(tmp) / "devnet")
        try:
            result["devnet_up_s"] = round(time.perf_counter() - started, 1)
            result["tick_interval_s"] = net.tick_interval
            net.start_nodes()
            channels, result["open_channel_s"] = net.open_channels()
            alice, bob = net.clients()
            for chain in CHAINS:  # warm up: the first payment also fetches routes, keys
                failure = _failure(pay(alice, bob, CHAINS[chain][0], CHAINS[chain][2]))
                if failure:
                    raise RuntimeError(f"the first payment on {chain} failed: {failure}")
            before = net.watch()
            time.sleep(sizes.idle_s)
            result["ledgers_idle"] = net.ledger_costs(before, net.watch())
            rounds: dict[str, list[dict[str, Any]]] = {c: [] for c in CHAINS}
            for _ in range(sizes.rounds):
                for chain in CHAINS:
                    rounds[chain].append(one_round(net, chain, channels[chain], sizes))
            result["chains"] = {c: merge(r, sizes, c) for c, r in rounds.items()}
        finally:
            net.close()
    base = result["chains"][BASELINE]
    result["vs_evm"] = {
        chain: {
            "p50_latency_x": round(
                r["payment_latency_ms"]["p50"] / base["payment_latency_ms"]["p50"], 2
            ),
            "sequential_payments_per_s_x": round(
                r["sequential_payments_per_s"] / base["sequential_payments_per_s"], 2
            ),
            f"payments_per_s_{IN_FLIGHT}_in_flight_x": round(
                r[f"payments_per_s_{IN_FLIGHT}_in_flight"]
                / base[f"payments_per_s_{IN_FLIGHT}_in_flight"],
                2,
            ),
        }
        for chain, r in result["chains"].items()
        if chain != BASELINE
    }
    result["load_after"] = uptime()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def run(quick: bool) -> dict[str, Any]:
    return measure(QUICK if quick else FULL)


if __name__ == "__main__":
    bench_common.section_main(run, __doc__)
