"""Issue 12, item 5 between two nodes with stores: Bob is killed while Alice has a payment's
proposal in flight, right after she acked the version before it.

On the in-process network the interleaving is replayed exactly: Alice's Ack never reaches
Bob's disk, her proposal of the payment is still in her sender's queue when Bob comes back
and goes out before the reestablish exchange. Before the fix Bob refused it ("waiting for
the peer's ack"), Alice marked the payment failed, Bob then signed the copy she sent again,
and the two nodes were stuck one version apart for good.
"""

from __future__ import annotations

from typing import Any

import pytest
from chenilles_evm.backend import embedded_backend

from chenilles_hub.core import Asset
from chenilles_hub.core.messages import Ack, Propose
from chenilles_hub.node.net import wire
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, plan

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]

ETH = 10**18


def _kinds(outbox: list[tuple[bytes, bytes]]) -> list[str]:
    return [type(wire.decode(data)).__name__ for _, data in outbox]


def test_a_payment_in_flight_across_a_crash_is_not_failed_and_both_nodes_reconverge(
    tmp_path: Any,
) -> None:
    backend = embedded_backend()
    try:
        world = World({backend.chain: backend}, backend)
        eth = Asset(backend.chain, "native")
        alice = world.node("alice", [backend.chain], store=SQLiteStore(tmp_path / "a.sqlite"))
        bob_store = SQLiteStore(tmp_path / "b.sqlite")
        bob = world.node("bob", [backend.chain], store=bob_store)
        cid = world.open(alice, bob, backend.chain, {eth: (ETH, ETH)})
        invoice = bob.invoice(10**15, eth)
        hops = plan(world, alice, [(bob, cid)], invoice.amount, eth, invoice.final_lead)

        alice.pay_direct(cid, eth, 10**16)  # version 1 in flight
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
        assert bob.channels[cid].machine.state.free(eth) == (
            ETH - 10**16 - 10**15,
            ETH + 10**16 + 10**15,
        )
        alice.pay_direct(cid, eth, 1)  # and the channel goes on
        world.network.run()
        assert bob.channels[cid].machine.state.free(eth)[1] == ETH + 10**16 + 10**15 + 1
        bob_store.close()
    finally:
        backend.close()
