"""A hub that writes to SQLite and its peers, made to hold HTLCs the ways a stranger can:
the tests of what a hub writes and restores while it holds them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chenilles_hub.core import Asset
from chenilles_hub.core.watcher import HtlcDuty, RefundOutgoing
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
from chenilles_hub.node.hub.journal import DUTY_PREFIX, NODE_STATE_KEY, decode_duty
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, plan

ETH = 10**18

#: What a store's ``save_checkpoint`` is called with.
SaveCheckpoint = Callable[..., None]


class HubLine:
    """alice -> hub -> bob -> dave, and hub -> carol; the hub writes to SQLite (``path``).

    With Carol offline, the hub's forwards to her wait queued in the hub; with Dave
    offline, Bob signs the hub's HTLCs and holds them (the hub owes each a refund duty)."""

    def __init__(self, world: World, path: Path) -> None:
        (backend,) = world.backends.values()
        self.world, self.path = world, path
        self.eth = eth = Asset(backend.chain, "native")
        policy = ForwardingPolicy(fees={eth: FeePolicy(base=7)})
        self.alice = world.node("alice", [eth.chain])
        self.hub = world.node("hub", [eth.chain], policy, store=SQLiteStore(path))
        self.bob = world.node("bob", [eth.chain], policy)
        self.carol = world.node("carol", [eth.chain])
        self.dave = world.node("dave", [eth.chain])
        self.c1 = world.open(self.alice, self.hub, eth.chain, {eth: (ETH, 0)})
        self.c2 = world.open(self.hub, self.bob, eth.chain, {eth: (ETH, 0)})
        self.c3 = world.open(self.hub, self.carol, eth.chain, {eth: (ETH, 0)})
        self.c4 = world.open(self.bob, self.dave, eth.chain, {eth: (ETH, 0)})

    def pay(self, payee: Node, amount: int = 1000) -> Any:
        """Alice pays ``payee`` (Bob, Carol or Dave) through the hub."""
        tail = {
            "bob": [(self.bob, self.c2)],
            "carol": [(self.carol, self.c3)],
            "dave": [(self.bob, self.c2), (self.dave, self.c4)],
        }[payee.name]
        invoice = payee.invoice(amount, self.eth)
        path = [(self.hub, self.c1), *tail]
        hops = plan(self.world, self.alice, path, amount, self.eth, invoice.final_lead)
        return self.alice.pay_route(invoice, hops)

    def stuck_at_carol(self, n: int) -> list[Any]:
        """``n`` payments whose forwards wait at the hub: Carol went offline."""
        self.world.network.silence(self.carol)
        payments = [self.pay(self.carol, 1000 + i) for i in range(n)]
        self.world.network.run()
        assert len(self.hub.links_by_out) == n
        return payments

    def held_by_bob(self, n: int) -> list[Any]:
        """``n`` payments whose HTLCs Bob signed and holds: Dave went offline."""
        self.world.network.silence(self.dave)
        payments = [self.pay(self.dave, 1000 + i) for i in range(n)]
        self.world.network.run()
        assert sum(isinstance(d, RefundOutgoing) for d in self.duties()) == n
        return payments

    def duties(self) -> list[HtlcDuty]:
        return list(self.hub.ctx.watcher.htlc_duties())

    def records(self, prefix: str) -> dict[str, bytes]:
        assert self.hub.store is not None
        return dict(self.hub.store.settings_with_prefix(prefix))

    def stored_duties(self) -> dict[str, HtlcDuty]:
        return {key: decode_duty(value) for key, value in self.records(DUTY_PREFIX).items()}

    def node_state(self) -> bytes:
        assert self.hub.store is not None
        return bytes(self.hub.store.get_setting(NODE_STATE_KEY) or b"")

    def kill_and_restart(self) -> None:
        """``kill -9`` the hub and start it again from its store."""
        assert self.hub.store is not None
        self.hub.store.close()
        self.world.network.silence(self.hub)
        self.hub = self.world.restart(self.hub, SQLiteStore(self.path))

    def wrap_writes(self, wrapper: Callable[[SaveCheckpoint], SaveCheckpoint]) -> None:
        """Put ``wrapper(save_checkpoint)`` in place of the hub store's ``save_checkpoint``."""
        store = self.hub.store
        assert store is not None
        store.save_checkpoint = wrapper(store.save_checkpoint)  # type: ignore[method-assign]

    def writes_of_one_payment(self, payee: Node) -> Callable[[], int]:
        """A function that pays ``payee`` once, to the end, and returns the bytes of keys
        and values the hub wrote for it."""
        written: list[int] = []

        def counting(inner: SaveCheckpoint) -> SaveCheckpoint:
            def save(snapshots: Any, settings: dict[str, bytes | None], **kw: Any) -> None:
                written.append(sum(len(k) + len(v or b"") for k, v in settings.items()))
                inner(snapshots, settings, **kw)

            return save

        self.wrap_writes(counting)

        def one_payment() -> int:
            written.clear()
            payment = self.pay(payee, 999)
            self.world.network.run_in_jobs()
            assert payment.status == "succeeded"
            return sum(written)

        return one_payment

    def fail_first_write(self, when: Callable[[dict[str, bytes | None]], bool]) -> list[bool]:
        """Make the first write whose settings match ``when`` fail (a disk full for a
        moment); the list returned gets an entry once it has."""
        failed: list[bool] = []

        def flaky(inner: SaveCheckpoint) -> SaveCheckpoint:
            def save(snapshots: Any, settings: dict[str, bytes | None], **kw: Any) -> None:
                if not failed and when(settings):
                    failed.append(True)
                    raise OSError("disk full, for a moment")
                inner(snapshots, settings, **kw)

            return save

        self.wrap_writes(flaky)
        return failed
