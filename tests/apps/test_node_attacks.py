"""Attacks on a node through app channels, by a peer that speaks the node protocol.

The app named in a channel's params decides, on-chain, which forced moves stand. So the
app must be the one the node agreed to: a peer must never be able to choose it (least of
all, a contract of its own that accepts any move), nor to slip an app into a channel the
node opened or accepted as a payment channel.
"""

from __future__ import annotations

import msgspec
import pytest
from chenilles_evm.backend import EvmBackend, embedded_backend

from chenilles_hub.core import Asset, AssetBalances, ChannelParams, SignedState
from chenilles_hub.node.hub import opening
from tests.circuit.world import World

pytestmark = [pytest.mark.apps, pytest.mark.adversarial]

ETH = 10**18
#: A contract whose every call returns true: an ``IApp`` that accepts any move.
#: Creation code (copies 10 bytes of runtime and returns them) + runtime
#: PUSH1 1 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN.
YES_MAN = bytes.fromhex("600a600c600039600a6000f3" + "600160005260206000f3")


@pytest.fixture
def chain():  # type: ignore[no-untyped-def]
    backend = embedded_backend()
    yield backend
    backend.close()


def _attacker_backend(victim: EvmBackend) -> EvmBackend:
    """The attacker's own backend on the same chain and adjudicator, where the name of
    its always-true contract is bound to it."""
    return EvmBackend(
        victim.w3,
        victim.adjudicator.address,
        funders=victim._funders,
        ledger=victim._ledger,
        from_block=0,
    )


def test_a_peer_cannot_make_a_channel_judged_by_its_own_app_contract(
    chain: EvmBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The opener fixes the params: it names as the channel's app its own contract, which
    accepts any forced move, and asks the victim to deposit. If the victim signed that
    channel, the attacker would register the opening state, force a move that pays it
    everything, and conclude."""
    attacker_chain = _attacker_backend(chain)
    evil = attacker_chain._deploy_code("deploy", YES_MAN)
    attacker_chain.use_app(evil, address=evil)  # the attacker's name for it: its address
    eth = Asset(chain.chain, "native")
    world = World({chain.chain: chain}, chain)
    victim = world.node("victim", [chain.chain])
    attacker = world.node("attacker", [chain.chain])
    attacker.backends = {chain.chain: attacker_chain}
    attacker.accounts = {chain.chain: attacker.accounts[chain.chain]}
    victim_start = chain.balance(victim.accounts[chain.chain], eth)

    real = opening.ChannelParams

    def with_evil_app(**fields):  # type: ignore[no-untyped-def]
        return real(**{**fields, "app": evil})

    monkeypatch.setattr(opening, "ChannelParams", with_evil_app)
    attacker.open_channel(victim.node_id, chain.chain, {eth: (1, ETH)}, 100)
    world.network.run()
    monkeypatch.setattr(opening, "ChannelParams", real)

    stolen = [c for c in attacker.channels.values() if c.params.app == evil]
    if stolen and stolen[0].machine.latest is not None and stolen[0].machine.latest.complete:
        channel = stolen[0]
        params: ChannelParams = channel.params
        latest = channel.machine.latest
        account = attacker.accounts[chain.chain]
        attacker_chain.register(params, latest, account)
        world.advance(101)
        total = sum(latest.state.balances[0].amounts)
        grab = msgspec.structs.replace(
            latest.state,
            version=1,
            balances=(AssetBalances(eth, (total, 0)),),
        )
        sig = channel.machine._authority.sign(params, grab)  # type: ignore[attr-defined]
        attacker_chain.force_move(params, SignedState(grab, (sig, b"")), 0, account)
        world.advance(101)
        world.advance(101)
    world.sync()
    lost = victim_start - chain.balance(victim.accounts[chain.chain], eth)
    assert lost < 10**16, f"the victim lost {lost} wei to a forced move its peer's contract judged"
    victims = [c for c in victim.channels.values() if c.params.app]
    assert not victims, "the victim signed a channel whose app the peer chose"


def test_a_peer_cannot_slip_an_app_into_a_payment_channel(
    chain: EvmBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same with an installed, bound app (tic-tac-toe): the victim asked for (or
    accepted) a payment channel and must not end up in a game it never agreed to."""
    from chenilles_hub import apps

    chain.use_app("tictactoe", code=apps.app("tictactoe").onchain_code("EVM"))
    eth = Asset(chain.chain, "native")
    world = World({chain.chain: chain}, chain)
    victim = world.node("victim", [chain.chain])
    attacker = world.node("attacker", [chain.chain])
    real = opening.ChannelParams

    def with_app(**fields):  # type: ignore[no-untyped-def]
        return real(**{**fields, "app": "tictactoe"})

    monkeypatch.setattr(opening, "ChannelParams", with_app)
    attacker.open_channel(victim.node_id, chain.chain, {eth: (ETH, ETH)}, 100)
    world.network.run()
    assert not [c for c in victim.channels.values() if c.params.app]
