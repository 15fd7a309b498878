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

import pytest
from chenilles_bitcoin.authority import EXPIRY_TOLERANCE
from chenilles_bitcoin.backend import EXPIRY_MARGIN, LATE_TIPS, BitcoinBackend, embedded_backend
from chenilles_bitcoin.ledger import KernelChain

from .test_backend_harness import Channel

pytestmark = pytest.mark.bitcoin

INTERVAL = 600


@pytest.fixture
def chain() -> Iterator[KernelChain]:
    source = embedded_backend()
    assert isinstance(source.ledger, KernelChain)
    yield source.ledger
    source.ledger.close()


def wall_clock_backend(chain: KernelChain) -> BitcoinBackend:
    """A backend whose clock is the tip's time (as against bitcoind), its read kept."""
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
