"""A virtual channel across chains: Alice's ledger channel on EVM (eth-tester), Bob's on
Solana (LiteSVM), the hub converting V's unit (Alice's wei) into Bob's lamports at a quote
of 3/2 fixed at open.

The happy path touches neither chain: V opened, 100 payments, closed and settled in both
ledger channels, counted on both chains: zero transactions. The breakdowns run the duties
on both chains and end exact to the wei and to the lamport: Bob shows his Solana ledger a
stale V state (the hub carries it to Alice's EVM ledger, Alice answers with her newer one,
the hub carries that back into Bob's Solana ledger through the guarantee's Solana
program); the hub silent at close (each end forces V's final state on its own chain). A
cheating hub naming a V key of its own for Bob is refused by Bob's machine. Runtime: about
30 s on this shared 2-core machine.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from chenilles_app_virtual import compact, protocol, rules

from chenilles_hub.backend import ChainBackend
from chenilles_hub.circuit.quote import Rate, make_quote
from chenilles_hub.core import Asset, SignedState
from chenilles_hub.core.errors import InvalidTransition
from chenilles_hub.core.virtual import HeldVState, LedgerTerms, VirtualTerms
from chenilles_hub.identity import NodeIdentity

from .crosschain import CrossWorld, app_backend, cross_world
from .harness import (
    CAPACITY,
    DEPOSIT,
    Heartbeat,
    ShowVState,
    node_id,
    open_virtual,
    settle_cooperatively,
    watch,
)

pytestmark = [pytest.mark.groups, pytest.mark.evm, pytest.mark.solana]

RATE = (3, 2)  # lamports per wei of V, the hub's quote


@pytest.fixture(scope="module")
def chains() -> Iterator[tuple[ChainBackend, ChainBackend]]:
    evm, solana = app_backend("EVM"), app_backend("Solana")
    yield evm, solana
    for b in (evm, solana):
        close = getattr(b, "close", None)
        if close is not None:
            close()


@pytest.fixture
def w(chains: tuple[ChainBackend, ChainBackend]) -> CrossWorld:
    return cross_world(*chains)


def _quote(w: CrossWorld) -> tuple[int, int]:
    identity = NodeIdentity()
    native_sol = Asset(w.solana.chain, "native")
    quote = make_quote(identity, w.native, native_sol, 10**6, Rate(*RATE), fee=0, now=0)
    return quote.rate.numerator, quote.rate.denominator


def _bob_ledger(v_bob: int) -> tuple[int, int]:
    """L_B's balances (hub, Bob) when V ends with Bob holding ``v_bob`` wei of V."""
    locked = sum(CAPACITY) * RATE[0] // RATE[1]
    bob_locked = CAPACITY[1] * RATE[0] // RATE[1]
    bob = v_bob * RATE[0] // RATE[1]
    return DEPOSIT - (locked - bob_locked) + (locked - bob), DEPOSIT - bob_locked + bob


def test_open_pay_close_across_chains_without_a_transaction(w: CrossWorld) -> None:
    block = w.block()
    v = open_virtual(w, rate_b=_quote(w))
    assert len(w.lb.state.app_data) == compact.LENGTH  # the compact layout on Solana
    assert len(w.la.state.app_data) == rules.DATA_LENGTH
    for i in range(100):
        v.pay(i % 2, 3 if i % 2 == 0 else 1)
    assert v.latest.state.balances[0].amounts == (CAPACITY[0] - 100, CAPACITY[1] + 100)
    settle_cooperatively(v, v.close())
    assert w.transactions_since(block) == 0  # EVM blocks and Solana sends
    assert w.la.state.balances[0].amounts == (DEPOSIT - 100, DEPOSIT + 100)
    assert w.lb.state.balances[0].amounts == _bob_ledger(CAPACITY[1] + 100)
    assert not w.la.state.app_data and not w.lb.state.app_data


def test_bob_shows_a_stale_state_on_solana(w: CrossWorld) -> None:
    """Bob registers his Solana ledger on an old V state that pays him more. Every honest
    party is made whole on both chains: Alice's newer state wins in both ledgers."""
    v = open_virtual(w, rate_b=_quote(w))
    stale = v.pay(1, 50_000)
    for _ in range(5):
        v.pay(1, 10_000)
    latest = v.latest
    w.lb.link.run(1, ())  # a ledger update, so Bob's registration is the latest ledger state
    done = watch(v, ends=(latest, stale))
    assert ("alice", ShowVState(0, _held(latest))) in done
    assert ("hub", ShowVState(1, _held(latest))) in done
    # the hub kept Bob's Solana ledger's dispute open until the grace ended
    assert any(who == "hub" and isinstance(d, Heartbeat) and d.side == 1 for who, d in done)
    w.withdraw_solana()
    v_bob = CAPACITY[1] - 100_000
    hub_sol, bob = _bob_ledger(v_bob)
    assert w.gained() == {
        "alice": DEPOSIT + 100_000,
        "hub": DEPOSIT - 100_000,
        "hub_sol": hub_sol,
        "bob": bob,
    }


def test_hub_silent_at_close(w: CrossWorld) -> None:
    """Alice and Bob close V; the hub signs nothing more. Alice registers her EVM ledger,
    Bob his Solana one, and each end forces V's final state through its own chain's rule:
    both are paid exactly V's outcome, the hub its share on both chains."""
    v = open_virtual(w, rate_b=_quote(w))
    for _ in range(4):
        v.pay(0, 2_500)
    final = v.close()
    done = watch(v, hub=False, ends=(final, final))
    assert ("alice", ShowVState(0, _held(final))) in done
    assert ("bob", ShowVState(1, _held(final))) in done
    w.withdraw_solana()
    hub_sol, bob = _bob_ledger(CAPACITY[1] + 10_000)
    assert w.gained() == {
        "alice": DEPOSIT - 10_000,
        "hub": DEPOSIT + 10_000,
        "hub_sol": hub_sol,
        "bob": bob,
    }


def test_bob_refuses_a_guarantee_naming_a_v_key_not_his(w: CrossWorld) -> None:
    """A cheating hub funds Bob's Solana ledger with V terms naming a V key of its own for
    Bob (it would then sign V states alone and take Bob's locked share). The Solana program
    cannot tell Bob's V key (it refuses any forced FUND); Bob's own machine knows the key he
    declared and refuses to sign: nothing is locked, on- or off-chain."""
    hub_key = secrets.token_bytes(32)
    terms = VirtualTerms(
        keys=(rules.address_of(w.alice.key), rules.address_of(hub_key)),
        node_ids=(node_id("alice"), node_id("bob")),
        hub_node_id=node_id("hub"),
        ledgers=(
            LedgerTerms(w.la.channel_id, hub_index=1),
            LedgerTerms(w.lb.channel_id, hub_index=0, num=RATE[0], den=RATE[1]),
        ),
        split=CAPACITY,
        deadline=w.now() + 300,
        grace=120,
        nonce=secrets.token_bytes(32),
    )
    hub, bob = w.lb.link.machines
    # the hub's own software is patched to believe Bob's V key is the hub's
    bob_chain_key = w.lb.params.participants[1].chain_key
    hub._apps[rules.APP_ID] = rules.VirtualLedgerApp({bob_chain_key: terms.keys[1]})
    before = bob.latest
    proposal = hub.propose((protocol.fund(terms, 1, w.lb.state),), w.now())
    with pytest.raises(InvalidTransition, match="not a valid move"):
        w.lb.link._deliver(0, proposal)  # Bob's machine refuses it (his node sends a Reject)
    assert bob.latest == before and not bob.latest.state.app_data
    assert w.solana_sends == 0


def _held(signed: SignedState) -> HeldVState:
    return protocol.held_of(signed)
