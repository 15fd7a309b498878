"""``chenilles demo --processes``: the demo's scenario as separate node processes over the
devnet ledgers (each its chain's real RPC).

A hub and one user per chain: Alice pays from the first chain (EVM when installed), and a
receiver on every other chain is paid in its own asset through the hub, which converts at
its quoted rate. Then every channel is closed by force (one dispute per chain), the watchers
conclude and withdraw, and every wallet is checked to the base unit: what it gained is its
final channel balance less its deposit, less the fees its own receipts show. Exit status 0
only if every balance is exact.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from .ledgers import DevnetError, LedgerProcess, alive, load_state, role_of, save_state, start
from .nodes import write_configs
from .processes import NodeProcess, expected_wallet_changes, wait_for
from .role import DevnetAsset

RECEIVERS = ("bob", "carol", "dave", "erin", "frank", "grace")
#: Challenge duration of the demo's channels: disputes end in seconds on the devnet.
CHALLENGE = 8


class DemoFailure(AssertionError):
    pass


def _native(ledger: LedgerProcess) -> tuple[str, DevnetAsset]:
    assert ledger.provisioned is not None
    text, info = next(
        (t, a) for t, a in ledger.provisioned.assets.items() if t.startswith("native@")
    )
    return text, info


def _fmt(amount: int, info: DevnetAsset) -> str:
    whole = amount / 10**info.decimals
    return f"{whole:,.{min(info.decimals, 8)}f} {info.symbol} ({amount} base units)"


def run(root: Path, block_time: float, out: Callable[[str], None]) -> int:
    state = load_state(root)
    backends = [f for f in _devnet_backends()]
    if not backends:
        raise DevnetError("no installed backend can run a devnet ledger")
    names = ["hub", "alice", *RECEIVERS[: max(1, len(backends) - 1)]]
    ledgers: list[LedgerProcess] = []
    running = {x.name: x for x in state.ledgers if alive(x.pid)}
    for backend in backends:
        ledger = running.get(backend) or start(root, backend, backend, 0, block_time=block_time)
        ledgers.append(ledger)
        state.ledgers = [*[x for x in state.ledgers if x.name != backend], ledger]
        save_state(root, state)
    for ledger in ledgers:
        ledger.provisioned = role_of(ledger.backend).devnet_provision(
            ledger.url, ledger.datadir, len(names), block_time
        )
    state.nodes = names
    save_state(root, state)
    paths = write_configs(root, names, ledgers)
    out(f"== {len(ledgers)} devnet ledgers, each its own process over its chain's RPC")
    for ledger in ledgers:
        assert ledger.provisioned is not None
        out(f"  {ledger.name:8} {ledger.provisioned.chain:18} {ledger.url}")
    nodes = {name: NodeProcess(name, paths[name]) for name in names}
    try:
        for node in nodes.values():
            node.start()
        out(f"== {len(nodes)} node processes: " + ", ".join(nodes))
        return _scenario(nodes, ledgers, out)
    finally:
        for node in nodes.values():
            node.stop()


def _devnet_backends() -> list[str]:
    from .ledgers import devnet_backends

    found = devnet_backends()
    return sorted(found, key=lambda b: (b != "evm", b))  # EVM first: Alice pays in ETH


def _scenario(
    nodes: dict[str, NodeProcess], ledgers: list[LedgerProcess], out: Callable[[str], None]
) -> int:
    hub, alice = nodes["hub"], nodes["alice"]
    source, targets = ledgers[0], ledgers[1:] or ledgers[:1]
    receivers = [nodes[name] for name in list(nodes)[2:]]
    src_asset, src_info = _native(source)
    watched: dict[str, list[NodeProcess]] = {}
    assets: dict[str, DevnetAsset] = {src_asset: src_info}
    before: dict[tuple[str, str], int] = {}

    def snapshot(node: NodeProcess, asset: str) -> None:
        before.setdefault((node.name, asset), node.wallet(asset))

    for node in (alice, hub):
        snapshot(node, src_asset)
    deposit = 10**src_info.decimals  # one whole unit
    upstream = alice.open_channel(hub, src_asset, deposit, challenge=CHALLENGE)
    watched[upstream] = [alice, hub]
    out(f"  alice -> hub on {source.name}: {_fmt(deposit, src_info)} ({upstream[:8]})")
    downstream: dict[str, tuple[NodeProcess, str, DevnetAsset]] = {}
    for ledger, receiver in zip(targets, receivers, strict=False):
        asset, info = _native(ledger)
        assets[asset] = info
        snapshot(hub, asset)
        snapshot(receiver, asset)
        amount = 10**info.decimals // 10
        channel_id = hub.open_channel(receiver, asset, amount, challenge=CHALLENGE)
        watched[channel_id] = [hub, receiver]
        downstream[channel_id] = (receiver, asset, info)
        out(f"  hub -> {receiver.name} on {ledger.name}: {_fmt(amount, info)} ({channel_id[:8]})")

    out("== payments through the hub, converted at its quote")
    for _channel_id, (receiver, asset, info) in downstream.items():
        amount = 10**info.decimals // 100
        started = time.monotonic()
        result = alice.pay(receiver, amount, asset)
        if result["status"] != "succeeded":
            raise DemoFailure(f"alice -> {receiver.name}: {result}")
        took = (time.monotonic() - started) * 1000
        out(
            f"  alice pays {_fmt(result['sent'], src_info)}; {receiver.name} receives "
            f"{_fmt(amount, info)} ({took:.0f} ms)"
        )

    out(f"== one dispute per chain: every channel closed by force ({CHALLENGE} s challenge)")
    finals: dict[str, dict[str, int]] = {}
    for channel_id, parties in watched.items():
        # Both sides idle and agreeing, then the final balances both signed.
        a, b = parties
        wait_for(lambda: _agreed(a, b, channel_id), 60, "agreement")  # noqa: B023
        view = parties[0].channel(channel_id)
        finals[channel_id] = {
            parties[0].name: view["balances"][0]["local"],
            parties[1].name: view["balances"][0]["remote"],
        }
        closer = parties[1]  # the side that did not fund the channel goes on-chain
        closer.api.post(f"/v1/channels/{channel_id}/close", {"force": True})
        out(f"  {closer.name} registers {channel_id[:8]} on {view['chain']}")
    for channel_id, parties in watched.items():
        for node in parties:
            node.wait_closed(channel_id)
    out("  every dispute concluded, every payout withdrawn")

    out("== every wallet, to the base unit")
    expected: dict[tuple[str, str], int] = {}
    for channel_id, parties in watched.items():
        funder = parties[0]
        asset = funder.channel(channel_id)["balances"][0]["asset"]
        deposits = {funder.name: funder.channel(channel_id)["balances"][0]["deposit_local"]}
        changes = [(n, finals[channel_id][n.name] - deposits.get(n.name, 0)) for n in parties]
        for name, change in expected_wallet_changes(channel_id, changes, funder).items():
            expected[(name, asset)] = expected.get((name, asset), 0) + change
    failures = 0

    def observed(key: tuple[str, str]) -> int:
        return nodes[key[0]].wallet(key[1]) - before[key]

    with contextlib.suppress(TimeoutError):
        wait_for(lambda: all(observed(k) == v for k, v in expected.items()), 60, "payouts")
    for key, want in sorted(expected.items()):
        got = observed(key)
        mark = "ok" if got == want else "WRONG"
        failures += got != want
        out(f"  {key[0]:6} {_fmt(got, assets[key[1]]):>44}  expected {want:>22}  {mark}")
    if failures:
        out(f"{failures} balance(s) differ")
        return 1
    out("every balance is what it must be")
    return 0


def _agreed(a: NodeProcess, b: NodeProcess, channel_id: str) -> bool:
    ca, cb = a.channel(channel_id), b.channel(channel_id)
    return bool(ca["version"] == cb["version"] and ca["idle"] and cb["idle"] and not ca["htlcs"])


def demo_processes(directory: str | None, keep: bool, block_time: float) -> int:
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="chenilles-demo-"))
    try:
        return run(root.resolve(), block_time, click.echo)
    except (DevnetError, DemoFailure, TimeoutError, RuntimeError) as exc:
        click.echo(f"demo failed: {exc}", err=True)
        return 1
    finally:
        if not keep:
            for ledger in load_state(root).ledgers:
                if alive(ledger.pid):
                    from .ledgers import stop_pid

                    stop_pid(ledger.pid)
            if directory is None:
                shutil.rmtree(root, ignore_errors=True)
