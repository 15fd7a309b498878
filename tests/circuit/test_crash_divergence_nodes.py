"""Issue 12, item 5 between two nodes with stores: Bob is killed while Alice has a payment's
proposal in flight, right after she acked the version before it.

On the in-process network the interleaving is replayed exactly: Alice's Ack never reaches
Bob's disk, her proposal of the payment is still in her sender's queue when Bob comes back
and goes out before the reestablish exchange. Before the fix Bob refused it ("waiting for
the peer's ack"), Alice marked the payment failed, Bob then signed the copy she sent again,
and the two nodes were stuck one version apart for good.

The channel is a Bitcoin one: an update there is three messages (the Ack carries the
revocation). Where a newer version wins (EVM, Solana) there is no Ack to lose: the same
interleavings are covered by the core's crash property for all three kinds of update.
"""

from __future__ import annotations

from typing import Any

import pytest
from chenilles_bitcoin.backend import embedded_backend

from chenilles_hub.core import Asset
from chenilles_hub.core.messages import Ack, Propose
from chenilles_hub.node.net import wire
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, plan

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]

#: Deposits, a direct transfer and an invoice, in satoshis.
DEPOSIT, DIRECT, INVOICE = 1_000_000, 50_000, 20_000


def _kinds(outbox: list[tuple[bytes, bytes]]) -> list[str]:
    return [type(wire.decode(data)).__name__ for _, data in outbox]


def test_a_payment_in_flight_across_a_crash_is_not_failed_and_both_nodes_reconverge(
    tmp_path: Any,
) -> None:
    backend = embedded_backend()
    world = World({backend.chain: backend}, backend)
    coin = Asset(backend.chain, "native")
    alice = world.node("alice", [backend.chain], store=SQLiteStore(tmp_path / "a.sqlite"))
    bob_store = SQLiteStore(tmp_path / "b.sqlite")
    bob = world.node("bob", [backend.chain], store=bob_store)
    cid = world.open(alice, bob, backend.chain, {coin: (DEPOSIT, 0)})  # single-funded
    invoice = bob.invoice(INVOICE, coin)
    hops = plan(world, alice, [(bob, cid)], invoice.amount, coin, invoice.final_lead)

    alice.pay_direct(cid, coin, DIRECT)  # version 1 in flight
    payment = alice.pay_route(invoice, hops)  # queued behind it: version 2
    machine = alice.channels[cid].machine

    def alice_proposes_the_payment() -> bool:
        return machine.pending is not None and machine.pending.signed.state.version == 2

    assert world.network.run_until(alice_proposes_the_payment)
    assert _kinds(alice.outbox) == ["Ack", "Propose"]
    assert bob.channels[cid].machine.awaiting_ack == 1

    # kill -9 Bob: the Ack reached the dying process only; the proposal is still in
    # Alice's sender queue and is the first thing Bob reads after his restart.
    ack, proposal = alice.outbox
    assert isinstance(wire.decode(ack[1]), Ack)
    assert isinstance(wire.decode(proposal[1]), Propose)
    alice.outbox[:] = [proposal]
    bob.outbox.clear()
    bob_store.close()
    world.network.silence(bob)
    bob_store = SQLiteStore(tmp_path / "b.sqlite")
    bob = world.restart(bob, bob_store)
    world.network.run()
    world.network.revive(bob)  # and once more, as after any later reconnect

    a_latest = alice.channels[cid].machine.latest
    b_latest = bob.channels[cid].machine.latest
    assert a_latest is not None and a_latest == b_latest, (
        f"alice at {a_latest and a_latest.state.version}, "
        f"bob at {b_latest and b_latest.state.version}"
    )
    assert payment.status == "succeeded", f"payment {payment.status}: {payment.reason}"
    assert bob.channels[cid].machine.state.free(coin) == (
        DEPOSIT - DIRECT - INVOICE,
        DIRECT + INVOICE,
    )
    alice.pay_direct(cid, coin, 1_000)  # and the channel goes on
    world.network.run()
    assert bob.channels[cid].machine.state.free(coin)[1] == DIRECT + INVOICE + 1_000
    bob_store.close()
