"""Property-based tests of the core's invariants (hypothesis)."""

from __future__ import annotations

import contextlib
import hashlib
import random

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chenilles_hub.core import (
    AddHtlc,
    ChannelError,
    Close,
    FailHtlc,
    Htlc,
    Irrevocable,
    ProposalRejected,
    Propose,
    Reestablish,
    Send,
    SettleHtlc,
    Transfer,
    check_state,
    encode_message,
    holdings_of,
)
from chenilles_hub.core.errors import (
    ChannelFinal,
    Diverged,
    InvalidSignature,
    StateMismatch,
)

from .harness import AUTHORITIES, ETH, NOW, TOKEN, Pair, opened

pytestmark = pytest.mark.core

PREIMAGES = [bytes([i]) * 32 for i in range(4)]


@st.composite
def operations(draw):  # type: ignore[no-untyped-def]
    """A proposer and one update, valid or not: amounts may exceed balances, preimages may
    be wrong or of the wrong length, HTLC ids may be unknown, expiries may be unsafe."""
    proposer = draw(st.integers(0, 1))
    kind = draw(st.sampled_from(["transfer", "add", "settle", "fail", "close"]))
    asset = draw(st.sampled_from([ETH, TOKEN]))
    if kind == "transfer":
        op = Transfer(asset, draw(st.integers(1, 1500)))
    elif kind == "add":
        preimage = draw(st.sampled_from(PREIMAGES))
        lead = draw(st.sampled_from([60, 3600, 7200, 86400, 30 * 86400]))
        op = AddHtlc(
            Htlc(
                draw(st.integers(0, 5)),
                draw(st.integers(0, 1)),
                asset,
                draw(st.integers(1, 1200)),
                hashlib.sha256(preimage).digest(),
                NOW + lead,
                NOW + lead - 60,
            )
        )
    elif kind == "settle":
        op = SettleHtlc(
            draw(st.integers(0, 5)),
            draw(st.sampled_from([*PREIMAGES, b"\x00" * 31, b"\x00" * 33])),
        )
    elif kind == "fail":
        op = FailHtlc(draw(st.integers(0, 5)))
    else:
        op = Close()
    return proposer, op


def assert_sound(pair: Pair, deposits: dict) -> None:
    """Both sides agree; every state they hold keeps the invariants and the deposits."""
    a, b = pair.alice.machine, pair.bob.machine
    assert a.latest == b.latest, "diverging states"
    state = a.state
    check_state(a.params, a.channel_id, state)
    holdings = holdings_of(state)  # what a restored machine reports before it is read
    for asset, total in deposits.items():
        assert state.total(asset) == total
        assert holdings.free(asset) == state.free(asset)
        assert dict(holdings.locked).get(asset, 0) == state.locked(asset)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations(), min_size=1, max_size=25))
def test_random_proposals_never_break_an_invariant(ops) -> None:  # type: ignore[no-untyped-def]
    pair = opened(revoking=True)
    deposits = {ETH: 2000, TOKEN: 50}
    versions = [0]
    for proposer, op in ops:
        machine = pair.side(proposer).machine
        before = machine.snapshot()
        try:
            effects = machine.propose((op,), NOW)
        except ChannelError as error:
            assert type(error) is not ChannelError, "a rejection must say what was wrong"
            assert machine.snapshot() == before, f"{type(error).__name__} changed the machine"
            continue
        pair.run_effects(proposer, effects)
        pair.deliver_all()
        assert pair.settled()
        assert_sound(pair, deposits)
        versions.append(pair.alice.machine.state.version)
    assert versions == sorted(set(versions)), "versions must strictly increase"


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["version", "balance", "signature", "htlc", "final"]),
    st.integers(1, 500),
)
def test_tampered_proposals_are_refused_and_change_nothing(what: str, delta: int) -> None:
    pair = opened()
    effects = pair.alice.machine.propose((Transfer(ETH, 10),), NOW)
    propose = next(e.message for e in effects if isinstance(e, Send))
    assert isinstance(propose, Propose)
    state = propose.state
    if what == "version":
        tampered = msgspec.structs.replace(state, version=state.version + delta)
    elif what == "balance":
        entry = msgspec.structs.replace(
            state.balances[0],
            amounts=(state.balances[0].amounts[0], state.balances[0].amounts[1] + delta),
        )
        tampered = msgspec.structs.replace(state, balances=(entry, state.balances[1]))
    elif what == "htlc":
        htlc = Htlc(1, 1, ETH, delta, b"\x00" * 32, NOW + 7200, NOW + 7200)
        tampered = msgspec.structs.replace(state, htlcs=(htlc,))
    elif what == "final":
        tampered = msgspec.structs.replace(state, final=True)
    else:
        tampered = state
    message = msgspec.structs.replace(
        propose,
        state=tampered,
        signature=propose.signature if what != "signature" else bytes(64),
    )
    bob = pair.bob.machine
    before = bob.snapshot()
    if what == "version":
        # A version ahead of ours is not refused but answered with where we stand: the peer
        # may know of a state we missed (a lost message, a restart).
        (answer,) = bob.receive(message, NOW)
        assert isinstance(answer, Send) and isinstance(answer.message, Reestablish)
        assert bob.snapshot() == before
        return
    with pytest.raises(ChannelError) as caught:
        bob.receive(message, NOW)
    expected = {
        "balance": (StateMismatch, ChannelError),
        "htlc": (StateMismatch, ChannelError),
        "final": (StateMismatch,),
        "signature": (InvalidSignature,),
    }[what]
    assert isinstance(caught.value, expected)
    assert type(caught.value) is not ChannelError
    assert bob.snapshot() == before


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    rounds=st.integers(1, 12),
    authority=st.sampled_from(AUTHORITIES),
)
def test_lossy_duplicating_reordering_wire_never_diverges(
    seed: int, rounds: int, authority: str
) -> None:
    """Messages are lost, duplicated and reordered; after the sides reconnect over a reliable
    link and reestablish, they hold the same latest state, or one of them reports a clear
    error (never two different fully signed latest states)."""
    rng = random.Random(seed)
    pair = opened(revoking=authority == "revoking", versioned=authority == "versioned")
    deposits = {ETH: 2000, TOKEN: 50}
    for _ in range(rounds):
        proposer = rng.randrange(2)
        amount = rng.randrange(1, 40)
        # A proposal may still be pending (its answer was lost): fine, try later.
        with contextlib.suppress(ChannelError):
            pair.act(proposer, lambda m, a=amount: m.propose((Transfer(ETH, a),), NOW))
        pair.deliver_chaotically(rng)
        if rng.random() < 0.3:
            try:
                pair.reestablish()
            except Diverged:
                pytest.fail("reestablish found diverging histories")
    pair.reestablish()
    assert pair.settled(), "the sides did not converge after reestablishing"
    assert_sound(pair, deposits)
    assert not any(isinstance(e, Diverged) for e in pair.alice.errors + pair.bob.errors)


def test_nothing_follows_a_final_state() -> None:
    pair = opened()
    pair.act(0, lambda m: m.propose((Close(),), NOW))
    pair.deliver_all()
    with pytest.raises(ChannelFinal):
        pair.bob.machine.propose((Transfer(ETH, 1),), NOW)


# --- crashes: both sides re-converge, and nothing the peer signed is reported failed --------

#: Leads that are valid when proposed and may not be on the acceptor's clock (ahead or
#: behind, or later): close to the default policy's minimum and maximum lead.
_LEADS = [3600 + 300, 7200, 14 * 86400 - 300]


#: Weighted: mostly proposals and deliveries, so that proposals are often in flight when a
#: side crashes or a message is lost.
_STEP_KINDS = [
    *["propose"] * 3,
    *["deliver"] * 6,
    "lose",
    "dup",
    "crash",
    "reconnect",
    "resend",
    "tick",
]


@st.composite
def crash_steps(draw):  # type: ignore[no-untyped-def]
    """One thing that happens: a proposal, a message delivered, lost or duplicated, a crash
    of one side (restored from its last Persist), a reconnect, time passing."""
    kind = draw(st.sampled_from(_STEP_KINDS))
    if kind == "propose":
        side = draw(st.integers(0, 1))
        what = draw(st.sampled_from(["transfer", "transfer", "htlc", "htlc", "nothing"]))
        if what == "nothing":  # what a node proposes to bury a refused version
            return ("propose", side, None)
        if what == "transfer":
            op = Transfer(ETH, draw(st.integers(1, 60)))
        else:
            lead = draw(st.sampled_from(_LEADS))
            op = AddHtlc(
                Htlc(
                    draw(st.integers(0, 7)),
                    side,
                    ETH,
                    draw(st.integers(1, 60)),
                    hashlib.sha256(PREIMAGES[0]).digest(),
                    lead,
                    lead - 60,
                )
            )
        return ("propose", side, op)
    if kind in ("deliver", "lose", "dup"):
        return (kind, draw(st.integers(0, 50)))
    if kind in ("crash", "resend"):
        return (kind, draw(st.integers(0, 1)))
    if kind == "tick":
        return ("tick", draw(st.sampled_from([60, 600, 3600])))
    return ("reconnect",)


def _with_expiry(op, now: int):  # type: ignore[no-untyped-def]
    """HTLC leads are drawn relative to the proposer's clock."""
    if isinstance(op, AddHtlc):
        htlc = op.htlc
        return AddHtlc(
            msgspec.structs.replace(
                htlc, expiry=now + htlc.expiry, native_expiry=now + htlc.native_expiry
            )
        )
    return op


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(crash_steps(), min_size=1, max_size=60),
    skew=st.sampled_from([0, -1800, 1800]),
    authority=st.sampled_from(AUTHORITIES),
)
def test_crashes_on_a_lossy_wire_reconverge_and_never_fail_a_signed_update(
    steps, skew: int, authority: str
) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 item 5 as a property: proposals in both directions over a wire that loses,
    duplicates and reorders, with either side killed at any point and restored from its last
    Persist, each side with its own clock (Bob's off by ``skew``). After a reconnect over a
    reliable link both hold the same latest state, nothing is left pending, and no proposal
    is reported refused for good (``ProposalRejected``) if the other side ever signed it,
    nor before a later version is irrevocable (until then a copy of it carrying our
    signature could be enforced by a peer that refused it). For each of the three ways an
    update runs: no revocations, revocations, and two messages where a newer version wins."""
    pair = opened(revoking=authority == "revoking", versioned=authority == "versioned")
    deposits = {ETH: 2000, TOKEN: 50}
    clock = NOW

    def now_of(index: int) -> int:
        return clock + (skew if index == 1 else 0)

    for step in steps:
        kind = step[0]
        if kind == "propose":
            _, side, op = step
            t = now_of(side)
            ops = () if op is None else (_with_expiry(op, t),)
            with contextlib.suppress(ChannelError):  # busy, or invalid on its own clock
                pair.act(side, lambda m, o=ops, t=t: m.propose(o, t))
        elif kind in ("deliver", "lose", "dup") and pair.wire:
            position = step[1] % len(pair.wire)
            if kind == "lose":
                pair.wire.pop(position)
                continue
            if kind == "dup":
                pair.wire.append(pair.wire[position])
            pair.deliver_one(position, now_of(pair.wire[position][0]))
        elif kind == "crash":
            pair.crash(step[1])
        elif kind == "reconnect":
            pair.act(0, lambda m: m.reestablish())
            pair.act(1, lambda m: m.reestablish())
        elif kind == "resend":  # a sender queue flushing an old proposal after a reconnect
            pending = pair.side(step[1]).machine.pending
            if pending is not None:
                pair.wire.append((1 - step[1], encode_message(pending.message)))
        elif kind == "tick":
            clock += step[1]

    def deliver_reliably() -> None:
        for _ in range(1000):
            if not pair.wire:
                return
            pair.deliver_one(0, now_of(pair.wire[0][0]))

    # Reconnect over a reliable link: each side on its own clock.
    for _ in range(6):
        pair.act(0, lambda m: m.reestablish())
        pair.act(1, lambda m: m.reestablish())
        deliver_reliably()
        if pair.settled():
            break
    assert pair.settled(), "the sides did not re-converge after reestablishing"
    # Then each side buries what the other refused (proposes nothing until a later version
    # is irrevocable), as a node's flush does: every refusal ends up reported.
    for _ in range(6):
        for index in (0, 1):
            machine = pair.side(index).machine
            if machine.withdrawn and machine.idle and not machine.state.final:
                t = now_of(index)
                pair.act(index, lambda m, t=t: m.propose((), t))
                deliver_reliably()
    assert pair.settled()
    assert not pair.alice.machine.withdrawn or pair.alice.machine.state.final
    assert not pair.bob.machine.withdrawn or pair.bob.machine.state.final
    assert_sound(pair, deposits)
    errors = pair.alice.errors + pair.bob.errors
    assert not any(isinstance(e, Diverged) for e in errors), errors
    for side, other in ((pair.alice, pair.bob), (pair.bob, pair.alice)):
        irrevocable = -1
        for event in side.events:
            if isinstance(event, Irrevocable):
                irrevocable = max(irrevocable, event.signed.version)
            if isinstance(event, ProposalRejected) and event.code != "proposal_conflict":
                # (A lost conflict is not a refusal: the peer signed its own proposal of
                # that version.) The peer may have signed an *equal* state of its own (both
                # sides proposed nothing, or two updates with the same effect): what must
                # never happen is that it counter-signed this proposal.
                assert event.state is not None
                assert (event.state, event.updates) not in other.countersigned, (
                    f"version {event.version} reported refused ({event.code}) but the peer "
                    "signed it"
                )
                assert irrevocable > event.version, (
                    f"version {event.version} reported refused while a copy could still "
                    f"be enforced (irrevocable: {irrevocable})"
                )
