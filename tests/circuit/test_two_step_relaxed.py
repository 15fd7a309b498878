"""Where a newer version wins (EVM), an update is two messages, and the last of them, the
peer's Accept of a state that is not final, is a relaxed write when nothing leaves after it
(docs/security.md, "Relaxed writes"). Lost to a power failure, it is sent again.

Bob is paid one invoice: Alice proposes the HTLC (durable), Bob accepts it and proposes the
settle in one durable write, Alice accepts (durable), and Bob's write of that Accept is
relaxed. Bob's store is copied as the disk holds it just before that write; after the
payment he is killed and his files replaced by that copy, as a power failure before the
sync would leave them. He must come back, get Alice's Accept again, and hold the settled
state signed by both, with the money where it belongs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.core import Asset
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, plan

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]

ETH = 10**18
AMOUNT = 10**15


class BobsDisk:
    """Counts Bob's writes, and copies his files just before his first relaxed one."""

    def __init__(self, path: Path, copy: Path) -> None:
        self.path, self.copy = path, copy
        self.store = SQLiteStore(path)
        self.durable = self.relaxed = 0
        inner = self.store.save_checkpoint

        def save(snapshots: Any, settings: dict[str, bytes], *, durable: bool = True) -> None:
            if durable:
                self.durable += 1
            else:
                if not self.relaxed:
                    copy.mkdir()
                    for suffix in ("", "-wal"):
                        shutil.copyfile(f"{path}{suffix}", copy / f"bob{suffix}")
                self.relaxed += 1
            inner(snapshots, settings, durable=durable)

        self.store.save_checkpoint = save  # type: ignore[method-assign]

    def power_failure(self) -> SQLiteStore:
        """Bob's files as the disk held them before the relaxed write; a new store on them."""
        self.store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        for suffix in ("", "-wal"):
            shutil.copyfile(self.copy / f"bob{suffix}", f"{self.path}{suffix}")
        return SQLiteStore(self.path)


def test_a_lost_relaxed_accept_is_sent_again_and_the_payee_ends_paid(tmp_path: Path) -> None:
    backend = embedded_backend()
    try:
        world = World({backend.chain: backend}, backend)
        eth = Asset(backend.chain, "native")
        alice = world.node("alice", [backend.chain], store=SQLiteStore(tmp_path / "a.sqlite"))
        disk = BobsDisk(tmp_path / "b.sqlite", tmp_path / "copy")
        bob = world.node("bob", [backend.chain], store=disk.store)
        cid = world.open(alice, bob, backend.chain, {eth: (ETH, ETH)})
        invoice = bob.invoice(AMOUNT, eth)
        hops = plan(world, alice, [(bob, cid)], invoice.amount, eth, invoice.final_lead)
        disk.durable = disk.relaxed = 0

        payment = alice.pay_route(invoice, hops)
        world.network.run()
        assert payment.status == "succeeded"
        # Bob: the HTLC's Accept with the settle proposal (durable), Alice's Accept of the
        # settle (relaxed): two messages per update, no Ack.
        assert (disk.durable, disk.relaxed) == (1, 1)
        settled = alice.channels[cid].machine.latest
        assert settled is not None and bob.channels[cid].machine.latest == settled

        world.network.silence(bob)
        store = disk.power_failure()
        lost = store.load_snapshot(cid)
        assert lost is not None and lost.latest is not None
        assert lost.latest.version == settled.version - 1, "the write lost was not the Accept"
        assert lost.pending is not None  # his settle proposal, signed by him alone
        bob = world.restart(bob, store)
        world.network.run()

        machine = bob.channels[cid].machine
        assert machine.latest == settled, "Alice's Accept did not come back"
        assert machine.idle and alice.channels[cid].machine.idle
        assert machine.state.free(eth) == (ETH - AMOUNT, ETH + AMOUNT)
        assert invoice.payment_hash in bob.paid_invoices
        alice.pay_direct(cid, eth, 1)  # and the channel goes on
        world.network.run()
        assert bob.channels[cid].machine.state.free(eth)[1] == ETH + AMOUNT + 1
    finally:
        backend.close()
