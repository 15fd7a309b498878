"""The crash harness: ``kill -9`` a node process at every step of a channel's life, restart it,
check the books after every restart.

Two ``chenilles node start`` processes (Alice and Bob) on one chain under test
(:mod:`tests.node.crash_chains`: EVM on anvil, or the Bitcoin or Solana devnet ledger, each a
process speaking its chain's RPC), with SQLite or PostgreSQL stores, live through
*episodes*. An episode is one channel's whole life:

``open``
    Alice opens a channel to Bob, both deposit (Bitcoin: Alice alone, a single funder) (the
    handshake, the deposits, the wait for the confirmation depth); one of them is killed at
    a random moment of it.
``transfer`` / ``pay`` / ``fail``
    a direct transfer (a plain update), a payment through an invoice (HTLC added then
    fulfilled) and a payment to an invoice the payee does not know (HTLC added then failed),
    in a random direction; one node is killed at a random moment of each.
``close`` / ``dispute``
    a cooperative close, or a force close (registration, challenge period, conclusion,
    withdrawals); one node is killed at a random moment of it.

After every kill, *before* the restart, the dead node's store is read: every version the
live peer holds signed must be on the dead node's disk (a signature never leaves before the
state it signs is durable). After every restart:

* both sides converge: the same version, mirrored balances, idle, no HTLC left;
* the channel's balances add up to the deposits, to the base unit;
* each side holds exactly what the completed steps say: a transfer applied at most once
  (and once if the API said it was signed), a payment succeeded exactly when the payee's
  invoice is paid, a failed HTLC returned in full.

At the end of each episode every account's on-chain balance must have moved by exactly its
final channel balance, less its deposit and every fee its transactions paid (EVM: read
from the blocks; Bitcoin, Solana: the receipts the nodes list).

Run standalone with ``scripts/crash_harness.py``; ``tests/node/test_crash_harness.py`` runs a
bounded part in CI.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chenilles_hub.circuit.invoice import create_invoice, decode_invoice
from chenilles_hub.node.api.client import ApiCallError
from chenilles_hub.node.store.base import Store, snapshot_version

from .crash_chains import ChainUnderTest
from .test_server_harness import NodeProc, agreed, channel, connected, wait_for

StoreKind = Literal["sqlite", "postgres"]
#: The PostgreSQL runs' leader lease (s): far longer than a restart may take.
LEASE_TTL = 120
STEPS = ("transfer", "pay", "fail")
#: seconds a (re)started process may take to serve: imports alone take 15 s on a 2-core
#: machine shared with other test runs
READY = 120.0


class HarnessFailure(AssertionError):
    """A property the harness checks did not hold (the message says which, and where)."""


@dataclass
class Tally:
    """What a run did: kills per step, outcomes, restart times."""

    kills: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    restarts: list[float] = field(default_factory=list)
    episodes: int = 0
    disk_checks: int = 0

    @property
    def total(self) -> int:
        return sum(self.kills.values())

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def summary(self) -> str:
        mean = sum(self.restarts) / max(1, len(self.restarts))
        return (
            f"{self.total} kills over {self.episodes} episodes; per step {self.kills}; "
            f"outcomes {self.outcomes}; {self.disk_checks} disk checks; restart (kill -> "
            f"serving) mean {mean:.2f}s max {max(self.restarts, default=0):.2f}s"
        )


class CrashHarness:
    """Alice and Bob as processes; ``run`` kills them ``kills`` times over whole episodes."""

    def __init__(
        self,
        base: Path,
        chain: ChainUnderTest,
        store: StoreKind,
        seed: int,
        *,
        postgres_dsn: str | None = None,
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.chain = chain
        self.store = store
        self.rng = random.Random(seed)
        self.log = log
        self.tally = Tally()
        self.dsn = postgres_dsn
        self.schemas: dict[str, str] = {}
        self.alice = chain.make_node(base, "alice", 0)
        self.bob = chain.make_node(base, "bob", 1)
        self.alice.peers = [self.bob]
        self.bob.peers = [self.alice]
        self.nodes = {"alice": self.alice, "bob": self.bob}
        for node in self.nodes.values():
            node.tail += self._store_table(node)
        # what each side deposits when Alice opens
        self.deposits = {"alice": chain.deposit, "bob": 0 if chain.single_funder else chain.deposit}

    # --- processes and stores -----------------------------------------------------------

    def _store_table(self, node: NodeProc) -> str:
        if self.store == "sqlite":
            return ""
        if self.dsn is None:
            raise ValueError("a PostgreSQL run needs a DSN")
        schema = f"crash_{node.name}_{uuid.uuid4().hex[:10]}"
        self.schemas[node.name] = schema
        # A long lease: the restarted process (a new holder) takes over because the killed
        # one's database connection is gone, not by waiting for the lease to expire.
        return (
            f'\n[store]\nkind = "postgres"\ndsn = "{self.dsn}"\nschema = "{schema}"\n'
            f"lease_ttl = {LEASE_TTL}\n"
        )

    def open_store(self, node: NodeProc) -> Store:
        """The dead node's store, opened as its next process would open it."""
        if self.store == "sqlite":
            from chenilles_hub.node.store.sqlite import SQLiteStore

            return SQLiteStore(node.data_dir / "node.sqlite")
        from chenilles_hub.node.store.postgres import PostgresStore

        assert self.dsn is not None
        return PostgresStore(self.dsn, schema=self.schemas[node.name])

    def start(self) -> None:
        for node in self.nodes.values():
            node.start(wait=False)
        for node in self.nodes.values():
            node.wait_ready(timeout=READY)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        if self.store == "postgres" and self.dsn is not None:
            import psycopg

            with psycopg.connect(self.dsn, autocommit=True) as conn:
                for schema in self.schemas.values():
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def peer_of(self, node: NodeProc) -> NodeProc:
        return self.bob if node is self.alice else self.alice

    def kill_restart(self, step: str, channel_id: str | None, delay: float) -> str:
        """Kill a random node after ``delay`` s, check its disk, restart it; its name."""
        name = self.rng.choice(["alice", "bob"])
        victim = self.nodes[name]
        time.sleep(delay)
        killed_at = time.monotonic()
        victim.kill()
        if channel_id is not None:
            self.check_disk(victim, channel_id)
        victim.start(wait=False)
        victim.wait_ready(timeout=READY)
        self.tally.restarts.append(time.monotonic() - killed_at)
        self.tally.count(self.tally.kills, step)
        wait_for(lambda: connected(victim, self.peer_of(victim)), 60, "reconnected")
        return name

    def check_disk(self, dead: NodeProc, channel_id: str) -> None:
        """Every version the live peer holds signed is on the dead node's disk."""
        peer = self.peer_of(dead)
        with contextlib.suppress(ApiCallError):
            held = channel(peer, channel_id)
            if held["status"] == "closed":
                return
            store = self.open_store(dead)
            try:
                snapshot = store.load_snapshot(bytes.fromhex(channel_id))
            finally:
                store.close()
            on_disk = -1 if snapshot is None else snapshot_version(snapshot)
            if snapshot is not None and snapshot.pending is not None:
                on_disk = max(on_disk, snapshot.pending.signed.state.version)
            if held["version"] > on_disk:
                raise HarnessFailure(
                    f"{peer.name} holds version {held['version']} signed by {dead.name}, "
                    f"whose disk has only {on_disk}"
                )
            self.tally.disk_checks += 1

    # --- a run ----------------------------------------------------------------------------

    def run(self, kills: int) -> Tally:
        self.start()
        try:
            while self.tally.total < kills:
                self.episode(kills)
                self.tally.episodes += 1
                self.log(self.tally.summary())
        finally:
            self.stop()
        return self.tally

    def episode(self, kills: int) -> None:
        mark = self.chain.mark()
        before = self.chain.wallets(self.nodes)
        with self.chain.mining():
            channel_id = self.open_step()
        expected = dict(self.deposits)
        # the life of the channel: updates until the run's kills are nearly spent, then a close
        updates = min(self.rng.randint(3, 6), max(0, kills - self.tally.total - 1))
        for _ in range(updates):
            step = self.rng.choice(STEPS)
            getattr(self, f"{step}_step")(channel_id, expected)
            self.check_channel(channel_id, expected, step)
        closing = self.rng.choice(["close", "dispute"])
        with self.chain.mining():
            self.close_step(channel_id, closing == "dispute")
        self.check_wallets(channel_id, mark, before, expected, closing)

    def check_wallets(
        self,
        channel_id: str,
        mark: int,
        before: dict[str, int],
        expected: dict[str, int],
        closing: str,
    ) -> None:
        """Each account moved by its final balance less its deposit, net of its fees (the
        payouts may take a few blocks to show in a wallet: waited for, up to 60 s)."""
        want = {name: expected[name] - self.deposits[name] for name in self.nodes}

        def moved() -> dict[str, int]:
            after = self.chain.wallets(self.nodes)
            costs = self.chain.costs(self.nodes, channel_id, mark)
            return {name: after[name] - before[name] + costs[name] for name in self.nodes}

        with self.chain.mining(), contextlib.suppress(TimeoutError):
            wait_for(lambda: moved() == want, 60, "the payouts")
        self.chain.notes.clear()
        got = moved()
        for note in self.chain.notes:
            self.tally.count(self.tally.outcomes, note)
        if got != want:
            raise HarnessFailure(
                f"after a {closing} the accounts moved by {got} ({self.chain.asset} base units, "
                f"net of fees), not by their final balances less their deposits, {want}; "
                f"costs counted {self.chain.costs(self.nodes, channel_id, mark)}; receipts "
                + str({n: channel(node, channel_id)["receipts"] for n, node in self.nodes.items()})
            )

    def open_step(self) -> str:
        """Alice opens (both deposit); a kill during the handshake, funding or activation.
        An open the kill lost before it was durable is asked again."""
        for _attempt in range(5):
            known = {c["channel_id"] for c in self.alice.api.get("/v1/channels")}
            wait_for(lambda: connected(self.alice, self.bob), 60, "connected")
            self.alice.api.post(
                "/v1/channels",
                {
                    "peer": self.bob.node_id,
                    "asset": self.chain.asset,
                    "amount": self.deposits["alice"],
                    "remote_amount": self.deposits["bob"],
                    "challenge_duration": self.chain.challenge,
                },
            )
            self.kill_restart("open", None, self.rng.uniform(0, 1.5))

            def opened(known: set[str] = known) -> str | None:
                for c in self.alice.api.get("/v1/channels"):
                    if (
                        c["channel_id"] not in known
                        and c["status"] == "active"
                        and channel(self.bob, c["channel_id"])["status"] == "active"
                    ):
                        return str(c["channel_id"])
                return None

            try:
                channel_id: str = wait_for(opened, 20, "the channel to open")
            except TimeoutError:
                channels = self.alice.api.get("/v1/channels")
                if not any(c["channel_id"] not in known for c in channels):
                    self.tally.count(self.tally.outcomes, "open lost (asked again)")
                    continue
                # A deposit marked as sent died with its process before it left: it is sent
                # again once the chain shows none of it twice its inclusion delay later.
                # An open the acceptor forgot is abandoned (pending_timeout): ask again.
                self.chain.advance(2 * 60 + 10)
                try:
                    channel_id = wait_for(opened, 30, "the channel to open")
                except TimeoutError:
                    now = self.alice.api.get("/v1/channels")
                    if all(
                        c["status"] == "closed" and c["version"] == 0
                        for c in now
                        if c["channel_id"] not in known
                    ):
                        self.tally.count(self.tally.outcomes, "open forgot by the peer, abandoned")
                        continue
                    raise HarnessFailure(f"an open stuck after a kill: {now}") from None
                self.tally.count(self.tally.outcomes, "deposit lost in a kill, sent again")
            self.tally.count(self.tally.outcomes, "opened")
            return channel_id
        raise HarnessFailure("five opens in a row lost")

    def _in_background(self, call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
        out: dict[str, Any] = {}

        def run() -> None:
            try:
                out["result"] = call()
            except ApiCallError as exc:  # the node died while answering
                out["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        return thread, out

    def _direction(self, expected: dict[str, int]) -> tuple[str, str]:
        """A random payer that can pay (on Bitcoin Bob starts with nothing)."""
        able = [n for n in ("alice", "bob") if expected[n] >= self.chain.amount]
        payer = self.rng.choice(able)
        return payer, "bob" if payer == "alice" else "alice"

    def transfer_step(self, channel_id: str, expected: dict[str, int]) -> None:
        payer, payee = self._direction(expected)
        before = self.local(payer, channel_id)
        thread, out = self._in_background(
            lambda: self.nodes[payer].api.post(
                f"/v1/channels/{channel_id}/transfers", {"amount": self.chain.amount}
            )
        )
        self.kill_restart("transfer", channel_id, self.rng.uniform(0, 0.05))
        thread.join()
        agreed(self.alice, self.bob, channel_id)
        sent = before - self.local(payer, channel_id)
        if sent not in (0, self.chain.amount) or ("result" in out and sent != self.chain.amount):
            raise HarnessFailure(f"a transfer of {self.chain.amount} moved {sent} (answer {out})")
        self.tally.count(self.tally.outcomes, "transfer " + ("applied" if sent else "lost"))
        expected[payer] -= sent
        expected[payee] += sent

    def pay_step(self, channel_id: str, expected: dict[str, int]) -> None:
        payer_name, payee_name = self._direction(expected)
        payer, payee = self.nodes[payer_name], self.nodes[payee_name]
        invoice = payee.api.post(
            "/v1/invoices", {"amount": self.chain.amount, "asset": self.chain.asset}
        )
        thread, _out = self._in_background(
            lambda: payer.api.post("/v1/payments", {"invoice": invoice["invoice"]})
        )
        self.kill_restart("pay", channel_id, self.rng.uniform(0, 0.05))
        thread.join()
        agreed(self.alice, self.bob, channel_id)
        status = self.payment_status(payer, invoice["payment_hash"])
        paid = any(
            i["payment_hash"] == invoice["payment_hash"] and i["paid"]
            for i in payee.api.get("/v1/invoices")
        )
        if paid != (status == "succeeded"):
            raise HarnessFailure(f"payment {status} but the invoice paid={paid}")
        self.tally.count(self.tally.outcomes, f"payment {status}")
        if status == "succeeded":
            expected[payer_name] -= self.chain.amount
            expected[payee_name] += self.chain.amount

    def fail_step(self, channel_id: str, expected: dict[str, int]) -> None:
        """An invoice signed by the payee's key for a hash it never issued: the payee fails
        the HTLC (unknown payment hash) and the payer must get it back in full."""
        payer_name, payee_name = self._direction(expected)
        payer, payee = self.nodes[payer_name], self.nodes[payee_name]
        real = decode_invoice(
            payee.api.post(
                "/v1/invoices", {"amount": self.chain.amount, "asset": self.chain.asset}
            )["invoice"]
        )
        forged, _preimage = create_invoice(
            payee.identity,
            self.chain.amount,
            real.asset,
            real.created_at,
            ttl=3600,
            final_lead=real.final_lead,
        )
        thread, _out = self._in_background(
            lambda: payer.api.post("/v1/payments", {"invoice": forged.encode()})
        )
        self.kill_restart("fail", channel_id, self.rng.uniform(0, 0.05))
        thread.join()
        agreed(self.alice, self.bob, channel_id)
        status = self.payment_status(payer, forged.payment_hash.hex())
        if status == "succeeded":
            raise HarnessFailure("a payment to an unknown hash succeeded")
        self.tally.count(self.tally.outcomes, f"unknown-hash payment {status}")

    def close_step(self, channel_id: str, force: bool) -> None:
        closer = self.nodes[self.rng.choice(["alice", "bob"])]
        thread, _out = self._in_background(
            lambda: closer.api.post(f"/v1/channels/{channel_id}/close", {"force": force})
        )
        step = "dispute" if force else "close"
        self.kill_restart(step, channel_id, self.rng.uniform(0, 0.3 if force else 0.1))
        thread.join()
        for node in self.nodes.values():

            def closed(node: NodeProc = node) -> bool:
                status = channel(node, channel_id)["status"]
                if status == "active":  # the request died with its process: ask again
                    with contextlib.suppress(ApiCallError):
                        node.api.post(f"/v1/channels/{channel_id}/close", {"force": force})
                return bool(status == "closed")

            wait_for(closed, 90, f"{node.name}'s side closed after a {step}")
        self.tally.count(self.tally.outcomes, f"{step}d" if force else "closed")

    # --- checks ---------------------------------------------------------------------------

    def local(self, name: str, channel_id: str) -> int:
        return int(channel(self.nodes[name], channel_id)["balances"][0]["local"])

    def payment_status(self, payer: NodeProc, payment_hash: str) -> str:
        try:
            payer.api.get(f"/v1/payments/{payment_hash}")
        except ApiCallError as exc:
            if exc.status == 404:
                return "not started"
            raise
        status: str = wait_for(
            lambda: (
                (s := payer.api.get(f"/v1/payments/{payment_hash}")["status"]) != "pending" and s
            ),
            60,
            "the payment to settle or fail",
        )
        return status

    def check_channel(self, channel_id: str, expected: dict[str, int], step: str) -> None:
        a, _b = agreed(self.alice, self.bob, channel_id)
        balance = a["balances"][0]
        if balance["local"] + balance["remote"] != sum(self.deposits.values()):
            raise HarnessFailure(f"after a {step}: {balance} does not add up to the deposits")
        if (balance["local"], balance["remote"]) != (expected["alice"], expected["bob"]):
            raise HarnessFailure(f"after a {step}: {balance}, the steps say {expected}")
