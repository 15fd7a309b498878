#!/usr/bin/env python3
"""Payments/s inside a virtual channel against the same payments routed through the hub
with HTLCs, in one run (section ``virtual`` of scripts/bench.py).

Both paths run the core's ``ChannelMachine`` on every side, in one process, every message
encoded and decoded as on the wire, no store (so the figure is the protocol's, not the
disk's; docs/PERFORMANCE.md has the disk-bound figures of the ``updates`` section):

* ``virtual``: Alice pays Bob in their virtual channel V: one update (propose, accept,
  ack) signed by Alice's and Bob's V keys (secp256k1 over the guarantee's digest). The hub
  takes no part.
* ``htlc``: the same payment as a circuit Alice -> hub -> Bob over two EVM ledger channels
  (secp256k1 over EIP-712): Alice offers an HTLC to the hub, the hub offers one to Bob once
  Alice's is irrevocable, Bob settles with the preimage, the hub settles upstream: four
  updates on the hub's two channels, each a round trip.

    .venv/bin/python scripts/bench_virtual.py [--quick] [--json out.json]
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import bench_common
from chenilles_app_virtual.authority import VirtualAuthority
from chenilles_evm.authority import EvmAuthority
from eth_account import Account

from chenilles_hub.core import (
    AddHtlc,
    Asset,
    ChannelMachine,
    ChannelParams,
    Effect,
    Htlc,
    Participant,
    Send,
    SettleHtlc,
    StateAuthority,
    Transfer,
    initial_state,
    payment_hash,
)
from chenilles_hub.core.messages import decode_message, encode_message
from chenilles_hub.core.virtual import (
    LedgerTerms,
    VirtualTerms,
    virtual_channel_id,
    virtual_initial,
    virtual_params,
)

NOW = 1_700_000_000
CHAIN = "eip155:1337"
ADJUDICATOR = "0x" + "5a" * 20
FUNDS = 10**18
EVM_MARGIN = EvmAuthority(1337, ADJUDICATOR, b"\x01" * 32).margin  # native = expiry - margin


class Pair:
    """Two machines of one channel, messages encoded, decoded and delivered in order."""

    def __init__(self, machines: tuple[ChannelMachine, ChannelMachine]) -> None:
        self.m = machines
        self._deliver(0, machines[0].open())

    def _deliver(self, sender: int, effects: list[Effect]) -> None:
        queue = [(1 - sender, e) for e in effects]
        while queue:
            to, e = queue.pop(0)
            if isinstance(e, Send):
                msg = decode_message(encode_message(e.message))
                queue += [(1 - to, x) for x in self.m[to].receive(msg, NOW)]

    def update(self, proposer: int, updates: tuple[Any, ...]) -> None:
        self._deliver(proposer, self.m[proposer].propose(updates, NOW))


def evm_pair(name: bytes) -> tuple[Pair, Asset]:
    keys = [Account.from_key(hashlib.sha256(name + b"%d" % i).digest()) for i in (0, 1)]
    eth = Asset(CHAIN, "native")
    params = ChannelParams(
        chain=CHAIN,
        participants=tuple(
            Participant(k.address, hashlib.sha256(k.address.encode()).digest()) for k in keys
        ),
        assets=(eth,),
        challenge_duration=3600,
        nonce=hashlib.sha256(name).digest(),
    )
    auth: tuple[StateAuthority, ...] = tuple(
        EvmAuthority(1337, ADJUDICATOR, bytes(k.key)) for k in keys
    )
    cid = auth[0].channel_id(params)  # type: ignore[attr-defined]
    init = initial_state(cid, (eth,), {eth: (FUNDS, FUNDS)})
    machines = tuple(ChannelMachine(params, cid, i, auth[i], init) for i in (0, 1))
    return Pair((machines[0], machines[1])), eth


def virtual_pair() -> tuple[Pair, Asset]:
    keys = [hashlib.sha256(b"virtual %d" % i).digest() for i in (0, 1)]
    auth = [VirtualAuthority(k) for k in keys]
    terms = VirtualTerms(
        keys=(auth[0].address, auth[1].address),
        node_ids=(b"a" * 32, b"b" * 32),
        hub_node_id=b"h" * 32,
        ledgers=(LedgerTerms(b"A" * 32, 1), LedgerTerms(b"B" * 32, 0)),
        split=(FUNDS, FUNDS),
        deadline=NOW + 86400,
        grace=3600,
        nonce=b"n" * 32,
    )
    params, vid, init = virtual_params(terms), virtual_channel_id(terms), virtual_initial(terms)
    machines = tuple(ChannelMachine(params, vid, i, auth[i], init) for i in (0, 1))
    return Pair((machines[0], machines[1])), params.assets[0]


def run_virtual(count: int) -> float:
    pair, asset = virtual_pair()
    t = time.perf_counter()
    for _ in range(count):
        pair.update(0, (Transfer(asset, 1),))
    return time.perf_counter() - t


def run_htlc(count: int) -> float:
    """Alice (0) -> hub (1) in ``a``; hub (0) -> Bob (1) in ``b``: add, add, settle, settle."""
    a, eth = evm_pair(b"alice-hub")
    b, _ = evm_pair(b"hub-bob")
    t = time.perf_counter()
    for i in range(count):
        preimage = hashlib.sha256(b"p%d" % i).digest()
        h = payment_hash(preimage)
        up = Htlc(i, 0, eth, 1, h, NOW + 7200, NOW + 7200 - EVM_MARGIN)
        down = Htlc(i, 0, eth, 1, h, NOW + 3700, NOW + 3700 - EVM_MARGIN)
        a.update(0, (AddHtlc(up),))
        b.update(0, (AddHtlc(down),))
        b.update(1, (SettleHtlc(i, preimage),))
        a.update(1, (SettleHtlc(i, preimage),))
    return time.perf_counter() - t


def run(quick: bool) -> dict[str, Any]:
    count = 200 if quick else 1000
    run_virtual(20), run_htlc(5)  # warm up (imports, caches)
    v, h = run_virtual(count), run_htlc(count)
    return {
        "payments": count,
        "virtual_payments_per_s": round(count / v, 1),
        "htlc_via_hub_payments_per_s": round(count / h, 1),
        "speedup": round(h / v, 2),
        "updates_per_payment": {"virtual": 1, "htlc_via_hub": 4},
        "machine": bench_common.machine(),
    }


if __name__ == "__main__":
    bench_common.section_main(run, __doc__)
