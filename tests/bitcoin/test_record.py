"""The channel record in parts: what the node writes per update stays small however long
the channel lives, and what it wrote restores the watcher's memory."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from chenilles_bitcoin.backend import BitcoinBackend
from chenilles_bitcoin.commitments import ChannelPolicy
from chenilles_bitcoin.record import ChannelRecord

from chenilles_hub.core import Transfer
from chenilles_hub.core.errors import InvalidParams

from .test_backend_harness import BTC, Channel, fresh_backend, opened

pytestmark = pytest.mark.bitcoin


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def test_each_update_exports_only_a_bounded_head_and_each_htlc_set_once(
    backend: BitcoinBackend,
) -> None:
    channel = opened(backend)
    alice = channel.accounts[0]
    first = backend.export_record(channel.params, 0, alice)
    # the funder's first export also holds its funding transaction (written once: a
    # restart between the deposit's marker and its sending sends this one again)
    # and the channel's fee policy, written once with it
    assert first is not None and set(first) == {"head", "funding", "policy"}
    assert backend.export_record(channel.params, 0, alice) is None  # nothing changed
    stored = dict(first)
    channel.update(0, Transfer(BTC, 20_000))  # bob above the channel reserve (1%)
    stored.update(backend.export_record(channel.params, 0, alice) or {})
    sizes = []
    for _ in range(120):
        channel.update(0, Transfer(BTC, 1))  # alice pays bob, bob pays it back
        channel.update(1, Transfer(BTC, 1))
        changed = backend.export_record(channel.params, 0, alice)
        assert changed is not None and set(changed) == {"head"}
        sizes.append(len(changed["head"]))
        stored.update(changed)
    assert max(sizes) < 4096  # 49 shachain entries at most, whatever the number of updates
    channel.add_htlc(1, payer=0, amount=20_000)
    changed = backend.export_record(channel.params, 0, alice)
    assert changed is not None and "htlcs/242" in changed
    stored.update(changed)
    channel.update(0, Transfer(BTC, 1))  # the HTLC stays: version 243 has its own set
    changed = backend.export_record(channel.params, 0, alice)
    assert changed is not None and set(changed) == {"head", "htlcs/243"}
    stored.update(changed)

    restored = ChannelRecord(0)
    restored.load_parts(stored)
    live = backend.context(channel.params, 0, alice).record
    assert restored.export() == live.export()
    assert restored.revocation_secret(240) is not None


def test_parts_that_do_not_decode_or_belong_to_the_other_side_are_refused(
    backend: BitcoinBackend,
) -> None:
    channel = opened(backend)
    alice, bob = channel.accounts
    parts = backend.export_record(channel.params, 1, bob)
    assert parts is not None
    with pytest.raises(InvalidParams, match="participant 1's, not 0's"):
        backend.restore_record(channel.params, 0, alice, parts)
    with pytest.raises(InvalidParams, match="does not decode"):
        backend.restore_record(channel.params, 0, alice, {"head": b"\x93garbage"})


def _restarted(backend: BitcoinBackend, policy: ChannelPolicy) -> BitcoinBackend:
    """The same chain read by a new process whose operator configured ``policy``."""
    return BitcoinBackend(backend.ledger, chain=backend.chain, policy=policy, auto_mine=True)


def test_a_channel_keeps_the_fee_policy_it_was_opened_with(backend: BitcoinBackend) -> None:
    """Both sides build every commitment and HTLC transaction from the fee policy: a
    restored channel keeps the one it opened with, whatever the options say now; a channel
    opened afterwards takes the new one."""
    channel = opened(backend)
    alice = channel.accounts[0]
    parts = backend.export_record(channel.params, 0, alice)
    assert parts is not None
    raised = ChannelPolicy(feerate_per_kw=2_500, dust_limit_sat=1_000, block_interval=60)
    restarted = _restarted(backend, raised)
    restarted.restore_record(channel.params, 0, alice, parts)
    assert restarted.channel_rules(channel.params) == backend.channel_rules(channel.params)
    restored = restarted.context(channel.params, 0, alice).view
    assert restored.policy == backend.policy
    assert restored.to_self_delay == backend.context(channel.params, 0, alice).view.to_self_delay
    latest = channel.latest()
    assert restarted.authority(channel.params, alice, 0).verify(
        channel.params, latest.state, 1, latest.signatures[1], None
    )  # the peer's signature on the latest state still checks
    newer = Channel.create(restarted, accounts=channel.accounts, nonce=b"\x07" * 32)
    assert restarted.context(newer.params, 0, newer.accounts[0]).view.policy == raised
    # the opener's key carries it: a peer configured otherwise builds the same transactions
    assert backend.channel_rules(newer.params) == restarted.channel_rules(newer.params)
    assert backend.channel_rules(newer.params) != backend.channel_rules(channel.params)


def _without_policy(backend: BitcoinBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Participant keys as a node wrote them before keys carried the opener's policy."""
    keys_only = BitcoinBackend.participant_key
    monkeypatch.setattr(
        backend, "participant_key", lambda a, salt: keys_only(backend, a, salt).rsplit(":", 4)[0]
    )


def test_a_record_written_before_policies_were_kept_is_built_with_the_options_in_force(
    backend: BitcoinBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As it always was, and nothing is guessed into its record: written now, a guess made
    under options changed on this very restart would stay wrong once they are put back."""
    _without_policy(backend, monkeypatch)
    channel = opened(backend)
    assert channel.params.participants[0].chain_key.count(":") == 2
    alice = channel.accounts[0]
    parts = dict(backend.export_record(channel.params, 0, alice) or {})
    del parts["policy"]
    restarted = _restarted(backend, ChannelPolicy(feerate_per_kw=2_500))
    restarted.restore_record(channel.params, 0, alice, parts)
    assert restarted.context(channel.params, 0, alice).view.policy.feerate_per_kw == 2_500
    assert restarted.export_record(channel.params, 0, alice) is None
    for bad in (b"\x93garbage", msgspec.msgpack.encode(ChannelPolicy(block_interval=0))):
        with pytest.raises(InvalidParams, match="does not decode"):
            restarted.restore_record(channel.params, 0, alice, {**parts, "policy": bad})


def test_the_opener_key_carries_the_channels_policy_and_a_record_cannot_contradict_it(
    backend: BitcoinBackend,
) -> None:
    """The channel id commits to the opener's key, so to its policy: a record that keeps
    another (a store edited, or mixed up with another channel's) is refused at restore."""
    channel = opened(backend)
    alice = channel.accounts[0]
    key = channel.params.participants[0].chain_key
    assert key.endswith(":1000:546:50000:600") and len(key) <= 200
    parts = dict(backend.export_record(channel.params, 0, alice) or {})
    parts["policy"] = msgspec.msgpack.encode(ChannelPolicy(feerate_per_kw=2_000))
    restarted = _restarted(backend, backend.policy)
    with pytest.raises(InvalidParams, match="the record keeps the fee policy"):
        restarted.restore_record(channel.params, 0, alice, parts)


def test_a_channel_opened_before_keys_carried_a_policy_keeps_the_one_its_record_kept(
    backend: BitcoinBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every channel opened before the thirty-second session has keys of three parts: its
    record's policy is what keeps it on the transactions its peer signs (found by review:
    with the keys carrying the policy, no test covered these channels any more)."""
    _without_policy(backend, monkeypatch)
    channel = opened(backend)
    alice = channel.accounts[0]
    parts = backend.export_record(channel.params, 0, alice)
    assert parts is not None and "policy" in parts
    restarted = _restarted(backend, ChannelPolicy(feerate_per_kw=2_500, dust_limit_sat=1_000))
    restarted.restore_record(channel.params, 0, alice, parts)
    assert restarted.context(channel.params, 0, alice).view.policy == backend.policy
    latest = channel.latest()
    assert restarted.authority(channel.params, alice, 0).verify(
        channel.params, latest.state, 1, latest.signatures[1], None
    )
