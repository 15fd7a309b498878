"""A machine restored from its encoded snapshot (``ChannelMachine.restored``, what a
restarting node does for every channel) checks and decodes it on first use and then behaves
as one restored from the decoded snapshot; a snapshot that is not this channel's, or does
not decode, or a bad initial state, is refused on every use, never half used."""

from __future__ import annotations

import msgspec
import pytest

from chenilles_hub.core import (
    AddHtlc,
    ChannelMachine,
    Htlc,
    Transfer,
    decode_snapshot,
    encode_holdings,
    encode_message,
    encode_snapshot,
    holdings_match,
    holdings_of,
)
from chenilles_hub.core.channel import StoredHoldings
from chenilles_hub.core.errors import StateMismatch, WrongChannel
from chenilles_hub.core.machine_core import nothing_withdrawn

from .harness import ETH, NOW, opened


def fresh_alice(pair) -> ChannelMachine:  # type: ignore[no-untyped-def]
    old = pair.alice.machine
    return ChannelMachine(old.params, old.channel_id, 0, old._authority, old.initial)


def lazy_alice(pair, encoded: bytes, **changes) -> ChannelMachine:  # type: ignore[no-untyped-def]
    """Alice restarted from ``encoded`` as a node restores her (``changes``: a corrupt record)."""
    old = pair.alice.machine
    fields = {"params": old.params, "channel_id": old.channel_id, "initial": old.initial}
    fields.update(changes)
    return ChannelMachine.restored(
        fields["params"], fields["channel_id"], 0, old._authority, fields["initial"], encoded
    )


def test_a_machine_restored_from_bytes_resumes_mid_update_as_a_decoded_one() -> None:
    pair = opened(revoking=True)
    pair.act(0, lambda m: m.propose((Transfer(ETH, 10),), NOW))
    pair.deliver_one()  # Bob accepted; his Accept is in flight when Alice crashes
    stored = pair.alice.disk[-1]
    lazy = lazy_alice(pair, stored)
    assert "_encoded" in lazy.__dict__  # nothing decoded yet
    assert lazy.withdrawn == ()  # asked of every restored machine: no decode for it
    assert "_encoded" in lazy.__dict__
    eager = fresh_alice(pair)
    eager.restore(decode_snapshot(stored))
    assert lazy.snapshot() == eager.snapshot()  # first use: decoded
    assert "_encoded" not in lazy.__dict__
    pair.alice.machine = lazy
    pair.deliver_all()
    assert pair.settled()
    assert lazy.state.free(ETH) == (990, 1010)


def test_a_snapshot_of_another_channel_is_refused_on_every_use() -> None:
    pair, other = opened(), opened(seed=1)
    other_cid = b"\x07" * 32
    foreign = decode_snapshot(pair.bob.disk[-1])
    stored = encode_snapshot(msgspec.structs.replace(foreign, channel_id=other_cid))
    assert nothing_withdrawn(stored)
    lazy = lazy_alice(pair, stored)
    for _ in range(2):  # stays unusable: no half-restored machine
        with pytest.raises(WrongChannel):
            lazy.state  # noqa: B018
    with pytest.raises(WrongChannel):
        fresh_alice(other).restore(decode_snapshot(stored))  # as the eager path


def test_bytes_that_do_not_decode_are_refused_on_use() -> None:
    pair = opened()
    lazy = lazy_alice(pair, b'{"channel_id":1,"withdrawn":[]}')
    with pytest.raises(msgspec.ValidationError):
        lazy.latest  # noqa: B018
    with pytest.raises(msgspec.DecodeError):  # no way to peek: decoded at once
        lazy_alice(pair, b"not json")


def test_a_bad_initial_state_is_refused_on_first_use_as_by_the_constructor() -> None:
    pair = opened()
    initial = pair.alice.machine.initial
    bad = msgspec.structs.replace(initial, version=3)
    lazy = lazy_alice(pair, pair.alice.disk[-1], initial=bad)
    with pytest.raises(StateMismatch):
        lazy.state  # noqa: B018
    with pytest.raises(StateMismatch):
        fresh = pair.alice.machine
        ChannelMachine(fresh.params, fresh.channel_id, 0, fresh._authority, bad)


def test_a_snapshot_with_withdrawn_proposals_is_restored_at_once() -> None:
    pair = opened()
    htlc = Htlc(2, 0, ETH, 100, b"\x11" * 32, NOW + 7200, NOW + 7000)
    pair.act(0, lambda m: m.propose((AddHtlc(htlc),), NOW))
    pending = pair.alice.machine.pending
    assert pending is not None
    pair.wire.clear()
    pair.wire.append((1, encode_message(pending.message)))
    pair.deliver_all(now=NOW + 86400)  # Bob refuses it: too late for its timelock
    stored = pair.alice.disk[-1]
    assert decode_snapshot(stored).withdrawn and not nothing_withdrawn(stored)
    machine = lazy_alice(pair, stored)
    assert "_encoded" not in machine.__dict__
    assert machine.withdrawn == decode_snapshot(stored).withdrawn


class Reader:
    """What a node hands a restored machine: a function reading its snapshot from the store
    (here from a dict a test can empty), counting its calls."""

    def __init__(self, encoded: bytes | None) -> None:
        self.encoded, self.calls = encoded, 0

    def __call__(self) -> bytes | None:
        self.calls += 1
        return self.encoded


def lazy_alice_reading(  # type: ignore[no-untyped-def]
    pair, reader: Reader, withdrawn: bool | None, holdings: StoredHoldings = None
) -> ChannelMachine:
    old = pair.alice.machine
    return ChannelMachine.restored(
        old.params,
        old.channel_id,
        0,
        old._authority,
        old.initial,
        reader,
        withdrawn=withdrawn,
        holdings=holdings,
    )


def test_a_machine_restored_from_a_reader_reads_its_snapshot_once_on_first_use() -> None:
    pair = opened(revoking=True)
    pair.act(0, lambda m: m.propose((Transfer(ETH, 10),), NOW))
    pair.deliver_one()
    stored = pair.alice.disk[-1]
    reader = Reader(stored)
    lazy = lazy_alice_reading(pair, reader, withdrawn=False)
    assert lazy.withdrawn == () and lazy.channel_id == pair.alice.machine.channel_id
    assert reader.calls == 0  # restored, asked what a node asks of every channel: not read
    eager = fresh_alice(pair)
    eager.restore(decode_snapshot(stored))
    assert lazy.snapshot() == eager.snapshot()
    pair.alice.machine = lazy
    pair.deliver_all()
    assert pair.settled() and lazy.state.free(ETH) == (990, 1010)
    assert reader.calls == 1


def test_a_snapshot_gone_from_the_store_is_refused_on_every_use() -> None:
    pair = opened()
    reader = Reader(None)
    lazy = lazy_alice_reading(pair, reader, withdrawn=False)
    for _ in range(2):  # stays unusable, and says why
        with pytest.raises(LookupError, match="snapshot is no longer"):
            lazy.state  # noqa: B018
    assert reader.calls == 2
    reader.encoded = pair.alice.disk[-1]  # back (the store answered this time)
    assert lazy.state == pair.alice.machine.state


def test_a_reader_is_read_at_once_when_its_snapshot_may_hold_withdrawn_proposals() -> None:
    pair = opened()
    for withdrawn in (True, None):  # flagged, or not known: read now (None: to look)
        reader = Reader(pair.alice.disk[-1])
        machine = lazy_alice_reading(pair, reader, withdrawn=withdrawn)
        assert reader.calls == 1
        if withdrawn:  # restored at once
            assert "_encoded" not in machine.__dict__
        assert machine.state == pair.alice.machine.state and reader.calls == 1


def test_a_restored_machine_gives_its_holdings_unread_and_the_same_once_read() -> None:
    """What reads every channel's balances (the announcement, /metrics) reads no snapshot
    of a channel unused since the restart: the store's holdings answer, equal to what the
    state says once read (free balances, and what an HTLC locks); without them, the
    snapshot is read."""
    pair = opened(revoking=True)
    htlc = Htlc(2, 0, ETH, 100, b"\x11" * 32, NOW + 7200, NOW + 7000)
    pair.act(0, lambda m: m.propose((Transfer(ETH, 10), AddHtlc(htlc)), NOW))
    pair.deliver_all()
    stored = pair.alice.disk[-1]
    snapshot = decode_snapshot(stored)
    assert snapshot.latest is not None and snapshot.latest.state.htlcs
    holdings = encode_holdings(snapshot)
    assert holdings is not None
    reader = Reader(stored)
    old = pair.alice.machine
    lazy = lazy_alice_reading(pair, reader, withdrawn=False, holdings=holdings)
    expected = holdings_of(old.state)
    assert expected.free(ETH) == (890, 1010) and expected.locked == ((ETH, 100),)
    assert lazy.holdings == expected and lazy.free(ETH) == (890, 1010)
    assert reader.calls == 0
    assert lazy.state == old.state and reader.calls == 1  # first use
    assert lazy.holdings == expected and lazy.free(ETH) == old.state.free(ETH)
    assert "_stored_holdings" not in lazy.__dict__  # the state answers from now on
    unknown = lazy_alice_reading(pair, Reader(stored), withdrawn=False)  # an older store
    assert unknown.holdings == expected
    asked = Reader(holdings)  # what a node hands: a function reading them when first asked
    later = lazy_alice_reading(pair, Reader(stored), withdrawn=False, holdings=asked)
    assert asked.calls == 0
    assert later.holdings == later.holdings == expected and asked.calls == 1
    none = lazy_alice_reading(
        pair, reader := Reader(stored), withdrawn=False, holdings=Reader(None)
    )  # the store had none: the snapshot answers
    assert none.free(ETH) == (890, 1010) and reader.calls == 1
    assert encode_holdings(msgspec.structs.replace(snapshot, latest=None)) is None


def test_holdings_that_are_not_this_channels_are_not_used() -> None:
    """Stored holdings that do not decode, or name other assets, are left aside: the
    snapshot answers. A machine restored by ``restore`` (not its first use) drops them."""
    pair = opened(revoking=True)
    pair.act(0, lambda m: m.propose((Transfer(ETH, 10),), NOW))
    pair.deliver_all()
    stored = pair.alice.disk[-1]
    old = pair.alice.machine
    good = encode_holdings(decode_snapshot(stored))
    assert good is not None and holdings_match(good, old.state.version)
    assert not holdings_match(good, old.state.version + 1)
    other = good.replace(b'"native"', b'"other"')
    for bad in (b"[1,", other):
        reader = Reader(stored)
        machine = lazy_alice_reading(pair, reader, withdrawn=False, holdings=bad)
        assert machine.free(ETH) == (990, 1010) and reader.calls == 1
    lazy = lazy_alice_reading(pair, Reader(stored), withdrawn=False, holdings=good)
    lazy.restore(decode_snapshot(stored))
    assert lazy.loaded and "_stored_holdings" not in lazy.__dict__
