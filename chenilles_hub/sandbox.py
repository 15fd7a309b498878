"""A public, single-process way to run a hub: embedded ledgers, nodes, channels, payments.

``chenilles demo``, the tests and a backend author's scripts all use this: start the
embedded ledger of every installed backend (or of the ones named, or of backends you
built), add nodes, open channels, pay across chains, let time pass and watch the watchers
enforce on-chain. The nodes are the real ``Node``\\ s of ``chenilles_hub.node.hub``, talking
through the in-process network (messages encoded and decoded exactly as on a socket); the
ledgers are the backends' real embedded chains. Nothing here is a test double.

    with Sandbox.start() as box:
        hub = box.node("hub", policy=...)
        alice = box.node("alice", [box.chain("solana")])
        channel = box.open(alice, hub, box.chain("solana"), {sol: (10**9, 0)})
        payment = box.pay(alice, hub.invoice(1000, sol), sol)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType

from . import plugins
from .backend import ChainBackend
from .circuit.invoice import Invoice
from .circuit.onion import OnionHop
from .core import Asset
from .identity import NodeIdentity
from .node.hub.forwarding import ForwardingPolicy
from .node.hub.network import InProcessNetwork
from .node.hub.node import Node
from .node.hub.open_policy import OpenPolicy
from .node.hub.records import Payment
from .node.hub.routing_view import invoice_route, onion_hops, quotes_from, routing_graph

#: The longest an HTLC of a sandbox payment may stay locked.
MAX_LOCK = 3 * 86400


class Sandbox:
    """Ledgers (one backend per chain id) and the nodes on them, in this process."""

    def __init__(self, backends: Iterable[ChainBackend]) -> None:
        self.backends: dict[str, ChainBackend] = {b.chain: b for b in backends}
        self.network = InProcessNetwork()
        #: how long each embedded ledger took to start, by chain (``start``)
        self.started_in: dict[str, float] = {}

    @classmethod
    def start(
        cls,
        names: Sequence[str] | None = None,
        options: Mapping[str, Mapping[str, object]] | None = None,
        on_start: Callable[[str, ChainBackend, float], None] | None = None,
    ) -> Sandbox:
        """The embedded ledger of every installed backend (``chenilles backends``), or of
        those ``names``; ``options[name]`` goes to that factory's ``embedded``."""
        factories = plugins.installed_backends(fresh=True)
        if names is not None:
            factories = tuple(plugins.backend(name) for name in names)
        box = cls(())
        try:
            for factory in factories:
                started = time.perf_counter()
                backend = factory.embedded(**dict((options or {}).get(factory.info.name, {})))
                took = time.perf_counter() - started
                box.backends[backend.chain] = backend
                box.started_in[backend.chain] = took
                if on_start is not None:
                    on_start(factory.info.name, backend, took)
        except BaseException:
            box.close()
            raise
        box.sync_clocks()
        return box

    # --- the ledgers ------------------------------------------------------------------------

    def chain(self, name: str) -> str:
        """The chain id of the ledger whose backend is called ``name`` (``"evm"``...)."""
        for chain, backend in self.backends.items():
            if backend.info.name == name:
                return chain
        raise KeyError(f"no {name} ledger in this sandbox: {sorted(self.backends)}")

    def now(self) -> int:
        """The sandbox's clock: the latest of the ledgers' clocks (what nodes judge by)."""
        return max(b.now() for b in self.backends.values())

    def sync_clocks(self) -> None:
        """Bring every ledger's clock up to the latest one, as wall time would (chains
        that move in whole blocks may overshoot a little)."""
        for _ in range(4):
            target = self.now()
            behind = [(b, target - b.now()) for b in self.backends.values() if b.now() < target]
            if not behind:
                return
            for backend, gap in behind:
                backend.advance_time(gap)

    def sync(self) -> None:
        """Every node sees every ledger's new events, and its watcher acts on them."""
        self.network.sync_chains(self.backends.values())

    def advance(self, seconds: int) -> None:
        """Let ``seconds`` pass on every ledger, then let the nodes see it."""
        for backend in self.backends.values():
            backend.advance_time(seconds)
        self.sync_clocks()
        self.sync()

    def confirm(self) -> None:
        """Let every ledger mine the blocks a deposit needs to be final (a node's default
        confirmation depth), then let the nodes see them."""
        for backend in self.backends.values():
            model = backend.time_model()
            for _ in range(model.finality_depth):
                backend.advance_time(max(1, model.block_interval_ms // 1000))
        self.sync_clocks()
        self.sync()

    # --- nodes and channels --------------------------------------------------------------------

    def node(
        self,
        name: str,
        chains: Sequence[str] | None = None,
        policy: ForwardingPolicy | None = None,
        open_policy: OpenPolicy | None = None,
    ) -> Node:
        """A node with a funded account on each of ``chains`` (default: every ledger). It
        consents to any deposit and challenge its peers ask for unless ``open_policy``
        says otherwise."""
        backends = {c: self.backends[c] for c in (chains or list(self.backends))}
        if open_policy is None:
            unlimited = {a: 2**256 - 1 for b in backends.values() for a in b.assets()}
            open_policy = OpenPolicy(max_remote_deposit=unlimited, min_challenge=1)
        node = Node(
            identity=NodeIdentity(),
            backends=backends,
            accounts={c: b.create_account(fund=True) for c, b in backends.items()},
            clock=self.now,
            name=name,
            policy=policy or ForwardingPolicy(),
            open_policy=open_policy,
        )
        self.network.add(node)
        return node

    def open(
        self,
        opener: Node,
        peer: Node,
        chain: str,
        deposits: Mapping[Asset, tuple[int, int]],
        challenge: int = 3600,
    ) -> bytes:
        """Open and fund a channel, wait until both nodes see the deposits at depth."""
        before = set(opener.channels)
        opener.open_channel(peer.node_id, chain, dict(deposits), challenge_duration=challenge)
        self.network.run()
        self.confirm()
        new = set(opener.channels) - before
        if len(new) != 1:
            raise RuntimeError(f"{opener.name} -> {peer.name} on {chain}: no channel opened")
        (channel_id,) = new
        if not (opener.channels[channel_id].active and peer.channels[channel_id].active):
            raise RuntimeError(f"{opener.name} -> {peer.name} on {chain}: deposits not seen")
        return channel_id

    # --- payments ---------------------------------------------------------------------------

    def route(self, payer: Node, invoice: Invoice, source_asset: Asset) -> list[OnionHop]:
        """The cheapest route over the nodes' channels, with each hop's quote."""
        graph = routing_graph(self.network.nodes.values())
        route = invoice_route(
            graph,
            payer.node_id,
            invoice,
            now=self.now(),
            max_lock=MAX_LOCK,
            source_asset=source_asset,
        )
        return onion_hops(route, quotes_from(self.network.nodes, route))

    def pay(self, payer: Node, invoice: Invoice, source_asset: Asset) -> Payment:
        """Pay ``invoice`` from ``payer``'s ``source_asset`` and run the network until the
        payment settled or failed."""
        payment = payer.pay_route(invoice, self.route(payer, invoice, source_asset))
        self.network.run()
        return payment

    def wallets(self, nodes: Iterable[Node]) -> dict[tuple[str, Asset], int]:
        """On-chain balances of every node's account, per asset its ledger holds."""
        return {
            (node.name, asset): node.backends[chain].balance(account, asset)
            for node in nodes
            for chain, account in node.accounts.items()
            for asset in node.backends[chain].assets()
        }

    # --- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close every ledger that can be closed (``close()`` on its backend)."""
        for backend in self.backends.values():
            close = getattr(backend, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # one ledger failing to close must not keep the others
                    continue

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
