"""Virtual channels through the node with an end on Solana (in-process nodes, an embedded
EVM chain and an embedded LiteSVM, real SQLite stores).

Alice's ledger channel with the hub on EVM, Bob's on Solana, the hub converting V's unit
(Alice's wei) into Bob's lamports at its rate (3/2, fixed at open); and both ledgers on
Solana. Open, 24 payments, a restart of every node mid-life, close: zero transactions on
both chains. Breakdowns: the hub silent at close, each end forces V's final state through
its own chain (EVM's adjudicator, the Solana program); Bob showing a stale V state in his
Solana ledger, answered by the hub and Alice on both chains. Every ledger concludes exact
to the wei and the lamport. Attacks: a hub naming a V key of its own for the Solana end, a
wrong rate, a Solana ledger of another app, a V key declared twice; and Alice's request
that the hub never answers expires (a late offer locks nothing), and an offer Bob never
answers expires at the hub. About 25 s on this loaded machine (the two breakdowns on
chains of their own).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chenilles_app_virtual import compact, protocol, rules

from chenilles_hub import apps
from chenilles_hub.backend import ChainBackend
from chenilles_hub.circuit.quote import Rate
from chenilles_hub.core import Asset
from chenilles_hub.core.errors import InvalidParams, NotPermitted
from chenilles_hub.core.virtual import LedgerTerms, VirtualTerms
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.hub.virtual_keys import v_private_key
from chenilles_hub.node.net import wire
from chenilles_hub.node.store.sqlite import SQLiteStore
from tests.circuit.world import World, confirm

pytestmark = [pytest.mark.groups, pytest.mark.evm, pytest.mark.solana]

DURATION = 100
DEPOSIT = 10**9
SPLIT = (3 * 10**8, 2 * 10**8)
RATE = Rate(3, 2)  # lamports per wei of V: the hub's rate
LIFETIME = 3000
GRACE = 300
#: the breakdown cases' V: short-lived, so the chains jump through less time
SHORT, SHORT_GRACE = 300, 150


def _with_app(backend: ChainBackend) -> ChainBackend:
    plugin = next(p for p in apps.installed_apps() if p.info.name == rules.APP_ID)
    backend.use_app(rules.APP_ID, code=plugin.onchain_code(backend.info.family))
    return backend


def _chains() -> Iterator[tuple[ChainBackend, ChainBackend]]:
    from chenilles_evm.backend import embedded_backend
    from chenilles_solana.backend import embedded_backend as solana_backend

    evm, solana = _with_app(embedded_backend()), _with_app(solana_backend())
    yield evm, solana
    for b in (evm, solana):
        close = getattr(b, "close", None)
        if close is not None:
            close()


@pytest.fixture(scope="module")
def chains() -> Iterator[tuple[ChainBackend, ChainBackend]]:
    yield from _chains()


@pytest.fixture
def fresh() -> Iterator[tuple[ChainBackend, ChainBackend]]:
    """Chains of their own for a test that jumps through long stretches of time."""
    yield from _chains()


@dataclass
class TwoChains(World):
    """Both chains' clocks kept together (V's deadline is one unix time on both)."""

    solana: Any = None
    solana_sends: int = 0

    def now(self) -> int:
        evm, sol = self.clock_backend.now(), self.solana.now()
        if sol < evm:
            self.solana.advance_time(evm - sol)
        elif evm < sol:
            self.clock_backend.advance_time(sol - evm)
        return max(evm, sol)


def world_of(
    evm: ChainBackend, solana: ChainBackend, tmp: Path | None = None
) -> tuple[TwoChains, Node, Node, Node]:
    w = TwoChains({evm.chain: evm, solana.chain: solana}, evm, solana=solana)
    w.now()
    ledger_ = solana.ledger  # type: ignore[attr-defined]
    send = ledger_.send

    def counted(*args: Any, **kwargs: Any) -> Any:
        w.solana_sends += 1
        return send(*args, **kwargs)

    ledger_.send = counted
    nodes = [
        w.node(
            name,
            [evm.chain, solana.chain],
            store=SQLiteStore(tmp / f"{name}.db") if tmp is not None else None,
        )
        for name in ("alice", "hub", "bob")
    ]
    native = (Asset(evm.chain, "native"), Asset(solana.chain, "native"))
    nodes[1].set_rate(native[0], native[1], RATE)
    return w, nodes[0], nodes[1], nodes[2]


def ledger(w: World, a: Node, b: Node, chain: str, app: str = rules.APP_ID) -> bytes:
    asset = Asset(chain, "native")
    before = set(a.channels)
    a.open_channel(b.node_id, chain, {asset: (DEPOSIT, DEPOSIT)}, DURATION, app, b"")
    w.network.run()
    (cid,) = set(a.channels) - before
    confirm(w)
    w.network.run()  # the members' V key declarations (Solana)
    assert a.channels[cid].active and b.channels[cid].active
    return cid


def evm_sent(backend: ChainBackend, *nodes: Node) -> int:
    w3 = backend.w3  # type: ignore[attr-defined]
    return sum(
        int(w3.eth.get_transaction_count(n.accounts[backend.chain].chain_key)) for n in nodes
    )


def bob_ledger(v_bob: int) -> tuple[int, int]:
    """Bob's Solana ledger (hub, Bob) when V ends with Bob holding ``v_bob`` wei of V."""
    locked = RATE.convert(sum(SPLIT))
    bob_locked, bob = RATE.convert(SPLIT[1]), RATE.convert(v_bob)
    return DEPOSIT - (locked - bob_locked) + (locked - bob), DEPOSIT - bob_locked + bob


def view(node: Node, handle: bytes) -> dict[str, Any]:
    return node.virtual.describe(node.virtual.get(handle))


def open_v(w: World, alice: Node, hub: Node, bob: Node, **kw: Any) -> bytes:
    lifetime, grace = kw.pop("lifetime", LIFETIME), kw.pop("grace", GRACE)
    handle = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, lifetime, grace, **kw)
    w.network.run()
    assert view(alice, handle)["status"] == "open", view(alice, handle)
    return handle


def test_evm_to_solana_open_pay_restart_close_without_a_transaction(
    chains: tuple[ChainBackend, ChainBackend], tmp_path: Path
) -> None:
    evm, solana = chains
    w, alice, hub, bob = world_of(evm, solana, tmp_path)
    la, lb = ledger(w, alice, hub, evm.chain), ledger(w, hub, bob, solana.chain)
    start_evm, start_sol = evm_sent(evm, alice, hub, bob), w.solana_sends
    handle = open_v(w, alice, hub, bob, rate=RATE)
    terms = hub.virtual.get(handle).terms
    assert terms is not None
    # Bob's V key is the one his node declared for his Solana ledger, not his ed25519 key
    assert terms.keys[1] == rules.address_of(v_private_key(bob.accounts[solana.chain]))
    assert (terms.ledgers[1].num, terms.ledgers[1].den) == (3, 2)
    assert len(hub.channels[lb].machine.state.app_data) == compact.LENGTH
    vid = bytes.fromhex(str(view(alice, handle)["virtual_channel_id"]))
    nodes = {"alice": alice, "hub": hub, "bob": bob}
    for i in range(24):  # Alice pays 3, Bob pays 1; every node restarts once on the way
        if i in (6, 12, 18):
            name = ("alice", "hub", "bob")[i // 6 - 1]
            store = nodes[name].store
            assert store is not None
            nodes[name] = w.restart(nodes[name], store)
        alice, hub, bob = nodes["alice"], nodes["hub"], nodes["bob"]
        payer, amount = (alice, 3) if i % 2 == 0 else (bob, 1)
        payer.virtual_pay(handle if payer is alice else vid, amount)
        w.network.run()
    assert view(bob, vid)["balances"] == [SPLIT[0] - 24, SPLIT[1] + 24]
    alice.virtual_close(handle)
    w.network.run()
    for n in (alice, hub, bob):
        assert view(n, vid)["status"] == "closed", n.name
    assert alice.channels[la].machine.state.balances[0].amounts == (DEPOSIT - 24, DEPOSIT + 24)
    assert bob.channels[lb].machine.state.balances[0].amounts == bob_ledger(SPLIT[1] + 24)
    assert hub.channels[lb].machine.state == bob.channels[lb].machine.state
    assert not bob.channels[lb].machine.state.app_data
    # the hub's store kept Bob's declared V key; the restarted nodes fund the next V at once
    assert hub.store is not None
    assert (f"virtual_key/{lb.hex()}", terms.keys[1].encode()) in hub.store.settings_with_prefix(
        "virtual_key/"
    )
    again = open_v(w, alice, hub, bob, rate=RATE)
    bob.virtual_pay(again, 10)
    w.network.run()
    alice.virtual_close(again)
    w.network.run()
    assert bob.channels[lb].machine.state.balances[0].amounts == bob_ledger(SPLIT[1] + 14)
    assert evm_sent(evm, alice, hub, bob) == start_evm and w.solana_sends == start_sol


def test_both_ends_on_solana(chains: tuple[ChainBackend, ChainBackend]) -> None:
    evm, solana = chains
    w, alice, hub, bob = world_of(evm, solana)
    la, lb = ledger(w, alice, hub, solana.chain), ledger(w, hub, bob, solana.chain)
    start = w.solana_sends
    handle = open_v(w, alice, hub, bob)
    terms = hub.virtual.get(handle).terms
    assert terms is not None and (terms.ledgers[1].num, terms.ledgers[1].den) == (1, 1)
    for _ in range(20):
        alice.virtual_pay(handle, 5)
        w.network.run()
    alice.virtual_close(handle)
    w.network.run()
    assert [view(n, handle)["status"] for n in (alice, hub)] == ["closed", "closed"]
    for cid, node in ((la, alice), (lb, bob)):
        assert node.channels[cid].machine.state.balances[0].amounts == (
            DEPOSIT - 100,
            DEPOSIT + 100,
        )
    assert w.solana_sends == start


def test_hub_silent_at_close_each_end_goes_on_chain(
    fresh: tuple[ChainBackend, ChainBackend],
) -> None:
    """Alice and Bob sign V's final state; the hub signs no settle. Alice's node registers
    her EVM ledger, Bob's his Solana ledger, and each shows V's final state through its
    own chain's rule: both ledgers conclude paying V's outcome exactly."""
    evm, solana = fresh
    w, alice, hub, bob = world_of(evm, solana)
    la, lb = ledger(w, alice, hub, evm.chain), ledger(w, hub, bob, solana.chain)
    handle = open_v(w, alice, hub, bob, lifetime=SHORT, grace=SHORT_GRACE)
    alice.virtual_pay(handle, 4242)
    w.network.run()
    w.network.silence(hub)
    alice.virtual_close(handle)
    w.network.run()
    assert view(alice, handle)["status"] == view(bob, handle)["status"] == "closing"
    terms = alice.virtual.get(handle).terms
    assert terms is not None
    while w.now() < terms.deadline + SHORT_GRACE + 4 * DURATION:
        w.advance(20)
    d = evm.app_dispute(alice.channels[la].params)
    assert d is not None and d.phase == "concluded"
    assert d.state.balances[0].amounts == (DEPOSIT - 4242, DEPOSIT + 4242)
    d = solana.app_dispute(bob.channels[lb].params)
    assert d is not None and d.phase == "concluded"
    assert d.state.balances[0].amounts == bob_ledger(SPLIT[1] + 4242)
    assert any("showing V version" in line for line in bob.journal)
    assert alice.channels[la].status == bob.channels[lb].status == "closed"


def test_bob_shows_a_stale_state_on_solana(fresh: tuple[ChainBackend, ChainBackend]) -> None:
    """Bob's node turns cheat: it registers his Solana ledger and shows an old V state that
    pays him more. The hub's node joins (registers Alice's EVM ledger, shows the best state
    it has seen), Alice's node answers there with her newer state, the hub carries that
    back into Bob's ledger through the Solana program: both ledgers conclude on Alice's
    latest state, exact to the wei and to the lamport."""
    evm, solana = fresh
    w, alice, hub, bob = world_of(evm, solana)
    la, lb = ledger(w, alice, hub, evm.chain), ledger(w, hub, bob, solana.chain)
    handle = open_v(w, alice, hub, bob, lifetime=SHORT, grace=SHORT_GRACE, rate=RATE)
    vid = bytes.fromhex(str(view(alice, handle)["virtual_channel_id"]))
    bob.virtual_pay(vid, 50_000)
    w.network.run()
    stale = bob.virtual.get(vid).machine.latest  # type: ignore[union-attr]
    assert stale is not None
    for _ in range(5):
        bob.virtual_pay(vid, 10_000)
        w.network.run()
    assert view(alice, handle)["balances"] == [SPLIT[0] + 100_000, SPLIT[1] - 100_000]
    bob.virtual_watch.tick = lambda: None  # type: ignore[method-assign]  # (he cheats)
    bob.force_close(lb)
    w.advance(1)
    assert bob.channels[lb].status == "disputed"
    registered = solana.app_dispute(bob.channels[lb].params)
    assert registered is not None
    bob.app_move(lb, protocol.show(registered.state, stale).data)
    terms = alice.virtual.get(handle).terms
    assert terms is not None
    while w.now() < terms.deadline + SHORT_GRACE + 4 * DURATION:
        w.advance(20)
    d = evm.app_dispute(alice.channels[la].params)
    assert d is not None and d.phase == "concluded"
    assert d.state.balances[0].amounts == (DEPOSIT + 100_000, DEPOSIT - 100_000)
    d = solana.app_dispute(hub.channels[lb].params)
    assert d is not None and d.phase == "concluded"
    assert d.state.balances[0].amounts == bob_ledger(SPLIT[1] - 100_000)
    assert any("showing V version 6" in line for line in hub.journal)
    assert any("showing V version 6" in line for line in alice.journal)


def test_offers_with_a_wrong_key_or_rate_are_refused(
    chains: tuple[ChainBackend, ChainBackend],
) -> None:
    evm, solana = chains
    w, alice, hub, bob = world_of(evm, solana)
    la = ledger(w, alice, hub, evm.chain)
    # a Solana ledger of another app cannot fund V: the hub refuses, with the reason
    ledger(w, hub, bob, solana.chain, app="")
    alice.virtual_open(hub.node_id, bob.node_id, SPLIT, LIFETIME, GRACE)
    w.network.run()
    (v,) = alice.virtual_list()
    assert v["status"] == "refused" and "no active ledger channel of the 'virtual'" in str(
        v["last_error"]
    )
    lb = ledger(w, hub, bob, solana.chain)
    # Alice named a rate the hub does not offer: refused by the hub, nothing locked
    alice.virtual_open(hub.node_id, bob.node_id, SPLIT, LIFETIME, GRACE, Rate(2, 1))
    w.network.run()
    assert "this hub's rate is 3/2" in str(alice.virtual_list()[1]["last_error"])
    assert not hub.virtual_list()
    bob_key = rules.address_of(v_private_key(bob.accounts[solana.chain]))
    hub_key = rules.address_of(b"\x11" * 32)
    terms = VirtualTerms(
        keys=(alice.accounts[evm.chain].chain_key, hub_key),
        node_ids=(alice.node_id, bob.node_id),
        hub_node_id=hub.node_id,
        ledgers=(
            LedgerTerms(la, hub_index=1),
            LedgerTerms(lb, hub_index=0, num=RATE.numerator, den=RATE.denominator),
        ),
        split=SPLIT,
        deadline=w.now() + LIFETIME,
        grace=GRACE,
        nonce=b"\x01" * 32,
    )
    unit = Asset(evm.chain, "native")
    # the hub names a V key of its own for Bob: Bob's node refuses the offer
    bob.receive(hub.node_id, wire.encode(wire.VirtualOffer(b"\x02" * 32, terms, unit)))
    # Bob's key, but a 3/2 rate while the offer says V's unit is Bob's own asset
    honest = msgspec.structs.replace(terms, keys=(terms.keys[0], bob_key))
    sol = Asset(solana.chain, "native")
    bob.receive(hub.node_id, wire.encode(wire.VirtualOffer(b"\x04" * 32, honest, sol)))
    answers = [wire.decode(f) for _, f in bob.outbox]
    bob.outbox.clear()
    refusals = [a for a in answers if isinstance(a, wire.VirtualAnswer) and not a.accepted]
    assert len(refusals) == 2, answers
    assert "another V key than ours" in refusals[0].reason
    assert "not 1/1" in refusals[1].reason
    assert not bob.virtual_list()
    # Alice's own ledger converted (V's unit is her asset: 1/1 only): she refuses
    asked = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, LIFETIME, GRACE)
    alice.outbox.clear()  # (the hub never sees this request: the offer below is forged)
    skewed = msgspec.structs.replace(
        honest, ledgers=(LedgerTerms(la, hub_index=1, num=2, den=1), honest.ledgers[1])
    )
    alice.receive(hub.node_id, wire.encode(wire.VirtualOffer(asked, skewed, unit)))
    v = view(alice, asked)
    assert v["status"] == "refused" and "not 1/1" in str(v["last_error"]), v
    alice.outbox.clear()
    # the honest path still works, and Bob's ledger holds V's guarantee only
    good = open_v(w, alice, hub, bob, rate=RATE)
    g = rules.state_guarantee(bob.channels[lb].machine.state)
    assert g is not None and g.keys[1].lower() == bob_key.lower()
    assert view(bob, good)["status"] == "open"
    # a V key declared for a ledger we do not share, or changed: refused, nothing learnt
    with pytest.raises(InvalidParams):
        hub.virtual.keys.on_key(alice.node_id, wire.VirtualKey(lb, hub_key))
    with pytest.raises(NotPermitted):
        hub.virtual.keys.on_key(bob.node_id, wire.VirtualKey(lb, hub_key))
    assert hub.virtual.keys.declared[lb].lower() == bob_key.lower()


def test_a_request_the_hub_never_answers_expires(
    chains: tuple[ChainBackend, ChainBackend], tmp_path: Path
) -> None:
    evm, solana = chains
    w, alice, hub, bob = world_of(evm, solana, tmp_path)
    la, lb = ledger(w, alice, hub, evm.chain), ledger(w, hub, bob, solana.chain)
    handle = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, LIFETIME, GRACE)
    (request,) = [f for peer, f in alice.outbox if peer == hub.node_id]
    alice.outbox.clear()  # the hub does not get it (yet)
    w.advance(alice.virtual.request_timeout - 10)
    assert view(alice, handle)["status"] == "requested"
    w.advance(20)
    v = view(alice, handle)
    assert v["status"] == "expired" and "expired" in str(v["last_error"])
    assert alice.store is not None
    alice = w.restart(alice, alice.store)
    assert view(alice, handle)["status"] == "expired"  # persisted
    # the hub answers late: Alice refuses the offer, the hub funds nothing
    hub.receive(alice.node_id, request)
    w.network.run()
    assert view(alice, handle)["status"] == "expired"
    assert view(hub, handle)["status"] == "refused"
    assert "expired" in str(view(hub, handle)["reason"])
    for node, cid in ((alice, la), (hub, la), (hub, lb), (bob, lb)):
        assert not node.channels[cid].machine.state.app_data, node.name
        assert node.channels[cid].machine.state.version == 0
    # Bob, who had accepted the late offer, was told: his ledger is free again
    assert view(bob, handle)["status"] == "refused"
    again = open_v(w, alice, hub, bob)
    assert [view(n, again)["status"] for n in (alice, hub, bob)] == ["open"] * 3


def test_an_offer_one_end_never_accepts_expires_at_the_hub(
    chains: tuple[ChainBackend, ChainBackend],
) -> None:
    """Bob never answers the hub's offer: after the timeout the hub's record expires, Alice
    is told (her request fails with the reason), Bob's late acceptance is refused and
    nothing was ever locked; the ledgers fund the next virtual channel."""
    evm, solana = chains
    w, alice, hub, bob = world_of(evm, solana)
    la, lb = ledger(w, alice, hub, evm.chain), ledger(w, hub, bob, solana.chain)
    w.network.silence(bob)
    handle = alice.virtual_open(hub.node_id, bob.node_id, SPLIT, LIFETIME, GRACE)
    w.network.run()
    assert view(alice, handle)["status"] == "offered" == view(hub, handle)["status"]
    w.advance(hub.virtual.request_timeout + 5)
    w.network.run()
    assert view(hub, handle)["status"] == "expired"
    a = view(alice, handle)
    assert a["status"] == "refused" and "not accepted by both ends" in str(a["last_error"])
    errors = len(hub.errors)
    hub.receive(bob.node_id, wire.encode(wire.VirtualAnswer(handle, True)))
    assert len(hub.errors) == errors + 1 and view(hub, handle)["status"] == "expired"
    assert not [f for _, f in hub.outbox]  # no FUND proposed
    for node, cid in ((alice, la), (hub, la), (hub, lb)):
        assert not node.channels[cid].machine.state.app_data, node.name
    w.network.revive(bob)
    again = open_v(w, alice, hub, bob)
    assert view(bob, again)["status"] == "open"
