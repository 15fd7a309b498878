"""A receiver accepts the HTLC expiry image of a payer whose read of the tip is a block or
two behind its own, nothing later.

Both sides image an HTLC's unix expiry as a height from their kept read of the tip
(``native_expiry``: ``tip + floor((expiry - tip time) / interval) - margin``). After a
block that came later than the interval after its parent, a payer that has not read it yet
images one block *later* than the receiver (its clock is the parent's time: it counts more
blocks left). The receiver then reads the tip again, and the blocks before it, and accepts
what any of them images; a later image is refused, and the early tolerance stays that of
the tip. Here on the kernel chain in this process, off the height clock (as against
bitcoind), with block times moved forward so that the blocks are slow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from chenilles_bitcoin.authority import EXPIRY_TOLERANCE
from chenilles_bitcoin.backend import (
    _ANCESTORS_KEPT,
    EXPIRY_MARGIN,
    LATE_TIPS,
    BitcoinBackend,
    embedded_backend,
)
from chenilles_bitcoin.ledger import KernelChain

from chenilles_hub.backend import NewBlock

from .test_backend_harness import Channel

pytestmark = pytest.mark.bitcoin

INTERVAL = 600


@pytest.fixture
def chain() -> Iterator[KernelChain]:
    source = embedded_backend()
    assert isinstance(source.ledger, KernelChain)
    yield source.ledger
    source.ledger.close()


def wall_clock_backend(chain: Any) -> BitcoinBackend:
    """A backend whose clock is the tip's time (as against bitcoind), its read kept;
    ``chain``: the kernel chain, or a ``CountingLedger`` over it."""
    backend = BitcoinBackend(chain, chain="bip122:regtest", height_clock=False)
    backend.tip_ttl = 3600.0  # each read below is explicit
    return backend


def slow_block(chain: KernelChain) -> None:
    """A block more than two intervals after its parent (block times follow the wall
    clock plus the chain's offset, and stay at least the tip's)."""
    behind = chain.tip_time() + 2 * INTERVAL + 100 - (int(time.time()) + chain.advance_time(0))
    chain.advance_time(max(0, behind))
    chain.mine(1)
    tip = chain.tip_height()
    assert chain.block_time(tip) > chain.block_time(tip - 1) + 2 * INTERVAL


def image(height: int, tip_time: int, expiry: int) -> int:
    return height + (expiry - tip_time) // INTERVAL - EXPIRY_MARGIN


def fresh_read(backend: BitcoinBackend) -> None:
    backend.tip_ttl = 0.0
    backend.now()
    backend.tip_ttl = 3600.0


def test_a_payer_one_or_two_slow_blocks_behind_is_accepted_not_three(
    chain: KernelChain,
) -> None:
    payer, receiver = wall_clock_backend(chain), wall_clock_backend(chain)
    channel = Channel.create(receiver, nonce=bytes(range(32)))
    authority = receiver.authority(channel.params, channel.accounts[1], 1)
    expiry = payer.now() + 30 * INTERVAL + 300  # the payer's read, kept from here
    offered = payer.native_expiry(expiry)
    for behind in range(1, LATE_TIPS + 2):
        slow_block(chain)
        fresh_read(receiver)
        assert receiver.native_expiry(expiry) < offered  # the receiver's image is earlier
        if behind <= LATE_TIPS:
            assert authority.native_expiry_ok(expiry, offered), behind
        else:  # the payer's read is older than any tip the receiver looks back to
            assert not authority.native_expiry_ok(expiry, offered)


def test_nothing_later_than_a_recent_tips_image_and_no_earlier_than_the_tolerance(
    chain: KernelChain,
) -> None:
    receiver = wall_clock_backend(chain)
    channel = Channel.create(receiver, nonce=bytes(range(32)))
    authority = receiver.authority(channel.params, channel.accounts[1], 1)
    for _ in range(LATE_TIPS):
        slow_block(chain)
    fresh_read(receiver)
    expiry = receiver.now() + 30 * INTERVAL
    tip = chain.tip_height()
    recent = [image(h, chain.block_time(h), expiry) for h in range(tip - LATE_TIPS, tip + 1)]
    latest, own = max(recent), receiver.native_expiry(expiry)
    assert own == recent[-1] < latest  # slow blocks: the older tips image later
    assert authority.native_expiry_ok(expiry, latest)
    assert not authority.native_expiry_ok(expiry, latest + 1)
    assert authority.native_expiry_ok(expiry, own - EXPIRY_TOLERANCE)
    assert not authority.native_expiry_ok(expiry, own - EXPIRY_TOLERANCE - 1)


def test_a_payer_that_read_a_newer_block_is_accepted(chain: KernelChain) -> None:
    """The other way round (as before): the receiver's kept read is the older one; it
    reads the tip again before refusing."""
    payer, receiver = wall_clock_backend(chain), wall_clock_backend(chain)
    channel = Channel.create(receiver, nonce=bytes(range(32)))
    authority = receiver.authority(channel.params, channel.accounts[1], 1)
    expiry = receiver.now() + 30 * INTERVAL + 300  # the receiver's read, kept
    kept = receiver.native_expiry(expiry)
    chain.mine(1)  # a fast block: the newer read images one block later
    fresh_read(payer)
    offered = payer.native_expiry(expiry)
    assert offered == kept + 1
    assert authority.native_expiry_ok(expiry, offered)
    assert not authority.native_expiry_ok(expiry, offered + 1)


class CountingLedger:
    """The kernel chain, counting what the receiver's backend asks of it (a spy at the
    ledger boundary: the chain itself is the real one), and failing a call on request
    (``fail[name]``: what the next calls of ``name`` raise, in order)."""

    def __init__(self, chain: KernelChain) -> None:
        self.chain = chain
        self.calls: list[str] = []
        self.fail: dict[str, list[BaseException]] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.chain, name)
        if callable(attr) and name in ("tip_hash", "block_header", "ancestor_headers"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                if self.fail.get(name):
                    raise self.fail[name].pop(0)
                return attr(*args, **kwargs)

            return counted
        return attr


def counting_backend(chain: KernelChain) -> tuple[BitcoinBackend, CountingLedger]:
    counting = CountingLedger(chain)
    return wall_clock_backend(counting), counting


class LateOffer(NamedTuple):
    receiver: BitcoinBackend
    counting: CountingLedger
    authority: Any
    expiry: int
    offered: int


def late_offer_after_a_slow_block(chain: KernelChain) -> LateOffer:
    """A payer's offer imaged from its kept read, then a slow block that the receiver's
    reading thread read (with the blocks before it) and its node's thread applied."""
    payer = wall_clock_backend(chain)
    receiver, counting = counting_backend(chain)
    channel = Channel.create(receiver, nonce=bytes(range(32)))
    authority = receiver.authority(channel.params, channel.accounts[1], 1)
    receiver.poll_events()
    expiry = payer.now() + 30 * INTERVAL + 300
    offered = payer.native_expiry(expiry)
    slow_block(chain)
    fetched = receiver.fetch_events()
    assert counting.calls.count("ancestor_headers") == 1
    receiver.apply_events(fetched)
    assert receiver.native_expiry(expiry) < offered
    return LateOffer(receiver, counting, authority, expiry, offered)


def test_a_late_image_costs_the_nodes_thread_no_call_once_the_read_brought_the_ancestors(
    chain: KernelChain,
) -> None:
    """The reading thread reads the blocks before each new tip it reads (once per tip);
    a payer a block behind the receiver's kept read is then accepted without a call to
    the chain on the node's thread, and a peer repeating late offers beyond every recent
    tip's image costs one read of the tip each (as before there were kept reads), the
    blocks before it read once."""
    late = late_offer_after_a_slow_block(chain)
    authority, counting, expiry, offered = late.authority, late.counting, late.expiry, late.offered
    counting.calls.clear()
    assert authority.native_expiry_ok(expiry, offered)
    assert counting.calls == []
    for _ in range(10):  # later than any recent tip's image
        assert not authority.native_expiry_ok(expiry, offered + 5)
    assert counting.calls.count("tip_hash") == 10
    assert counting.calls.count("ancestor_headers") == 0  # the tip read is the one kept


def test_a_late_offer_below_the_fresh_images_tolerance_is_refused(chain: KernelChain) -> None:
    """Fast blocks the receiver has not read: the offer is later than its kept image,
    but more than the tolerance earlier than the fresh one (less time to claim than it
    may accept)."""
    receiver = wall_clock_backend(chain)
    channel = Channel.create(receiver, nonce=bytes(range(32)))
    authority = receiver.authority(channel.params, channel.accounts[1], 1)
    fresh_read(receiver)
    expiry = receiver.now() + 30 * INTERVAL
    kept = receiver.native_expiry(expiry)
    chain.mine(EXPIRY_TOLERANCE + 3)  # fast blocks: each images one later
    assert not authority.native_expiry_ok(expiry, kept + 1)
    fresh = receiver.native_expiry(expiry)  # read again by the check
    assert fresh >= kept + 1 + EXPIRY_TOLERANCE + 1
    assert authority.native_expiry_ok(expiry, fresh - EXPIRY_TOLERANCE)


def test_on_the_height_clock_a_late_image_is_refused_without_a_read(chain: KernelChain) -> None:
    """The embedded chain's clock moves with its heights: every height images alike, so
    no read of the chain can make a later image right (and none is made)."""
    counting = CountingLedger(chain)
    backend = BitcoinBackend(counting, chain="bip122:regtest", height_clock=True)
    channel = Channel.create(backend, nonce=bytes(range(32)))
    authority = backend.authority(channel.params, channel.accounts[1], 1)
    expiry = backend.now() + 30 * INTERVAL
    image_now = backend.native_expiry(expiry)
    assert authority.native_expiry_ok(expiry, image_now)
    slow_block(chain)
    assert backend.native_expiry(expiry) == image_now
    counting.calls.clear()
    assert not authority.native_expiry_ok(expiry, image_now + 1)
    assert counting.calls == []


def test_the_kept_reads_ancestors_answer_only_while_the_read_is_kept(chain: KernelChain) -> None:
    """The acceptance without a call rests on the kept read being recent (``tip_ttl``):
    once it is older, the tip is read again first (by the authority's own image, before
    the late check looks at the kept read's ancestors)."""
    late = late_offer_after_a_slow_block(chain)
    late.receiver.tip_ttl = 0.0  # the kept read (and the ancestors it brought) is too old
    late.counting.calls.clear()
    assert late.authority.native_expiry_ok(late.expiry, late.offered)
    assert late.counting.calls[0] == "tip_hash"


def test_a_tip_reorganised_away_during_the_walk_is_read_once_more(chain: KernelChain) -> None:
    payer = wall_clock_backend(chain)
    receiver, counting = counting_backend(chain)
    channel = Channel.create(receiver, nonce=bytes(range(32)))
    authority = receiver.authority(channel.params, channel.accounts[1], 1)
    expiry = payer.now() + 30 * INTERVAL + 300
    offered = payer.native_expiry(expiry)
    slow_block(chain)
    fresh_read(receiver)  # on the node's thread: its ancestors are not kept yet
    counting.fail["ancestor_headers"] = [KeyError("reorganised away")]
    assert authority.native_expiry_ok(expiry, offered)
    assert counting.calls.count("ancestor_headers") == 2


def test_a_failing_ancestor_read_fails_neither_the_chains_read_nor_its_clock(
    chain: KernelChain,
) -> None:
    """The blocks before a new tip only accompany the reading thread's read: if reading
    them fails, the events and the clock still come (and the node's thread reads the
    ancestors when a late image needs them)."""
    receiver, counting = counting_backend(chain)
    receiver.poll_events()
    chain.mine(1)
    counting.fail["ancestor_headers"] = [ConnectionResetError("endpoint went away")]
    fetched = receiver.fetch_events()
    assert any(isinstance(e, NewBlock) for e in receiver.apply_events(fetched))
    chain.mine(1)
    receiver.poll_events()  # the node's thread saw the block: the fetch reads no tip
    fetched = receiver.fetch_events()
    counting.fail["ancestor_headers"] = [ConnectionResetError("endpoint went away")]
    assert receiver.fetch_clock(fetched) == chain.tip_time() + INTERVAL


def test_a_read_begun_before_our_own_mining_does_not_bring_the_old_tip_back(
    chain: KernelChain,
) -> None:
    """The node's thread mines (a devnet's auto_mine, ``mine``, ``advance_time``) while the
    reading thread's read, begun before, is on its way: applied after, its tip is not
    kept (the node's clock would go back a block for up to ``tip_ttl``)."""
    backend, _ = counting_backend(chain)
    backend.poll_events()
    fetched = backend.fetch_events()  # no block: the clock's read brings the tip
    backend.fetch_clock(fetched)
    backend.mine(1)
    backend.apply_events(fetched)
    assert backend.now() == chain.tip_time()
    chain.mine(1)  # and a read that found blocks, begun before our mining
    fetched = backend.fetch_events()
    backend.mine(1)
    backend.apply_events(fetched)
    assert backend.now() == chain.tip_time()


def test_the_ancestors_of_the_last_few_tips_only_are_kept(chain: KernelChain) -> None:
    backend, _ = counting_backend(chain)
    backend.poll_events()
    for _ in range(_ANCESTORS_KEPT + 4):
        chain.mine(1)
        backend.apply_events(backend.fetch_events())
    kept = backend._ancestors
    assert len(kept) == _ANCESTORS_KEPT
    assert chain.tip_hash() in kept
