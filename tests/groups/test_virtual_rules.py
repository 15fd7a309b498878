"""The guarantee's rule (the ``virtual`` app) and the core's breakdown duties, pure.

Attacker's cases first: every move a cheating member could force is refused by the rule
(the same rule the contract runs; test_virtual_evm.py holds the contract to it on-chain).
Then the money: whatever V state each ledger ends on, the hub is even iff both end on the
same one (property-tested), and the duties make them the same. Runtime: about 2 s.
"""

from __future__ import annotations

import msgspec
import pytest
from chenilles_app_virtual import protocol, rules
from chenilles_app_virtual.authority import VirtualAuthority
from hypothesis import given, settings
from hypothesis import strategies as st

from chenilles_hub.core import (
    ChannelParams,
    ChannelState,
    SignedState,
)
from chenilles_hub.core.errors import AmountOutOfRange, InvalidParams, InvalidTransition
from chenilles_hub.core.virtual import (
    Heartbeat,
    HeldVState,
    LedgerView,
    Register,
    ShowVState,
    VirtualTerms,
    check_terms,
    end_duties,
    hub_duties,
    hub_net,
    ledger_payout,
    virtual_channel_id,
    virtual_params,
)

from .cases import (
    ALICE_KEY,
    APP,
    BOB_KEY,
    MALLORY_KEY,
    NOW,
    ledger_params,
    ledger_state,
    terms,
    v_states,
)

pytestmark = [pytest.mark.groups, pytest.mark.core, pytest.mark.adversarial]


def funded(t: VirtualTerms) -> tuple[ChannelParams, ChannelState]:
    params = ledger_params(ALICE_KEY, 1)
    before = ledger_state()
    pending = protocol.signed_next(params, before, protocol.fund(t, 0, before), 1, NOW)
    return params, protocol.next_state(params, pending, protocol.activate(pending), 1, NOW)


def test_a_pending_guarantee_shows_nothing_and_the_hub_may_cancel_it() -> None:
    """The hub funds both ledgers, then activates both. If Bob never funds his, the hub
    cancels Alice's: meanwhile no V state could be shown, so nobody lost anything."""
    t = terms()
    params, before = ledger_params(ALICE_KEY, 1), ledger_state()
    pending = protocol.signed_next(params, before, protocol.fund(t, 0, before), 1, NOW)
    s = v_states(t, [(0, 10)])
    assert not forced(params, pending, protocol.show(pending, s[-1]).data, 0, NOW)
    assert not forced(params, pending, protocol.show(pending, s[-1]).data, 1, NOW)
    cancel = protocol.cancel(pending).data
    assert not forced(params, pending, cancel, 0, NOW)  # only the hub cancels
    assert forced(params, pending, cancel, 1, NOW)
    back = protocol.next_state(params, pending, protocol.cancel(pending), 1, NOW)
    assert back.app_data == b"" and back.balances == before.balances
    activate = protocol.activate(pending).data
    assert not forced(params, pending, activate, 0, NOW)  # only the hub activates
    _, active = funded(t)
    assert not forced(params, active, cancel, 1, NOW)  # an active guarantee is not cancelled
    with pytest.raises(InvalidTransition):
        protocol.cancel(active)


def forced(params: ChannelParams, before: ChannelState, move: bytes, mover: int, now: int) -> bool:
    """The rule's verdict on a forced move, as the contract gives it."""
    try:
        after = APP.apply(params, before, mover, move)
    except InvalidTransition:
        return False
    return APP.valid_forced(params, before, after, mover, now)


def signable(params: ChannelParams, before: ChannelState, move: bytes, mover: int) -> bool:
    """Whether a member's machine signs ``move`` as a cooperative update."""
    try:
        after = APP.apply(params, before, mover, move)
    except InvalidTransition:
        return False
    return APP.valid_transition(params, before, after, mover, NOW)


# --- attacks on the guarantee ---------------------------------------------------------------


def test_only_the_hub_funds_and_never_names_a_key_for_the_end() -> None:
    t = terms()
    params, before = ledger_params(ALICE_KEY, 1), ledger_state()
    move = protocol.fund(t, 0, before).data
    assert signable(params, before, move, 1)
    assert not signable(params, before, move, 0)  # Alice locks the hub's money
    fake = msgspec.structs.replace(t, keys=(rules.address_of(MALLORY_KEY), t.keys[1]))
    assert not signable(params, before, protocol.fund(fake, 0, before).data, 1)


def test_a_fund_is_never_forced_so_a_closed_v_cannot_be_replayed() -> None:
    """Attack: after V closed and settled, the hub funds the ledger again with V's old
    terms (same id, same keys) to show V's old final state a second time. A FUND is valid
    only as a cooperative update (the end signs it); forced, by anyone, never."""
    t = terms()
    params, active = funded(t)
    s = v_states(t, [(0, 10)])
    shown = protocol.next_state(params, active, protocol.show(active, s[-1]), 0, NOW)
    # V settled: no guarantee, its outcome in the balances (a cooperative update)
    closed = msgspec.structs.replace(shown, app_data=b"", version=shown.version + 1)
    again = protocol.fund(t, 0, closed).data
    assert signable(params, closed, again, 1)  # what only Alice's node can refuse to sign
    for mover in (0, 1):
        assert not forced(params, closed, again, mover, NOW)
        assert not forced(
            params, ledger_state(), protocol.fund(t, 0, ledger_state()).data, mover, NOW
        )


def test_funding_moves_no_money_and_cannot_overdraw() -> None:
    t = terms()
    _, after = funded(t)
    assert after.balances == ledger_state().balances  # V at its opening split: nothing moved
    with pytest.raises(InvalidTransition, match="cannot lock"):
        protocol.fund(terms(split=(2000, 0)), 0, ledger_state())


def test_showing_v_states_follows_versions_deadlines_and_signatures() -> None:
    t = terms()
    params, g = funded(t)
    s = v_states(t, [(0, 10), (1, 4), (0, 1)])
    show = [protocol.show(g, x).data for x in s]
    assert forced(params, g, show[2], 0, NOW)  # Alice, a newer state, in time
    assert forced(params, g, show[2], 1, NOW)  # the hub too
    assert not forced(params, g, show[2], 0, t.deadline)  # Alice after the deadline
    assert forced(params, g, show[2], 1, t.deadline + t.grace - 1)  # the hub in its grace
    assert not forced(params, g, show[2], 1, t.deadline + t.grace)
    at2 = protocol.next_state(params, g, protocol.show(g, s[2]), 0, NOW)
    assert not forced(params, at2, protocol.show(at2, s[1]).data, 1, NOW)  # older: refused
    assert not forced(params, at2, protocol.show(at2, s[2]).data, 0, NOW)  # same, by an end
    # a forged signature: Mallory signs in Bob's place
    v = rules.VState(9, (0, 500))
    digest = rules.state_digest(virtual_channel_id(t), 9, (0, 500), False)
    sigs = (rules.sign_digest(ALICE_KEY, digest), rules.sign_digest(MALLORY_KEY, digest))
    assert not forced(
        params, g, protocol.show(g, rules.VState(9, (0, 500), False, sigs)).data, 0, NOW
    )
    assert not forced(params, g, protocol.show(g, v).data, 0, NOW)  # no signature at all
    # amounts that do not add up to the capacity, though both signed them
    digest = rules.state_digest(virtual_channel_id(t), 9, (600, 0), False)
    both = (rules.sign_digest(ALICE_KEY, digest), rules.sign_digest(BOB_KEY, digest))
    assert not forced(
        params, g, protocol.show(g, rules.VState(9, (600, 0), False, both)).data, 1, NOW
    )


def test_heartbeats_and_settling() -> None:
    t = terms()
    params, g = funded(t)
    beat = protocol.heartbeat(g).data
    assert forced(params, g, beat, 1, NOW)
    assert not forced(params, g, beat, 0, NOW)  # only the hub keeps a dispute open
    assert not forced(params, g, beat, 1, t.deadline + t.grace)
    settle = rules.move(rules.SETTLE, b"")
    assert not forced(params, g, settle, 0, NOW)  # V is not final yet
    final = v_states(t, [(0, 10)])[-1]
    final_state = msgspec.structs.replace(final.state, final=True, version=final.version + 1)
    signed = SignedState(
        final_state,
        tuple(
            VirtualAuthority(k).sign(virtual_params(t), final_state, None)
            for k in (ALICE_KEY, BOB_KEY)
        ),
    )
    show, dissolve = protocol.settle(g, signed)
    at = protocol.next_state(params, g, show, 0, NOW)
    assert forced(params, at, dissolve.data, 0, NOW)
    done = protocol.next_state(params, at, dissolve, 0, NOW)
    assert done.app_data == b"" and done.balances[0].amounts == (990, 1010)
    # nothing follows a final V state but the hub's choice among equally final ones
    later = protocol.show(at, v_states(t, [(0, 1)] * 3)[-1]).data
    assert not forced(params, at, later, 0, NOW)


def test_malformed_app_data_is_refused_not_raised() -> None:
    params, g = funded(terms())
    for data in (b"\x09", b"\x02" + b"\x00" * 10, b"\x02" + g.app_data[:-1] + b"", b""):
        assert not forced(params, g, data, 1, NOW)
    bad = bytearray(g.app_data)
    bad[32] = 7  # hub index out of range
    assert not APP.valid_transition(
        params, g, msgspec.structs.replace(g, app_data=bytes(bad)), 1, NOW
    )


# --- the money: the hub is even iff both ledgers end on the same V state ----------------------


@settings(max_examples=200, deadline=None)
@given(
    split=st.tuples(st.integers(0, 10**30), st.integers(0, 10**30)),
    a=st.integers(0, 10**30),
    rate=st.tuples(st.integers(1, 10**9), st.integers(1, 10**9)),
)
def test_the_hub_is_even_when_both_ledgers_agree(
    split: tuple[int, int], a: int, rate: tuple[int, int]
) -> None:
    t = terms(split, rate)
    c = t.capacity
    amounts = (a % (c + 1), c - a % (c + 1))
    net_a, net_b = hub_net(t, amounts, amounts)
    # in V's unit (Alice's asset here) the hub gains what it loses, up to one unit of
    # Bob's asset rounded in its favour
    assert net_a == amounts[1] - split[1]
    end_b, hub_b = ledger_payout(t, 1, amounts)
    assert end_b == amounts[1] * rate[0] // rate[1]
    assert hub_b + end_b == c * rate[0] // rate[1]
    assert net_b >= (split[1] - amounts[1]) * rate[0] // rate[1] - 1


# --- duties --------------------------------------------------------------------------------


def held(version: int, amounts: tuple[int, int] = (250, 250), final: bool = False) -> HeldVState:
    return HeldVState(version, amounts, final, f"{version}:{amounts}:{final}".encode())


def test_hub_duties() -> None:
    t = terms()
    open_ = LedgerView("open", 0, held(0))
    disputed = LedgerView("dispute", NOW, held(3))
    # a dispute in one ledger: the hub joins in the other at once
    assert hub_duties(t, (disputed, open_), held(3), NOW - 1, (100, 100), 30) == [Register(1)]
    # the refutation period is over: show what it knows, else keep the dispute open
    assert hub_duties(t, (disputed, open_), held(5), NOW, (100, 100), 30) == [
        ShowVState(0, held(5)),
        Register(1),
    ]
    forced_ = LedgerView("forced", NOW + 100, held(5))
    assert hub_duties(t, (forced_, forced_), held(5), NOW, (100, 100), 30) == []
    assert hub_duties(t, (forced_, forced_), held(5), NOW + 70, (100, 100), 30) == [
        Heartbeat(0),
        Heartbeat(1),
    ]
    # equal versions, different states (Alice and Bob equivocated): the hub's pick wins
    other = LedgerView("forced", NOW + 100, held(5, (100, 400)))
    assert hub_duties(t, (forced_, other), held(5), NOW, (100, 100), 30) == [ShowVState(1, held(5))]
    # after the grace nobody can move: nothing to do
    late = t.deadline + t.grace
    assert hub_duties(t, (forced_, other), held(5), late, (100, 100), 30) == []


def test_end_duties() -> None:
    t = terms()
    mine = held(7)
    idle = LedgerView("open", 0, held(0))
    assert end_duties(t, 0, idle, mine, False, NOW, 100, 30) == []
    # the deadline nears and V is not settled: register in time to show the state
    assert end_duties(t, 0, idle, mine, False, t.deadline - 130, 100, 30) == [Register(0)]
    assert end_duties(t, 0, idle, mine, True, t.deadline - 130, 100, 30) == []
    reg = LedgerView("dispute", NOW, held(2))
    assert end_duties(t, 0, reg, mine, False, NOW - 1, 100, 30) == []  # refutation period
    assert end_duties(t, 0, reg, mine, False, NOW, 100, 30) == [ShowVState(0, mine)]
    assert end_duties(t, 0, reg, held(2), False, NOW, 100, 30) == []  # nothing newer
    assert (
        end_duties(
            t, 0, LedgerView("forced", t.deadline + 50, held(2)), mine, False, t.deadline, 100, 30
        )
        == []
    )  # too late for an end


def test_virtual_ids_bind_every_term() -> None:
    t = terms()
    assert virtual_channel_id(t) != virtual_channel_id(msgspec.structs.replace(t, grace=301))
    assert virtual_channel_id(t) != virtual_channel_id(msgspec.structs.replace(t, nonce=b"m" * 32))
    assert virtual_params(t).chain.startswith("virtual:")
    raw = msgspec.json.decode(msgspec.json.encode(t))
    raw["keys"] = ["0x12", "0x34"]
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode(raw), type=VirtualTerms)
    for bad in (
        msgspec.structs.replace(t, keys=(t.keys[0], t.keys[0])),
        msgspec.structs.replace(t, hub_node_id=t.node_ids[0]),
        msgspec.structs.replace(t, ledgers=(t.ledgers[0], t.ledgers[0])),
        msgspec.structs.replace(t, split=(0, 0)),
        terms(rate=(2**128, 1)),
        terms(split=(2**255, 2**255 - 1), rate=(2, 1)),
    ):
        with pytest.raises((InvalidParams, AmountOutOfRange)):
            check_terms(bad)
        with pytest.raises((InvalidParams, AmountOutOfRange)):
            virtual_params(bad)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=rules.DATA_LENGTH + 2),
    kind=st.integers(0, 6),
    flip=st.integers(0, rules.DATA_LENGTH - 1),
    mover=st.integers(0, 1),
)
def test_anything_a_peer_sends_is_refused_cleanly(
    data: bytes, kind: int, flip: int, mover: int
) -> None:
    """Random moves from random or mutated guarantees: the rule answers ``InvalidTransition``
    or a verdict, never another exception (a peer's bytes must not crash the node)."""
    params, g = funded(terms())
    bad = bytearray(g.app_data)
    bad[flip] ^= 0xFF
    for before in (g, msgspec.structs.replace(g, app_data=bytes(bad))):
        for move in (bytes([kind]) + data, bytes([kind]) + bytes(bad)):
            try:
                after = APP.apply(params, before, mover, move)
            except InvalidTransition:
                continue
            assert isinstance(APP.valid_transition(params, before, after, mover, NOW), bool)
            APP.outcome(params, after)
            APP.describe(params, after)
