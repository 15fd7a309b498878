#!/usr/bin/env python3
"""Signed channel updates per second with persistence on (section 1 of scripts/bench.py).

Three measurements, each with a SQLite store per side (WAL, ``synchronous=FULL``) written
before any signature on the state leaves:

* ``signature_bound``: sign + verify of one state, per side, for the EVM authority
  (secp256k1 over the EIP-712 digest) and the ed25519 authority: the most updates/s one
  side could do if signing were all it did.
* ``machines``: two ChannelMachines driven exactly as a node drives them (Persist is one
  durable transaction, then messages are encoded, delivered, decoded), Transfer updates,
  1 and 16 transfers per proposal. Time is split into signing, persistence, encoding and
  the rest (the machine's own checks).
* ``nodes``: two Nodes with SQLite stores over the InProcessNetwork, an EVM channel opened
  and funded on the embedded eth-tester ledger, ``pay_direct`` in a loop (one update per
  round trip, and 16 queued transfers per proposal as the Node batches them).

    .venv/bin/python scripts/bench_updates.py [--quick] [--json out.json]
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bench_common
import nacl.signing
from chenilles_evm.authority import EvmAuthority
from eth_account import Account

from chenilles_hub.core import (
    Asset,
    ChannelMachine,
    ChannelParams,
    ChannelSnapshot,
    ChannelState,
    Effect,
    Participant,
    Persist,
    Send,
    SignedState,
    StateAuthority,
    Transfer,
    initial_state,
)
from chenilles_hub.core.messages import decode_message, encode_message
from chenilles_hub.node.store.base import ChannelRecord
from chenilles_hub.node.store.sqlite import SQLiteStore
from chenilles_hub.signing import Ed25519Authority

EVM_CHAIN = "eip155:1337"
ED_CHAIN = "chenilles:bench"
ADJUDICATOR = "0x" + "5a" * 20
NOW = 1_700_000_000


class Clock:
    """Accumulates perf_counter time per category."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def on(self, what: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.spent[what] += time.perf_counter() - t

    def reset(self) -> None:
        self.spent.clear()


class TimedAuthority:
    """A StateAuthority that forwards to another and times every call as ``signing``."""

    def __init__(self, inner: StateAuthority, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock

    def sign(
        self, params: ChannelParams, state: ChannelState, previous: SignedState | None
    ) -> bytes:
        with self._clock.on("signing"):
            return self._inner.sign(params, state, previous)

    def verify(
        self,
        params: ChannelParams,
        state: ChannelState,
        signer: int,
        bundle: bytes,
        previous: SignedState | None,
    ) -> bool:
        with self._clock.on("signing"):
            return self._inner.verify(params, state, signer, bundle, previous)

    def revoke(self, params: ChannelParams, signed: SignedState) -> bytes | None:
        with self._clock.on("signing"):
            return self._inner.revoke(params, signed)

    def verify_revocation(
        self, params: ChannelParams, signed: SignedState, signer: int, revocation: bytes | None
    ) -> bool:
        with self._clock.on("signing"):
            return self._inner.verify_revocation(params, signed, signer, revocation)

    def native_expiry_ok(self, expiry: int, native_expiry: int) -> bool:
        return self._inner.native_expiry_ok(expiry, native_expiry)


# --- a channel and its two authorities ------------------------------------------------------


def evm_channel() -> tuple[ChannelParams, bytes, tuple[StateAuthority, StateAuthority], Asset]:
    keys = [Account.from_key(hashlib.sha256(b"bench %d" % i).digest()) for i in (0, 1)]
    eth = Asset(EVM_CHAIN, "native")
    params = ChannelParams(
        chain=EVM_CHAIN,
        participants=tuple(
            Participant(k.address, hashlib.sha256(k.address.encode()).digest()) for k in keys
        ),
        assets=(eth,),
        challenge_duration=3600,
        nonce=hashlib.sha256(b"bench nonce").digest(),
    )
    auth = tuple(EvmAuthority(1337, ADJUDICATOR, bytes(k.key)) for k in keys)
    return params, auth[0].channel_id(params), (auth[0], auth[1]), eth


def ed25519_channel() -> tuple[ChannelParams, bytes, tuple[StateAuthority, StateAuthority], Asset]:
    keys = [nacl.signing.SigningKey(hashlib.sha256(b"ed %d" % i).digest()) for i in (0, 1)]
    coin = Asset(ED_CHAIN, "native")
    params = ChannelParams(
        chain=ED_CHAIN,
        participants=tuple(
            Participant(k.verify_key.encode().hex(), hashlib.sha256(bytes(k)).digest())
            for k in keys
        ),
        assets=(coin,),
        challenge_duration=3600,
        nonce=hashlib.sha256(b"bench nonce").digest(),
    )
    channel_id = hashlib.sha256(b"bench channel").digest()
    return params, channel_id, (Ed25519Authority(keys[0]), Ed25519Authority(keys[1])), coin


CHANNELS = {"evm_secp256k1": evm_channel, "ed25519": ed25519_channel}


def signature_bound(kind: str, rounds: int) -> dict[str, Any]:
    """sign + verify of one state per side: the upper bound on updates/s of one side."""
    params, channel_id, (a, b), asset = CHANNELS[kind]()
    state = initial_state(channel_id, params.assets, {asset: (10**18, 10**18)})
    sign_us, verify_us = [], []
    for i in range(rounds):
        s = ChannelState(channel_id, i + 1, state.balances)
        t0 = time.perf_counter()
        sig = a.sign(params, s, None)
        t1 = time.perf_counter()
        ok = b.verify(params, s, 0, sig, None)
        t2 = time.perf_counter()
        assert ok
        sign_us.append((t1 - t0) * 1e6)
        verify_us.append((t2 - t1) * 1e6)
    sign_p50 = bench_common.summary(sign_us, 1)["p50"]
    verify_p50 = bench_common.summary(verify_us, 1)["p50"]
    per_side = sign_p50 + verify_p50
    return {
        "sign_us": bench_common.summary(sign_us, 1),
        "verify_us": bench_common.summary(verify_us, 1),
        "bound_updates_per_s_per_side": round(1e6 / per_side),
        # both sides in one process on one core: every update costs 2 signs + 2 verifies
        "bound_updates_per_s_one_process": round(1e6 / (2 * per_side)),
    }


# --- two machines driven like nodes ---------------------------------------------------------


class MachineSide:
    def __init__(
        self,
        machine: ChannelMachine,
        store: SQLiteStore,
        clock: Clock,
        outbox: list[tuple[int, bytes]],
    ) -> None:
        self.machine = machine
        self.store = store
        self.clock = clock
        self.outbox = outbox  # (recipient index, encoded message)

    def run(self, effects: list[Effect]) -> None:
        """Persist (one durable transaction) before any Send, as the Node does."""
        snapshots: list[ChannelSnapshot] = [e.snapshot for e in effects if isinstance(e, Persist)]
        if snapshots:
            with self.clock.on("persistence"):
                self.store.save_snapshots(snapshots[-1:])
        for effect in effects:
            if isinstance(effect, Send):
                with self.clock.on("encoding"):
                    data = encode_message(effect.message)
                self.outbox.append((1 - self.machine.me, data))


def machines_bench(kind: str, updates: int, batch: int, directory: Path) -> dict[str, Any]:
    params, channel_id, auth, asset = CHANNELS[kind]()
    clock = Clock()
    initial = initial_state(channel_id, params.assets, {asset: (10**24, 10**24)})
    outbox: list[tuple[int, bytes]] = []
    sides = []
    for me in (0, 1):
        store = SQLiteStore(directory / f"{kind}-{batch}-{me}.sqlite")
        store.add_channel(ChannelRecord(channel_id, params, me, initial))
        machine = ChannelMachine(params, channel_id, me, TimedAuthority(auth[me], clock), initial)
        sides.append(MachineSide(machine, store, clock, outbox))

    def deliver() -> None:
        while outbox:
            to, data = outbox.pop(0)
            with clock.on("encoding"):
                message = decode_message(data)
            sides[to].run(sides[to].machine.receive(message, NOW))

    sides[0].run(sides[0].machine.open())
    deliver()
    ops = tuple(Transfer(asset, 1) for _ in range(batch))
    proposals = max(1, updates // batch)
    warm = min(20, proposals)
    for _ in range(warm):
        sides[0].run(sides[0].machine.propose(ops, NOW))
        deliver()
    clock.reset()
    per_proposal_ms: list[float] = []
    t_start = time.perf_counter()
    for _ in range(proposals):
        t0 = time.perf_counter()
        sides[0].run(sides[0].machine.propose(ops, NOW))
        deliver()
        per_proposal_ms.append((time.perf_counter() - t0) * 1e3)
    elapsed = time.perf_counter() - t_start
    for side in sides:
        side.store.close()
    assert sides[1].machine.state.version == proposals + warm
    shares = {k: round(v / elapsed, 3) for k, v in clock.spent.items()}
    shares["other (machine checks, effects)"] = round(1 - sum(clock.spent.values()) / elapsed, 3)
    return {
        "authority": kind,
        "transfers_per_proposal": batch,
        "proposals": proposals,
        "updates_per_s": round(proposals * batch / elapsed),
        "signed_states_per_s": round(proposals / elapsed),
        "round_trip_ms": bench_common.summary(per_proposal_ms),
        "commits_per_state": 4,
        "time_share": shares,
    }


def group_commit_bench(kind: str, channels: int, rounds: int, directory: Path) -> dict[str, Any]:
    """``channels`` channels between the same two sides, one Transfer per channel per round;
    each side writes every snapshot a delivery round produced in one transaction before it
    releases that round's messages (group commit, as ``Node.checkpoint`` does per event)."""
    params0, _, auth, asset = CHANNELS[kind]()
    clock = Clock()
    stores = [SQLiteStore(directory / f"group-{kind}-{me}.sqlite") for me in (0, 1)]
    pairs: list[tuple[ChannelMachine, ChannelMachine]] = []
    for i in range(channels):
        params = ChannelParams(
            params0.chain,
            params0.participants,
            params0.assets,
            params0.challenge_duration,
            hashlib.sha256(b"group %d" % i).digest(),
        )
        if kind == "evm_secp256k1":
            channel_id = auth[0].channel_id(params)  # type: ignore[attr-defined]
        else:
            channel_id = hashlib.sha256(b"group channel %d" % i).digest()
        initial = initial_state(channel_id, params.assets, {asset: (10**24, 10**24)})
        pair = []
        for me in (0, 1):
            stores[me].add_channel(ChannelRecord(channel_id, params, me, initial))
            pair.append(
                ChannelMachine(params, channel_id, me, TimedAuthority(auth[me], clock), initial)
            )
        pairs.append((pair[0], pair[1]))
    by_id = {p[0].channel_id: p for p in pairs}

    def step(side: int, work: list[tuple[ChannelMachine, list[Effect]]]) -> list[bytes]:
        """Persist every snapshot of this round in one transaction, then encode the sends."""
        snaps = {}
        for machine, effects in work:
            for e in effects:
                if isinstance(e, Persist):
                    snaps[machine.channel_id] = e.snapshot
        if snaps:
            with clock.on("persistence"):
                stores[side].save_snapshots(list(snaps.values()))
        out = []
        with clock.on("encoding"):
            for _, effects in work:
                out += [encode_message(e.message) for e in effects if isinstance(e, Send)]
        return out

    def exchange(first: list[bytes], sender: int) -> None:
        inflight, to = first, 1 - sender
        while inflight:
            work = []
            for data in inflight:
                with clock.on("encoding"):
                    message = decode_message(data)
                machine = by_id[message.channel_id][to]
                work.append((machine, machine.receive(message, NOW)))
            inflight, to = step(to, work), 1 - to

    exchange(step(0, [(p[0], p[0].open()) for p in pairs]), 0)
    ops = (Transfer(asset, 1),)
    clock.reset()
    t_start = time.perf_counter()
    for _ in range(rounds):
        exchange(step(0, [(p[0], p[0].propose(ops, NOW)) for p in pairs]), 0)
    elapsed = time.perf_counter() - t_start
    for store in stores:
        store.close()
    assert all(p[1].state.version == rounds for p in pairs)
    shares = {k: round(v / elapsed, 3) for k, v in clock.spent.items()}
    shares["other (machine checks, effects)"] = round(1 - sum(clock.spent.values()) / elapsed, 3)
    return {
        "authority": kind,
        "channels": channels,
        "transfers_per_proposal": 1,
        "updates_per_s": round(rounds * channels / elapsed),
        "signed_states_per_s": round(rounds * channels / elapsed),
        "commits_per_round": 4,
        "time_share": shares,
    }


# --- two Nodes over the in-process network ----------------------------------------------------


def nodes_bench(updates: int, batches: tuple[int, ...], directory: Path) -> list[dict[str, Any]]:
    from chenilles_evm.backend import embedded_backend

    from chenilles_hub.identity import NodeIdentity
    from chenilles_hub.node.hub import persistence as persistence_module
    from chenilles_hub.node.hub.network import InProcessNetwork
    from chenilles_hub.node.hub.node import Node
    from chenilles_hub.node.hub.open_policy import OpenPolicy
    from chenilles_hub.node.net import wire
    from chenilles_hub.node.store import base as store_module

    clock = Clock()

    def timed(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            with clock.on(what):
                return fn(*args)

        return wrapper

    # Bench-only instrumentation: count time in the node's codecs and in the store.
    wire.encode = timed(wire.encode, "encoding")  # type: ignore[assignment]
    wire.decode = timed(wire.decode, "encoding")  # type: ignore[assignment]
    persistence_module.encode_node_state = timed(  # type: ignore[assignment]
        persistence_module.encode_node_state, "encoding (node state)"
    )
    store_module.encode_snapshot = timed(store_module.encode_snapshot, "encoding (snapshots)")

    class TimedStore(SQLiteStore):
        def save_checkpoint(
            self, snapshots: Any, settings: dict[str, bytes], *, durable: bool = True
        ) -> None:
            with clock.on("persistence"):
                super().save_checkpoint(snapshots, settings, durable=durable)

    backend = embedded_backend()
    eth = Asset(backend.chain, "native")
    # A node's clock is wall time; the tests' clock (``backend.now``) asks eth-tester for the
    # latest block on every event, which alone took a third of the time here.
    base, wall0 = backend.now(), time.time()

    def now() -> int:
        return base + int(time.time() - wall0)

    results = []
    try:
        for batch in batches:
            network = InProcessNetwork()
            nodes = []
            for name in ("alice", "bob"):
                node = Node(
                    identity=NodeIdentity(),
                    backends={backend.chain: backend},
                    accounts={backend.chain: backend.create_account(fund=True)},
                    clock=now,
                    name=name,
                    store=TimedStore(directory / f"node-{name}-{batch}.sqlite"),
                    # bob deposits into the channel alice opens: his policy allows it
                    open_policy=OpenPolicy(max_remote_deposit={eth: 10**19}),
                )
                network.add(node)
                nodes.append(node)
            alice, bob = nodes
            before = set(alice.channels)
            alice.open_channel(bob.node_id, backend.chain, {eth: (10**19, 10**19)}, 3600)
            network.run()
            for _ in range(backend.time_model().finality_depth):  # deposits at depth
                backend.advance_time(12)
            network.sync_chains([backend])
            (cid,) = set(alice.channels) - before
            assert alice.channels[cid].active and bob.channels[cid].active
            for node in nodes:
                machine = node.channels[cid].machine
                machine._authority = TimedAuthority(machine._authority, clock)
            rounds = max(1, updates // batch)
            for _ in range(min(10, rounds)):
                alice.pay_direct(cid, eth, 1)
                network.run()
            v0 = bob.channels[cid].machine.state.version
            clock.reset()
            per_round_ms = []
            t_start = time.perf_counter()
            for _ in range(rounds):
                t0 = time.perf_counter()
                for _ in range(batch):
                    alice.pay_direct(cid, eth, 1)
                network.run()
                per_round_ms.append((time.perf_counter() - t0) * 1e3)
            elapsed = time.perf_counter() - t_start
            states = bob.channels[cid].machine.state.version - v0
            assert bob.channels[cid].machine.state.free(eth)[1] == 10**19 + 10 + rounds * batch
            shares = {k: round(v / elapsed, 3) for k, v in clock.spent.items()}
            shares["other (node + machine logic)"] = round(
                1 - sum(clock.spent.values()) / elapsed, 3
            )
            results.append(
                {
                    "authority": "evm_secp256k1",
                    "ledger": "eth-tester (channel opened and funded on it)",
                    "transfers_queued_per_round": batch,
                    "updates_per_s": round(rounds * batch / elapsed),
                    "signed_states_per_s": round(states / elapsed),
                    "signed_states": states,
                    "round_ms": bench_common.summary(per_round_ms),
                    "time_share": shares,
                }
            )
            for node in nodes:
                assert node.store is not None
                node.store.close()
    finally:
        backend.close()
    return results


def run(quick: bool) -> dict[str, Any]:
    rounds = 300 if quick else 2000
    updates = 400 if quick else 3000
    node_updates = 200 if quick else 1500
    out: dict[str, Any] = {"machine": bench_common.machine()}
    out["signature_bound"] = {k: signature_bound(k, rounds) for k in CHANNELS}
    with tempfile.TemporaryDirectory(prefix="chenilles-bench-") as tmp:
        out["machines"] = [
            machines_bench(kind, updates if batch == 1 else updates * 4, batch, Path(tmp))
            for kind in CHANNELS
            for batch in (1, 16)
        ]
        out["group_commit"] = [
            group_commit_bench(kind, 32, 10 if quick else 60, Path(tmp)) for kind in CHANNELS
        ]
        out["nodes"] = nodes_bench(node_updates, (1, 16), Path(tmp))
    out["target_updates_per_s"] = 2000
    return out


if __name__ == "__main__":
    bench_common.section_main(run, __doc__)
