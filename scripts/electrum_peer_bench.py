#!/usr/bin/python3
"""Electrum's Lightning peers in one process: the peer that ``scripts/bench_electrum.py``
measures beside ours, in the same run.

Runs under the *system* Python with Debian's ``python3-electrum`` (4.3.4); never imported by
Chenilles (Electrum is not a dependency of the hub, only of this benchmark). The set-up
follows what Electrum's own two-peer tests do (electrum/tests/test_lnpeer.py in its public
source): channels built directly from keys (no funding transaction, no chain), peers joined
by in-memory queues instead of the Noise transport, a worker that borrows ``LNWallet``'s
payment methods and writes nothing to disk. So Electrum's figures here are its channel
protocol, onion, BOLT 3 commitments and signatures, without persistence; with
``"persist": true`` each node also has a real Electrum wallet db and storage holding its
channels, written (JSON, fsync, rename) whenever Electrum saves a channel, as a wallet
does.

A line protocol on stdin/stdout (one JSON object a line) so the caller can alternate rounds
with its own: ``{"cmd": "pay", "hops": 1 | 2, "n": N}`` answers per-payment latencies in
ms; ``{"cmd": "burst", "hops": 1 | 2, "k": K, "n": N}`` N times K payments at once,
answers seconds per burst; ``{"cmd": "commit", "n": N}`` answers ms per state (2 HTLCs,
both sides sign, verify and revoke); ``{"cmd": "quit"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from decimal import Decimal

import electrum
from electrum import constants, lnutil, util
from electrum.bitcoin import COIN, sha256
from electrum.channel_db import ChannelDB
from electrum.invoices import PR_PAID, PR_UNPAID
from electrum.json_db import StoredDict
from electrum.lnaddr import LnAddr, lndecode, lnencode
from electrum.lnchannel import Channel
from electrum.lnpeer import Peer
from electrum.lnrouter import LNPathFinder
from electrum.lnutil import REMOTE, Keypair, LnFeatures, LNPeerAddr
from electrum.lnworker import RECEIVED, LNWallet, PaymentInfo
from electrum.simple_config import SimpleConfig
from electrum.storage import WalletStorage
from electrum.util import NetworkRetryManager
from electrum.wallet_db import WalletDB
from electrum_channels import channel_pair, commitment_rounds, keypair


class _NoLock:
    """Everything runs on Electrum's one event loop thread: no lock is needed."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _Chain:
    """What a peer asks of the network: height 0, a stale-free tip, a sink for transactions."""

    def __init__(self, config: SimpleConfig) -> None:
        self.config = config
        self.asyncio_loop = util.get_asyncio_loop()
        self.channel_db = ChannelDB(self)
        self.channel_db.data_loaded.set()
        self.path_finder = LNPathFinder(self.channel_db)
        self.lnwatcher = None
        self.interface = None
        self.callback_lock = _NoLock()

    def get_local_height(self) -> int:
        return 0

    def blockchain(self) -> _Chain:
        return self

    def height(self) -> int:
        return 0

    def is_tip_stale(self) -> bool:
        return False

    async def try_broadcasting(self, tx: object, name: str) -> None:
        return None

    broadcast_transaction = try_broadcasting


class _Wallet:
    """The on-chain wallet's part a Lightning worker touches. Without a directory nothing is
    saved (Electrum's test set-up); with one, ``save_db`` is a real Electrum wallet's: its
    ``WalletDB`` (holding this node's channels) serialized to JSON and written through
    ``WalletStorage`` (temporary file, fsync, rename), whenever a channel changed."""

    def __init__(self, path: str | None) -> None:
        self.receive_requests: dict = {}
        self.db = WalletDB("", manual_upgrades=False) if path else None
        self.storage = WalletStorage(path) if path else None
        self.writes = 0
        if self.storage is not None:
            write = self.storage.write

            def counted(data: str) -> None:
                self.writes += 1
                write(data)

            self.storage.write = counted  # type: ignore[method-assign]

    class adb:  # Electrum's attribute name
        @staticmethod
        def add_transaction(tx: object) -> None:
            return None

    def save_db(self) -> None:
        if self.db is not None and self.storage is not None:
            self.db.write(self.storage)  # only if something changed, as in Electrum

    def holds(self, state: dict) -> StoredDict:
        """``state`` as a channel of this wallet's db (its changes mark the db modified)."""
        if self.db is None:
            return StoredDict(state, None, [])
        channels = self.db.get_dict("channels")
        channels[state["channel_id"]] = state
        return channels[state["channel_id"]]

    def set_label(self, *args: object) -> None:
        return None

    def get_request(self, key: object) -> None:
        return None

    def get_key_for_receive_request(self, key: object) -> None:
        return None

    def is_lightning_backup(self) -> bool:
        return False

    def is_mine(self, address: object) -> bool:
        return True


class Worker(electrum.logging.Logger, util.EventListener, NetworkRetryManager[LNPeerAddr]):
    """One Lightning node: ``LNWallet``'s payment logic over channels held in memory."""

    MPP_EXPIRY = 2
    PAYMENT_TIMEOUT = 120
    TIMEOUT_SHUTDOWN_FAIL_PENDING_HTLCS = 0
    INITIAL_TRAMPOLINE_FEE_LEVEL = 0
    _check_invoice = staticmethod(LNWallet._check_invoice)

    def __init__(self, name: str, keys: Keypair, forwards: bool, persist: bool) -> None:
        self.name = name
        electrum.logging.Logger.__init__(self)
        NetworkRetryManager.__init__(self, max_retry_delay_normal=1, init_retry_delay_normal=1)
        self.node_keypair = keys
        self._dir = tempfile.mkdtemp(prefix="electrum-bench-")
        self.config = SimpleConfig({}, read_user_dir_function=lambda: self._dir)
        self.config.set_key("lightning_forward_payments", forwards)
        self.network = _Chain(self.config)
        self.wallet = _Wallet(os.path.join(self._dir, "wallet") if persist else None)
        self.taskgroup = util.OldTaskGroup()
        self.lnwatcher = None
        self.listen_server = None
        self._channels: dict[bytes, Channel] = {}
        self._peers: dict[bytes, Peer] = {}
        self.lock = _NoLock()
        self.features = (
            LnFeatures.OPTION_DATA_LOSS_PROTECT_OPT
            | LnFeatures.OPTION_UPFRONT_SHUTDOWN_SCRIPT_OPT
            | LnFeatures.VAR_ONION_OPT
            | LnFeatures.PAYMENT_SECRET_OPT
            | LnFeatures.OPTION_CHANNEL_TYPE_OPT
        )
        self.payment_info: dict = {}
        self.preimages: dict = {}
        self.logs: dict = defaultdict(list)
        self.pending_payments: dict = defaultdict(asyncio.Future)
        self.sent_htlcs: dict = defaultdict(asyncio.Queue)
        self.sent_htlcs_info: dict = {}
        self.sent_buckets: dict = defaultdict(set)
        self.received_mpp_htlcs: dict = {}
        self.trampoline_forwarding_failures: dict = {}
        self.inflight_payments: set = set()
        self.downstream_htlc_to_upstream_peer_map: dict = {}
        self.enable_htlc_settle = True
        self.enable_htlc_forwarding = True
        self.stopping_soon = False

    channel_db = property(lambda self: self.network.channel_db)
    channels = property(lambda self: self._channels)
    peers = property(lambda self: self._peers)

    def uses_trampoline(self) -> bool:
        return False

    def get_channel_by_short_id(self, scid: bytes) -> Channel | None:
        return next((c for c in self.channels.values() if c.short_channel_id == scid), None)

    def channel_state_changed(self, chan: Channel) -> None:
        self.save_channel(chan)

    def save_channel(self, chan: Channel) -> None:
        """As ``LNWallet.save_channel``: the wallet's db is written (if it has one)."""
        self.wallet.save_db()

    def get_first_timestamp(self) -> int:
        return 0

    def diagnostic_name(self) -> str:
        return self.name


# The worker borrows every other method of ``LNWallet`` (payment, forwarding, HTLC handling)
# as it is; properties and class attributes stay Electrum's defaults or the worker's own.
for _cls in LNWallet.__mro__[:2]:  # LNWallet first: the most specific wins
    for _name, _value in vars(_cls).items():
        if callable(_value) and not isinstance(_value, type) and _name not in vars(Worker):
            setattr(Worker, _name, _value)


class _Pipe:
    """An in-memory transport: what one peer sends lands in the other's queue."""

    def __init__(self, name: str, privkey: bytes) -> None:
        self.privkey = privkey  # the node key, which a peer reads from its transport
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._name = name
        self.other: _Pipe | None = None
        self.peer_addr = None

    def name(self) -> str:
        return self._name

    def send_bytes(self, data: bytes) -> None:
        assert self.other is not None
        self.other.queue.put_nowait(data)

    async def read_messages(self):  # type: ignore[no-untyped-def]
        while True:
            yield await self.queue.get()


class _Peer(Peer):
    DELAY_INC_MSG_PROCESSING_SLEEP = 0  # Electrum's tests turn the rate limit off too


class Line:
    """Nodes 0 .. k in a line, a channel between neighbours, the inner ones forwarding."""

    def __init__(self, hops: int, persist: bool) -> None:
        keys = [keypair() for _ in range(hops + 1)]
        self.workers = [
            Worker(f"n{i}", k, forwards=0 < i < hops, persist=persist) for i, k in enumerate(keys)
        ]
        self.peers: list[Peer] = []
        for i in range(hops):
            left, right = self.workers[i], self.workers[i + 1]
            ca, cb = channel_pair(
                left.node_keypair, right.node_keypair, f"c{i}", (left.wallet, right.wallet)
            )
            for w, c in ((left, ca), (right, cb)):
                w.channels[c.channel_id] = c
                c.lnworker = w
            pa = _Pipe(f"{i}>", left.node_keypair.privkey)
            pb = _Pipe(f"<{i + 1}", right.node_keypair.privkey)
            pa.other, pb.other = pb, pa
            peer_a = _Peer(left, right.node_keypair.pubkey, pa)
            peer_b = _Peer(right, left.node_keypair.pubkey, pb)
            left.peers[peer_a.pubkey] = peer_a
            right.peers[peer_b.pubkey] = peer_b
            self.peers += [peer_a, peer_b]
            self._pending = [(peer_a, ca), (peer_b, cb)]
            for peer, chan in self._pending:
                peer.mark_open(chan)

    async def start(self) -> None:
        for peer in self.peers:
            for job in (peer._message_loop(), peer.htlc_switch()):
                asyncio.ensure_future(job).add_done_callback(self._stopped)
        for peer in self.peers:
            await peer.initialized

    def _stopped(self, task: asyncio.Future) -> None:
        """A peer's loop ended: the harness is broken, so say why and stop."""
        if not task.cancelled():
            self.failure = repr(task.exception())
            print(json.dumps({"error": f"an Electrum peer stopped: {self.failure}"}), flush=True)
            os._exit(1)

    def invoice(self, amount_msat: int) -> str:
        payee = self.workers[-1]
        preimage = os.urandom(32)
        payment_hash = sha256(preimage)
        payee.save_preimage(payment_hash, preimage)
        payee.save_payment_info(PaymentInfo(payment_hash, amount_msat, RECEIVED, PR_UNPAID))
        hints, _ = payee.calc_routing_hints_for_invoice(amount_msat)
        addr = LnAddr(
            paymenthash=payment_hash,
            amount=Decimal(amount_msat) / (COIN * 1000),
            tags=[
                ("c", lnutil.MIN_FINAL_CLTV_EXPIRY_FOR_INVOICE),
                ("d", "bench"),
                ("9", payee.features.for_invoice()),
                *hints,
            ],
            payment_secret=lnutil.derive_payment_secret_from_payment_preimage(preimage),
        )
        return lnencode(addr, payee.node_keypair.privkey)

    def writes(self) -> int:
        """Wallet files written so far (each fsynced), all nodes."""
        return sum(w.wallet.writes for w in self.workers)

    def commitments(self) -> int:
        """Commitments signed so far, all channels, both sides (each signs the other's)."""
        return sum(c.get_latest_ctn(REMOTE) for w in self.workers for c in w.channels.values())

    async def pay(self, n: int, amount_sat: int) -> list[float]:
        payer, payee = self.workers[0], self.workers[-1]
        out = []
        for _ in range(n):
            invoice = self.invoice(amount_sat * 1000)
            t0 = time.perf_counter()
            ok, log = await payer.pay_invoice(invoice, attempts=1)
            out.append((time.perf_counter() - t0) * 1e3)
            if not ok or payee.get_payment_status(lndecode(invoice).paymenthash) != PR_PAID:
                raise RuntimeError(f"electrum payment failed: {log}")
        return out

    async def burst(self, k: int, n: int, amount_sat: int) -> list[float]:
        """``n`` times ``k`` payments started together: seconds until all ``k`` arrived."""
        payer = self.workers[0]
        out = []
        for _ in range(n):
            invoices = [self.invoice(amount_sat * 1000) for _ in range(k)]
            t0 = time.perf_counter()
            results = await asyncio.gather(
                *(payer.pay_invoice(inv, attempts=1) for inv in invoices)
            )
            out.append(time.perf_counter() - t0)
            if not all(ok for ok, _ in results):
                raise RuntimeError("an electrum payment in a burst failed")
        return out


def main() -> None:
    logging.disable(logging.CRITICAL)
    constants.set_testnet()
    loop, stop, thread = util.create_and_start_event_loop()
    lines: dict[tuple[int, bool], Line] = {}

    async def line(hops: int, persist: bool) -> Line:
        if (hops, persist) not in lines:
            lines[(hops, persist)] = Line(hops, persist)
            await lines[(hops, persist)].start()
        return lines[(hops, persist)]

    async def handle(cmd: dict) -> dict:
        if cmd["cmd"] == "pay":
            peers = await line(cmd["hops"], cmd.get("persist", False))
            before, writes = peers.commitments(), peers.writes()
            ms = await peers.pay(cmd["n"], cmd.get("amount_sat", 10_000))
            return {
                "ms": ms,
                "commitments": peers.commitments() - before,
                "writes": peers.writes() - writes,
            }
        if cmd["cmd"] == "burst":
            peers = await line(cmd["hops"], cmd.get("persist", False))
            before, writes = peers.commitments(), peers.writes()
            seconds = await peers.burst(cmd["k"], cmd["n"], cmd.get("amount_sat", 10_000))
            return {
                "s": seconds,
                "commitments": peers.commitments() - before,
                "writes": peers.writes() - writes,
            }
        if cmd["cmd"] == "commit":
            return {"ms": commitment_rounds(cmd["n"])}
        raise ValueError(cmd)

    print(json.dumps({"ready": electrum.version.ELECTRUM_VERSION}), flush=True)
    for raw in sys.stdin:
        cmd = json.loads(raw)
        if cmd["cmd"] == "quit":
            break
        try:
            answer = asyncio.run_coroutine_threadsafe(handle(cmd), loop).result()
        except Exception as exc:  # reported to the caller, which stops the section
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)
    loop.call_soon_threadsafe(stop.set_result, 1)
    thread.join(timeout=2)
    for peers in lines.values():
        for worker in peers.workers:
            shutil.rmtree(worker._dir, ignore_errors=True)


if __name__ == "__main__":
    main()
