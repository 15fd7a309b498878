"""Every attempt at a version leaves a commitment someone can broadcast: the record keeps
the HTLCs of all of them.

Found by review: a proposal the peer refused is still signed by us, so the peer holds our
signature on its commitment of that version with that proposal's HTLCs. The record kept
one HTLC set per version, and our next attempt at the same version replaced it. Once the
peer revoked the version (one per-commitment point, so one secret, for every attempt), it
could broadcast the refused attempt's commitment: unrecognised, it was not punished, and
its HTLC could not be refunded.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from chenilles_bitcoin.backend import BitcoinBackend
from chenilles_bitcoin.record import MAX_HTLCS_PER_VERSION, ChannelRecord, RecordFull

from chenilles_hub.core import (
    AddHtlc,
    ChannelState,
    Htlc,
    Propose,
    Reject,
    SignedState,
    Transfer,
    decode_message,
)

from .test_backend_harness import BTC, Channel, fresh_backend, opened

pytestmark = [pytest.mark.bitcoin, pytest.mark.adversarial]


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def _refused_attempt(channel: Channel, backend: BitcoinBackend, htlc: Htlc) -> Propose:
    """Alice proposes ``htlc``; Bob keeps her signature and refuses the proposal."""
    channel.run(0, channel.machines[0].propose((AddHtlc(htlc),), backend.now()))
    recipient, data = channel.wire.pop(0)
    assert recipient == 1 and not channel.wire
    proposal = decode_message(data)
    assert isinstance(proposal, Propose)
    refusal = Reject(channel.channel_id, proposal.state.version, "refused", "no", proposal.attempt)
    channel.run(0, channel.machines[0].receive(refusal, backend.now()))
    assert channel.machines[0].pending is None
    return proposal


def test_a_revoked_commitment_of_a_refused_attempt_is_punished(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    alice, bob = channel.accounts
    channel.update(0, Transfer(BTC, 300_000))
    h1, _ = channel.htlc(1, payer=0, amount=50_000)
    refused = _refused_attempt(channel, backend, h1)
    h2, _ = channel.htlc(2, payer=0, amount=40_000)
    channel.update(0, AddHtlc(h2))  # the same version again, with another HTLC
    channel.update(1, Transfer(BTC, 200_000))  # Bob revokes that version
    version = refused.state.version
    assert channel.latest().version == version + 1
    backend.poll_events()

    # Bob broadcasts his commitment of the refused attempt, which Alice signed
    backend.register(channel.params, SignedState(refused.state, (refused.signature, b"")), bob)
    backend.poll_events()
    before = backend.balance(alice, BTC)
    justice = backend.challenge(channel.params, channel.latest(), alice)
    assert justice.txid, "the revoked commitment was not recognised"
    # the penalty takes every output of it, the refused HTLC's included
    assert backend.balance(alice, BTC) > before + 600_000


def test_the_htlc_of_a_refused_attempt_on_chain_is_refunded(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    channel.update(0, Transfer(BTC, 300_000))
    channel.add_htlc(0, payer=0, amount=30_000)  # an HTLC already in flight
    h1, _ = channel.htlc(1, payer=0, amount=50_000)
    refused = _refused_attempt(channel, backend, h1)
    h2, _ = channel.htlc(2, payer=0, amount=40_000)
    channel.update(0, AddHtlc(h2))  # the next attempt at that version, h2 instead of h1
    assert channel.latest().version == refused.state.version
    backend.poll_events()

    bobs = SignedState(refused.state, (refused.signature, b""))
    assert _refund_after_expiry(backend, channel, bobs, h1) == 50_000


@pytest.mark.parametrize("amount", [40_000, 50_000], ids=["another amount", "the same amount"])
def test_one_payment_offered_again_under_another_id_is_refunded(
    backend: BitcoinBackend, amount: int
) -> None:
    """The refused attempt and the next one offer the same payment (one script) under two
    ids. For another amount, the commitment's output is read with the HTLC whose amount it
    holds; for the same amount, one output reads as either HTLC, and the refund finds it
    under the id the channel holds."""
    channel = opened(backend)
    channel.update(0, Transfer(BTC, 300_000))
    h1, _ = channel.htlc(1, payer=0, amount=50_000)
    _refused_attempt(channel, backend, h1)
    again = msgspec.structs.replace(h1, id=2, amount=amount)
    channel.update(0, AddHtlc(again))
    backend.poll_events()
    assert _refund_after_expiry(backend, channel, channel.latest(1), again) == amount


def _refund_after_expiry(
    backend: BitcoinBackend, channel: Channel, bobs: SignedState, htlc: Htlc
) -> int:
    """Bob registers ``bobs`` commitment; once ``htlc`` expired, Alice refunds it: what her
    wallet got, the fee added back."""
    alice, bob = channel.accounts
    backend.register(channel.params, bobs, bob)
    backend.poll_events()
    backend.mine(htlc.native_expiry - backend.ledger.tip_height())
    before = backend.balance(alice, BTC)
    refund = backend.refund_htlc(channel.params, htlc, alice)
    return backend.balance(alice, BTC) - before + refund.fee


def _state(version: int, htlcs: tuple[Htlc, ...]) -> ChannelState:
    return ChannelState(b"\x01" * 32, version, (), htlcs)


def _htlcs(first: int, count: int) -> tuple[Htlc, ...]:
    return tuple(
        Htlc(i, 0, BTC, 1_000 + i, bytes([i % 256]) * 32, 10**9, 10**6)
        for i in range(first, first + count)
    )


def test_a_peer_refusing_every_attempt_cannot_grow_a_version_without_bound() -> None:
    """Each attempt adds its HTLCs; past ``MAX_HTLCS_PER_VERSION`` nothing more is signed
    or accepted at that version (the record unchanged), and the operator is told to close."""
    record = ChannelRecord(0)
    per_attempt = 32
    attempts = MAX_HTLCS_PER_VERSION // per_attempt
    for n in range(attempts):
        record.note_state(_state(5, _htlcs(n * per_attempt, per_attempt)))
        record.note_state(_state(5, _htlcs(n * per_attempt, per_attempt)))  # again: no growth
    assert len(record.htlcs[5]) == MAX_HTLCS_PER_VERSION
    record.export_changes()
    with pytest.raises(RecordFull, match="close it"):
        record.note_state(_state(5, _htlcs(10_000, 1)))
    assert len(record.htlcs[5]) == MAX_HTLCS_PER_VERSION and not record.export_changes()
    record.note_state(_state(6, _htlcs(10_000, 1)))  # the next version starts afresh


def test_a_full_record_refuses_the_peers_proposal_as_its_own_refusal(
    backend: BitcoinBackend,
) -> None:
    """A good signature on a proposal our record cannot take is refused with
    ``record_full``, not as the peer's bad signature (which counts against it, toward a
    ban)."""
    channel = opened(backend)
    alice, _ = channel.accounts
    channel.update(0, Transfer(BTC, 300_000))
    version = channel.latest().version + 1
    record = backend.context(channel.params, 0, alice).record
    record.htlcs[version] = _htlcs(0, MAX_HTLCS_PER_VERSION)
    h, _ = channel.htlc(1, payer=1, amount=10_000)
    channel.run(1, channel.machines[1].propose((AddHtlc(h),), backend.now()))
    channel.pump()
    assert [error.code for error in channel.errors] == ["record_full"]
    assert channel.machines[0].latest is not None
    assert channel.machines[0].latest.version == version - 1
