"""The public single-process API (``chenilles_hub.sandbox``) on its own: the ledgers it
starts by name, nodes, a channel, a payment, the watcher acting when time passes."""

from __future__ import annotations

import pytest

from chenilles_hub import plugins
from chenilles_hub.core import Asset
from chenilles_hub.sandbox import Sandbox

pytestmark = pytest.mark.solana


def test_a_payment_and_a_force_close_on_one_chain() -> None:
    started: list[str] = []
    with Sandbox.start(["solana"], on_start=lambda name, _b, _t: started.append(name)) as box:
        assert started == ["solana"] and list(box.backends) == [box.chain("solana")]
        sol = Asset(box.chain("solana"), "native")
        alice, bob = box.node("alice"), box.node("bob")
        channel = box.open(alice, bob, sol.chain, {sol: (2 * 10**9, 0)})
        payment = box.pay(alice, bob.invoice(123_456, sol), sol)
        assert payment.status == "succeeded"
        assert bob.channels[channel].machine.state.free(sol) == (2 * 10**9 - 123_456, 123_456)
        wallet = box.wallets([bob])[("bob", sol)]
        alice.force_close(channel)  # register; Bob's watcher concludes and withdraws
        for _ in range(10):
            box.advance(600)
            if bob.channels[channel].status == "closed":
                break
        assert bob.channels[channel].status == "closed"
        fees = sum(r.fee for r in bob.channels[channel].receipts if r.fee_asset == sol)
        assert box.wallets([bob])[("bob", sol)] == wallet + 123_456 - fees


def test_unknown_names_say_what_is_there() -> None:
    with pytest.raises(plugins.UnknownBackend, match="solana"):
        Sandbox.start(["no-such-chain"])
    with Sandbox.start(["solana"]) as box, pytest.raises(KeyError, match="solana"):
        box.chain("evm")
