"""A payment costs the Bitcoin ledger's RPC no call while the tip read is kept, and an
idle poll one or two.

Found by the devnet benchmark (scripts/bench_devnet.py): a node paying over a Bitcoin
channel sent ~17 JSON-RPC requests per payment to its bitcoind (getblockcount,
getbestblockhash, getblockheader: the chain's clock, read again for each use on both
sides), and every poll of an idle chain asked for 50 block hashes; later the payer still
read the tip's hash for each offer (a round trip per payment against a far endpoint). Now
both sides image from their kept read, and the receiver reads the chain only before
refusing a late image: the tip now, and the blocks before it (a payer a block or two
behind). Here the backend talks to the devnet server process over a real socket; a spy on
the client's transport counts what goes out (it forwards everything).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chenilles_bitcoin.authority import EXPIRY_TOLERANCE
from chenilles_bitcoin.backend import TIP_TTL, BitcoinBackend

from chenilles_hub import plugins
from chenilles_hub.backend import NewBlock

from .devnet_harness import Devnet, running
from .test_backend_harness import Channel

pytestmark = [pytest.mark.bitcoin, pytest.mark.devnet]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    datadir: Path = tmp_path_factory.mktemp("devnet-rpc-load") / "node"
    yield from running(datadir)


class Spy:
    """Counts the HTTP requests and JSON-RPC calls a ledger client sends."""

    def __init__(self, backend: BitcoinBackend) -> None:
        self.requests = 0
        self.calls: list[str] = []
        ledger: Any = backend.ledger
        post = ledger._post

        def counting(body: bytes, what: str) -> bytes:
            self.requests += 1
            doc = json.loads(body)
            self.calls += [c["method"] for c in (doc if isinstance(doc, list) else [doc])]
            return bytes(post(body, what))

        ledger._post = counting

    def reset(self) -> None:
        self.requests, self.calls = 0, []


@contextlib.contextmanager
def after_tip_read(backend: BitcoinBackend, action: Callable[[str], object]) -> Iterator[None]:
    """Run ``action(tip hash)`` on the chain right after the backend's first
    getbestblockhash is answered: a block or a reorg lands between its reads."""
    ledger: Any = backend.ledger
    post = ledger._post
    done: list[bool] = []

    def hooked(body: bytes, what: str) -> bytes:
        answer = bytes(post(body, what))
        if b"getbestblockhash" in body and not done:
            done.append(True)
            action(json.loads(answer)["result"])
        return answer

    ledger._post = hooked
    try:
        yield
    finally:
        ledger._post = post


def connect(devnet: Devnet) -> tuple[BitcoinBackend, Spy]:
    backend = plugins.backend("bitcoin").connect(devnet.url, cookie_file=str(devnet.cookie_file))
    assert isinstance(backend, BitcoinBackend)
    return backend, Spy(backend)


def test_a_payment_reads_nothing_from_the_chain_while_the_tip_read_is_kept(
    devnet: Devnet,
) -> None:
    backend, spy = connect(devnet)
    assert backend.tip_ttl == TIP_TTL <= 2.0  # far inside the expiry margin (2 blocks)
    backend.tip_ttl = 60.0  # the count below must not depend on this machine's load
    channel = Channel.create(backend, nonce=bytes(range(32)))
    authority = backend.authority(channel.params, channel.accounts[1], 1)
    backend.poll_events()
    now = backend.now()
    spy.reset()
    # what 20 payments ask of the chain's clock: the payer's HTLC offer (its native expiry),
    # the peer's check of it, the time now and of the next block (deadlines), all from the
    # kept read
    for _ in range(20):
        offered = backend.native_expiry(now + 3600)
        assert authority.native_expiry_ok(now + 3600, offered)
        assert backend.next_block_time() >= backend.now() >= now
    assert spy.calls == []


def test_the_clock_follows_a_block_mined_elsewhere_at_the_next_poll(devnet: Devnet) -> None:
    backend, _ = connect(devnet)
    backend.poll_events()
    height = backend.native_expiry(backend.now() + 36_000)
    devnet.ledger().mine(5)  # another client: the backend learns it by polling
    backend.poll_events()
    assert backend.native_expiry(backend.now() + 36_000) == height + 5
    backend.mine(1)  # its own mining moves its clock at once
    assert backend.native_expiry(backend.now() + 36_000) == height + 6
    backend.tip_ttl = 0.2
    devnet.ledger().mine(1)  # and without a poll, once the tip read is older than its TTL
    time.sleep(0.3)
    assert backend.native_expiry(backend.now() + 36_000) == height + 7


def test_a_new_blocks_height_and_time_are_the_ones_of_the_hash_read(devnet: Devnet) -> None:
    """Blocks come while the clock is read (every second on the devnet): the height and
    the time must be those of the block whose hash was read, not of one mined between the
    calls (getblockcount, then the tip's header, could straddle a block)."""
    backend, _ = connect(devnet)
    backend.poll_events()
    other = devnet.ledger()
    mined: list[str] = []
    read_hash = other.tip_hash()
    read_height = other.tip_height()
    backend.tip_ttl = 0.0
    with after_tip_read(backend, lambda _: mined.extend(other.mine(1))):
        height, block_time = backend._chain_tip()
    assert mined and other.tip_height() == read_height + 1
    assert (height, block_time) == other.block_header(read_hash)
    assert height == read_height
    assert backend._chain_tip()[0] == read_height + 1  # the next read finds the new block


def test_a_tip_reorganised_away_between_the_two_reads_is_read_again(devnet: Devnet) -> None:
    """bitcoind still answers getblockheader for a block no longer on the active chain
    (confirmations -1): the clock must not keep that block's height and time."""
    backend, spy = connect(devnet)
    other = devnet.ledger()
    other.mine(2)  # a tip above the genesis block, whichever test ran before
    backend.poll_events()
    stale: list[str] = []

    def reorg(tip_hash: str) -> None:
        stale.append(tip_hash)
        other.call("chenilles_reorg", 1, 2)  # the tip just read is replaced

    backend.tip_ttl = 0.0
    spy.reset()
    with after_tip_read(backend, reorg):
        height, block_time = backend._chain_tip()
    assert other.call("getblockheader", stale[0])["confirmations"] == -1
    assert (height, block_time) == other.block_header(other.tip_hash())
    assert spy.calls == ["getbestblockhash", "getblockheader"] * 2


def test_an_idle_poll_asks_for_one_block_hash_not_a_batch(devnet: Devnet) -> None:
    backend, spy = connect(devnet)
    backend.poll_events()
    spy.reset()
    backend.poll_events()
    assert spy.calls.count("getblockhash") == 1, spy.calls
    devnet.ledger().mine(2)
    spy.reset()
    backend.poll_events()
    # the two new blocks and our top, where the views agree; then the two blocks read
    assert spy.calls.count("getblockhash") == 3, spy.calls
    assert spy.calls.count("getblock") == 2, spy.calls


def test_a_peer_that_saw_a_block_we_did_not_is_not_refused(devnet: Devnet) -> None:
    """The receiver checks an HTLC's native expiry against its kept read of the tip; the
    payer imaged it from a block the receiver has not read yet, one block later. The
    receiver reads the tip again before refusing it."""
    receiver, spy = connect(devnet)
    payer, _ = connect(devnet)
    receiver.tip_ttl = 60.0
    channel = Channel.create(receiver, nonce=bytes(range(32)))
    authority = receiver.authority(channel.params, channel.accounts[1], 1)
    receiver.poll_events()
    expiry = receiver.now() + 36_000 + 300  # mid-interval: a block seconds later images alike
    kept = receiver.native_expiry(expiry)  # the receiver's read of the tip, kept
    devnet.ledger().mine(1)
    offered = payer.native_expiry(expiry)
    assert offered == kept + 1
    spy.reset()
    assert authority.native_expiry_ok(expiry, offered)
    # the kept image refused it; a fresh read found a new block and read its header
    assert spy.calls == ["getbestblockhash", "getblockheader"]
    assert not authority.native_expiry_ok(expiry, offered + 1)
    assert authority.native_expiry_ok(expiry, offered - EXPIRY_TOLERANCE)
    assert not authority.native_expiry_ok(expiry, offered - EXPIRY_TOLERANCE - 1)


def test_the_blocks_before_a_tip_are_read_one_header_each(devnet: Devnet) -> None:
    """What a receiver reads before refusing a late image (``ancestor_headers``): the
    tip's parent and grandparent, walked back by the hash each header names; a block
    reorganised away is not walked from."""
    backend, spy = connect(devnet)
    ledger: Any = backend.ledger
    chain = devnet.ledger()
    tip = chain.mine(3)[-1]
    height, _ = chain.block_header(tip)
    expected = [chain.block_header(chain.call("getblockhash", height - i)) for i in (1, 2)]
    spy.reset()
    assert ledger.ancestor_headers(tip, 2) == expected
    assert spy.calls == ["getblockheader"] * 3
    assert ledger.ancestor_headers(chain.call("getblockhash", 1), 2) == [
        chain.block_header(chain.call("getblockhash", 0))
    ]  # fewer at genesis
    chain.call("chenilles_reorg", 1, 2)  # the tip is replaced
    with pytest.raises(KeyError):
        ledger.ancestor_headers(tip, 2)


def test_the_watchers_clock_read_refreshes_the_kept_tip_on_the_nodes_thread(
    devnet: Devnet,
) -> None:
    """While HTLCs are in flight the node asks for the clock with every read of the chain
    (``fetch_clock``, on the reading thread): the tip it reads is handed over as the kept
    read, so the node's thread never re-reads an expired one (a round trip on a payment,
    once a second). A read older than the node's own, or of a lower block, is not kept."""
    backend, spy = connect(devnet)
    backend.poll_events()
    backend.tip_ttl = 1.0
    backend.now()
    time.sleep(1.1)  # the kept read expired
    fetched = backend.fetch_events()
    backend.fetch_clock(fetched)
    # with the tip, the blocks before it (read once per tip, for late images)
    assert fetched.ancestors is not None and fetched.ancestors[0] == devnet.ledger().tip_hash()
    spy.reset()
    backend.apply_events(fetched)
    backend.native_expiry(backend.now() + 3600)
    assert spy.calls == []  # the clock's read, handed over, is the kept read
    time.sleep(1.1)
    backend.now()
    assert spy.calls == ["getbestblockhash"]  # expired again: read on the node's thread
    stale = backend.fetch_events()
    backend.fetch_clock(stale)
    backend.tip_ttl = 0.0
    backend.now()  # the node's thread reads after the reading thread did
    backend.tip_ttl = 60.0
    spy.reset()
    backend.apply_events(stale)  # the older read does not replace the newer
    assert backend.now() and spy.calls == []
    assert backend._tip is not None and stale.clock_tip is not None
    assert backend._tip[2] > stale.clock_tip[2]


def test_the_nodes_half_of_a_poll_calls_no_rpc_even_when_blocks_came(devnet: Devnet) -> None:
    """A node reads the chain off its thread (``fetch_events``) and applies what was read
    on it (``apply_events``): the new blocks' times and the confirmed transactions come
    with the read, so the node's thread makes no round trip to bitcoind, even for a block
    with a transaction in it (against a far endpoint each would hold every payment)."""
    backend, spy = connect(devnet)
    backend.poll_events()
    other = devnet.ledger()
    hashes = other.mine(3)
    fetched = backend.fetch_events()
    spy.reset()
    events = backend.apply_events(fetched)
    assert spy.calls == []
    tip_height, tip_time = other.block_header(hashes[-1])
    blocks = [e for e in events if isinstance(e, NewBlock)]
    # off the height clock a block's time is the tip's (``_time_at``): read with the blocks
    assert [(b.height, b.time) for b in blocks] == [
        (tip_height - 2, tip_time),
        (tip_height - 1, tip_time),
        (tip_height, tip_time),
    ]
    assert backend._chain_tip() == (tip_height, tip_time)  # the clock moved too
    assert spy.calls == []


def test_a_read_that_fails_after_the_scan_loses_no_event(devnet: Devnet) -> None:
    """The fetch drains the ledger's scan, then reads more (the tip's header, confirmed
    transactions): if that fails, what the scan found must come again at the next read,
    or the node would never see those blocks and transactions (a cheater's commitment
    among them)."""
    backend, _ = connect(devnet)
    backend.poll_events()
    hashes = devnet.ledger().mine(2)
    heights = [devnet.ledger().block_header(h)[0] for h in hashes]
    tip_now = backend._tip_now

    def refused(read_at: float) -> tuple[int, int, float, str]:
        raise ConnectionResetError("bitcoind went away after the scan")

    backend._tip_now = refused  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        backend.fetch_events()
    backend._tip_now = tip_now  # type: ignore[method-assign]
    events = backend.apply_events(backend.fetch_events())
    assert [e.height for e in events if isinstance(e, NewBlock)] == heights
    # the node's own poll (an embedded ledger, or a backend polled on the node's thread)
    devnet.ledger().mine(1)
    hub_events = backend._hub_events
    backend._hub_events = lambda *a: (_ for _ in ()).throw(RuntimeError("failed"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        backend.poll_events()
    backend._hub_events = hub_events  # type: ignore[method-assign]
    assert [e.height for e in backend.poll_events() if isinstance(e, NewBlock)] == [heights[-1] + 1]
