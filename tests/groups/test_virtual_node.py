"""Virtual channels through the node (in-process network, embedded EVM ledger, real
SQLite stores): Alice opens V through her hub with Bob, they pay each other 50 times
without the hub, close it, and both ledger channels carry V's outcome exactly, with not
one transaction on the chain. Also: the record survives a restart, bad offers are
refused, and the app watcher starts no dispute for a guarantee held quietly; Bob silent,
the hub silent at close, and the close before the deadline. About 40 s (the three long
cases each on a chain of their own)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from chenilles_app_virtual import protocol, rules

from chenilles_hub import apps
from chenilles_hub.backend import ChainBackend
from chenilles_hub.core import Asset
from chenilles_hub.core.errors import ChannelError, InvalidParams, NotPermitted
from chenilles_hub.core.messages import Reestablish
from chenilles_hub.core.virtual import VirtualTerms
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.net import wire
from chenilles_hub.node.store.sqlite import SQLiteStore
from tests.circuit.world import World, confirm

pytestmark = [pytest.mark.groups, pytest.mark.evm]

DURATION = 100
DEPOSIT = 10**9
SPLIT = (3 * 10**8, 2 * 10**8)
LIFETIME = 3000
GRACE = 300


def _backend() -> Iterator[ChainBackend]:
    from chenilles_evm.backend import embedded_backend

    backend: ChainBackend = embedded_backend()
    plugin = next(p for p in apps.installed_apps() if p.info.name == rules.APP_ID)
    backend.use_app(rules.APP_ID, code=plugin.onchain_code(backend.info.family))
    yield backend
    close = getattr(backend, "close", None)
    if close is not None:
        close()


@pytest.fixture(scope="module")
def backend() -> Iterator[ChainBackend]:
    yield from _backend()


@pytest.fixture
def fresh() -> Iterator[ChainBackend]:
    """A chain of its own for a test that jumps through long stretches of time (every
    jump adds blocks, and a long chain slows every later poll)."""
    yield from _backend()


def ledger(world: World, a: Node, b: Node, chain: str) -> bytes:
    asset = Asset(chain, "native")
    before = set(a.channels)
    a.open_channel(b.node_id, chain, {asset: (DEPOSIT, DEPOSIT)}, DURATION, rules.APP_ID, b"")
    world.network.run()
    (cid,) = set(a.channels) - before
    confirm(world)
    assert a.channels[cid].active and b.channels[cid].active
    return cid


def three(backend: ChainBackend, tmp: Path | None = None) -> tuple[World, Node, Node, Node]:
    world = World({backend.chain: backend}, backend)
    nodes = [
        world.node(
            name,
            [backend.chain],
            store=SQLiteStore(tmp / f"{name}.db") if tmp is not None else None,
        )
        for name in ("alice", "hub", "bob")
    ]
    return world, nodes[0], nodes[1], nodes[2]


def block(backend: ChainBackend) -> int:
    return int(backend.w3.eth.block_number)  # type: ignore[attr-defined]


def transactions_since(backend: ChainBackend, start: int) -> int:
    w3 = backend.w3  # type: ignore[attr-defined]
    return sum(
        len(w3.eth.get_block(n)["transactions"]) for n in range(start + 1, block(backend) + 1)
    )


def sent(backend: ChainBackend, *nodes: Node) -> int:
    """Transactions the nodes' accounts ever sent (their nonces): what a virtual channel's
    life must not add to (cheaper than reading every block after long time jumps)."""
    w3 = backend.w3  # type: ignore[attr-defined]
    return sum(
        int(w3.eth.get_transaction_count(n.accounts[backend.chain].chain_key)) for n in nodes
    )


def open_v(world: World, alice: Node, hub: Node, bob: Node) -> bytes:
    handle = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, LIFETIME, GRACE)
    world.network.run()
    (a_view,) = [v for v in alice.virtual_list() if v["request_id"] == handle.hex()]
    assert a_view["status"] == "open", a_view
    return handle


def test_open_pay_50_close_without_a_transaction(backend: ChainBackend, tmp_path: Path) -> None:
    world, alice, hub, bob = three(backend, tmp_path)
    la, lb = ledger(world, alice, hub, backend.chain), ledger(world, hub, bob, backend.chain)
    start = block(backend)
    handle = open_v(world, alice, hub, bob)
    views = {n.name: n.virtual_list()[0] for n in (alice, hub, bob)}
    assert {v["status"] for v in views.values()} == {"open"}
    assert views["hub"]["funded_by"] == [la.hex(), lb.hex()] == views["bob"]["funded_by"]
    vid = bytes.fromhex(str(views["alice"]["virtual_channel_id"]))
    for i in range(50):  # Alice pays 3, Bob pays 1, alternately
        payer, amount = (alice, 3) if i % 2 == 0 else (bob, 1)
        payer.virtual_pay(handle if payer is alice else vid, amount)
        world.network.run()
    assert alice.virtual_list()[0]["balances"] == [SPLIT[0] - 50, SPLIT[1] + 50]
    assert bob.virtual_list()[0]["balances"] == [SPLIT[0] - 50, SPLIT[1] + 50]
    alice.virtual_close(handle)
    world.network.run()
    assert transactions_since(backend, start) == 0
    for n in (alice, hub, bob):
        assert n.virtual_list()[0]["status"] == "closed", n.name
    # each ledger carries V's outcome: Alice paid 50 to the hub, the hub 50 to Bob
    for cid in (la, lb):
        for n in (alice, hub) if cid == la else (hub, bob):
            state = n.channels[cid].machine.state
            assert state.balances[0].amounts == (DEPOSIT - 50, DEPOSIT + 50)
            assert not state.app_data
    assert hub.virtual_list()[0]["final_known"]
    # the ledgers fund the next virtual channel at once
    handle2 = open_v(world, alice, hub, bob)
    alice.virtual_pay(handle2, 7)
    world.network.run()
    alice.virtual_close(handle2)
    world.network.run()
    assert alice.channels[la].machine.state.balances[0].amounts == (DEPOSIT - 57, DEPOSIT + 57)
    assert bob.channels[lb].machine.state.balances[0].amounts == (DEPOSIT - 57, DEPOSIT + 57)
    assert transactions_since(backend, start) == 0


def test_a_restarted_end_resumes_its_virtual_channel(backend: ChainBackend, tmp_path: Path) -> None:
    world, alice, hub, bob = three(backend, tmp_path)
    ledger(world, alice, hub, backend.chain), ledger(world, hub, bob, backend.chain)
    handle = open_v(world, alice, hub, bob)
    alice.virtual_pay(handle, 1000)
    world.network.run()
    assert bob.store is not None
    bob = world.restart(bob, bob.store)
    (v,) = bob.virtual_list()
    assert v["status"] == "open" and v["balances"] == [SPLIT[0] - 1000, SPLIT[1] + 1000]
    bob.virtual_pay(bytes.fromhex(str(v["virtual_channel_id"])), 400)
    world.network.run()
    assert alice.virtual_list()[0]["balances"] == [SPLIT[0] - 600, SPLIT[1] + 600]


def test_bad_requests_and_offers_change_nothing(backend: ChainBackend) -> None:
    world, alice, hub, bob = three(backend)
    with pytest.raises(InvalidParams, match="no active ledger"):
        alice.virtual_open(hub.node_id, bob.node_id, SPLIT, LIFETIME, GRACE)
    ledger(world, alice, hub, backend.chain)
    # the hub has no ledger channel with Bob: the request is refused with a reason
    alice.virtual_open(hub.node_id, bob.node_id, SPLIT, LIFETIME, GRACE)
    world.network.run()
    (v,) = alice.virtual_list()
    assert v["status"] == "refused" and "no active ledger" in str(v["reason"])
    ledger(world, hub, bob, backend.chain)
    # more than the hub can lock in Bob's ledger
    alice.virtual_open(hub.node_id, bob.node_id, (1, DEPOSIT + 1), LIFETIME, GRACE)
    world.network.run()
    assert [v["status"] for v in alice.virtual_list()] == ["refused", "refused"]
    assert not hub.virtual_list()
    # an offer nobody asked for, sent by a stranger posing as a hub: refused, nothing stored
    good = open_v(world, alice, hub, bob)
    terms = hub.virtual.get(good).terms
    assert terms is not None
    errors = len(alice.errors)
    alice.receive(bob.node_id, wire.encode(wire.VirtualOffer(bytes(32), terms)))
    alice.receive(hub.node_id, wire.encode(wire.VirtualOffer(good, terms)))
    assert len(alice.virtual_list()) == 3 and len(alice.errors) == errors
    assert alice.virtual_list()[2]["status"] == "open"  # a replayed offer changes nothing
    # a second request (sent raw) on the ledger already funding V: refused, no record
    again = wire.VirtualOpenRequest(
        b"\x07" * 32, terms.ledgers[0].channel_id, bob.node_id, SPLIT, 10**10, GRACE
    )
    hub.receive(alice.node_id, wire.encode(again))
    assert len(hub.virtual_list()) == 1
    answers = [wire.decode(f) for _, f in hub.outbox]
    assert [a.accepted for a in answers if isinstance(a, wire.VirtualAnswer)] == [False], answers
    world.network.run()
    # V's messages from a node that is not V's other end (the hub): refused, V unchanged
    vid = bytes.fromhex(str(alice.virtual_list()[2]["virtual_channel_id"]))
    refused = alice.counters.get("peer_messages_refused", 0)
    alice.receive(hub.node_id, wire.encode(Reestablish(vid, 0)))
    assert alice.counters.get("peer_messages_refused", 0) == refused + 1
    assert alice.virtual_list()[2]["version"] == 0
    with pytest.raises(ChannelError):  # more than Alice holds in V: refused, nothing sent
        alice.virtual_pay(good, SPLIT[0] + 1)
    with pytest.raises(NotPermitted):  # the hub is no member of V: it cannot pay in it
        hub.virtual_pay(good, 1)
    assert alice.virtual_list()[2]["balances"] == list(SPLIT)


def _cheat_fund(world: World, hub: Node, cid: bytes, terms: VirtualTerms, side: int) -> None:
    """The hub proposes, in its ledger channel ``cid``, a FUND of ``terms`` (side ``side``)."""
    hub.app_move(cid, protocol.fund(terms, side, hub.channels[cid].machine.state).data)
    world.network.run()


def test_an_end_funds_only_an_offer_it_accepted_never_a_v_used_before(
    backend: ChainBackend, tmp_path: Path
) -> None:
    """Attack: V closed and settled in both ledgers; the hub proposes in each a FUND of V's
    old terms (same id, same keys), to show V's old final state, signed by Alice and Bob, a
    second time; then a FUND of terms nobody offered; then it offers Bob V's terms again
    under a new request. Each end's node refuses all of it (after a restart too: its
    records are persisted): nothing signed, the ledgers unchanged. A new V opens as usual."""
    world, alice, hub, bob = three(backend, tmp_path)
    la, lb = ledger(world, alice, hub, backend.chain), ledger(world, hub, bob, backend.chain)
    handle = open_v(world, alice, hub, bob)
    alice.virtual_pay(handle, 1000)
    world.network.run()
    alice.virtual_close(handle)
    world.network.run()
    assert [n.virtual_list()[0]["status"] for n in (alice, hub, bob)] == ["closed"] * 3
    # a closed V is kept for the operator, never looked at again after each event
    assert not any(n.virtual.live for n in (alice, hub, bob))
    old = hub.virtual.get(handle).terms
    assert old is not None
    assert alice.store is not None and bob.store is not None
    alice, bob = world.restart(alice, alice.store), world.restart(bob, bob.store)
    world.network.run()
    assert not alice.virtual.live and len(alice.virtual.records) == 1
    made_up = msgspec.structs.replace(
        old, nonce=secrets.token_bytes(32), deadline=world.now() + LIFETIME
    )
    ends = ((alice, la, 0), (bob, lb, 1))
    held = {cid: end.channels[cid].machine.state for end, cid, _ in ends}
    refused = {end.name: end.counters.get("peer_messages_refused", 0) for end, _, _ in ends}
    for terms in (old, made_up):
        for end, cid, side in ends:
            _cheat_fund(world, hub, cid, terms, side)
            for node in (end, hub):  # nothing signed: no guarantee, the same balances
                state = node.channels[cid].machine.state
                assert not state.app_data and state.balances == held[cid].balances, node.name
            assert "FUND" in str(end.channels[cid].last_error), end.name
    for end, _, _ in ends:
        assert end.counters.get("peer_messages_refused", 0) == refused[end.name] + 2
    # V's terms offered to Bob again, as a new virtual channel: refused, no record
    bob.receive(hub.node_id, wire.encode(wire.VirtualOffer(b"\x09" * 32, old)))
    answers = [wire.decode(f) for _, f in bob.outbox]
    assert [
        (a.accepted, "used before" in a.reason)
        for a in answers
        if isinstance(a, wire.VirtualAnswer)
    ] == [(False, True)]
    assert len(bob.virtual_list()) == 1
    world.network.run()
    # the honest way still works on the same ledgers
    handle2 = open_v(world, alice, hub, bob)
    alice.virtual_pay(handle2, 7)
    world.network.run()
    alice.virtual_close(handle2)
    world.network.run()
    assert alice.channels[la].machine.state.balances[0].amounts == (DEPOSIT - 1007, DEPOSIT + 1007)
    assert bob.channels[lb].machine.state.balances[0].amounts == (DEPOSIT - 1007, DEPOSIT + 1007)


def test_no_dispute_for_a_guarantee_held_quietly(backend: ChainBackend) -> None:
    """While a guarantee is held the rule's turn is (0, 1): nobody is "on its turn", so the
    app watcher's idle timeout starts no dispute however long V runs without the hub."""
    world, alice, hub, bob = three(backend)
    la, lb = ledger(world, alice, hub, backend.chain), ledger(world, hub, bob, backend.chain)
    for n in (alice, hub, bob):
        n.app_channels.answer_timeout = 50
    handle = open_v(world, alice, hub, bob)
    start = sent(backend, alice, hub, bob)
    for _ in range(4):
        world.advance(60)
    alice.virtual_pay(handle, 5)
    world.network.run()
    for _ in range(4):
        world.advance(60)
    assert alice.channels[la].status == hub.channels[lb].status == "active"
    assert hub.channels[la].status == bob.channels[lb].status == "active"
    assert backend.app_dispute(alice.channels[la].params) is None
    assert sent(backend, alice, hub, bob) == start


def test_bob_silent_alice_recovers_through_the_chain(fresh: ChainBackend) -> None:
    backend = fresh
    """Bob stops answering. Before V's deadline Alice's node registers her ledger channel
    and shows her latest V state; the hub's node joins in Bob's ledger, shows the same
    state there and keeps it open until the deadline plus grace. Both ledgers conclude on
    V's latest state: Alice and the hub are paid exactly, Bob gets what V gave him."""
    world, alice, hub, bob = three(backend)
    la, lb = ledger(world, alice, hub, backend.chain), ledger(world, hub, bob, backend.chain)
    handle = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, 600, 200)
    world.network.run()
    for i in range(6):
        (alice if i % 2 == 0 else bob).virtual_pay(
            handle if i % 2 == 0 else bob.virtual.get(handle).request_id, 1000 if i % 2 == 0 else 1
        )
        world.network.run()
    assert alice.virtual_list()[0]["balances"] == [SPLIT[0] - 2997, SPLIT[1] + 2997]
    world.network.silence(bob)
    deadline = alice.virtual.get(handle).terms.deadline  # type: ignore[union-attr]
    while world.now() < deadline + 200 + 4 * DURATION:
        world.advance(20)
    for cid in (la, lb):
        d = backend.app_dispute(alice.channels[la].params if cid == la else hub.channels[lb].params)
        assert d is not None and d.phase == "concluded", cid.hex()
        assert d.state.balances[0].amounts == (DEPOSIT - 2997, DEPOSIT + 2997)
    assert alice.channels[la].status == "closed"
    assert any("registering ledger" in line for line in alice.journal)
    assert any("showing V version" in line for line in hub.journal)


def test_hub_silent_at_close_both_ends_recover_through_the_chain(fresh: ChainBackend) -> None:
    backend = fresh
    """Alice and Bob sign V's final state; the hub signs no settle. Each end's node
    registers its own ledger channel and shows V's final state there: both ledgers
    conclude paying V's outcome exactly."""
    world, alice, hub, bob = three(backend)
    la, lb = ledger(world, alice, hub, backend.chain), ledger(world, hub, bob, backend.chain)
    handle = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, 600, 200)
    world.network.run()
    alice.virtual_pay(handle, 4242)
    world.network.run()
    world.network.silence(hub)
    alice.virtual_close(handle)
    world.network.run()
    assert alice.virtual_list()[0]["status"] == bob.virtual_list()[0]["status"] == "closing"
    deadline = alice.virtual.get(handle).terms.deadline  # type: ignore[union-attr]
    while world.now() < deadline + 200 + 4 * DURATION:
        world.advance(20)
    for cid, node in ((la, alice), (lb, bob)):
        d = backend.app_dispute(node.channels[cid].params)
        assert d is not None and d.phase == "concluded", node.name
        assert d.state.balances[0].amounts == (DEPOSIT - 4242, DEPOSIT + 4242)
    assert alice.channels[la].status == bob.channels[lb].status == "closed"


def test_closed_by_itself_before_its_deadline(fresh: ChainBackend) -> None:
    backend = fresh
    """Nobody closes V; two challenge periods before its deadline Alice's node closes it
    cooperatively, so nobody has to go on-chain: both ledgers settle, no transaction."""
    world, alice, hub, bob = three(backend)
    la, lb = ledger(world, alice, hub, backend.chain), ledger(world, hub, bob, backend.chain)
    start = sent(backend, alice, hub, bob)
    handle = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, 600, 200)
    world.network.run()
    bob.virtual_pay(bob.virtual.get(handle).request_id, 77)
    world.network.run()
    deadline = alice.virtual.get(handle).terms.deadline  # type: ignore[union-attr]
    while world.now() < deadline - DURATION:
        world.advance(20)
    assert [n.virtual_list()[0]["status"] for n in (alice, hub, bob)] == ["closed"] * 3
    assert alice.channels[la].machine.state.balances[0].amounts == (DEPOSIT + 77, DEPOSIT - 77)
    assert bob.channels[lb].machine.state.balances[0].amounts == (DEPOSIT + 77, DEPOSIT - 77)
    assert sent(backend, alice, hub, bob) == start


def test_an_end_that_never_settles_cannot_lock_the_hubs_collateral(
    fresh: ChainBackend,
) -> None:
    """Bob signs V's final state but his node never settles his ledger channel (it stalls,
    or cheats). Alice settles hers; the hub holds the final state from her report, registers
    Bob's ledger before V's deadline and shows it there: that ledger concludes on V's
    outcome, and the hub gets back exactly what V leaves it."""
    backend = fresh
    world, alice, hub, bob = three(backend)
    la, lb = ledger(world, alice, hub, backend.chain), ledger(world, hub, bob, backend.chain)
    handle = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, 600, 200)
    world.network.run()
    alice.virtual_pay(handle, 999)
    world.network.run()
    bob.virtual.get(handle).settled_sent = True  # Bob's node will not settle
    alice.virtual_close(handle)
    world.network.run()
    assert alice.virtual_list()[0]["status"] == "closed"
    assert hub.channels[lb].machine.state.app_data  # Bob's ledger still holds the guarantee
    world.network.silence(bob)  # ... and Bob is gone
    deadline = alice.virtual.get(handle).terms.deadline  # type: ignore[union-attr]
    while world.now() < deadline + 200 + 4 * DURATION:
        world.advance(20)
    d = backend.app_dispute(hub.channels[lb].params)
    assert d is not None and d.phase == "concluded"
    assert d.state.balances[0].amounts == (DEPOSIT - 999, DEPOSIT + 999)
    assert any("registering ledger" in line for line in hub.journal)
    assert alice.channels[la].machine.state.balances[0].amounts == (DEPOSIT - 999, DEPOSIT + 999)


def test_a_funding_one_end_never_signs_is_cancelled(backend: ChainBackend) -> None:
    """Both ends accept, Alice signs her FUND, Bob goes silent before signing his. Without
    a cancel the hub's collateral and Alice's ledger would stay promised to a V that can
    never open. After the request timeout the hub gives up, cancels Alice's pending
    guarantee off-chain (no transaction) and tells both ends; when Bob comes back and
    signs the FUND he had missed, the hub cancels that one too, and both ledgers are free."""
    world, alice, hub, bob = three(backend)
    la, lb = ledger(world, alice, hub, backend.chain), ledger(world, hub, bob, backend.chain)
    before = sent(backend, alice, hub, bob)
    handle = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, LIFETIME, GRACE)
    assert world.network.run_until(
        lambda: any(v.status == "funding" for v in hub.virtual.records.values())
    )
    world.network.silence(bob)
    world.network.run()
    (a_view,) = alice.virtual_list()
    assert a_view["status"] == "offered"
    assert alice.channels[la].machine.latest.state.app_data  # the pending guarantee

    world.advance(hub.virtual.request_timeout + 1)
    for _ in range(5):
        world.advance(1)
        world.network.run()
    (h_view,) = hub.virtual_list()
    assert h_view["status"] == "expired" and "funded in both" in str(h_view["last_error"])
    assert alice.channels[la].machine.latest.state.app_data == b""
    assert [v["status"] for v in alice.virtual_list()] == ["refused"]
    assert alice.channels[la].machine.latest.state.balances[0].amounts == (DEPOSIT, DEPOSIT)

    world.network.revive(bob)
    for _ in range(5):
        world.advance(1)
        world.network.run()
    assert bob.channels[lb].machine.latest.state.app_data == b""
    assert [v["status"] for v in bob.virtual_list()] == ["refused"]
    assert sent(backend, alice, hub, bob) == before  # all of it off-chain

    # Both ledgers fund the next virtual channel.
    second = open_v(world, alice, hub, bob)
    assert alice.virtual.get(second).status == "open"
    assert handle != second
