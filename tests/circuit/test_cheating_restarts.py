"""A cheating peer on every chain, against a victim that runs, restarted, or was down.

Bob opens a channel to Alice and funds it, then pays her twice: version 1, then version 2
(the latest, ``LATEST`` to Alice). Bob then goes to the chain behind her back, either with
the old version 1 (he cheats: he had more in it) or with version 2 (an honest unilateral
close). Alice, the victim, is

``running``
    her node sees it all as it happens;
``restarted``
    ``kill -9``'d and rebuilt from her SQLite store on a *fresh* backend instance over the
    same chain (what a new process has: her keys, her store, and the chain), before Bob
    publishes;
``down``
    killed before Bob publishes and back, on a fresh backend, a while later but within the
    challenge period.

Each time she must get exactly her latest balance on chain, less the fees of her own
transactions (EVM, Solana: she refutes the old state with the latest one; Bitcoin: her
justice transaction takes every output of the revoked commitment). The nodes and the
ledgers are in process (eth-tester, libbitcoinkernel, LiteSVM) so the 18 cases run in CI;
the node-process variants of the crash itself are in tests/node/test_crash_harness.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chenilles_hub.backend import ChainBackend
from chenilles_hub.core import Asset, SignedState
from chenilles_hub.node.hub.node import Node
from chenilles_hub.node.store.sqlite import SQLiteStore

from .world import World

pytestmark = [pytest.mark.circuit, pytest.mark.adversarial]


@dataclass(frozen=True)
class Kit:
    """How to make one chain's embedded backend, a fresh instance over the same chain, and
    an account (the victim's keys) on that fresh instance."""

    make: Callable[[], ChainBackend]
    fresh: Callable[[ChainBackend], ChainBackend]
    reopen: Callable[[ChainBackend, Any], Any]
    deposit: int
    payments: tuple[int, int]
    challenge: int
    #: seconds Alice is down when she was down: well within the challenge period
    downtime: int


def _evm() -> Kit:
    from chenilles_evm.backend import EvmBackend, embedded_backend

    def fresh(old: ChainBackend) -> ChainBackend:
        assert isinstance(old, EvmBackend)
        return EvmBackend(
            old.w3,
            old.adjudicator.address,
            tokens=list(old._tokens),
            ledger=old._ledger,
            from_block=old._origin_block,
        )

    return Kit(embedded_backend, fresh, lambda _b, a: a, 10**18, (10**17, 3 * 10**17), 600, 200)


def _solana() -> Kit:
    from chenilles_solana.backend import SolanaBackend, embedded_backend

    def fresh(old: ChainBackend) -> ChainBackend:
        assert isinstance(old, SolanaBackend)
        return SolanaBackend(old.ledger, old.chain, test_mint=old.test_mint)

    return Kit(embedded_backend, fresh, lambda _b, a: a, 10**9, (10**8, 3 * 10**8), 600, 200)


def _bitcoin() -> Kit:
    from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend

    def fresh(old: ChainBackend) -> ChainBackend:
        assert isinstance(old, BitcoinBackend)
        backend = BitcoinBackend(
            old.ledger, chain=old.chain, policy=old.policy, auto_mine=True, height_clock=True
        )
        backend._anchor = old._anchor  # one chain, one clock
        return backend

    def reopen(backend: ChainBackend, old: Any) -> Any:
        assert isinstance(backend, BitcoinBackend)
        return backend.create_account(fund=False, secret=old.secret)

    # 36 blocks of to_self_delay; down for 10 of them
    return Kit(embedded_backend, fresh, reopen, 1_000_000, (100_000, 300_000), 6 * 3600, 6000)


KITS = {"evm": _evm, "bitcoin": _bitcoin, "solana": _solana}


class Scene:
    def __init__(self, chain: str, tmp_path: Path) -> None:
        self.kind = chain
        self.kit = KITS[chain]()
        self.backend = self.kit.make()
        self.chain = self.backend.chain
        self.asset = Asset(self.chain, "native")
        self.world = World({self.chain: self.backend}, self.backend)
        self.path = tmp_path / "alice.sqlite"
        self.store = SQLiteStore(self.path)
        self.alice = self.world.node("alice", [self.chain], store=self.store)
        self.bob = self.world.node("bob", [self.chain])
        self.channel_id = self.world.open(
            self.bob,
            self.alice,
            self.chain,
            {self.asset: (self.kit.deposit, 0)},
            self.kit.challenge,
        )
        self.world.sync()
        self.old = self.pay(self.kit.payments[0])
        self.latest = self.pay(self.kit.payments[1])
        self.alice_latest = sum(self.kit.payments)
        assert self.latest.state.free(self.asset) == (
            self.kit.deposit - self.alice_latest,
            self.alice_latest,
        )
        self.mark()

    def pay(self, amount: int) -> SignedState:
        self.bob.pay_direct(self.channel_id, self.asset, amount)
        self.world.network.run()
        latest = self.bob.channels[self.channel_id].machine.latest
        assert latest is not None and latest == self.alice.channels[self.channel_id].machine.latest
        return latest

    def mark(self) -> None:
        """Alice's wallet now: what she gets from here on is measured against it."""
        account = self.alice.accounts[self.chain]
        self.wallet_before = self.alice.backends[self.chain].balance(account, self.asset)
        self.receipts_before = len(self.alice.channels[self.channel_id].receipts)

    def kill_alice(self) -> None:
        """``kill -9``: what Alice had not sent is lost, her store is left as it is."""
        self.mark()
        self.receipts_before = 0  # the next process starts with no receipts in memory
        self.alice.outbox.clear()
        self.world.network.silence(self.alice)
        self.store.close()

    def restart_alice(self) -> None:
        """A new process: her store, her keys, a backend that knows only the chain."""
        fresh = self.kit.fresh(self.backend)
        self.store = SQLiteStore(self.path)
        reborn = Node(
            identity=self.alice.identity,
            backends={self.chain: fresh},
            accounts={self.chain: self.kit.reopen(fresh, self.alice.accounts[self.chain])},
            clock=self.world.now,
            name="alice",
            store=self.store,
        )
        reborn.restore()
        self.world.network.add(reborn)
        self.world.network.revive(reborn)
        self.alice = reborn
        self.world.backends[self.chain] = fresh  # the chain's events now reach us through it

    def bob_publishes(self, signed: SignedState) -> str:
        """Bob goes to the chain with ``signed``, his node kept out of it (it would not)."""
        self.world.network.silence(self.bob)
        params = self.bob.channels[self.channel_id].params
        account = self.bob.accounts[self.chain]
        return self.bob.backends[self.chain].register(params, signed, account).txid

    def alice_received(self) -> int:
        """What the chain paid Alice since ``mark``, her own fees added back."""
        account = self.alice.accounts[self.chain]
        now = self.alice.backends[self.chain].balance(account, self.asset)
        fees = sum(
            r.fee for r in self.alice.channels[self.channel_id].receipts[self.receipts_before :]
        )
        return now - self.wallet_before + fees

    def run_out(self) -> None:
        """The challenge period (and the CSV delay on Bitcoin) runs out; watchers act."""
        for _ in range(8):
            self.world.advance(self.kit.challenge // 4 + 60)
        self.world.sync()

    def close(self) -> None:
        self.store.close()
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()


@pytest.fixture(params=sorted(KITS))
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    chain: str = request.param
    if chain == "bitcoin":
        request.applymarker(pytest.mark.bitcoin)
    if chain == "solana":
        request.applymarker(pytest.mark.solana)
    if chain == "evm":
        request.applymarker(pytest.mark.evm)
    s = Scene(chain, tmp_path)
    try:
        yield s
    finally:
        s.close()


def _publish(scene: Scene, mode: str, signed: SignedState, downtime: int | None = None) -> str:
    """Bob publishes ``signed`` with Alice in ``mode``; the transaction's id. ``down``:
    she is back ``downtime`` seconds after the publication (default: the kit's)."""
    if mode == "running":
        txid = scene.bob_publishes(signed)
    elif mode == "restarted":
        scene.kill_alice()
        scene.restart_alice()
        txid = scene.bob_publishes(signed)
    else:  # down: the publication and part of the challenge period pass without her
        scene.kill_alice()
        txid = scene.bob_publishes(signed)
        scene.backend.advance_time(scene.kit.downtime if downtime is None else downtime)
        scene.restart_alice()
    scene.world.sync()
    return txid


def _commitment_value(scene: Scene, txid: str) -> int:
    """Every satoshi of a Bitcoin commitment transaction's outputs."""
    from chenilles_bitcoin.watch import parse_tx

    raw = scene.backend.ledger.get_raw_tx(txid)  # type: ignore[attr-defined]
    assert raw is not None
    return sum(int(o.nValue) for o in parse_tx(raw).vout)


MODES = ["running", "restarted", "down"]


@pytest.mark.parametrize("mode", MODES)
def test_an_old_state_published_by_the_peer_pays_the_victim_its_latest_balance(
    scene: Scene, mode: str
) -> None:
    txid = _publish(scene, mode, scene.old)
    scene.run_out()
    channel = scene.alice.channels[scene.channel_id]
    journal = "\n".join(scene.alice.journal[-12:])
    if scene.kind == "bitcoin":
        # the penalty: her justice transaction took every output of the revoked commitment
        assert scene.alice_received() == _commitment_value(scene, txid), journal
        assert any(r.operation == "challenge" for r in channel.receipts), journal
    else:
        assert scene.alice_received() == scene.alice_latest, journal
    assert channel.status == "closed", journal


@pytest.mark.parametrize("mode", MODES)
def test_the_peers_honest_unilateral_close_pays_the_victim_its_latest_balance(
    scene: Scene, mode: str
) -> None:
    _publish(scene, mode, scene.latest)
    scene.run_out()
    channel = scene.alice.channels[scene.channel_id]
    journal = "\n".join(scene.alice.journal[-12:])
    assert scene.alice_received() == scene.alice_latest, journal
    assert channel.status == "closed", journal


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("CHENILLES_SLOW_TESTS"), reason="long variant: CHENILLES_SLOW_TESTS=1"
)
@pytest.mark.parametrize("honest", [False, True])
@pytest.mark.parametrize("share", [0.05, 0.3, 0.6, 0.85])
def test_the_victim_back_at_any_point_of_the_challenge_period_is_paid_its_latest_balance(
    scene: Scene, share: float, honest: bool
) -> None:
    """The victim is down from before the publication until ``share`` of the challenge
    period has passed (the down mode above at several points of the period)."""
    txid = _publish(
        scene, "down", scene.latest if honest else scene.old, int(scene.kit.challenge * share)
    )
    scene.run_out()
    journal = "\n".join(scene.alice.journal[-12:])
    if scene.kind == "bitcoin" and not honest:
        assert scene.alice_received() == _commitment_value(scene, txid), journal
    else:
        assert scene.alice_received() == scene.alice_latest, journal
    assert scene.alice.channels[scene.channel_id].status == "closed", journal


@pytest.mark.evm
@pytest.mark.parametrize("stored_before", [False, True], ids=["now", "stored_before"])
def test_a_node_restarted_at_another_adjudicator_sets_its_channels_aside_until_put_back(
    tmp_path: Path, stored_before: bool
) -> None:
    """Found by an audit of the options read at start: an EVM channel's id commits to the
    adjudicator it was opened at, but the node took the configured one on trust. Restarted
    with another (an operator re-pinning ``adjudicator``), Alice restored the channel as
    active and watched the new contract, while Bob registered his old state at the one
    that holds the channel: unanswered, he took back what he had paid her. The node now
    keeps where each channel lives (``Deployments``) and sets it aside, saying both
    addresses, until the option is put back; then it is restored and defended.
    ``stored_before``: a channel stored before that was kept (found by review), told by its
    id instead."""
    scene = Scene("evm", tmp_path)
    try:
        kit = scene.kit
        elsewhere, other = _another_adjudicator(scene)
        scene.kit = elsewhere
        scene.kill_alice()
        if stored_before:
            _forget_deployments(scene.path)
        scene.restart_alice()
        assert scene.channel_id not in scene.alice.channels
        reason = scene.alice.quarantined[scene.channel_id].reason
        opened = "another" if stored_before else f"adjudicator {_adjudicator(scene.backend)}"
        assert f"opened at {opened}" in reason and other in reason, reason
        assert "Put back the option it was opened with" in reason, reason

        _restart_alice_with(scene, kit)  # the operator puts the option back
        assert scene.channel_id in scene.alice.channels and not scene.alice.quarantined
        scene.bob_publishes(scene.old)
        scene.world.sync()
        scene.run_out()
        journal = "\n".join(scene.alice.journal[-12:])
        assert scene.alice_received() == scene.alice_latest, journal
        assert scene.alice.channels[scene.channel_id].status == "closed", journal

        _restart_alice_with(scene, elsewhere)  # moved on, everything closed and final
        assert not scene.alice.quarantined  # a closed channel has nothing left to defend
        assert scene.alice.channels[scene.channel_id].status == "closed"
    finally:
        scene.close()


@pytest.mark.evm
def test_a_channel_closed_before_its_conclusion_is_final_is_still_set_aside_elsewhere(
    tmp_path: Path,
) -> None:
    """Found by review: a channel is ``closed`` once its payout is in, before its
    conclusion is final; a reorg until then may undo it, and the watcher acts on it at
    depth. Restored at another adjudicator, the check let it through: the watcher then
    re-registered it at the new contract on every block (refused, WrongChannel), and the
    old contract went unwatched. Only a closed channel the watcher has retired skips it."""
    scene = Scene("evm", tmp_path)
    try:
        scene.bob_publishes(scene.latest)  # an honest unilateral close
        scene.world.sync()
        channel = scene.alice.channels[scene.channel_id]
        for _ in range(40):
            if channel.status == "closed":
                break
            scene.world.advance(60)
        dispute = scene.alice.watcher.dispute(scene.channel_id)
        assert channel.status == "closed" and dispute is not None and dispute.concluded
        elsewhere, other = _another_adjudicator(scene)
        _restart_alice_with(scene, elsewhere)
        reason = scene.alice.quarantined[scene.channel_id].reason
        assert other in reason, reason
    finally:
        scene.close()


def _adjudicator(backend: ChainBackend) -> str:
    from chenilles_evm.backend import EvmBackend

    assert isinstance(backend, EvmBackend)
    return str(backend.adjudicator.address)


def _another_adjudicator(scene: Scene) -> tuple[Kit, str]:
    """The scene's kit with a fresh backend at a second adjudicator deployed on the same
    chain (an operator re-pinning ``adjudicator``), and that adjudicator's address."""
    from chenilles_evm.backend import EvmBackend, _deploy_dev_contracts

    old = scene.backend
    assert isinstance(old, EvmBackend)
    other, _, origin = _deploy_dev_contracts(old.w3, old._ledger.accounts[-1], with_token=False)

    def at_other(backend: ChainBackend) -> ChainBackend:
        assert isinstance(backend, EvmBackend)
        return EvmBackend(backend.w3, other, ledger=backend._ledger, from_block=origin)

    return dataclasses.replace(scene.kit, fresh=at_other), other


def _restart_alice_with(scene: Scene, kit: Kit) -> None:
    """Alice stopped (nothing in flight) and started again with ``kit``'s backend."""
    scene.kit = kit
    scene.world.network.silence(scene.alice)
    scene.store.close()
    scene.restart_alice()


def _forget_deployments(path: Path) -> None:
    """The channel rows as a node wrote them before it kept where each channel lives."""
    with sqlite3.connect(path) as db:
        for channel_id, data in db.execute("SELECT channel_id, data FROM channels").fetchall():
            row = json.loads(data)
            del row["deployment"]
            db.execute(
                "UPDATE channels SET data = ? WHERE channel_id = ?",
                (json.dumps(row).encode(), channel_id),
            )
