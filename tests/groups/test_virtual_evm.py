"""Virtual channels over two EVM ledger channels with a hub (eth-tester, py-evm).

The happy path touches no chain: the virtual channel is opened, used for many payments and
closed with zero transactions, counted on the ledger. Each breakdown ends with exact
balances on-chain for every honest party: the hub silent at close, Alice silent, Bob
publishing a stale virtual state, and Alice and Bob colluding to show each ledger a
different state. Runtime: 2-4 min on this shared 2-core machine under a load of 12-16
(each breakdown is 20-50 forced moves, registrations and conclusions on py-evm; the watch
loop jumps chain time from one deadline to the next). The collusion and the
settled-then-stale cases run with ``CHENILLES_SLOW_TESTS=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import msgspec
import pytest
from chenilles_app_virtual import protocol, rules

from chenilles_hub.backend import ChainBackend, LedgerError
from chenilles_hub.circuit.quote import Rate, make_quote
from chenilles_hub.core import SignedState
from chenilles_hub.core.errors import InvalidTransition
from chenilles_hub.core.virtual import HeldVState
from chenilles_hub.identity import NodeIdentity

from .harness import (
    CAPACITY,
    DURATION,
    Actor,
    Register,
    ShowVState,
    Virtual,
    World,
    close_ledger,
    make_backend,
    open_virtual,
    settle_cooperatively,
    watch,
    world,
)

pytestmark = [pytest.mark.groups, pytest.mark.evm]

PAYMENTS = 100
slow = pytest.mark.skipif(
    not os.environ.get("CHENILLES_SLOW_TESTS"), reason="long variant: CHENILLES_SLOW_TESTS=1"
)


@pytest.fixture(scope="module")
def backend() -> Iterator[ChainBackend]:
    backend = make_backend()
    yield backend
    close = getattr(backend, "close", None)
    if close is not None:
        close()


@pytest.fixture
def w(backend: ChainBackend) -> World:
    return world(backend)


def payments(v: Virtual, count: int) -> tuple[int, int]:
    """``count`` payments both ways (Alice pays 3, Bob pays 1, alternately); V's balances."""
    for i in range(count):
        v.pay(i % 2, 3 if i % 2 == 0 else 1)
    amounts = v.latest.state.balances[0].amounts
    return amounts[0], amounts[1]


def test_open_pay_close_without_a_transaction(w: World) -> None:
    """Opening funds both guarantees off-chain, 100 payments flow between Alice and Bob
    without the hub, closing settles both ledgers off-chain: not one transaction."""
    block = w.block()
    v = open_virtual(w)
    a, b = payments(v, PAYMENTS)
    assert (a, b) == (CAPACITY[0] - 100, CAPACITY[1] + 100)
    final = v.close()
    settle_cooperatively(v, final)
    assert w.transactions_since(block) == 0
    # the ledgers carry V's outcome: Alice paid 100 to the hub, the hub 100 to Bob
    assert w.la.state.balances[0].amounts == (10**9 - 100, 10**9 + 100)
    assert w.lb.state.balances[0].amounts == (10**9 - 100, 10**9 + 100)
    assert not w.la.state.app_data and not w.lb.state.app_data
    # and the ledgers can fund the next virtual channel at once
    v2 = open_virtual(w)
    v2.pay(1, 7)
    settle_cooperatively(v2, v2.close())
    assert w.transactions_since(block) == 0
    assert w.la.state.balances[0].amounts == (10**9 - 93, 10**9 + 93)
    assert w.lb.state.balances[0].amounts == (10**9 - 93, 10**9 + 93)


def _expect_onchain(w: World, alice: int, bob: int) -> None:
    """Both ledgers concluded; each party got exactly its due, the hub is even."""
    assert w.gained() == {"alice": 10**9 + alice, "hub": 2 * 10**9, "bob": 10**9 + bob}


def test_hub_silent_at_close(w: World) -> None:
    """Alice and Bob close V; the hub signs nothing more. Each end registers its own ledger
    channel and shows V's final state; both are paid exactly V's outcome."""
    v = open_virtual(w)
    payments(v, 10)
    final = v.close()
    done = watch(v, hub=False, ends=(final, final))
    assert ("alice", ShowVState(0, _held(final))) in done
    assert ("bob", ShowVState(1, _held(final))) in done
    _expect_onchain(w, -10, 10)


def test_alice_silent(w: World) -> None:
    """Alice vanishes mid-channel. Bob goes on-chain with the latest state he holds before
    the deadline; the hub mirrors it into Alice's ledger; Alice, though silent, is paid her
    exact V balance and the hub is even."""
    v = open_virtual(w)
    payments(v, 20)
    latest = v.latest
    done = watch(v, ends=(None, latest))
    assert ("bob", Register(1)) in done
    assert ("hub", Register(0)) in done
    _expect_onchain(w, -20, 20)


def test_bob_publishes_a_stale_state(w: World) -> None:
    """Bob shows his ledger an old V state that pays him more. The hub carries it to
    Alice's ledger, Alice answers with her newer state, the hub carries that back to Bob's
    ledger before the grace ends: Bob gets only what the latest state gives him."""
    v = open_virtual(w)
    stale = v.pay(1, 50_000)  # Bob's balance was 50_000 lower here... he paid Alice
    for _ in range(5):
        v.pay(1, 10_000)  # ...and he keeps paying her
    latest = v.latest
    assert stale.version < latest.version
    w.lb.link.run(1, ())  # a ledger update, so Bob's registration is the latest ledger state
    done = watch(v, ends=(latest, stale))
    assert ("alice", ShowVState(0, _held(latest))) in done
    assert ("hub", ShowVState(1, _held(latest))) in done
    _expect_onchain(w, 100_000, -100_000)


@pytest.mark.slow
@slow
def test_alice_and_bob_collude_against_the_hub(w: World) -> None:
    """Alice and Bob (one person) show each ledger the state that pays it most: Alice's
    ledger the newest (Bob paid Alice), Bob's the oldest. The hub mirrors each into the
    other ledger; after the deadline only the hub may move, so both end on the newest
    state and the hub loses nothing."""
    v = open_virtual(w)
    oldest = v.latest
    for _ in range(3):
        v.pay(1, 40_000)
    newest = v.latest
    done = watch(v, ends=(newest, oldest))
    assert ("hub", ShowVState(1, _held(newest))) in done
    gained = w.gained()
    assert gained["hub"] == 2 * 10**9
    assert gained["alice"] + gained["bob"] == 2 * 10**9


@pytest.mark.slow
@slow
def test_settled_in_one_ledger_then_stale_in_the_other(w: World) -> None:
    """V closed and settled in Alice's ledger; Bob refuses to settle his and shows a stale
    state on-chain instead. The hub holds the final state from Alice's settle and shows it
    in Bob's ledger: Bob is paid V's outcome, no more."""
    v = open_virtual(w)
    early = v.pay(0, 1000)
    v.pay(1, 30_000)
    final = v.close()
    w.la.propose(0, *protocol.settle(w.la.state, final))
    done = watch(v, hub_knows=final, ends=(None, early), closed=(True, False))
    close_ledger(w, w.la)
    assert ("hub", ShowVState(1, _held(final))) in done
    _expect_onchain(w, 29_000, -29_000)


def test_the_contract_refuses_what_the_rule_refuses(w: World) -> None:
    """On-chain, the guarantee's contract gives the Python rule's verdicts: an end cannot
    keep a dispute open, show an unsigned or forged state, go back a version, or show
    anything after the deadline; the hub may during its grace."""
    v = open_virtual(w)
    old = v.pay(0, 5)
    new = v.pay(1, 2)
    alice, hub = Actor(w.la, 0, w.relayer), Actor(w.la, 1, w.relayer)
    alice.register()
    w.backend.advance_time(DURATION)
    g = w.la.onchain_state()
    forged = rules.VState(9, (0, sum(CAPACITY)), False, (bytes(65), bytes(65)))
    for actor, move in (
        (alice, protocol.heartbeat(g)),
        (alice, protocol.show(g, forged)),
    ):
        with pytest.raises((LedgerError, InvalidTransition)):
            actor.force(move)
    alice.force(protocol.show(g, new))
    g = w.la.onchain_state()
    with pytest.raises((LedgerError, InvalidTransition)):
        hub.force(protocol.show(g, old))  # an older version, even by the hub
    hub.force(protocol.heartbeat(g))
    # past the deadline only the hub moves (Alice's move would be refused by her own
    # machine's check first; the contract refuses it too: sent raw below)
    while w.backend.now() < v.terms.deadline:
        hub.force(protocol.heartbeat(w.la.onchain_state()))
        w.backend.advance_time(DURATION // 2)
    g = w.la.onchain_state()
    newer = v.pay(0, 1)
    after = rules.VirtualLedgerApp().apply(w.la.params, g, 0, protocol.show(g, newer).data)
    after = msgspec.structs.replace(after, version=g.version + 1)
    sig = w.backend.authority(w.la.params, w.alice, 0).sign(w.la.params, after, None)
    with pytest.raises(LedgerError):
        w.backend.force_move(w.la.params, SignedState(after, (sig, b"")), 0, w.relayer)
    hub.force(protocol.show(g, newer))
    assert rules.decode(w.la.onchain_state().app_data).vstate.version == newer.version


def test_a_hub_cannot_replay_a_closed_virtual_channel(w: World) -> None:
    """Attack: V closed and settled in both ledgers; the hub registers Alice's ledger and
    forces a FUND with V's old terms (same id, same keys), to ACTIVATE and show V's old
    final state, signed by Alice and Bob, a second time. The contract refuses every forced
    FUND, so no guarantee enters the ledger and Alice's ledger pays what it held."""
    v = open_virtual(w)
    v.pay(0, 30)
    final = v.close()
    settle_cooperatively(v, final)
    assert w.la.state.balances[0].amounts == (10**9 - 30, 10**9 + 30)
    hub = Actor(w.la, 1, w.relayer)
    hub.register()
    w.backend.advance_time(DURATION)  # the refutation period is over: forced moves open
    before = w.la.onchain_state()
    # sent raw: the chain's own verdict, not the Python rule's
    app = rules.VirtualLedgerApp()
    after = app.apply(w.la.params, before, 1, protocol.fund(v.terms, 0, before).data)
    after = msgspec.structs.replace(after, version=before.version + 1)
    sig = w.backend.authority(w.la.params, w.hub, 1).sign(w.la.params, after, None)
    with pytest.raises(LedgerError):
        w.backend.force_move(w.la.params, SignedState(after, (b"", sig)), 1, w.relayer)
    assert w.la.onchain_state() == before  # no guarantee: nothing to activate or show
    with pytest.raises(InvalidTransition):
        protocol.activate(w.la.onchain_state())
    d = w.backend.app_dispute(w.la.params)
    assert d is not None
    w.backend.advance_time(max(1, d.conclude_at - w.now()))
    w.backend.conclude(w.la.params, w.relayer)
    # Alice leaves with what V's one close gave her, not 30 less
    assert w.gained()["alice"] == 10**9 - 30
    assert w.gained()["hub"] == 10**9 + 30


def test_a_quoted_rate_between_the_two_ledgers(w: World) -> None:
    """Bob's ledger holds another asset (here: the same chain's coin at a quoted rate of
    3/2, as a hub quote fixes it at open): V's amounts convert at the quote, the rounding
    is the hub's, and Alice and Bob still pay each other without the hub."""
    identity = NodeIdentity()
    quote = make_quote(identity, w.native, w.native, 10**6, Rate(3, 2), fee=0, now=0)
    block = w.block()
    v = open_virtual(w, rate_b=(quote.rate.numerator, quote.rate.denominator))
    for _ in range(3):
        v.pay(0, 1001)
    settle_cooperatively(v, v.close())
    assert w.transactions_since(block) == 0
    assert w.la.state.balances[0].amounts == (10**9 - 3003, 10**9 + 3003)
    # Bob's V balance 2e8 + 3003 converts to floor(x * 3 / 2) of Bob's asset
    bob, locked = (CAPACITY[1] + 3003) * 3 // 2, CAPACITY[1] * 3 // 2
    assert w.lb.state.balances[0].amounts == (10**9 + locked - bob, 10**9 - locked + bob)


def _held(signed: SignedState) -> HeldVState:
    return protocol.held_of(signed)
