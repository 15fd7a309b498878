"""Nodes in one process: message delivery and chain-event fan-out for tests and the demo.

A node marked silent neither sends nor receives (a peer that went offline or stopped
cooperating); its messages are dropped, as a lossy link would. Chain events are polled once
per ledger and handed to every node with a backend on that chain, so nodes sharing one
embedded ledger each see every event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chenilles_hub.backend import ChainBackend

from .node import Node


class InProcessNetwork:
    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        self.nodes: dict[bytes, Node] = {}
        self.silent: set[bytes] = set()
        self.delivered = 0
        self._received: dict[bytes, int] = {}
        for node in nodes:
            self.add(node)

    def add(self, node: Node) -> None:
        self.nodes[node.node_id] = node

    def remove(self, node: Node) -> None:
        """Take ``node`` off the network (stopped, its store closed): nothing is delivered
        to it, and ``sync_chains`` no longer ticks it."""
        self.nodes.pop(node.node_id, None)
        self.silent.discard(node.node_id)

    def received_by(self, node: Node) -> int:
        return self._received.get(node.node_id, 0)

    def silence(self, node: Node) -> None:
        self.silent.add(node.node_id)

    def revive(self, node: Node) -> None:
        """Back online: it reconnects to every peer and both sides reestablish channels."""
        self.silent.discard(node.node_id)
        for peer in {c.peer for c in node.channels.values()}:
            if peer in self.nodes and peer not in self.silent:
                node.reestablish(peer)
                self.nodes[peer].reestablish(node.node_id)
        self.run()

    def run_until(self, condition: Callable[[], bool], limit: int = 100_000) -> bool:
        """Deliver one message at a time until ``condition()`` holds (True) or nothing is
        left to deliver (False): lets a test stop the world at an exact protocol step."""
        for _ in range(limit):
            if condition():
                return True
            if not self._deliver_one():
                return condition()
        raise RuntimeError("message storm: the network does not quiesce")

    def _deliver_one(self) -> bool:
        for sender in self.nodes.values():
            while sender.outbox:
                peer, data = sender.outbox.pop(0)
                target = self.nodes.get(peer)
                if sender.node_id in self.silent or peer in self.silent or target is None:
                    continue
                target.receive(sender.node_id, data)
                self.delivered += 1
                self._received[peer] = self._received.get(peer, 0) + 1
                return True
        return False

    def run(self, limit: int = 100_000) -> int:
        """Deliver until no node has anything to send; returns the messages delivered."""
        count = 0
        while True:
            moved = False
            for sender in list(self.nodes.values()):
                outbox, sender.outbox = sender.outbox, []
                for peer, data in outbox:
                    if sender.node_id in self.silent or peer in self.silent:
                        continue
                    target = self.nodes.get(peer)
                    if target is None:
                        continue
                    target.receive(sender.node_id, data)
                    self._received[peer] = self._received.get(peer, 0) + 1
                    count += 1
                    moved = True
                    if count > limit:
                        raise RuntimeError("message storm: the network does not quiesce")
            if not moved:
                self.delivered += count
                return count

    def run_in_jobs(
        self,
        nodes: Iterable[Node] | None = None,
        after_job: Callable[[Node], None] | None = None,
    ) -> int:
        """Deliver until quiet as the node server does (``node/runtime/pipeline.py``): each
        round, every node handles all the messages sent to it in the previous round as one
        job (``autocommit`` off) with one checkpoint at its end, and what it sent leaves in
        the next round, after that checkpoint. ``after_job``: called on each node after its
        job's checkpoint. Returns the jobs run."""
        members = list(self.nodes.values() if nodes is None else nodes)
        by_id = {node.node_id: node for node in members}
        jobs = 0
        while True:
            inbox: dict[bytes, list[tuple[bytes, bytes]]] = {}
            for sender in members:
                outbox, sender.outbox = sender.outbox, []
                if sender.node_id in self.silent:
                    continue
                for peer, data in outbox:
                    if peer in by_id and peer not in self.silent:
                        inbox.setdefault(peer, []).append((sender.node_id, data))
            if not inbox:
                return jobs
            for peer, messages in inbox.items():
                node = by_id[peer]
                autocommit, node.autocommit = node.autocommit, False
                try:
                    for sender_id, data in messages:
                        node.receive(sender_id, data)
                        self._received[peer] = self._received.get(peer, 0) + 1
                        self.delivered += 1
                finally:
                    node.autocommit = autocommit
                node.checkpoint()
                if after_job is not None:
                    after_job(node)
                jobs += 1

    def sync_chains(self, backends: Iterable[ChainBackend]) -> None:
        """Poll each ledger once and let every awake node's watcher see the events."""
        for backend in backends:
            events = backend.poll_events()
            for node in self.nodes.values():
                if node.node_id in self.silent:
                    continue
                if backend.chain in node.backends:
                    node.on_chain_events(backend.chain, events)
        for node in self.nodes.values():
            if node.node_id not in self.silent:
                node.tick()
        self.run()
