"""Bitcoin: a funder killed between its durable "deposit sent" marker and the funding
transaction sends that same transaction again after the restart.

Found by the crash harness on the Bitcoin devnet (``scripts/crash_harness.py --chain
bitcoin``): the funding transaction is built before the channel exists (its txid is the
channel's nonce) and was kept in the backend's memory only. The restarted node saw the
deposit never reached the chain, tried to send it again and failed ("no funding
transaction was prepared"); the failure aborted the handling of the whole block's events,
and the channel stayed ``opening`` for good. The transaction is now part of the channel's
record, written with the channel before anything is sent; a resend that fails all the same
is the channel's ``last_error``, and the block's other events go on."""

from __future__ import annotations

from pathlib import Path

import pytest
from chenilles_bitcoin.accounts import BitcoinAccount
from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend

from chenilles_hub.core import Asset
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.store.sqlite import SQLiteStore

from .test_funding_crash import Crash, CrashBeforeFunding
from .world import World, confirm

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial, pytest.mark.bitcoin]

DEPOSIT = 1_000_000
CHALLENGE = 6 * 3600


def test_a_bitcoin_deposit_the_kill_kept_from_the_chain_is_sent_again_after_restart(
    tmp_path: Path,
) -> None:
    backend = embedded_backend()
    try:
        chain = backend.chain
        btc = Asset(chain, "native")
        world = World({chain: backend}, backend)
        store = SQLiteStore(tmp_path / "alice.sqlite")
        alice = world.node("alice", [chain], store=store)
        alice.backends = {chain: CrashBeforeFunding(backend)}  # type: ignore[dict-item]
        bob = world.node("bob", [chain])
        alice.open_channel(bob.node_id, chain, {btc: (DEPOSIT, 0)}, CHALLENGE)
        with pytest.raises(Crash):  # the marker is on disk, the transaction never left
            world.network.run()
        (channel_id,) = alice.channels
        alice.outbox.clear()
        world.network.silence(alice)
        store.close()

        # the new process: its store, its key, a backend that remembers nothing
        fresh = BitcoinBackend(
            backend.ledger,
            chain=chain,
            policy=backend.policy,
            auto_mine=True,
            height_clock=True,
        )
        fresh._anchor = backend._anchor  # one chain, one clock
        old = alice.accounts[chain]
        assert isinstance(old, BitcoinAccount)
        store = SQLiteStore(tmp_path / "alice.sqlite")
        alice = Node(
            identity=alice.identity,
            backends={chain: fresh},
            accounts={chain: fresh.create_account(fund=False, secret=old.secret)},
            clock=world.now,
            name="alice",
            store=store,
            open_policy=alice.open_policy,
        )
        alice.restore()
        world.network.add(alice)
        world.network.revive(alice)
        world.backends[chain] = fresh
        world.network.run()
        assert alice.channels[channel_id].status == "opening"

        delay = fresh.time_model().inclusion_delay
        for _ in range(3):  # past twice the inclusion delay: the deposit is judged lost
            world.advance(delay)
            world.network.run()
        confirm(world)
        world.network.run()

        channel = alice.channels[channel_id]
        assert channel.last_error == "", channel.last_error
        assert channel.active and bob.channels[channel_id].active
        assert fresh.holdings(channel.params, 1)[btc] == [DEPOSIT, 0]
        alice.pay_direct(channel_id, btc, 100_000)
        world.network.run()
        assert bob.channels[channel_id].machine.state.free(btc) == (DEPOSIT - 100_000, 100_000)
        store.close()
    finally:
        close = getattr(backend.ledger, "close", None)
        if close is not None:
            close()


def test_an_abandoned_bitcoin_open_gives_the_funding_coins_back_to_the_wallet() -> None:
    """Found by the crash harness on the Bitcoin devnet: the open's funding transaction is
    built (its coins reserved) when the peer accepts; the peer, killed, forgot the open and
    Alice abandoned it after the pending timeout, but the coins stayed reserved: her next
    open found "insufficient funds: have 0" until her process restarted."""
    backend = embedded_backend()
    try:
        chain = backend.chain
        btc = Asset(chain, "native")
        world = World({chain: backend}, backend)
        alice = world.node("alice", [chain])
        bob = world.node("bob", [chain])
        account = alice.accounts[chain]
        before = backend.balance(account, btc)
        alice.open_channel(bob.node_id, chain, {btc: (before // 2, 0)}, CHALLENGE)
        assert world.network.run_until(lambda: bool(alice.channels))
        assert backend.balance(account, btc) < before  # reserved for the funding
        world.network.silence(bob)  # gone before signing version 0
        world.network.run()
        (channel_id,) = alice.channels
        world.advance(alice.open_policy.pending_timeout + 30)
        world.network.run()
        assert alice.channels[channel_id].status == "closed"
        assert backend.balance(account, btc) == before
    finally:
        close = getattr(backend.ledger, "close", None)
        if close is not None:
            close()
