"""The watcher judges every deadline by its own chain's clock (property-tested).

The watcher is pure: duties and disputes in, actions out. These tests give it one clock
per channel (channels on different chains keep different times) and check that an action
fires exactly when its channel's chain has reached the deadline, once; that a refused
action is taken again on that chain's next block, not later; that a conclusion counts only
once it is deep enough, and that a reorg before that re-arms the channel's actions.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chenilles_hub.core.watcher import (
    ChainClock,
    ClaimIncoming,
    ClaimOnChain,
    ConcludeAndWithdraw,
    DisputeStatus,
    ForceClose,
    GuardChannel,
    RefundOnChain,
    RefundOutgoing,
    Refute,
    Watcher,
    WatcherState,
    moment,
)

pytestmark = pytest.mark.core

T0 = 1_800_000_000


def cid(i: int) -> bytes:
    return bytes([i + 1]) * 32


#: Per channel: (time of its chain's next block, its deadline).
channel_plans = st.lists(
    st.tuples(st.integers(T0 - 1000, T0 + 1000), st.integers(T0 - 1000, T0 + 1000)),
    min_size=1,
    max_size=6,
)


def clocks_of(times: list[int], height: int = 10) -> dict[bytes, ChainClock]:
    return {cid(i): ChainClock(t, height) for i, t in enumerate(times)}


@given(channel_plans, st.sampled_from(["dispute", "claim", "refund"]))
def test_an_action_fires_when_its_own_chain_reaches_the_deadline_once(plans, kind) -> None:  # type: ignore[no-untyped-def]
    watcher = Watcher()
    for i, (_, deadline) in enumerate(plans):
        watcher.add(GuardChannel(cid(i)))
        if kind == "dispute":
            watcher.on_registered(cid(i), 5, deadline, our_latest=5)
        elif kind == "claim":
            watcher.add(ClaimIncoming(cid(i), 7, b"\x01" * 32, deadline))
        else:
            watcher.add(RefundOutgoing(cid(i), 7, deadline))
    clocks = clocks_of([t for t, _ in plans])
    actions = watcher.tick(clocks)
    due = {cid(i) for i, (t, deadline) in enumerate(plans) if t >= deadline}
    main = {
        "dispute": ConcludeAndWithdraw,
        "claim": ClaimOnChain,
        "refund": RefundOnChain,
    }[kind]
    assert {a.channel_id for a in actions if isinstance(a, main)} == due
    if kind != "dispute":  # no dispute yet: the channel goes on-chain first
        assert {a.channel_id for a in actions if isinstance(a, ForceClose)} == due
    # Once: the same and later clocks fire nothing more.
    assert watcher.tick(clocks) == []
    later = watcher.tick(clocks_of([t + 10_000 for t, _ in plans]))
    everyone = {cid(i) for i in range(len(plans))}
    assert {a.channel_id for a in later if isinstance(a, main)} == everyone - due


@given(channel_plans)
def test_another_chains_clock_never_decides(plans) -> None:  # type: ignore[no-untyped-def]
    """Moving every other channel's clock (another chain) changes nothing for a channel;
    a channel whose chain cannot be read is not acted on."""
    times = [t for t, _ in plans]

    def run(clocks: dict[bytes, ChainClock]) -> set[bytes]:
        watcher = Watcher()
        for i, (_, deadline) in enumerate(plans):
            watcher.add(GuardChannel(cid(i)))
            watcher.on_registered(cid(i), 5, deadline, our_latest=5)
        return {a.channel_id for a in watcher.tick(clocks)}

    fired = run(clocks_of(times))
    for i in range(len(plans)):
        moved = clocks_of([t + 5000 if j != i else t for j, t in enumerate(times)])
        assert (cid(i) in run(moved)) == (cid(i) in fired)
        unknown = {c: k for c, k in clocks_of(times).items() if c != cid(i)}
        assert cid(i) not in run(unknown)


@given(st.integers(1, 600), st.lists(st.integers(0, 5), min_size=1, max_size=8))
def test_a_refused_conclusion_is_retried_on_the_next_block_not_later(period, steps) -> None:  # type: ignore[no-untyped-def]
    watcher = Watcher()
    watcher.add(GuardChannel(cid(0)))
    watcher.on_registered(cid(0), 3, T0 + period, our_latest=3)
    now = T0 + period  # the first block whose time reaches the deadline
    assert watcher.tick({cid(0): ChainClock(now)}) == [ConcludeAndWithdraw(cid(0))]
    for step in steps:
        watcher.retry_later(ConcludeAndWithdraw(cid(0)), now + 1)  # the ledger refused
        assert watcher.tick({cid(0): ChainClock(now)}) == []  # not in the same block
        now += step
        expected = [ConcludeAndWithdraw(cid(0))] if step >= 1 else []
        assert watcher.tick({cid(0): ChainClock(now)}) == expected
        if step < 1:
            now += 1
            assert watcher.tick({cid(0): ChainClock(now)}) == [ConcludeAndWithdraw(cid(0))]


@given(st.integers(2, 50), st.integers(1, 200), st.booleans(), st.booleans())
def test_a_stale_registration_is_answered_on_every_block_until_the_chain_shows_it(  # type: ignore[no-untyped-def]
    period, blocks, reorg, refused
) -> None:
    """Refuted at once, then on each later block while the chain still reports the stale
    state (our refutation may have been lost in a reorg the node never saw; a backend
    sends nothing when the chain has it already), never twice in one block, never after
    the period (the ledger would refuse it)."""
    watcher = Watcher()
    watcher.add(GuardChannel(cid(0)))
    refute = Refute(cid(0), 2)
    assert watcher.on_registered(cid(0), 2, T0 + period, our_latest=9, height=100) == [refute]
    assert watcher.on_registered(cid(0), 2, T0 + period, our_latest=9, height=100) == []
    if reorg:  # our refutation was reorged out: the chain reports the stale one again
        watcher.on_reorged([cid(0)])
        assert watcher.on_registered(cid(0), 2, T0 + period, 9, height=100) == [refute]
    assert watcher.tick({cid(0): ChainClock(T0, 100)}) == []  # the same block
    now, height = T0, 100
    for _ in range(min(blocks, 3 * period)):
        if refused:
            watcher.retry_later(refute, now + 1)
        now, height = now + 1, height + 1
        actions = watcher.tick({cid(0): ChainClock(now, height)})
        assert actions.count(refute) == (1 if now < T0 + period else 0)
        assert watcher.tick({cid(0): ChainClock(now, height)}).count(refute) == 0
    # Our refutation shows on the chain: the newer version is registered, nothing is stale.
    watcher.on_registered(cid(0), 9, now + period, our_latest=9, height=height)
    assert all(
        not isinstance(a, Refute) for a in watcher.tick({cid(0): ChainClock(now, height + 1)})
    )


@given(st.integers(1, 64), st.integers(0, 100))
def test_a_conclusion_is_final_only_at_depth_and_a_reorg_before_re_arms_it(depth, tip) -> None:  # type: ignore[no-untyped-def]
    watcher = Watcher()
    watcher.add(GuardChannel(cid(0)))
    watcher.add(RefundOutgoing(cid(0), 1, T0))
    watcher.on_registered(cid(0), 4, T0, our_latest=4)
    assert ConcludeAndWithdraw(cid(0)) in watcher.tick({cid(0): ChainClock(T0, tip)})
    final = tip + depth - 1
    watcher.on_concluded(cid(0), final)
    for height in range(tip, final):  # not deep enough: kept, idle
        assert watcher.tick({cid(0): ChainClock(T0 + 99, height)}) == []
        assert watcher.duties_of(cid(0)) and watcher.dispute(cid(0)) is not None
    # A reorg before it is final: the conclusion is undone and taken again.
    assert watcher.on_reorged([cid(0)]) == [cid(0)]
    assert ConcludeAndWithdraw(cid(0)) in watcher.tick({cid(0): ChainClock(T0 + 99, tip)})
    watcher.on_concluded(cid(0), final)
    # Deep enough: checked once more on the chain (the node retires it if still there).
    assert watcher.tick({cid(0): ChainClock(T0 + 99, final)}) == [ConcludeAndWithdraw(cid(0))]
    assert watcher.tick({cid(0): ChainClock(T0 + 99, final + 1)}) == []
    watcher.retire(cid(0))
    assert watcher.duties_of(cid(0)) == () and watcher.dispute(cid(0)) is None
    assert watcher.state == WatcherState()
    assert watcher.on_reorged([cid(0)]) == []


def test_a_cooperative_close_taken_by_a_reorg_is_concluded_again() -> None:
    watcher = Watcher()
    watcher.add(GuardChannel(cid(0)))
    watcher.on_concluded(cid(0), final_height=12)  # no registration: a cooperative close
    assert watcher.dispute(cid(0)) == DisputeStatus(-1, 0, concluded=True, final_height=12)
    assert watcher.tick({cid(0): ChainClock(T0, 11)}) == []
    assert watcher.on_reorged([cid(0)]) == [cid(0)]
    assert watcher.tick({cid(0): ChainClock(T0, 11)}) == [ConcludeAndWithdraw(cid(0))]


def test_the_persisted_state_round_trips_and_older_states_still_decode() -> None:
    watcher = Watcher()
    watcher.add(GuardChannel(cid(0)))
    watcher.on_registered(cid(0), 1, T0, our_latest=3)
    watcher.retry_later(Refute(cid(0), 1), T0 + 7)
    encoded = msgspec.json.encode(watcher.state)
    assert msgspec.json.decode(encoded, type=WatcherState) == watcher.state
    older = b'{"duties":[],"disputes":[],"fired":[]}'  # before ``waits`` existed
    assert msgspec.json.decode(older, type=WatcherState) == WatcherState()


@settings(max_examples=50)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=20))
def test_ticks_never_fire_an_action_twice_without_a_refusal_or_reorg(channels) -> None:  # type: ignore[no-untyped-def]
    watcher = Watcher()
    for i in set(channels):
        watcher.add(GuardChannel(cid(i)))
        watcher.add(ClaimIncoming(cid(i), i, b"\x02" * 32, T0 + i))
        watcher.on_registered(cid(i), 1, T0 + 10 * i, our_latest=1)
    seen: list[object] = []
    for step, i in enumerate(channels):
        clocks = {cid(j): ChainClock(T0 + 40 * step + j, step) for j in set(channels)}
        del i
        seen += watcher.tick(clocks)
    assert len(seen) == len(set(map(repr, seen)))


# --- guards and HTLC duties: kept apart from what the node rewrites with every payment ---

#: (step, channel index, HTLC id)
watch_steps = st.lists(
    st.tuples(
        st.sampled_from(["guard", "refund", "claim", "resolve", "retire", "mark", "undo", "take"]),
        st.integers(0, 2),
        st.integers(0, 1),
    ),
    max_size=50,
)


@settings(max_examples=300)
@given(watch_steps)
def test_guards_and_duties_follow_their_changes_and_the_changes_rebuild_them(
    steps: list[tuple[str, int, int]],
) -> None:
    """Against a plain set and dict: guards and HTLC duties follow adds, resolutions and
    retirements; a savepoint's undo puts them back exactly; the changes handed to the
    checkpoint rebuild what a restart reads (a store holds one record per guard and per
    duty); and the state the node rewrites holds none of them."""
    watcher = Watcher()
    guards: set[bytes] = set()
    duties: dict[tuple[bytes, int], object] = {}
    stored_guards: set[bytes] = set()
    stored_duties: dict[tuple[bytes, int], object] = {}
    marks: list[tuple[int, set[bytes], dict[tuple[bytes, int], object]]] = []

    def take() -> None:
        changes = watcher.take_changes()
        for channel_id, on in changes.guards.items():
            (stored_guards.add if on else stored_guards.discard)(channel_id)
        for key, duty in changes.duties.items():
            if duty is None:
                stored_duties.pop(key, None)
            else:
                stored_duties[key] = duty

    for kind, i, htlc in steps:
        duty: RefundOutgoing | ClaimIncoming
        if kind == "guard":
            watcher.add(GuardChannel(cid(i)))
            guards.add(cid(i))
        elif kind in ("refund", "claim"):
            if kind == "refund":
                duty = RefundOutgoing(cid(i), htlc, T0 + htlc)
            else:
                duty = ClaimIncoming(cid(i), htlc, b"\x02" * 32, T0 + htlc)
            watcher.add(duty)
            duties[(cid(i), htlc)] = duty
        elif kind == "resolve":
            watcher.resolved(cid(i), htlc)
            duties.pop((cid(i), htlc), None)
        elif kind == "retire":
            watcher.retire(cid(i))
            guards.discard(cid(i))
            duties = {k: d for k, d in duties.items() if k[0] != cid(i)}
        elif kind == "mark":
            marks.append((watcher.mark(), set(guards), dict(duties)))
        elif kind == "undo" and marks:
            mark, guards, duties = marks.pop()
            watcher.undo(mark)
        elif kind == "take":
            take()
            marks.clear()  # a checkpoint ends every savepoint of its job
        assert watcher.guarded == guards
        assert {(d.channel_id, d.htlc_id): d for d in watcher.htlc_duties()} == duties
        assert set(watcher.channels_with_duties()) == {k[0] for k in duties}
        assert watcher.state.duties == ()
        # What lets a tick skip a channel: a moment no later than each of its duties'.
        assert watcher._earliest.keys() == {k[0] for k in duties}
        for (channel_id, _), d in duties.items():
            assert watcher._earliest[channel_id] <= moment(d)  # type: ignore[arg-type]
    take()
    assert stored_guards == guards and stored_duties == duties
    restarted = Watcher(watcher.state, stored_guards, stored_duties.values())  # type: ignore[arg-type]
    assert restarted.guarded == guards
    assert {(d.channel_id, d.htlc_id): d for d in restarted.htlc_duties()} == duties


def test_the_state_a_node_rewrites_does_not_grow_with_its_channels_or_htlcs() -> None:
    small, large = Watcher(), Watcher()
    for i in range(2):
        small.add(GuardChannel(cid(i)))
    for i in range(200):
        large.add(GuardChannel(bytes([i % 256, i // 256]) * 16))
        large.add(RefundOutgoing(cid(i % 4), i, T0 + i))
        large.add(ClaimIncoming(cid(5), i, b"\x03" * 32, T0 + i))
    assert msgspec.json.encode(large.state) == msgspec.json.encode(small.state)
    assert large.duties_of(bytes([7, 0]) * 16) == (GuardChannel(bytes([7, 0]) * 16),)


def test_guards_among_an_older_states_duties_are_taken_out_and_still_guard() -> None:
    """A state written before guards were kept apart: they are moved to the set, handed to
    the next checkpoint as changes, and a stale registration is still refuted."""
    old = WatcherState(
        duties=(GuardChannel(cid(0)), RefundOutgoing(cid(0), 1, T0), GuardChannel(cid(1)))
    )
    watcher = Watcher(old)
    assert watcher.guarded == {cid(0), cid(1)}
    assert watcher.state.duties == ()
    assert list(watcher.htlc_duties()) == [RefundOutgoing(cid(0), 1, T0)]
    assert watcher.take_changes() == (
        {cid(0): True, cid(1): True},
        {(cid(0), 1): RefundOutgoing(cid(0), 1, T0)},
    )
    assert Refute(cid(1), 3) in watcher.on_registered(cid(1), 3, T0 + 100, our_latest=5)
    assert not any(
        isinstance(a, Refute) for a in watcher.on_registered(cid(2), 3, T0 + 100, our_latest=5)
    )


def test_a_resolved_htlc_leaves_nothing_of_its_own_in_the_state() -> None:
    """The actions taken or refused for an HTLC are forgotten with it (the node rewrites
    the state with every change: it must not keep a key per HTLC ever resolved), and only
    its: the channel's conclusion, keyed by a version that happens to equal the HTLC's id,
    stays."""
    watcher = Watcher()
    watcher.add(GuardChannel(cid(0)))
    watcher.add(RefundOutgoing(cid(0), 4, T0))
    watcher.add(RefundOutgoing(cid(0), 5, T0))
    actions = watcher.tick({cid(0): ChainClock(T0, 1)})
    assert RefundOnChain(cid(0), 4) in actions and RefundOnChain(cid(0), 5) in actions
    watcher.retry_later(RefundOnChain(cid(0), 5), T0 + 9)
    watcher.on_registered(cid(0), 4, T0, our_latest=4)
    watcher.on_concluded(cid(0), final_height=3)
    assert watcher.tick({cid(0): ChainClock(T0 + 1, 3)}) == [ConcludeAndWithdraw(cid(0))]
    watcher.resolved(cid(0), 4)
    watcher.resolved(cid(0), 5)
    assert watcher.state.fired == (("final", cid(0), 4),)
    assert watcher.state.waits == ()
    assert watcher.duties_of(cid(0)) == (GuardChannel(cid(0)),)


def test_a_channel_skipped_until_its_first_moment_still_acts_on_each_later_one() -> None:
    """A tick skips a channel none of whose duties' moments has come (a hub's tick costs
    its channels with duties, not its duties); a channel visited before still has each
    later duty acted on at its own moment, also once the earlier one is resolved."""
    channel = cid(1)
    watcher = Watcher()
    watcher.add(RefundOutgoing(channel, 0, T0 + 10))
    watcher.add(ClaimIncoming(channel, 2, b"\x02" * 32, T0 + 100))
    assert watcher.tick({channel: ChainClock(T0 + 5, 1)}) == []
    assert RefundOnChain(channel, 0) in watcher.tick({channel: ChainClock(T0 + 10, 2)})
    watcher.resolved(channel, 0)
    assert watcher.tick({channel: ChainClock(T0 + 50, 3)}) == []
    later = watcher.tick({channel: ChainClock(T0 + 100, 4)})
    assert ClaimOnChain(channel, 2, b"\x02" * 32) in later
    watcher.add(RefundOutgoing(channel, 4, T0 + 60))  # earlier than what it holds now
    assert RefundOnChain(channel, 4) in watcher.tick({channel: ChainClock(T0 + 101, 5)})


skip_steps = st.lists(
    st.tuples(
        st.sampled_from(["refund", "claim", "resolve", "retire", "mark", "undo", "take", "tick"]),
        st.integers(0, 2),  # channel
        st.integers(0, 3),  # HTLC id
        st.integers(0, 100),  # a duty's moment, or a tick's clock, after T0
    ),
    max_size=60,
)


@given(skip_steps, st.lists(st.integers(-20, 20), min_size=3, max_size=3))
def test_skipping_channels_with_nothing_due_changes_no_action(
    steps: list[tuple[str, int, int, int]], skews: list[int]
) -> None:
    """Against the same watcher visiting every channel at every tick: whatever duties are
    added (an HTLC's again with another moment), resolved, retired, marked and undone,
    each tick takes the same actions in the same order. Each channel's chain runs its own
    clock (``skews``)."""
    fast, full = Watcher(), Watcher()
    marks: list[tuple[int, int]] = []
    for kind, i, htlc, t in steps:
        for watcher in (fast, full):
            if kind == "refund":
                watcher.add(RefundOutgoing(cid(i), htlc, T0 + t))
            elif kind == "claim":
                watcher.add(ClaimIncoming(cid(i), htlc, b"\x02" * 32, T0 + t))
            elif kind == "resolve":
                watcher.resolved(cid(i), htlc)
            elif kind == "retire":
                watcher.retire(cid(i))
            elif kind == "take":
                watcher.take_changes()
        if kind == "mark":
            marks.append((fast.mark(), full.mark()))
        elif kind == "undo" and marks:
            fast_mark, full_mark = marks.pop()
            fast.undo(fast_mark)
            full.undo(full_mark)
        elif kind == "take":
            marks.clear()
        elif kind == "tick":
            clocks = {cid(c): ChainClock(T0 + t + skews[c], t) for c in range(3)}
            full._earliest = dict.fromkeys(full._earliest, T0 - 10**6)  # visit every one
            assert fast.tick(clocks) == full.tick(clocks)
