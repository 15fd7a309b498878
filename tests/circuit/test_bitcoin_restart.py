"""A Bitcoin node must be able to punish and to collect after any restart.

On Bitcoin a revoked commitment can only be punished with the peer's revocation secret, and
a commitment (revoked or not) can only be read with what the node learnt while signing (the
peer's per-commitment points, the HTLC sets of past versions). That memory is the backend's
per-channel *record*; these tests kill the honest node (nothing unsent leaves, the store is
closed as a ``kill -9`` leaves it), rebuild it from its SQLite store on a *fresh*
``BitcoinBackend`` over the same kernel-validated chain, and let the peer cheat or close.

Bob opens and funds 1,000,000 sat, pays Alice 100,000 (version 1: 900,000 / 100,000), then
300,000 more (version 2: 600,000 / 400,000). Alice is the node that restarts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chenilles_bitcoin.accounts import BitcoinAccount
from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend
from chenilles_bitcoin.commitments import ChannelPolicy
from chenilles_bitcoin.watch import parse_tx

from chenilles_hub.core import Asset, Propose, SettleHtlc, SignedState
from chenilles_hub.node.hub.forwarding import FeePolicy, ForwardingPolicy
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.net import wire
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World, plan

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial, pytest.mark.bitcoin]

CHALLENGE = 6 * 3600  # 36 blocks of to_self_delay
DEPOSIT = 1_000_000


class Scene:
    def __init__(self, tmp_path: Path) -> None:
        self.backend = embedded_backend()
        self.chain = self.backend.chain
        self.btc = Asset(self.chain, "native")
        self.world = World({self.chain: self.backend}, self.backend)
        self.path = tmp_path / "alice.sqlite"
        self.store = SQLiteStore(self.path)
        self.alice = self.world.node("alice", [self.chain], store=self.store)
        self.bob = self.world.node("bob", [self.chain])
        self.channel_id = self.world.open(
            self.bob, self.alice, self.chain, {self.btc: (DEPOSIT, 0)}, CHALLENGE
        )
        self.world.sync()
        self.v1 = self.pay(100_000)
        self.v2 = self.pay(300_000)
        assert self.v2.state.free(self.btc) == (600_000, 400_000)

    def pay(self, amount: int) -> SignedState:
        self.bob.pay_direct(self.channel_id, self.btc, amount)
        self.world.network.run()
        latest = self.bob.channels[self.channel_id].machine.latest
        assert latest is not None and latest == self.alice.channels[self.channel_id].machine.latest
        return latest

    def bob_pays_alice(self, amount: int) -> Any:
        """An invoice of Alice's, paid by Bob over the channel (the payment under way)."""
        invoice = self.alice.invoice(amount, self.btc)
        route = [(self.alice, self.channel_id)]
        hops = plan(self.world, self.bob, route, amount, self.btc, self.alice.final_lead(self.btc))
        self.bob.pay_route(invoice, hops)
        return invoice

    def kill_alice(self) -> None:
        """``kill -9``: what Alice had not sent is lost, her store is left as it is."""
        account = self.alice.accounts[self.chain]
        self.wallet_at_kill = self.alice.backends[self.chain].balance(account, self.btc)
        self.alice.outbox.clear()
        self.world.network.silence(self.alice)
        self.store.close()

    def restart_alice(self, policy: ChannelPolicy | None = None) -> BitcoinBackend:
        """Alice's process again: her store, her keys, and a backend that remembers nothing
        but what the chain shows (same chain, same chain clock). ``policy``: the fee policy
        her operator configured for this start, if not the one before."""
        fresh = BitcoinBackend(
            self.backend.ledger,
            chain=self.chain,
            policy=policy or self.backend.policy,
            auto_mine=True,
            height_clock=True,
        )
        fresh._anchor = self.backend._anchor  # one chain, one clock
        old = self.alice.accounts[self.chain]
        assert isinstance(old, BitcoinAccount)
        self.store = SQLiteStore(self.path)
        reborn = Node(
            identity=self.alice.identity,
            backends={self.chain: fresh},
            accounts={self.chain: fresh.create_account(fund=False, secret=old.secret)},
            clock=self.world.now,
            name="alice",
            store=self.store,
        )
        reborn.restore()
        self.world.network.add(reborn)
        self.world.network.revive(reborn)
        self.alice = reborn
        self.world.backends[self.chain] = fresh  # the chain's events now reach us through it
        return fresh

    def alice_received(self) -> int:
        """Satoshi the chain paid to Alice's wallet since she was killed (her wallet finds
        its coins on the chain: what she held before, plus what her node swept since)."""
        account = self.alice.accounts[self.chain]
        return self.alice.backends[self.chain].balance(account, self.btc) - self.wallet_at_kill

    def bob_account(self) -> BitcoinAccount:
        account = self.bob.accounts[self.chain]
        assert isinstance(account, BitcoinAccount)
        return account

    def close(self) -> None:
        self.store.close()
        close = getattr(self.backend.ledger, "close", None)
        if close is not None:
            close()


@pytest.fixture(name="scene")
def _scene(tmp_path: Path):  # type: ignore[no-untyped-def]
    scene = Scene(tmp_path)
    try:
        yield scene
    finally:
        scene.close()


def _outputs(backend: BitcoinBackend, txid: str) -> list[int]:
    raw = backend.ledger.get_raw_tx(txid)
    assert raw is not None
    return [int(o.nValue) for o in parse_tx(raw).vout]


def _penalised(scene: Scene, cheat_txid: str) -> None:
    """The justice transaction took every output of the revoked commitment."""
    commitment = sum(_outputs(scene.backend, cheat_txid))
    assert commitment > 990_000  # the funding less the commitment's fee
    challenges = [
        r for r in scene.alice.channels[scene.channel_id].receipts if r.operation == "challenge"
    ]
    assert len(challenges) == 1, "\n".join(scene.alice.journal[-10:])
    assert scene.alice_received() == commitment - challenges[0].fee
    # Bob's own sweep of the revoked commitment finds nothing left
    bob_backend = scene.bob.backends[scene.chain]
    assert (
        bob_backend.conclude(scene.bob.channels[scene.channel_id].params, scene.bob_account()).txid
        == ""
    )


def test_a_restarted_node_punishes_an_old_commitment_published_after_the_restart(
    scene: Scene,
) -> None:
    scene.kill_alice()
    scene.restart_alice()
    params = scene.bob.channels[scene.channel_id].params
    cheat = scene.bob.backends[scene.chain].register(params, scene.v1, scene.bob_account())
    scene.world.sync()
    _penalised(scene, cheat.txid)


def test_a_restarted_node_punishes_an_old_commitment_published_while_it_was_down(
    scene: Scene,
) -> None:
    scene.kill_alice()
    params = scene.bob.channels[scene.channel_id].params
    cheat = scene.bob.backends[scene.chain].register(params, scene.v1, scene.bob_account())
    scene.backend.mine(10)  # ten blocks go by before Alice is back (the CSV delay is 36)
    scene.restart_alice()
    scene.world.sync()  # her first poll of the chain shows what happened meanwhile
    _penalised(scene, cheat.txid)


def test_the_peers_honest_unilateral_close_pays_a_restarted_node_exactly_its_balance(
    scene: Scene,
) -> None:
    scene.kill_alice()
    scene.restart_alice()
    params = scene.bob.channels[scene.channel_id].params
    close = scene.bob.backends[scene.chain].register(params, scene.v2, scene.bob_account())
    assert 400_000 in _outputs(scene.backend, close.txid)  # the funder paid the fee
    scene.world.sync()
    scene.world.advance(CHALLENGE + 1200)  # past Bob's CSV delay: Alice's watcher concludes
    scene.world.sync()
    withdrawals = [
        r
        for r in scene.alice.channels[scene.channel_id].receipts
        if r.operation == "withdraw" and r.txid
    ]
    assert len(withdrawals) == 1, "\n".join(scene.alice.journal[-10:])
    assert scene.alice_received() == 400_000 - withdrawals[0].fee
    assert scene.alice.channels[scene.channel_id].status == "closed"


def test_a_node_restarted_with_another_fee_policy_keeps_each_channel_on_its_own(
    scene: Scene,
) -> None:
    """Found reading the fee options: a Bitcoin channel's commitments and HTLC transactions
    are built from the backend's fee policy (feerate, dust limit), which both sides must
    share, and it was read from the node's configuration at every start. An operator who
    raised ``feerate_per_kw`` and restarted left every open channel unenforceable: the
    node's commitments no longer matched the peer's signatures, so no payment went through
    and a forced close had nothing valid to broadcast. A channel now keeps the policy it
    was opened with (its record); the new one is for channels opened after."""
    scene.kill_alice()
    scene.restart_alice(ChannelPolicy(feerate_per_kw=2_500, dust_limit_sat=1_000))
    scene.world.sync()
    v3 = scene.pay(10_000)  # both sides still sign and verify the same commitments
    assert v3.version == scene.v2.version + 1
    alice = scene.alice.channels[scene.channel_id]
    scene.alice.force_close(scene.channel_id)
    for _ in range(50):  # the to_self_delay (36 blocks), then her sweep
        scene.world.advance(600)
    journal = "\n".join(scene.alice.journal[-10:])
    assert alice.status == "closed", journal
    # her balance less her sweep's fee (the commitment's fee was the funder's, Bob's)
    fees = sum(r.fee for r in alice.receipts if r.operation != "fund" and not r.fee_from_channel)
    assert scene.alice_received() == 410_000 - fees, journal


@pytest.mark.parametrize("feerate", [2_500, 80_000])
def test_a_restarted_node_punishes_an_old_commitment_published_with_another_fee_policy(
    scene: Scene, feerate: int
) -> None:
    """The penalty races Bob's delayed output: it pays the feerate configured now, the
    higher of the two (the channel keeps its own for the commitments both sign); where
    that passes the fee cap (80,000 sat/kw: some 60,000 sat against 50,000), the
    channel's (found by review: the penalty was refused on every block)."""
    scene.kill_alice()
    scene.restart_alice(ChannelPolicy(feerate_per_kw=feerate, dust_limit_sat=1_000))
    params = scene.bob.channels[scene.channel_id].params
    cheat = scene.bob.backends[scene.chain].register(params, scene.v1, scene.bob_account())
    scene.world.sync()
    _penalised(scene, cheat.txid)
    (penalty,) = [
        r for r in scene.alice.channels[scene.channel_id].receipts if r.operation == "challenge"
    ]
    paid = 2_500 if feerate == 2_500 else 1_000  # the channel's: 80,000 passes the cap
    assert paid * penalty.cost // 1000 <= penalty.fee < paid * (penalty.cost + 20) // 1000


def test_a_restarted_node_punishes_an_old_commitment_that_carried_an_htlc(scene: Scene) -> None:
    """The HTLC output of a revoked commitment is only recognised (and taken) with the
    version's HTLC set: the record's append-only ``htlcs/<version>`` part."""
    invoice = scene.bob_pays_alice(50_000)

    def htlc_signed() -> bool:
        latest = scene.bob.channels[scene.channel_id].machine.latest
        return latest is not None and bool(latest.state.htlcs)

    assert scene.world.network.run_until(htlc_signed)
    with_htlc = scene.bob.channels[scene.channel_id].machine.latest
    assert with_htlc is not None
    scene.world.network.run()
    assert invoice.payment_hash in scene.alice.paid_invoices
    scene.kill_alice()
    scene.restart_alice()
    params = scene.bob.channels[scene.channel_id].params
    cheat = scene.bob.backends[scene.chain].register(params, with_htlc, scene.bob_account())
    assert len(_outputs(scene.backend, cheat.txid)) == 3  # to_local, to_remote, the HTLC
    scene.world.sync()
    _penalised(scene, cheat.txid)


def test_at_every_message_boundary_the_store_holds_the_revocations_its_states_rely_on(
    scene: Scene,
) -> None:
    """A crash may come between any two messages. Whenever Alice's store holds a state
    ``v`` she no longer waits to be acked (the peer revoked ``v - 1`` to her), the same
    store holds that revocation: it was written in the transaction that wrote ``v``, before
    she sent anything."""
    from chenilles_bitcoin.record import ChannelRecord

    from chenilles_hub.node.hub.journal import RECORD_PREFIX

    bob, alice = scene.bob, scene.alice
    checked = 0

    def consistent() -> bool:
        nonlocal checked
        snapshot = scene.store.load_snapshot(scene.channel_id)
        assert snapshot is not None and snapshot.latest is not None
        version = snapshot.latest.state.version
        if version >= 1 and snapshot.awaiting_ack is None:
            prefix = f"{RECORD_PREFIX}{scene.channel_id.hex()}/"
            parts = {k.removeprefix(prefix): v for k, v in scene.store.settings_with_prefix(prefix)}
            record = ChannelRecord(1)
            record.load_parts(parts)
            assert record.revocation_secret(version - 1) is not None, version
            checked += 1
        return False  # never stop: check after every single message

    for payer, amount in [(bob, 1_000), (alice, 500), (bob, 2_000), (alice, 1)] * 3:
        payer.pay_direct(scene.channel_id, scene.btc, amount)
        scene.world.network.run_until(consistent)
    assert checked >= 12


class Killed(BaseException):
    """The process dies here (BaseException: no handler of the node's catches it)."""


def _kill_alice_right_after(scene: Scene, method: str) -> None:
    """Let the chain's time pass until Alice's backend ``method`` sends its transaction,
    kill her right after it (before the checkpoint that would record it), restart her."""
    backend = scene.alice.backends[scene.chain]
    original = getattr(backend, method)
    sent: list[Any] = []

    def then_die(*args: Any) -> Any:
        sent.append(original(*args))
        raise Killed

    setattr(backend, method, then_die)
    with pytest.raises(Killed):
        for _ in range(400):
            scene.world.advance(600)
    assert sent and sent[0].txid
    scene.kill_alice()
    scene.restart_alice()


def test_a_node_killed_right_after_registering_still_claims_its_htlc(scene: Scene) -> None:
    """Found by review: Bob owes Alice a 50,000 sat HTLC whose preimage she revealed, and
    never settles it. At its deadline Alice registers her commitment, and is killed right
    after the broadcast, before the checkpoint of that tick. Her record had noted the
    registration in memory only, so after the restart every claim of the HTLC on her
    commitment failed ("our signed state is not known: register it first") until Bob took
    it back by its timeout. Now the registration the chain shows is noted again, and the
    claim the watcher had decided (not yet taken) is taken."""
    scene.bob_pays_alice(50_000)

    def alice_settles() -> bool:
        return any(
            isinstance(m, Propose) and any(isinstance(u, SettleHtlc) for u in m.updates)
            for m in (wire.decode(data) for _peer, data in scene.alice.outbox)
        )

    assert scene.world.network.run_until(alice_settles)
    scene.world.network.silence(scene.bob)  # Bob never answers the settle
    scene.alice.outbox.clear()
    _kill_alice_right_after(scene, "register")  # at the HTLC's deadline, hours later
    for _ in range(60):
        scene.world.advance(600)
    claims = [
        r
        for r in scene.alice.channels[scene.channel_id].receipts
        if r.operation == "claim_htlc" and r.txid
    ]
    assert len(claims) == 1, "\n".join(scene.alice.journal[-10:])


def test_a_registration_a_reorg_took_back_does_not_make_the_node_close_at_once(
    scene: Scene,
) -> None:
    """Found by review: the chain reports Bob's registration of the latest version, and a
    reorg takes it back before Alice's node handles the report (one batch of events, as a
    node that polls after both sees them), and nobody sends it again. The node asked
    ``register`` again, to note a registration of its own; with nothing on the chain any
    more, that broadcast Alice's commitment at once. Now it asks the backend only to note
    a registration (``note_registration``), which never sends anything.

    Found then: the watcher, told of the registration, waited out its period and tried to
    conclude on every block after, failing ("no commitment on-chain"), the channel stuck
    in dispute with its funds until an operator forced a close. Now a conclusion that
    finds nothing registered (``NotRegistered``) registers our latest state, which finishes
    the close the registration started: Alice is paid her balance."""
    scene.kill_alice()
    alices = scene.restart_alice()  # her own backend: Bob's does not poll for her
    bob = scene.bob.channels[scene.channel_id]
    registered = scene.backend.register(bob.params, scene.v2, scene.bob_account())
    assert alices.ledger.get_tx_confirmations(registered.txid) == 1  # mined at once
    seen = alices.poll_events()
    alices.ledger.reorg(1, exclude=[registered.txid])  # and taken back
    seen += alices.poll_events()
    assert {type(e).__name__ for e in seen} >= {"Registered", "Reorged"}
    scene.world.network.silence(scene.bob)  # Bob is gone
    scene.alice.on_chain_events(scene.chain, seen)
    scene.alice.tick()
    scene.alice.checkpoint()
    alice = scene.alice.channels[scene.channel_id]
    context = alices.context(alice.params, alice.me, alice.account)
    for _ in range(3):
        scene.world.advance(600)
    assert alices._closing_spend(context) is None, "\n".join(scene.alice.journal[-12:])
    for _ in range(80):  # Bob's period, then Alice's own
        scene.world.advance(600)
    journal = "\n".join(scene.alice.journal[-12:])
    registrations = [r for r in alice.receipts if r.operation == "register" and r.txid]
    assert len(registrations) == 1, journal
    assert alice.status == "closed", journal
    assert 400_000 in _outputs(alices, registrations[0].txid)  # the funder, Bob, paid its fee
    sweeps = sum(r.fee for r in alice.receipts if r.operation != "register")
    assert scene.alice_received() == 400_000 - sweeps, journal


def test_a_registration_asked_again_while_it_waits_to_be_mined_is_sent_once(
    scene: Scene,
) -> None:
    """Found by review: a node whose conclusion finds nothing registered registers again
    on every block until its registration is mined; on a chain that mines when it
    pleases, each call broadcast it again and booked its fee again."""
    backend = scene.backend
    backend.auto_mine = False  # the registration waits in the mempool
    params = scene.bob.channels[scene.channel_id].params
    first = backend.register(params, scene.v2, scene.bob_account())
    again = backend.register(params, scene.v2, scene.bob_account())
    assert first.txid and first.fee > 0
    assert (again.txid, again.fee) == ("", 0)
    backend.advance_time(600)
    assert backend.ledger.get_tx_confirmations(first.txid) == 1


def test_an_htlc_refund_tried_while_the_commitment_waits_to_be_mined_is_tried_again(
    scene: Scene,
) -> None:
    """Found by review: at an HTLC's deadline the watcher forces the channel on-chain and
    refunds the HTLC in the same tick. Against a chain that mines when it pleases (bitcoind),
    the commitment is still in the mempool then, so the refund (an HTLC-timeout spending
    it) is refused, "register first"; the node took that for "the conclusion refunds it"
    (true on EVM and Solana) and never tried again. On Bitcoin nothing else refunds it: the
    peer, who knows the preimage, could take the HTLC while our node failed the payment
    upstream. Now a refund the chain cannot take yet (``NotRegistered``) is tried again on
    the next block."""
    _alice_knows_and_keeps_the_preimage(scene)
    scene.backend.auto_mine = False  # blocks come when they come
    for _ in range(400):  # hours of chain time, past the HTLC's deadline
        scene.world.advance(600)
        bob = scene.bob.channels[scene.channel_id]
        if any(r.operation == "refund_htlc" and r.txid for r in bob.receipts):
            break
    journal = "\n".join(scene.bob.journal[-10:])
    refunds = [r for r in bob.receipts if r.operation == "refund_htlc" and r.txid]
    assert len(refunds) == 1, journal
    (payment,) = scene.bob.payment_flow.payments.values()
    assert payment.status == "pending"  # failed upstream only once the refund is mined
    scene.world.advance(600)
    assert scene.backend.ledger.get_tx_confirmations(refunds[0].txid) == 1
    scene.world.advance(600)
    assert payment.status == "failed"
    assert len([r for r in bob.receipts if r.operation == "refund_htlc" and r.txid]) == 1


def _alice_settles_unheard(scene: Scene, amount: int = 50_000) -> None:
    """Bob pays Alice ``amount`` sat and she learns the preimage, but her settle never
    reaches Bob."""
    scene.bob_pays_alice(amount)

    def alice_settles() -> bool:
        return any(
            isinstance(m, Propose) and any(isinstance(u, SettleHtlc) for u in m.updates)
            for m in (wire.decode(data) for _peer, data in scene.alice.outbox)
        )

    assert scene.world.network.run_until(alice_settles)
    scene.alice.outbox.clear()


def _alice_knows_and_keeps_the_preimage(scene: Scene, amount: int = 50_000) -> None:
    """``_alice_settles_unheard``, and she goes silent (no messages, no chain)."""
    _alice_settles_unheard(scene, amount)
    scene.world.network.silence(scene.alice)


def _bob_holds_an_htlc_alice_never_settles(scene: Scene, amount: int) -> tuple[Any, Any, Any]:
    """``_alice_knows_and_keeps_the_preimage``: Bob's channel, his HTLC to Alice, and his
    payment of it."""
    _alice_knows_and_keeps_the_preimage(scene, amount)
    bob = scene.bob.channels[scene.channel_id]
    latest = bob.machine.latest
    assert latest is not None
    (htlc,) = latest.state.htlcs
    return bob, htlc, scene.bob.payment_flow.payments[htlc.payment_hash]


def test_an_htlc_whose_deadline_comes_after_the_dispute_is_refunded_not_given_up(
    scene: Scene,
) -> None:
    """Found by review: Bob forces the channel on-chain while his HTLC to Alice has hours
    to run (the operator's close, or another HTLC's deadline). His dispute's period (36
    blocks) ended before the HTLC's expiry; the conclusion then counted the HTLC as
    refunded, as it is on EVM and Solana, where the conclusion pays every HTLC: Bob's
    payment failed (a hub fails it upstream), while on Bitcoin the HTLC was still an
    output Alice could take with the preimage, and the watcher forgot its refund. Now the
    dispute stays open until the refund, at the HTLC's expiry."""
    bob, htlc, payment = _bob_holds_an_htlc_alice_never_settles(scene, 50_000)
    assert htlc.expiry > scene.world.now() + CHALLENGE + 3600  # due well after the period
    before = scene.backend.balance(scene.bob_account(), scene.btc)
    scene.bob.force_close(scene.channel_id)
    period_over = scene.world.now() + CHALLENGE + 1800
    while scene.world.now() < period_over:  # the period ends; the HTLC runs on
        scene.world.advance(600)
    assert not [r for r in bob.receipts if r.operation == "refund_htlc"]
    journal = "\n".join(scene.bob.journal[-10:])
    assert payment.status == "pending", journal
    assert bob.status == "disputed" and "HTLCs still to take" in bob.waiting, journal
    for _ in range(80):  # its expiry, the refund, and the refund's own delay
        scene.world.advance(600)
    journal = "\n".join(scene.bob.journal[-10:])
    refunds = [r for r in bob.receipts if r.operation == "refund_htlc" and r.txid]
    assert len(refunds) == 1, journal
    assert payment.status == "failed", journal
    assert bob.status == "closed", journal
    fees = sum(r.fee for r in bob.receipts if r.operation != "fund")
    # Bob funded 1,000,000; he had paid Alice 400,000 before; the HTLC came back
    assert scene.backend.balance(scene.bob_account(), scene.btc) == before + 600_000 - fees


def test_a_dispute_whose_outputs_have_not_matured_shows_a_wait_not_an_error(
    scene: Scene,
) -> None:
    """Found by review: after Bob's refund, the refund's own output (HTLC-timeout's, CSV
    delayed) matures 36 blocks later. Until then the node asked for its sweep on every
    block, the chain refused it ("non-BIP68-final"), and the channel showed a failed
    conclusion as its last error for six hours of an ordinary dispute. The backend now
    says it is not yet time (``NotYet``): the channel says what it waits for, and no
    error."""
    bob, _htlc, payment = _bob_holds_an_htlc_alice_never_settles(scene, 50_000)
    scene.bob.force_close(scene.channel_id)

    def refunded() -> bool:
        return any(r.operation == "refund_htlc" and r.block for r in bob.receipts)

    for _ in range(120):
        if refunded():
            break
        scene.world.advance(600)
    assert refunded() and payment.status == "failed"
    for _ in range(10):  # a few blocks into the refund's own delay
        scene.world.advance(600)
    journal = "\n".join(scene.bob.journal[-10:])
    assert bob.status == "disputed", journal
    assert bob.last_error == "", bob.last_error
    assert "mature" in bob.waiting, bob.waiting
    for _ in range(40):
        scene.world.advance(600)
    journal = "\n".join(scene.bob.journal[-10:])
    assert bob.status == "closed" and bob.waiting == "", journal
    assert bob.last_error == "", bob.last_error


def test_an_htlc_paid_to_us_whose_deadline_comes_after_the_dispute_is_claimed(
    scene: Scene,
) -> None:
    """The other side of the same finding: Alice knows the preimage of Bob's HTLC, her
    settle never reaches him, and Bob registers his commitment long before the HTLC's
    deadline. Alice's dispute ended with its period; the watcher then stopped acting for
    the channel, so her claim, due later, was never made, and Bob could take the HTLC back
    at its expiry. Now her dispute stays open until she has claimed it."""
    _alice_settles_unheard(scene)
    scene.world.network.silence(scene.bob)  # Bob answers nothing, and does nothing more
    bob = scene.bob.channels[scene.channel_id]
    assert bob.machine.latest is not None
    scene.backend.register(bob.params, bob.machine.latest, scene.bob_account())
    alice = scene.alice.channels[scene.channel_id]
    account = scene.alice.accounts[scene.chain]
    before = scene.backend.balance(account, scene.btc)
    for _ in range(120):
        scene.world.advance(600)
    journal = "\n".join(scene.alice.journal[-10:])
    claims = [r for r in alice.receipts if r.operation == "claim_htlc" and r.txid]
    assert len(claims) == 1, journal
    assert alice.status == "closed", journal
    fees = sum(r.fee for r in alice.receipts if r.operation != "fund")
    assert scene.backend.balance(account, scene.btc) == before + 400_000 + 50_000 - fees


def test_a_dust_htlc_does_not_keep_the_dispute_open(scene: Scene) -> None:
    """Found by review of the fix above: an HTLC trimmed as dust has no output on the
    commitment; its refund can never be taken, and the dispute must not wait for it. The
    backend says so (``NothingToTake``): the payment fails (its value went to the fee),
    and the channel closes."""
    bob, _htlc, payment = _bob_holds_an_htlc_alice_never_settles(scene, 600)
    scene.bob.force_close(scene.channel_id)
    commitment = scene.backend.commitment_on_chain(bob.params, scene.bob_account())
    assert not [o for o in commitment.outputs if o.kind == "htlc"]  # trimmed
    for _ in range(120):
        scene.world.advance(600)
    journal = "\n".join(scene.bob.journal[-10:])
    assert payment.status == "failed", journal
    assert bob.status == "closed", journal


def test_a_node_killed_right_after_its_htlc_claim_left_ends_the_dispute(scene: Scene) -> None:
    """Found by review: Alice claims Bob's HTLC on-chain and is killed before the
    checkpoint after it. After the restart her claim was asked again on every block and
    refused ("already confirmed"), her dispute never ended and her balance on Bob's
    commitment was never collected. Now a claim the chain already holds is a no-op that
    says where it landed, and the dispute ends."""
    _alice_settles_unheard(scene)
    scene.world.network.silence(scene.bob)
    bob = scene.bob.channels[scene.channel_id]
    assert bob.machine.latest is not None
    scene.backend.register(bob.params, bob.machine.latest, scene.bob_account())
    _kill_alice_right_after(scene, "claim_htlc")
    for _ in range(40):
        scene.world.advance(600)
    alice = scene.alice.channels[scene.channel_id]
    journal = "\n".join(scene.alice.journal[-10:])
    assert alice.status == "closed", journal
    assert scene.alice_received() > 400_000 - 5_000, journal  # her balance, swept


def test_a_refunded_htlc_too_small_to_sweep_alone_does_not_keep_the_dispute_open(
    scene: Scene,
) -> None:
    """Found by review: a 1,500 sat HTLC refunded after the dispute's period leaves a
    second-stage output of a few hundred sat, swept alone (to_local went before): its
    sweep was dust and refused on every block, and the channel stayed disputed forever.
    An output that cannot pay for its own sweep is now left, as a trimmed HTLC is."""
    bob, _htlc, payment = _bob_holds_an_htlc_alice_never_settles(scene, 1_500)
    scene.bob.force_close(scene.channel_id)
    for _ in range(160):  # the period, the HTLC's expiry, the refund's own delay
        scene.world.advance(600)
    journal = "\n".join(scene.bob.journal[-10:])
    assert [r.operation for r in bob.receipts if r.txid].count("refund_htlc") == 1, journal
    assert payment.status == "failed", journal
    assert bob.status == "closed", journal


def test_a_hub_whose_upstream_dispute_ends_before_the_preimage_comes_still_claims() -> None:
    """Found by review: Alice pays Bob through a hub; Bob holds the preimage a while. Alice
    forces her channel with the hub on-chain, and its period ends while the forward is
    still open: the hub concluded, the watcher stopped acting for the channel, and the
    preimage Bob then gave the hub (a settle off-chain, paid by the hub) set a claim that
    was never made: Alice could take the HTLC back at its expiry, the hub out of pocket.
    Now the hub's dispute stays open while an incoming HTLC of it is forwarded."""
    backend = embedded_backend()
    try:
        world = World({backend.chain: backend}, backend)
        btc = Asset(backend.chain, "native")
        alice = world.node("alice", [backend.chain])
        hub = world.node("hub", [backend.chain], ForwardingPolicy(fees={btc: FeePolicy(base=7)}))
        bob = world.node("bob", [backend.chain])
        upstream = world.open(alice, hub, backend.chain, {btc: (DEPOSIT, 0)}, CHALLENGE)
        downstream = world.open(hub, bob, backend.chain, {btc: (DEPOSIT, 0)}, CHALLENGE)
        world.sync()
        invoice = bob.invoice(50_000, btc)
        route = [(hub, upstream), (bob, downstream)]
        alice.pay_route(invoice, plan(world, alice, route, 50_000, btc, invoice.final_lead))

        def bob_settles() -> bool:
            return any(
                isinstance(m, Propose) and any(isinstance(u, SettleHtlc) for u in m.updates)
                for m in (wire.decode(data) for _peer, data in bob.outbox)
            )

        assert world.network.run_until(bob_settles)
        held, bob.outbox = bob.outbox, []  # Bob's settle, delivered late
        alice.force_close(upstream)
        world.network.silence(alice)  # and Alice does nothing more
        end = world.now() + CHALLENGE + 1800  # two blocks past the period
        while world.now() < end:
            world.advance(600)
        for _peer, data in held:
            hub.receive(bob.node_id, data)
        world.network.run()
        for _ in range(120):  # past the HTLC's expiry
            world.advance(600)
        channel = hub.channels[upstream]
        journal = "\n".join(hub.journal[-12:])
        assert [r.operation for r in channel.receipts if r.txid].count("claim_htlc") == 1, journal
        assert channel.status == "closed", journal
    finally:
        getattr(backend.ledger, "close", lambda: None)()
