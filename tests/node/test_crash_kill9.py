"""kill -9 a real node process at random points of payments, restart it, check the books.

One anvil and two node processes live for the whole test; each round starts a payment (in a
random direction), kills one of the two nodes after a random delay (before, during or after
the payment's messages), restarts it from its SQLite store, and then checks that:

* both sides end on the same channel state (same version, mirrored balances, idle);
* no HTLC is left: an in-flight payment completed or failed, the payer's record says which,
  and the payee's invoice is paid exactly when the payer's payment succeeded;
* money is conserved: the two balances add up to the deposits, and each side holds what
  the succeeded payments say it should.

At the end the channel is closed cooperatively and each account's on-chain balance must have
moved by its final channel balance minus its deposit and its transaction fees.

``CHENILLES_CRASH_KILLS`` sets the number of kills (default 50).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chenilles_hub.node.api.client import ApiCallError

from .test_server_harness import (
    ETH,
    NATIVE,
    AnvilChain,
    NodeProc,
    agreed,
    anvil,
    channel,
    make_node,
    open_channel,
    wait_for,
)

pytestmark = [pytest.mark.node, pytest.mark.xdist_group("node-crash")]
__all__ = ["anvil"]

KILLS = int(os.environ.get("CHENILLES_CRASH_KILLS", "50"))
AMOUNT = 10**15


def _start_payment(payer: NodeProc, invoice: str, out: dict[str, Any]) -> None:
    try:
        out["result"] = payer.api.post("/v1/payments", {"invoice": invoice})
    except ApiCallError as exc:  # the payer died while answering: maybe paid, maybe not
        out["error"] = exc


def test_kill_9_at_random_points_of_payments_loses_nothing(
    anvil: AnvilChain, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("CHENILLES_CRASH_SEED", "7")))
    alice = make_node(tmp_path, "alice", anvil, 6)
    bob = make_node(tmp_path, "bob", anvil, 7)
    # Bob deposits into the channel Alice opens: his operator's policy must allow it.
    bob.tail = f'[[policy.open.deposit]]\nasset = "{NATIVE}"\nmax = {ETH}\n'
    alice.peers = [bob]
    bob.peers = [alice]  # both dial: exercises the duplicate-connection rule on every restart
    nodes = {"alice": alice, "bob": bob}
    on_chain_before = {
        name: n.api.get("/v1/backends")[0]["balances"][NATIVE]
        for name, n in _started(nodes).items()
    }
    try:
        channel_id = open_channel(alice, bob, ETH, remote=ETH)
        expected = {"alice": ETH, "bob": ETH}
        restarts: list[float] = []
        outcomes = {"succeeded": 0, "failed": 0, "not started": 0}
        for round_ in range(KILLS):
            payer_name = rng.choice(["alice", "bob"])
            payee_name = "bob" if payer_name == "alice" else "alice"
            payer, payee = nodes[payer_name], nodes[payee_name]
            invoice = payee.api.post("/v1/invoices", {"amount": AMOUNT, "asset": NATIVE})
            victim = nodes[rng.choice(["alice", "bob"])]
            out: dict[str, Any] = {}
            thread = threading.Thread(target=_start_payment, args=(payer, invoice["invoice"], out))
            thread.start()
            time.sleep(rng.uniform(0, 0.04))
            killed_at = time.monotonic()
            victim.kill()
            victim.start(wait=False)
            victim.wait_ready()
            restarts.append(time.monotonic() - killed_at)
            thread.join()

            agreed(alice, bob, channel_id)
            payment = _final_payment(payer, invoice["payment_hash"])
            paid = any(
                i["payment_hash"] == invoice["payment_hash"] and i["paid"]
                for i in payee.api.get("/v1/invoices")
            )
            status = payment["status"] if payment else "not started"
            outcomes[status] += 1
            assert paid == (status == "succeeded"), (round_, status, paid, out)
            if status == "succeeded":
                expected[payer_name] -= AMOUNT
                expected[payee_name] += AMOUNT
            a = channel(alice, channel_id)["balances"][0]
            assert (a["local"], a["remote"]) == (expected["alice"], expected["bob"]), round_
            assert a["local"] + a["remote"] == 2 * ETH

        print(
            f"\n{KILLS} kills; restart (kill -> serving) mean {sum(restarts) / len(restarts):.2f}s"
            f" max {max(restarts):.2f}s; outcomes {outcomes}"
        )
        assert outcomes["succeeded"] > 0
        # ~1.5-2.5 s on a 2-core machine, dominated by importing web3 (see the log's
        # "start-up phases"); the bound only catches a restart that hangs.
        assert max(restarts) < 20.0

        # Close: each side's account must receive exactly its channel balance, minus fees.
        alice.api.post(f"/v1/channels/{channel_id}/close")
        wait_for(lambda: channel(alice, channel_id)["status"] == "closed", what="closed")
        wait_for(lambda: channel(bob, channel_id)["status"] == "closed", what="bob closed")
        for name, node in nodes.items():
            backend = node.api.get("/v1/backends")[0]
            fees = _fees_paid(anvil, backend["account"])
            after = backend["balances"][NATIVE]
            assert after == on_chain_before[name] - ETH + expected[name] - fees, name
    finally:
        for node in nodes.values():
            node.stop()


def _started(nodes: dict[str, NodeProc]) -> dict[str, NodeProc]:
    for node in nodes.values():
        node.start(wait=False)
    for node in nodes.values():
        node.wait_ready()
    return nodes


def _final_payment(payer: NodeProc, payment_hash: str) -> dict[str, Any] | None:
    """The payer's record once it is settled or failed; None if the payment never started."""
    try:
        payer.api.get(f"/v1/payments/{payment_hash}")
    except ApiCallError as exc:
        if exc.status == 404:
            return None
        raise
    result: dict[str, Any] = wait_for(
        lambda: (p := payer.api.get(f"/v1/payments/{payment_hash}"))["status"] != "pending" and p,
        what="the payment to settle or fail",
    )
    return result


def _fees_paid(chain: AnvilChain, address: str) -> int:
    """Every transaction fee ``address`` paid since the adjudicator was deployed."""
    w3 = chain.ledger.w3
    total = 0
    for number in range(chain.from_block, int(w3.eth.block_number) + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"].lower() == address.lower():
                receipt = w3.eth.get_transaction_receipt(tx["hash"])
                total += int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    return total
