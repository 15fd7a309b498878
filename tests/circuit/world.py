"""A small world of nodes on real embedded ledgers, wired through the in-process network."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from chenilles_hub.backend import ChainBackend
from chenilles_hub.circuit.onion import OnionHop
from chenilles_hub.core import Asset
from chenilles_hub.core.routing import rate_book, required_incoming
from chenilles_hub.identity import NodeIdentity
from chenilles_hub.node.hub.forwarding import ForwardingPolicy, channel_edge, enforcement_delta
from chenilles_hub.node.hub.network import InProcessNetwork
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.open_policy import OpenPolicy
from chenilles_hub.node.store.base import Store


@dataclass
class World:
    backends: dict[str, ChainBackend]
    clock_backend: ChainBackend
    network: InProcessNetwork = field(default_factory=InProcessNetwork)

    def now(self) -> int:
        return self.clock_backend.now()

    def node(
        self,
        name: str,
        chains: list[str],
        policy: ForwardingPolicy | None = None,
        store: Store | None = None,
        open_policy: OpenPolicy | None = None,
    ) -> Node:
        node = Node(
            identity=NodeIdentity(),
            backends={c: self.backends[c] for c in chains},
            accounts={c: self.backends[c].create_account(fund=True) for c in chains},
            clock=self.now,
            name=name,
            policy=policy or ForwardingPolicy(),
            store=store,
            open_policy=open_policy or self.consenting(chains),
        )
        self.network.add(node)
        return node

    def consenting(self, chains: list[str]) -> OpenPolicy:
        """The test world's nodes consent to any deposit and challenge duration peers ask
        for (the operator's consent is tested on its own, tests/circuit/test_stranger_peers)."""
        unlimited = {a: 2**256 - 1 for c in chains for a in self.backends[c].assets()}
        return OpenPolicy(max_remote_deposit=unlimited, min_challenge=1)

    def restart(self, node: Node, store: Store) -> Node:
        """Kill ``node`` (what it had not sent is lost) and start it again from ``store``."""
        reborn = Node(
            identity=node.identity,
            backends=node.backends,
            accounts=node.accounts,
            clock=self.now,
            name=node.name,
            policy=node.policy,
            store=store,
            open_policy=node.open_policy,
            apps=node.apps,
        )
        reborn.restore()
        self.network.add(reborn)
        self.network.revive(reborn)
        return reborn

    def open(
        self,
        a: Node,
        b: Node,
        chain: str,
        deposits: Mapping[Asset, tuple[int, int]],
        challenge: int = 600,
    ) -> bytes:
        before = set(a.channels)
        a.open_channel(b.node_id, chain, deposits, challenge)
        self.network.run()
        (channel_id,) = set(a.channels) - before
        confirm(self)  # the chain must show the deposits at depth before either side trusts them
        assert a.channels[channel_id].active and b.channels[channel_id].active
        return channel_id

    def advance(self, seconds: int) -> None:
        for backend in self.backends.values():
            backend.advance_time(seconds)
        self.network.sync_chains(self.backends.values())

    def sync(self) -> None:
        self.network.sync_chains(self.backends.values())


def alice_and_bob(
    backend: ChainBackend, store: Store, alices_chain: object = None
) -> tuple[World, Asset, Node, Node]:
    """A world on ``backend`` with Alice (her ``store``; ``alices_chain``, a wrapper of the
    backend a test uses to crash her, if given) and Bob (in memory), and the chain's native
    asset: the set-up of the crash tests."""
    world = World({backend.chain: backend}, backend)
    alice = world.node("alice", [backend.chain], store=store)
    if alices_chain is not None:
        alice.backends = {backend.chain: alices_chain}  # type: ignore[dict-item]
    bob = world.node("bob", [backend.chain])
    return world, Asset(backend.chain, "native"), alice, bob


def confirm(world: World) -> None:
    """Let every chain produce the blocks a deposit needs to reach its finality depth (the
    default confirmation depth), then let the nodes see them."""
    for backend in world.backends.values():
        model = backend.time_model()
        step = max(1, model.block_interval_ms // 1000)
        for _ in range(model.finality_depth):
            backend.advance_time(step)
    world.sync()


def plan(
    world: World,
    payer: Node,
    path: list[tuple[Node, bytes]],
    amount: int,
    asset: Asset,
    final_lead: int,
) -> list[OnionHop]:
    """Hops backwards from the payee: amounts with each forwarder's fee/rate, expiries with
    each incoming chain's enforcement delta. ``path``: (receiver, channel) per hop."""
    hops: list[OnionHop] = []
    now = world.now()
    amount_out, asset_out = amount, asset
    sender_chain_min = 0
    expiry = 0
    for index in range(len(path) - 1, -1, -1):
        receiver, channel_id = path[index]
        sender = payer if index == 0 else path[index - 1][0]
        channel = sender.channels[channel_id]
        model = channel.backend.time_model()
        min_lead = enforcement_delta(model, channel.params.challenge_duration)
        if index == len(path) - 1:
            expiry = now + max(final_lead, min_lead) + 120
        else:
            expiry = hops[0].expiry + max(min_lead, sender_chain_min)
        hop_asset = (
            channel.params.assets[0] if asset_out not in channel.params.assets else asset_out
        )
        if index < len(path) - 1:
            # receiver forwards: it needs amount_out + fee, converted into this hop's asset
            out_channel = receiver.channels[path[index + 1][1]]
            edge = channel_edge(out_channel, asset_out, receiver.policy, receiver.node_id, True)
            rates = rate_book(receiver.policy.asset_rates(receiver.node_id))
            hop_amount = required_incoming(amount_out, edge, hop_asset, rates)
            if hop_asset != asset_out:  # the receiver converts: only with its quote
                quote = receiver.quote(hop_asset, asset_out, amount_out)
                hops[0] = msgspec.structs.replace(hops[0], quote=quote)
        else:
            hop_amount = amount_out
        hops.insert(0, OnionHop(receiver.node_id, channel_id, hop_amount, hop_asset, expiry))
        amount_out, asset_out = hop_amount, hop_asset
        sender_chain_min = min_lead
    return hops
