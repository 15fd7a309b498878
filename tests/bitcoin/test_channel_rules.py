"""Issue 12, item 8: a state whose commitment cannot be mined is never signed.

When every amount of a Bitcoin commitment goes to fees, dust or trimmed HTLCs the commitment
has no output: no block may contain it, so the state could never be enforced. The backend
declares BOLT 2/3's rules (dust limit, 1% channel reserve, the funder's fee, HTLC trimming)
and the core refuses any state that breaks them before a signature leaves, with a code that
says which rule; the Bitcoin authority itself meets a zero-output commitment only as a typed
error, never as a bare ``AssertionError``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

import pytest
from bitcoin.core import CMutableTransaction
from chenilles_bitcoin.accounts import BitcoinAccount
from chenilles_bitcoin.authority import BitcoinAuthority
from chenilles_bitcoin.backend import BitcoinBackend
from chenilles_bitcoin.bolt3 import CommitmentTx, NoOutputError, weight
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chenilles_hub.core import (
    AddHtlc,
    ChannelError,
    ChannelMachine,
    ChannelState,
    FailHtlc,
    Propose,
    Reject,
    SettleHtlc,
    Transfer,
    Update,
    decode_message,
    encode_message,
)

from .test_backend_harness import BTC, Channel, fresh_backend

pytestmark = [pytest.mark.bitcoin, pytest.mark.adversarial]

RULE_CODES = {"channel_reserve", "commitment_fee", "unmineable"}


@pytest.fixture(name="backend", scope="module")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


@pytest.fixture(name="accounts", scope="module")
def _accounts(backend: BitcoinBackend) -> tuple[BitcoinAccount, BitcoinAccount]:
    return backend.create_account(), backend.create_account()


class ForgingAuthority(BitcoinAuthority):
    """A cheating peer's signer: it signs commitments the honest code refuses to build,
    those without any output (the transaction the victim would rebuild, so the signature
    is exactly what an older, unprotected victim accepted)."""

    def _commitment(self, owner: int, state: ChannelState, point: bytes) -> CommitmentTx:
        try:
            return super()._commitment(owner, state, point)
        except ChannelError:
            rules = dataclasses.replace(self.view.policy, dust_limit_sat=0)
            view = type(self.view)(self.view.params, rules)
            view.use_policy(rules)  # over the policy the opener's key carries
            built = view.commitment(owner, state, point, self.secrets)
            # No outputs: its transaction (built from them) and what is signed have none.
            return dataclasses.replace(built, outputs=[])


def cheat(channel: Channel, index: int) -> ChannelMachine:
    """Participant ``index`` as a cheater: no rules, and a signer that signs anything."""
    honest = channel.machines[index]
    real = honest._authority
    assert isinstance(real, BitcoinAuthority)
    forging = ForgingAuthority(real.view, real.secrets, index, real.record, real._expiry_image)
    cheater = ChannelMachine(
        channel.params, channel.channel_id, index, forging, honest.initial, policy=honest._policy
    )
    cheater.restore(honest.snapshot())
    return cheater


def deliver_refused(channel: Channel, victim: int, message: Propose) -> Reject:
    """The victim's machine receives the cheater's proposal over the wire's codec: refused,
    nothing signed, and the Reject it sends back names the rule."""
    machine = channel.machines[victim]
    latest = machine.latest
    received = decode_message(encode_message(message))
    with pytest.raises(ChannelError) as caught:
        machine.receive(received, channel.backend.now())
    effects = machine.rejection(received, caught.value)
    assert machine.latest == latest and machine.awaiting_ack is None
    sent = [decode_message(encode_message(e.message)) for e in effects if hasattr(e, "message")]
    assert len(sent) == 1 and isinstance(sent[0], Reject), sent
    assert sent[0].code == caught.value.code
    return sent[0]


def proposal_of(effects: list) -> Propose:  # type: ignore[type-arg]
    (message,) = [e.message for e in effects if isinstance(getattr(e, "message", None), Propose)]
    return message


def test_a_channel_too_small_for_any_output_never_signs_version_0(
    backend: BitcoinBackend,
) -> None:
    """1,100 sat: the 724 sat fee leaves the funder 376 sat, below the 546 sat dust limit:
    the commitment would have no output. Issue 12 saw this signed."""
    channel = Channel.create(backend, (1_100, 0))
    with pytest.raises(ChannelError) as caught:
        channel.machines[0].open()
    assert caught.value.code in RULE_CODES
    assert channel.machines[0].latest is None and channel.machines[0].pending is None
    # A cheating opener proposes it anyway: the acceptor refuses before signing.
    message = proposal_of(cheat(channel, 0).open())
    reject = deliver_refused(channel, 1, message)
    assert reject.code in RULE_CODES


def test_a_peer_proposing_an_unmineable_commitment_is_refused(backend: BitcoinBackend) -> None:
    """1,300 sat channel: the funder keeps 576 sat after the fee (an output). Paying 31 sat
    leaves 545 and 31 sat: both dust, no output at all. A cheating funder signs it anyway
    (with a signer that builds the output-less commitment); Bob must refuse it."""
    channel = Channel.create(backend, (1_300, 0))
    channel.open()
    with pytest.raises(ChannelError) as caught:
        channel.machines[0].propose((Transfer(BTC, 31),), backend.now())
    assert caught.value.code in RULE_CODES
    message = proposal_of(cheat(channel, 0).propose((Transfer(BTC, 31),), backend.now()))
    reject = deliver_refused(channel, 1, message)
    assert reject.code in RULE_CODES
    channel.update(0, Transfer(BTC, 30))  # 546 sat left after the fee: still an output
    assert channel.latest().state.free(BTC) == (1_270, 30)


def test_a_payment_eating_into_the_reserve_is_refused_with_its_code(
    backend: BitcoinBackend,
) -> None:
    """1,000,000 sat: each side keeps 10,000 sat (1%) once it has them."""
    channel = Channel.create(backend, (1_000_000, 0))
    channel.open()
    alice, bob = channel.machines
    before = alice.snapshot()
    with pytest.raises(ChannelError) as caught:  # 995,000: the funder would keep 4,276
        alice.propose((Transfer(BTC, 995_000),), backend.now())
    assert caught.value.code == "channel_reserve"
    assert alice.snapshot() == before
    channel.update(0, Transfer(BTC, 5_000))  # Bob starts below his reserve: he may fill up
    with pytest.raises(ChannelError) as caught:  # but not drain further below it
        bob.propose((Transfer(BTC, 1_000),), backend.now())
    assert caught.value.code == "channel_reserve"
    # A cheating Bob proposes it anyway (the state is mineable, his signer signs it).
    message = proposal_of(cheat(channel, 1).propose((Transfer(BTC, 1_000),), backend.now()))
    reject = deliver_refused(channel, 0, message)
    assert reject.code == "channel_reserve"
    assert channel.latest().state.free(BTC) == (995_000, 5_000)
    channel.update(0, Transfer(BTC, 20_000))
    channel.update(1, Transfer(BTC, 15_000))  # above the reserve: he may spend down to it
    assert channel.latest().state.free(BTC) == (990_000, 10_000)


def test_the_authority_meets_no_output_less_commitment_as_a_bare_assertion(
    backend: BitcoinBackend,
) -> None:
    channel = Channel.create(backend, (1_100, 0))
    authority = channel.machines[0]._authority
    assert isinstance(authority, BitcoinAuthority)
    state = channel.machines[0].initial
    with pytest.raises(ChannelError) as caught:
        authority.sign(channel.params, state, None)
    assert caught.value.code == "unmineable"
    with pytest.raises(NoOutputError):
        weight(CMutableTransaction([], []))


# --- property: every state the machines accept builds a commitment that can be mined ------


@st.composite
def bitcoin_updates(draw):  # type: ignore[no-untyped-def]
    """A proposer and an update: transfers of any size, HTLCs around the trim thresholds
    (1,209 and 1,249 sat at 1,000 sat/kw), settles and fails."""
    proposer = draw(st.integers(0, 1))
    kind = draw(st.sampled_from(["transfer", "transfer", "add", "add", "settle", "fail"]))
    if kind == "transfer":
        return proposer, ("transfer", draw(st.integers(1, 60_000)))
    if kind == "add":
        amount = draw(st.sampled_from([1, 545, 546, 1_208, 1_209, 1_248, 1_249, 5_000, 40_000]))
        return proposer, ("add", amount)
    return proposer, (kind, draw(st.integers(0, 7)))


def _update(channel: Channel, proposer: int, op: tuple[str, int], seq: int) -> Update | None:
    kind, value = op
    if kind == "transfer":
        return Transfer(BTC, value)
    if kind == "add":
        htlc, _ = channel.htlc(seq, payer=proposer, amount=value)
        return AddHtlc(htlc)
    state = channel.machines[proposer].state
    htlcs = [h for h in state.htlcs if h.payer != proposer]  # the payee settles or fails
    if not htlcs:
        return None
    htlc = htlcs[value % len(htlcs)]
    if kind == "fail":
        return FailHtlc(htlc.id)
    return SettleHtlc(htlc.id, hashlib.sha256(b"preimage" + htlc.id.to_bytes(8, "big")).digest())


def _assert_mineable(channel: Channel, state: ChannelState) -> None:
    for owner, machine in enumerate(channel.machines):
        authority = machine._authority
        assert isinstance(authority, BitcoinAuthority)
        point = authority.secrets.commitment_point(state.version)
        tx = authority.view.commitment(owner, state, point, authority.secrets)
        assert len(tx.outputs) >= 1, f"version {state.version}: no output for {owner}"
        assert weight(tx.tx) > 0


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    deposit=st.integers(1_000, 120_000),
    ops=st.lists(bitcoin_updates(), min_size=1, max_size=12),
)
def test_every_accepted_bitcoin_state_has_a_commitment_that_can_be_mined(
    backend: BitcoinBackend,
    accounts: tuple[BitcoinAccount, BitcoinAccount],
    deposit: int,
    ops: list[tuple[int, tuple[str, int]]],
) -> None:
    nonce = hashlib.sha256(f"{deposit} {ops}".encode()).digest()
    channel = Channel.create(backend, (deposit, 0), accounts=accounts, nonce=nonce)
    try:
        channel.open()
    except ChannelError as error:
        assert error.code in RULE_CODES  # too small to mine: refused, never signed
        assert channel.machines[0].latest is None
        return
    _assert_mineable(channel, channel.latest().state)
    for seq, (proposer, op) in enumerate(ops):
        update = _update(channel, proposer, op, seq)
        if update is None:
            continue
        machine = channel.machines[proposer]
        before = machine.snapshot()
        try:
            effects = machine.propose((update,), backend.now())
        except ChannelError:
            assert machine.snapshot() == before
            continue
        channel.run(proposer, effects)
        channel.pump()
        assert not channel.errors, channel.errors
        _assert_mineable(channel, channel.latest().state)
        assert channel.machines[0].latest == channel.machines[1].latest


def test_htlcs_too_small_for_an_output_are_capped_at_the_nodes_dust_exposure(
    backend: BitcoinBackend,
    accounts: tuple[BitcoinAccount, BitcoinAccount],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 1,000 sat/kw an HTLC below 1,249 sat has no output in one commitment or both:
    mined, its value goes to fees. With a cap of 2,500 sat, a third 1,200 sat HTLC is not
    offered, and a peer with no cap that proposes it anyway is refused; an HTLC with outputs
    of its own does not count."""
    monkeypatch.setattr(backend, "max_dust_exposure_sat", 2_500)
    channel = Channel.create(backend, (1_000_000, 0), accounts=accounts, nonce=b"\x09" * 32)
    channel.open()
    alice = channel.machines[0]
    for seq in range(2):
        htlc, _ = channel.htlc(seq * 2, payer=0, amount=1_200)
        channel.update(0, AddHtlc(htlc))
    third, _ = channel.htlc(4, payer=0, amount=1_200)
    before = alice.snapshot()
    with pytest.raises(ChannelError) as caught:
        alice.propose((AddHtlc(third),), backend.now())
    assert caught.value.code == "dust_exposure"
    assert alice.snapshot() == before
    big, _ = channel.htlc(6, payer=0, amount=5_000)
    channel.update(0, AddHtlc(big))
    assert len(channel.latest().state.htlcs) == 3
    message = proposal_of(cheat(channel, 0).propose((AddHtlc(third),), backend.now()))
    assert deliver_refused(channel, 1, message).code == "dust_exposure"
