"""A peer's word is not a deposit: a channel is active only when the chain shows every
deposit at the chain's confirmation depth (issue 12 item 4), on every chain.

Mallory opens a channel to an honest hub and says ``FundingDone`` without depositing (or
after depositing less than agreed). She runs a modified node: her own side believes the
channel is active and offers an HTLC through the hub to Carol, to be paid with value the
hub could never enforce. The hub must keep the channel out of ``active``, say why, and
refuse every update on it; Carol receives nothing and the hub pays nothing.

Each case runs on the chain's embedded ledger (eth-tester, the libbitcoinkernel regtest
chain, LiteSVM): the hub's view of the deposits comes from the real chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from chenilles_hub import plugins
from chenilles_hub.backend import ChainBackend
from chenilles_hub.core import Asset
from chenilles_hub.node.api.operations import channel_view
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.records import Channel
from chenilles_hub.node.net import wire

from .world import World, confirm, plan

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]

#: Deposits per chain, in base units (wei, sat, lamport).
AMOUNTS = {"EVM": 10**18, "Bitcoin": 1_000_000, "Solana": 10**9}


#: (chain family, what Mallory deposits). A Bitcoin funding transaction is all or nothing
#: (its txid is the channel's nonce: another transaction funds no channel), so "half" is
#: an account-chain case.
CASES = [
    ("EVM", "nothing"),
    ("EVM", "half"),
    ("Bitcoin", "nothing"),
    ("Solana", "nothing"),
    ("Solana", "half"),
]


@contextmanager
def embedded(name: str) -> Iterator[tuple[str, ChainBackend]]:
    factories = {f.info.family: f for f in plugins.installed_backends(fresh=True)}
    backend = factories[name].embedded()
    try:
        yield name, backend
    finally:
        close: Callable[[], None] | None = getattr(backend, "close", None)
        if close is not None:
            close()


def cheat(mallory: Node, deposit_share: int | None) -> None:
    """Mallory's modified node: instead of depositing what was agreed it deposits
    ``deposit_share`` (or nothing) and says FundingDone anyway."""

    def fund(channel: Channel) -> None:
        for asset, (mine, _theirs) in channel.deposits.items():
            if deposit_share and mine:
                channel.backend.fund(
                    channel.params, channel.me, channel.account, asset, deposit_share
                )
        channel.funded_by_me = True
        mallory.ctx.send(channel.peer, wire.FundingDone(channel.channel_id, ()))

    mallory.funding.fund = fund  # type: ignore[method-assign]


def attack(
    family: tuple[str, ChainBackend], deposit_share: Callable[[int], int | None]
) -> tuple[World, Node, Node, Node, bytes, bytes, Asset, int]:
    name, backend = family
    world = World({backend.chain: backend}, backend)
    asset = Asset(backend.chain, "native")
    amount = AMOUNTS[name]
    hub = world.node("hub", [backend.chain])
    carol = world.node("carol", [backend.chain])
    mallory = world.node("mallory", [backend.chain])
    to_carol = world.open(hub, carol, backend.chain, {asset: (amount, 0)})
    cheat(mallory, deposit_share(amount))
    before = set(hub.channels)
    mallory.open_channel(hub.node_id, backend.chain, {asset: (amount, 0)}, 600)
    world.network.run()
    (from_mallory,) = set(hub.channels) - before
    confirm(world)
    return world, hub, carol, mallory, from_mallory, to_carol, asset, amount


@pytest.mark.parametrize(("name", "share"), CASES)
def test_a_peer_that_does_not_deposit_never_gets_an_active_channel(name: str, share: str) -> None:
    with embedded(name) as family:
        check_attack(family, share)


def check_attack(family: tuple[str, ChainBackend], share: str) -> None:
    world, hub, carol, mallory, channel_id, to_carol, asset, amount = attack(
        family, lambda amount: None if share == "nothing" else amount // 2
    )
    channel = hub.channels[channel_id]
    assert channel.funded_by_peer  # she said so...
    assert channel.status == "opening"  # ...but the chain does not show it
    held = 0 if share == "nothing" else amount // 2
    assert channel.waiting.startswith(f"waiting for the peer's deposit: {held} of {amount}")
    view = channel_view(hub, channel)  # what the API and the CLI show the operator
    assert (view["status"], view["waiting"]) == ("opening", channel.waiting)

    # More blocks and FundingDone again change nothing.
    mallory.ctx.send(hub.node_id, wire.FundingDone(channel_id, ()))
    world.network.run()
    confirm(world)
    assert hub.channels[channel_id].status == "opening"

    # Mallory's node pretends the channel is active and routes a payment through the hub.
    mallory.channels[channel_id].status = "active"
    invoice = carol.invoice(amount // 10, asset)
    hops = plan(world, mallory, [(hub, channel_id), (carol, to_carol)], invoice.amount, asset, 3600)
    mallory.pay_route(invoice, hops)
    world.network.run()
    world.sync()
    assert invoice.payment_hash not in carol.paid_invoices
    assert not hub.channels[to_carol].machine.state.htlcs
    assert hub.channels[to_carol].machine.state.free(asset) == (amount, 0)
    assert hub.channels[channel_id].machine.state.version == 0
    assert any("not active" in str(e) for e in hub.errors)
