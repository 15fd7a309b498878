"""Issue 12, item 5: a crash of the acceptor while the proposer has a proposal in flight.

Seen with ``kill -9`` (1 run in 6): Bob restarted still waiting for Alice's ack of version
*v*; Alice's retransmitted proposal of *v+1* reached him before that ack, Bob refused it
("waiting for the peer's ack"), Alice dropped it and reported the payment failed, and then
Bob accepted the copy Alice had sent again in answer to his ``Reestablish``. Bob held *v+1*
signed by both with Alice's HTLC, Alice stayed at *v* with the payment failed, and every later
update was refused. These tests replay that interleaving step by step.
"""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from chenilles_hub.core import (
    AddHtlc,
    Htlc,
    ProposalRejected,
    ProposalWithdrawn,
    Propose,
    Reject,
    Transfer,
    decode_message,
    encode_message,
)

from .harness import ETH, NOW, Pair, opened

pytestmark = [pytest.mark.core, pytest.mark.adversarial]

PREIMAGE = b"\x05" * 32
HTLC = Htlc(0, 0, ETH, 100, hashlib.sha256(PREIMAGE).digest(), NOW + 7200, NOW + 7000)
#: Within the default maximum lead (14 days) at NOW, beyond it for a clock an hour behind.
FAR = Htlc(0, 0, ETH, 100, HTLC.payment_hash, NOW + 14 * 86400 - 1800, NOW + 14 * 86400 - 1860)


def assert_no_failure_of_a_state_the_peer_signed(pair: Pair) -> None:
    for side, other in ((pair.alice, pair.bob), (pair.bob, pair.alice)):
        for event in side.events:
            if isinstance(event, ProposalRejected):
                assert (event.state, event.updates) not in other.countersigned, (
                    f"version {event.version} reported refused ({event.code}) although the "
                    "peer signed it"
                )


def _alice_acked_v1_and_proposes_v2(revoking: bool) -> Pair:
    """Alice's Transfer becomes version 1; her Ack of it and her proposal of version 2 (an
    HTLC: a payment) are on the wire to Bob."""
    pair = opened(revoking=revoking)
    pair.act(0, lambda m: m.propose((Transfer(ETH, 10),), NOW))
    pair.deliver_one()  # Propose(1) -> Bob accepts, awaits Alice's ack
    pair.deliver_one()  # Accept(1) -> Alice acks
    pair.act(0, lambda m: m.propose((AddHtlc(HTLC),), NOW))
    assert [decode_message(d).__class__.__name__ for _, d in pair.wire] == ["Ack", "Propose"]
    return pair


@pytest.mark.parametrize("revoking", [False, True])
def test_acceptor_crash_with_a_proposal_in_flight_reconverges(revoking: bool) -> None:
    pair = _alice_acked_v1_and_proposes_v2(revoking)
    pair.crash(1)  # Bob dies before the Ack and the Propose reach his disk
    assert pair.bob.machine.awaiting_ack == 1
    # On reconnect Alice's sender first sends what it still held for Bob (the proposal),
    # then both sides reestablish; Bob's Reestablish makes Alice send her Ack and the
    # proposal again.
    pending = pair.alice.machine.pending
    assert pending is not None
    pair.wire.append((1, encode_message(pending.message)))
    pair.act(0, lambda m: m.reestablish())
    pair.act(1, lambda m: m.reestablish())
    pair.deliver_all()
    pair.reestablish()
    assert pair.settled(), "the two honest sides did not re-converge"
    assert pair.alice.machine.state.version == 2
    assert pair.alice.machine.state.htlc(HTLC.id) is not None
    assert_no_failure_of_a_state_the_peer_signed(pair)


def test_a_refusal_is_binding_a_copy_of_the_refused_proposal_is_never_signed() -> None:
    """A proposal refused for a reason that may pass (an HTLC whose timelock is too long
    *now*) must not be signed later from a duplicate still on the wire: the proposer will
    report it failed."""
    pair = opened(revoking=True)
    far = FAR
    pair.act(0, lambda m: m.propose((AddHtlc(far),), NOW))
    ((_, proposal),) = pair.wire
    pair.deliver_all(now=NOW - 3600)  # Bob's clock is an hour behind: the lead is too long
    assert any(isinstance(e, ProposalWithdrawn) for e in pair.alice.events)
    assert pair.alice.machine.pending is None and pair.alice.machine.withdrawn
    pair.crash(1)  # the refusal was persisted before the Reject left: it survives
    pair.wire.append((1, proposal))  # a duplicate arrives later, when the lead would be fine
    pair.deliver_all()
    pair.reestablish()
    assert pair.settled()
    assert pair.bob.machine.state.htlc(far.id) is None
    assert_no_failure_of_a_state_the_peer_signed(pair)


def test_a_refused_proposal_is_reported_only_once_no_copy_can_be_enforced() -> None:
    """Bob refused version 1 but holds Alice's signature on it: a cheating Bob could still
    register it. Alice reports it (``ProposalRejected``) only once a later version is
    irrevocable (version 2 signed by both, version 1 revoked by both): not while its
    replacement at version 1 is in flight, nor when that one completes."""
    pair = opened(revoking=True)
    pair.act(0, lambda m: m.propose((AddHtlc(FAR),), NOW))
    pair.deliver_all(now=NOW - 3600)
    assert not [e for e in pair.alice.events if isinstance(e, ProposalRejected)]
    pair.act(0, lambda m: m.propose((), NOW))  # version 1 again, with nothing in it
    pair.deliver_all()
    assert pair.alice.machine.state.version == 1 and pair.alice.machine.withdrawn
    assert not [e for e in pair.alice.events if isinstance(e, ProposalRejected)]
    pair.act(0, lambda m: m.propose((Transfer(ETH, 1),), NOW))  # version 2
    pair.deliver_all()
    (rejected,) = [e for e in pair.alice.events if isinstance(e, ProposalRejected)]
    assert rejected.version == 1 and rejected.code == "unsafe_timelock"
    assert rejected.updates == (AddHtlc(FAR),)
    assert not pair.alice.machine.withdrawn
    assert_no_failure_of_a_state_the_peer_signed(pair)


def test_a_late_refusal_of_an_earlier_attempt_does_not_drop_the_next_one() -> None:
    """Reject names the attempt it refuses: a Reject of the first proposal of version v that
    arrives after the proposer's second proposal of v does not drop the second."""
    pair = opened()
    far = FAR
    pair.act(0, lambda m: m.propose((AddHtlc(far),), NOW))
    pair.deliver_one(now=NOW - 3600)  # refused
    ((_, reject),) = pair.wire
    assert isinstance(decode_message(reject), Reject)
    pair.wire.append((0, reject))  # the refusal is duplicated on the wire
    pair.deliver_one()
    pair.act(0, lambda m: m.propose((Transfer(ETH, 3),), NOW))
    assert isinstance(decode_message(pair.wire[-1][1]), Propose)
    # The old duplicate Reject is first on the wire: it arrives before the new proposal.
    pair.deliver_all()
    assert pair.settled() and pair.alice.machine.state.version == 1
    assert pair.alice.machine.state.free(ETH) == (997, 1003)
    assert_no_failure_of_a_state_the_peer_signed(pair)


def test_a_refusal_recorded_up_to_a_later_attempt_lets_the_next_proposal_past_it_at_once() -> None:
    """Bob recorded attempts up to 5 at version 1 as refused (a proposal numbered 5 came
    over Alice's link, its Reject lost: her own node gone wrong, or a test's mutant). A
    copy of Alice's proposal, numbered 0, is then refused with the recorded bound, and her
    next proposal goes past it at once, not one round trip per refused attempt (found by
    tests/circuit/test_receive_fuzz.py, whose mutants made Bob refuse attempts that Alice
    needed more than three tries to get past)."""
    pair = opened()
    pair.act(0, lambda m: m.propose((AddHtlc(FAR),), NOW))
    ((_, raw),) = pair.wire
    proposal = decode_message(raw)
    assert isinstance(proposal, Propose) and proposal.attempt == 0
    pair.wire.insert(0, (1, encode_message(msgspec.structs.replace(proposal, attempt=5))))
    pair.deliver_one(now=NOW - 3600)  # numbered 5: refused (the lead is too long)
    lost = pair.wire.pop()  # its Reject never reaches Alice
    assert isinstance(decode_message(lost[1]), Reject)
    pair.deliver_one()  # her own copy, numbered 0: refused again, up to attempt 5
    ((_, raw_reject),) = pair.wire
    reject = decode_message(raw_reject)
    assert isinstance(reject, Reject) and (reject.code, reject.attempt) == ("already_refused", 5)
    pair.deliver_all()
    pair.act(0, lambda m: m.propose((Transfer(ETH, 3),), NOW))
    pair.deliver_all()
    assert pair.settled() and pair.alice.machine.state.version == 1
    assert pair.alice.machine.state.free(ETH) == (997, 1003)
    assert_no_failure_of_a_state_the_peer_signed(pair)
