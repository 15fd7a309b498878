"""The propose / accept / ack machine between two parties."""

from __future__ import annotations

import hashlib

import msgspec
import nacl.signing
import pytest

from chenilles_hub.core import (
    Accept,
    Ack,
    AddHtlc,
    ChannelRules,
    Close,
    Htlc,
    Persist,
    ProposalRejected,
    Propose,
    Reestablish,
    RevocationReceived,
    Send,
    SettleHtlc,
    SubmitToLedger,
    Transfer,
    UpdateCompleted,
    WakeAt,
    decode_message,
)
from chenilles_hub.core.errors import (
    ChannelNotOpen,
    Diverged,
    InvalidRevocation,
    InvalidSignature,
    ProposalConflict,
    ProposalPending,
    ProposalTooLarge,
    StaleVersion,
    StateMismatch,
    TooManyHtlcs,
    UnexpectedMessage,
    WrongChannel,
)
from chenilles_hub.signing import Ed25519Authority

from .harness import ETH, NOW, Pair, opened

pytestmark = pytest.mark.core

PREIMAGE = b"\x07" * 32
HASH = hashlib.sha256(PREIMAGE).digest()


def pay(pair: Pair, payer: int, amount: int) -> None:
    pair.act(payer, lambda m: m.propose((Transfer(ETH, amount),), NOW))
    pair.deliver_all()


def test_open_signs_version_zero_on_both_sides() -> None:
    pair = opened()
    for side in (pair.alice, pair.bob):
        assert side.machine.latest is not None
        assert side.machine.latest.state.version == 0
        assert side.machine.latest.complete


def test_updates_before_opening_are_refused() -> None:
    pair = Pair.create()
    with pytest.raises(ChannelNotOpen):
        pair.alice.machine.propose((Transfer(ETH, 1),), NOW)


def test_payments_in_both_directions_end_on_the_same_state() -> None:
    pair = opened()
    pay(pair, 0, 300)
    pay(pair, 1, 50)
    assert pair.settled()
    assert pair.alice.machine.state.free(ETH) == (750, 1250)
    assert pair.alice.machine.state.version == 2


def test_persist_comes_before_the_signature_leaves() -> None:
    pair = opened()
    effects = pair.alice.machine.propose((Transfer(ETH, 1),), NOW)
    assert isinstance(effects[0], Persist)
    assert effects[0].snapshot.pending is not None
    assert any(isinstance(e, Send) for e in effects[1:])
    accept_effects = pair.bob.machine.receive(effects[1].message, NOW)
    kinds = [type(e) for e in accept_effects]
    assert kinds.index(Persist) < kinds.index(Send)


def test_htlc_add_then_settle_and_deadline_effect() -> None:
    pair = opened()
    htlc = Htlc(2, 0, ETH, 100, HASH, NOW + 7200, NOW + 7000)
    pair.act(0, lambda m: m.propose((AddHtlc(htlc),), NOW))
    pair.deliver_all()
    assert any(isinstance(e, WakeAt) and e.at == NOW + 7200 for e in pair.alice.events)
    assert pair.bob.machine.state.locked(ETH) == 100
    pair.act(1, lambda m: m.propose((SettleHtlc(2, PREIMAGE),), NOW))
    pair.deliver_all()
    assert pair.settled()
    assert pair.alice.machine.state.free(ETH) == (900, 1100)


def _htlcs(*ids: int, payer: int = 0) -> tuple[AddHtlc, ...]:
    return tuple(AddHtlc(Htlc(i, payer, ETH, 10, HASH, NOW + 7200, NOW + 7000)) for i in ids)


def test_the_ledgers_htlc_limit_is_checked_before_anything_is_signed() -> None:
    """A ledger that holds fewer HTLCs per state than the core (Solana: 8) says so in its
    channel rules: ``check`` refuses the offer past it, so the node keeps it queued; a
    peer's proposal past it is refused; fewer HTLCs are always accepted."""
    two = ChannelRules(max_htlcs=2)
    pair = opened(rules=(two, two))
    assert pair.alice.machine.max_htlcs == 2
    with pytest.raises(TooManyHtlcs):
        pair.alice.machine.check(_htlcs(0, 2, 4), NOW)
    pair.act(0, lambda m: m.propose(_htlcs(0, 2), NOW))
    pair.deliver_all()
    assert len(pair.bob.machine.state.htlcs) == 2

    lax = opened(rules=(ChannelRules(), two))  # alice's backend does not know the limit
    lax.act(0, lambda m: m.propose(_htlcs(0, 2, 4), NOW))
    lax.deliver_all()
    assert isinstance(lax.bob.errors[0], TooManyHtlcs)
    assert not lax.bob.machine.state.htlcs


def test_a_channel_above_a_lowered_htlc_limit_may_still_resolve_its_htlcs() -> None:
    """HTLCs locked under a higher limit (an older program) are settled one at a time:
    only a state that adds past the limit is refused."""
    pair = opened()
    pair.act(0, lambda m: m.propose(_htlcs(0, 2, 4), NOW))
    pair.deliver_all()
    one = ChannelRules(max_htlcs=1)
    for side in (pair.alice, pair.bob):
        side.machine._rules = one  # the ledger's rule changed under the channel
    pair.act(1, lambda m: m.propose((SettleHtlc(0, PREIMAGE),), NOW))
    pair.deliver_all()
    assert [h.id for h in pair.alice.machine.state.htlcs] == [2, 4]
    pair.bob.machine.check((SettleHtlc(2, PREIMAGE), *_htlcs(7, payer=1)), NOW)  # as many
    with pytest.raises(TooManyHtlcs):
        pair.bob.machine.check((SettleHtlc(2, PREIMAGE), *_htlcs(7, 9, payer=1)), NOW)


def test_a_bad_signature_is_refused_and_changes_nothing() -> None:
    pair = opened()
    effects = pair.alice.machine.propose((Transfer(ETH, 10),), NOW)
    propose = effects[1].message
    forged = msgspec.structs.replace(propose, signature=b"\x00" * 64)
    before = pair.bob.machine.snapshot()
    with pytest.raises(InvalidSignature):
        pair.bob.machine.receive(forged, NOW)
    assert pair.bob.machine.snapshot() == before


def test_a_signature_by_the_wrong_key_is_refused() -> None:
    pair = opened()
    effects = pair.alice.machine.propose((Transfer(ETH, 10),), NOW)
    propose = effects[1].message
    mallory = Ed25519Authority(nacl.signing.SigningKey(b"m" * 32))
    resigned = msgspec.structs.replace(
        propose, signature=mallory.sign(pair.bob.machine.params, propose.state)
    )
    with pytest.raises(InvalidSignature):
        pair.bob.machine.receive(resigned, NOW)


def test_a_message_for_another_channel_is_refused() -> None:
    pair = opened()
    with pytest.raises(WrongChannel):
        pair.bob.machine.receive(Ack(b"\x09" * 32, 1), NOW)


def test_a_state_that_its_updates_do_not_explain_is_refused() -> None:
    pair = opened()
    effects = pair.alice.machine.propose((Transfer(ETH, 10),), NOW)
    propose = effects[1].message
    # Alice claims a transfer of 10 but signs a state where Bob lost 500.
    greedy_state = msgspec.structs.replace(
        propose.state,
        balances=(
            msgspec.structs.replace(propose.state.balances[0], amounts=(1490, 510)),
            propose.state.balances[1],
        ),
    )
    alice_key = pair.alice.machine._authority  # the real key: a validly signed lie
    lie = msgspec.structs.replace(
        propose,
        state=greedy_state,
        signature=alice_key.sign(pair.alice.machine.params, greedy_state),
    )
    before = pair.bob.machine.snapshot()
    with pytest.raises(StateMismatch):
        pair.bob.machine.receive(lie, NOW)
    assert pair.bob.machine.snapshot() == before


def test_a_replayed_old_proposal_is_refused() -> None:
    pair = opened()
    first = pair.alice.machine.propose((Transfer(ETH, 10),), NOW)[1].message
    pair.run_effects(0, [])
    pair.wire.append((1, __import__("chenilles_hub.core", fromlist=["x"]).encode_message(first)))
    pair.deliver_all()
    pay(pair, 0, 20)
    with pytest.raises(StaleVersion):
        pair.bob.machine.receive(first, NOW)


def test_a_duplicate_of_the_latest_proposal_is_answered_again() -> None:
    pair = opened()
    propose = pair.alice.machine.propose((Transfer(ETH, 10),), NOW)[1].message
    first = pair.bob.machine.receive(propose, NOW)
    again = pair.bob.machine.receive(propose, NOW)
    accept_first = next(e.message for e in first if isinstance(e, Send))
    assert again == [Send(pair.bob.machine.peer, accept_first)]


def test_one_proposal_at_a_time() -> None:
    pair = opened()
    pair.alice.machine.propose((Transfer(ETH, 1),), NOW)
    with pytest.raises(ProposalPending):
        pair.alice.machine.propose((Transfer(ETH, 1),), NOW)


def test_a_proposal_the_peer_could_not_decode_is_never_made() -> None:
    """The peer's decoder takes at most 64 updates and 64 KiB: a bigger proposal, once
    persisted, would be retransmitted and refused forever. It is refused here instead, and
    nothing changes."""
    pair = opened()
    before = pair.alice.machine.snapshot()
    too_many = tuple(Transfer(ETH, 1) for _ in range(65))
    for attempt in (
        lambda m: m.check(too_many, NOW),
        lambda m: m.propose(too_many, NOW),
        # nine HTLCs with 8 KiB onions: under 64 updates, over 64 KiB once encoded
        lambda m: m.propose(
            tuple(
                AddHtlc(Htlc(2 * i, 0, ETH, 1, HASH, NOW + 7200, NOW + 7000), onion=bytes(8192))
                for i in range(1, 10)
            ),
            NOW,
        ),
    ):
        with pytest.raises(ProposalTooLarge):
            attempt(pair.alice.machine)
        assert pair.alice.machine.snapshot() == before and pair.alice.machine.idle
    pair.act(0, lambda m: m.propose(too_many[:64], NOW))  # the limit itself is fine
    pair.deliver_all()
    assert pair.settled() and pair.alice.machine.state.free(ETH) == (936, 1064)


def test_concurrent_proposals_resolve_to_participant_zero() -> None:
    pair = opened()
    pair.act(0, lambda m: m.propose((Transfer(ETH, 5),), NOW))
    pair.act(1, lambda m: m.propose((Transfer(ETH, 7),), NOW))
    pair.deliver_all()
    assert pair.settled()
    assert pair.alice.machine.state.free(ETH) == (995, 1005)
    assert any(isinstance(e, ProposalConflict) for e in pair.alice.errors)
    assert any(isinstance(e, ProposalRejected) for e in pair.bob.events)


def test_a_refused_proposal_is_dropped_by_its_proposer() -> None:
    pair = opened()
    htlc = Htlc(2, 0, ETH, 100, HASH, NOW + 7200, NOW + 7000)
    pair.act(0, lambda m: m.propose((AddHtlc(htlc),), NOW))
    pair.wire.clear()
    # Bob sees the proposal only a day later, when the HTLC no longer leaves him enough time.
    pending = pair.alice.machine.pending
    assert pending is not None
    pair.wire.append(
        (1, __import__("chenilles_hub.core", fromlist=["x"]).encode_message(pending.message))
    )
    pair.deliver_all(now=NOW + 86400)
    assert pair.alice.machine.pending is None
    pay(pair, 0, 1)  # the channel goes on
    assert pair.settled()
    # Reported once a later version is irrevocable: no copy of it can be enforced then.
    assert not [e for e in pair.alice.events if isinstance(e, ProposalRejected)]
    pay(pair, 0, 1)
    rejected = [e for e in pair.alice.events if isinstance(e, ProposalRejected)]
    assert rejected and rejected[0].code == "unsafe_timelock"


def test_cooperative_close_asks_the_ledger_to_conclude() -> None:
    pair = opened()
    pay(pair, 0, 100)
    pair.act(0, lambda m: m.propose((Close(),), NOW))
    pair.deliver_all()
    assert pair.alice.machine.state.final
    submits = [e for e in pair.alice.events if isinstance(e, SubmitToLedger)]
    assert [s.action for s in submits] == ["conclude_cooperative"]
    assert submits[0].signed.complete


def test_force_close_registers_the_latest_signed_state() -> None:
    pair = opened()
    pay(pair, 1, 10)
    (effect,) = pair.alice.machine.force_close()
    assert isinstance(effect, SubmitToLedger) and effect.action == "register"
    assert effect.signed.state.version == 1 and effect.signed.complete


def test_revocations_flow_both_ways() -> None:
    pair = opened(revoking=True)
    pay(pair, 0, 10)
    pay(pair, 1, 3)
    for side in (pair.alice, pair.bob):
        revoked = sorted(e.version for e in side.events if isinstance(e, RevocationReceived))
        assert revoked == [0, 1]


def test_a_missing_revocation_is_refused() -> None:
    pair = opened(revoking=True)
    propose = pair.alice.machine.propose((Transfer(ETH, 10),), NOW)[1].message
    accept = next(e.message for e in pair.bob.machine.receive(propose, NOW) if isinstance(e, Send))
    assert isinstance(accept, Accept) and accept.revocation
    before = pair.alice.machine.snapshot()
    with pytest.raises(InvalidRevocation):
        pair.alice.machine.receive(msgspec.structs.replace(accept, revocation=None), NOW)
    assert pair.alice.machine.snapshot() == before
    with pytest.raises(InvalidRevocation):
        pair.alice.machine.receive(msgspec.structs.replace(accept, revocation=b"x" * 64), NOW)
    pair.alice.machine.receive(accept, NOW)  # the real one is taken


def test_unexpected_messages_are_refused() -> None:
    pair = opened()
    cid = pair.alice.machine.channel_id
    with pytest.raises(UnexpectedMessage):
        pair.alice.machine.receive(Accept(cid, 5, b"s"), NOW)
    with pytest.raises(UnexpectedMessage):
        pair.alice.machine.receive(Ack(cid, 5), NOW)


def test_a_restart_resumes_from_the_last_persisted_snapshot() -> None:
    pair = opened(revoking=True)
    pair.act(0, lambda m: m.propose((Transfer(ETH, 10),), NOW))
    pair.deliver_one()  # Bob accepted; his Accept is in flight
    # Alice crashes now and restarts from her disk.
    from chenilles_hub.core import ChannelMachine, decode_snapshot

    old = pair.alice.machine
    fresh = ChannelMachine(old.params, old.channel_id, 0, old._authority, old.initial)
    fresh.restore(decode_snapshot(pair.alice.disk[-1]))
    pair.alice.machine = fresh
    pair.deliver_all()
    assert pair.settled()
    assert fresh.state.free(ETH) == (990, 1010)


def test_reestablish_retransmits_a_lost_accept() -> None:
    pair = opened()
    pair.act(0, lambda m: m.propose((Transfer(ETH, 10),), NOW))
    pair.deliver_one()  # Bob accepts
    pair.wire.clear()  # ...and the Accept is lost
    assert not pair.settled()
    pair.reestablish()
    assert pair.settled()


def test_reestablish_with_an_impossible_peer_is_diverged() -> None:
    pair = opened()
    with pytest.raises(Diverged):
        pair.alice.machine.receive(Reestablish(pair.alice.machine.channel_id, 9), NOW)


def test_effects_name_the_completed_state() -> None:
    pair = opened()
    pay(pair, 0, 1)
    completed = [e for e in pair.alice.events if isinstance(e, UpdateCompleted)]
    assert completed[-1].signed.state.version == 1
    assert isinstance(decode_message, object) and Propose


def test_an_htlc_becomes_irrevocable_for_the_acceptor_only_after_the_ack() -> None:
    from chenilles_hub.core import Irrevocable

    pair = opened(revoking=True)
    htlc = Htlc(2, 0, ETH, 100, HASH, NOW + 7200, NOW + 7000)
    pair.act(0, lambda m: m.propose((AddHtlc(htlc, onion=b"route"),), NOW))
    pair.deliver_one()  # Bob accepts: committed, but Alice has not revoked version 0 yet
    assert not [e for e in pair.bob.events if isinstance(e, Irrevocable) and e.signed.version == 1]
    pair.deliver_one()  # Alice takes the Accept: irrevocable for her
    assert [e for e in pair.alice.events if isinstance(e, Irrevocable) and e.signed.version == 1]
    pair.deliver_one()  # Bob takes the Ack with Alice's revocation
    (event,) = [e for e in pair.bob.events if isinstance(e, Irrevocable) and e.signed.version == 1]
    assert event.updates == (AddHtlc(htlc, onion=b"route"),)


# --- two messages per update where a newer version wins (EVM, Solana) ---------------------


def _messages(pair: Pair) -> list[str]:
    return [type(decode_message(data)).__name__ for _, data in pair.wire]


def test_where_a_newer_version_wins_an_update_is_two_messages_and_irrevocable_at_once() -> None:
    from chenilles_hub.core import Irrevocable

    pair = opened(versioned=True)
    htlc = Htlc(2, 0, ETH, 100, HASH, NOW + 7200, NOW + 7000)
    pair.act(0, lambda m: m.propose((AddHtlc(htlc, onion=b"route"),), NOW))
    pair.deliver_one()  # Bob accepts: he holds version 1 signed by both
    (event,) = [e for e in pair.bob.events if isinstance(e, Irrevocable) and e.signed.version == 1]
    assert event.updates == (AddHtlc(htlc, onion=b"route"),)
    assert pair.bob.machine.idle, "no Ack to wait for: Bob may propose at once"
    assert _messages(pair) == ["Accept"]
    pair.deliver_one()  # Alice takes the Accept: irrevocable for her, and nothing to send
    assert [e for e in pair.alice.events if isinstance(e, Irrevocable) and e.signed.version == 1]
    assert pair.wire == [] and pair.settled()


def test_where_a_newer_version_wins_the_opening_and_a_final_state_keep_their_ack() -> None:
    pair = Pair.create(versioned=True)
    pair.act(0, lambda m: m.open())
    pair.deliver_one()
    assert not pair.bob.machine.idle, "version 0's Ack starts the deposits: Bob waits for it"
    pair.deliver_all()
    assert pair.settled()
    pair.act(0, lambda m: m.propose((Close(),), NOW))
    pair.deliver_one()
    pair.deliver_one()
    assert _messages(pair) == ["Ack"]
    pair.deliver_all()
    assert pair.settled()


def test_where_a_newer_version_wins_the_acceptor_proposes_before_its_accept_arrives() -> None:
    """Bob accepts version 1 and proposes version 2 at once (a payee settling); the Accept
    is lost with the connection. One reestablish brings both back, in order."""
    pair = opened(versioned=True)
    htlc = Htlc(2, 0, ETH, 100, HASH, NOW + 7200, NOW + 7000)
    pair.act(0, lambda m: m.propose((AddHtlc(htlc),), NOW))
    pair.deliver_one()
    pair.act(1, lambda m: m.propose((SettleHtlc(2, PREIMAGE),), NOW))
    assert _messages(pair) == ["Accept", "Propose"]
    pair.wire.clear()  # both lost
    pair.act(0, lambda m: m.reestablish())  # Alice: at version 0, her version 1 pending
    pair.deliver_all()  # Bob answers with his Accept of 1 and his proposal of 2
    assert pair.settled()
    assert pair.alice.machine.state.version == 2
    assert pair.alice.machine.state.free(ETH) == (900, 1100)


def test_where_a_newer_version_wins_a_copy_of_an_accept_taken_is_ignored() -> None:
    pair = opened(versioned=True)
    pair.act(0, lambda m: m.propose((Transfer(ETH, 10),), NOW))
    pair.deliver_one()
    accept = pair.wire[0]
    pair.deliver_one()
    before = pair.alice.machine.snapshot()
    assert pair.alice.machine.receive(decode_message(accept[1]), NOW) == []
    assert pair.alice.machine.snapshot() == before


def test_a_proposal_after_a_check_is_made_on_the_state_it_is_proposed_on() -> None:
    """``check`` remembers its result for a proposal of exactly the same updates; once the
    channel moved on in between (the peer's payment landed), the proposal is derived anew
    from the newer state, never from what was checked on the older one."""
    pair = opened()
    alice = pair.alice.machine
    checked = alice.check((Transfer(ETH, 100),), NOW)
    assert checked.version == 1
    pay(pair, 1, 50)  # Bob's payment: version 1 is his
    assert alice.state.version == 1 and alice.state.free(ETH) == (1050, 950)
    effects = alice.propose((Transfer(ETH, 100),), NOW)
    (sent,) = [e.message for e in effects if isinstance(e, Send)]
    assert isinstance(sent, Propose)
    assert sent.state.version == 2 and sent.state.free(ETH) == (950, 1050)
    pair.run_effects(0, effects)
    pair.deliver_all()
    assert pair.settled() and pair.bob.machine.state.free(ETH) == (950, 1050)


def test_a_proposal_of_what_was_just_checked_is_the_checked_state() -> None:
    pair = opened()
    alice = pair.alice.machine
    updates = (Transfer(ETH, 100),)
    checked = alice.check(updates, NOW)
    effects = alice.propose(updates, NOW)
    (sent,) = [e.message for e in effects if isinstance(e, Send)]
    assert isinstance(sent, Propose) and sent.state == checked
