"""The EVM ChainBackend driven by two real ChannelMachines, on eth-tester and anvil.

Every test opens a channel between two fresh accounts through the backend API only, with
the backend's own StateAuthority inside the core's machines, and checks balances to the
wei: every transaction's fee comes back in its TxReceipt, so nothing is approximate.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from chenilles_evm.adjudicator import Erc20
from chenilles_evm.backend import (
    WITHDRAW_ALREADY_PAID,
    EvmAccount,
    EvmBackend,
    connect_backend,
    embedded_backend,
)
from chenilles_evm.ledgers import Ledger

from chenilles_hub.backend import (
    Concluded,
    Funded,
    LedgerError,
    NewBlock,
    PreimageRevealed,
    Registered,
    TxReceipt,
)
from chenilles_hub.core import (
    AddHtlc,
    Asset,
    ChannelMachine,
    ChannelParams,
    Close,
    Effect,
    Htlc,
    HtlcPolicy,
    Participant,
    Send,
    SettleHtlc,
    SignedState,
    SubmitToLedger,
    Transfer,
    initial_state,
)

pytestmark = pytest.mark.evm

ETH = 10**18
CHALLENGE = 100


@pytest.fixture(scope="module")
def backend(ledger: Ledger) -> Iterator[EvmBackend]:
    """eth-tester: the embedded backend on the session's ledger; anvil: connect by URL
    (deploys a fresh adjudicator and test token)."""
    if ledger.kind == "ethtester":
        b = embedded_backend(ledger=ledger)
    else:
        b = connect_backend(ledger.url, deploy=True)  # type: ignore[attr-defined]
    yield b
    b.close()


@dataclass
class Channel:
    """Two machines wired back to back; ledger actions go through ``backend``."""

    backend: EvmBackend
    accounts: tuple[EvmAccount, EvmAccount]
    params: ChannelParams
    cid: bytes
    machines: tuple[ChannelMachine, ChannelMachine]
    start_eth: tuple[int, int]
    start_token: tuple[int, int]
    fees: list[int] = field(default_factory=lambda: [0, 0])
    submitted: list[tuple[int, SubmitToLedger]] = field(default_factory=list)

    @property
    def eth(self) -> Asset:
        return self.backend.assets()[0]

    @property
    def token(self) -> Asset:
        return self.backend.assets()[1]

    def tx(self, who: int, receipt: TxReceipt) -> TxReceipt:
        """Account for the fee ``who`` paid (and check the receipt's shape)."""
        assert receipt.fee_asset == self.eth and receipt.cost_unit == "gas"
        assert receipt.cost > 21_000 and receipt.fee > 0 and isinstance(receipt.fee, int)
        assert receipt.txid.startswith("0x") and len(receipt.txid) == 66
        self.fees[who] += receipt.fee
        return receipt

    def run(self, sender: int, effects: list[Effect]) -> None:
        """Deliver every Send to the other machine until the exchange settles."""
        queue = [(sender, e) for e in effects]
        while queue:
            src, effect = queue.pop(0)
            if isinstance(effect, Send):
                dst = 1 - src
                out = self.machines[dst].receive(effect.message, self.backend.now())
                queue += [(dst, e) for e in out]
            elif isinstance(effect, SubmitToLedger):
                self.submitted.append((src, effect))

    def update(self, proposer: int, *updates: object) -> SignedState:
        self.run(proposer, self.machines[proposer].propose(updates, self.backend.now()))  # type: ignore[arg-type]
        latest = self.machines[0].latest
        assert latest is not None and latest == self.machines[1].latest and latest.complete
        return latest

    def latest(self) -> SignedState:
        latest = self.machines[0].latest
        assert latest is not None
        return latest

    def eth_delta(self, who: int) -> int:
        """ETH gained by ``who`` since the start, fees added back."""
        return self.backend.balance(self.accounts[who], self.eth) - self.start_eth[who]

    def token_delta(self, who: int) -> int:
        return self.backend.balance(self.accounts[who], self.token) - self.start_token[who]

    def withdraw_all(self) -> None:
        """Each participant's withdraw duty after a conclusion, which already paid both:
        no transaction, no fee, a receipt that says so."""
        for who in (0, 1):
            for asset in self.params.assets:
                receipt = self.backend.withdraw(self.params, who, self.accounts[who], asset)
                assert receipt == already_paid(self.backend)


def already_paid(backend: EvmBackend) -> TxReceipt:
    """What ``withdraw`` returns when the conclusion already paid the participant."""
    return TxReceipt(WITHDRAW_ALREADY_PAID, "", 0, backend.assets()[0], 0, "gas", None)


def open_channel(
    backend: EvmBackend,
    deposits: dict[Asset, tuple[int, int]],
    challenge: int = CHALLENGE,
    extra_tokens: int = 0,
    prepare: Callable[[EvmAccount], object] | None = None,
) -> Channel:
    """Two fresh accounts (given ``extra_tokens`` more test tokens each, and whatever
    ``prepare(account)`` gives them), a signed version 0, then the deposits."""
    a, b = backend.create_account(), backend.create_account()
    eth, token = backend.assets()[0], backend.assets()[1]
    if extra_tokens:
        for acct in (a, b):
            backend.faucet(acct, token, extra_tokens)
    if prepare is not None:
        for acct in (a, b):
            prepare(acct)
    start_eth = (backend.balance(a, eth), backend.balance(b, eth))
    start_token = (backend.balance(a, token), backend.balance(b, token))
    nonce = backend.new_nonce((), deposits, a)
    params = ChannelParams(
        chain=backend.chain,
        participants=tuple(
            Participant(backend.participant_key(acct, nonce), secrets.token_bytes(32))
            for acct in (a, b)
        ),
        assets=tuple(deposits),
        challenge_duration=challenge,
        nonce=nonce,
    )
    cid = backend.channel_id(params)
    initial = initial_state(cid, params.assets, deposits)
    policy = HtlcPolicy(min_lead=600, max_lead=86400)
    machines = tuple(
        ChannelMachine(params, cid, i, backend.authority(params, acct, i), initial, policy=policy)
        for i, acct in enumerate((a, b))
    )
    ch = Channel(backend, (a, b), params, cid, machines, start_eth, start_token)  # type: ignore[arg-type]
    ch.run(0, machines[0].open())
    assert ch.latest().version == 0 and ch.latest().complete
    for asset, amounts in deposits.items():  # funds move only once version 0 is signed
        for who, amount in enumerate(amounts):
            if amount:
                ch.tx(who, backend.fund(params, who, ch.accounts[who], asset, amount))
    return ch


def add_htlc(ch: Channel, payer: int, amount: int, lead: int = 1200) -> tuple[Htlc, bytes]:
    preimage = secrets.token_bytes(32)
    expiry = ch.backend.now() + lead
    htlc = Htlc(
        id=len(ch.latest().state.htlcs) + 100 * ch.latest().version,
        payer=payer,
        asset=ch.eth,
        amount=amount,
        payment_hash=hashlib.sha256(preimage).digest(),
        expiry=expiry,
        native_expiry=ch.backend.native_expiry(expiry),
    )
    ch.update(payer, AddHtlc(htlc))
    return htlc, preimage


def registered_timeout(backend: EvmBackend, cid: bytes) -> int:
    return backend.adjudicator.dispute(cid).timeout


# ---------------------------------------------------------------------------- happy path


def test_cooperative_life_cycle_eth_and_erc20(backend: EvmBackend) -> None:
    eth, token = backend.assets()[0], backend.assets()[1]
    dep_a, dep_b = 3 * ETH + 123_456_789, ETH + 1  # odd wei: nothing is rounded anywhere
    tok_b = 5 * 10**20 + 7
    ch = open_channel(backend, {eth: (dep_a, dep_b), token: (0, tok_b)})
    assert backend.adjudicator.holding(ch.cid, "0x" + "00" * 20) == dep_a + dep_b

    ch.update(0, Transfer(eth, ETH // 2))
    ch.update(1, Transfer(token, 10**20), Transfer(eth, 1))
    htlc, preimage = add_htlc(ch, payer=0, amount=ETH // 4 + 3)
    assert ch.latest().state.locked(eth) == ETH // 4 + 3
    ch.update(1, SettleHtlc(htlc.id, preimage))
    final = ch.update(0, Close())
    assert final.state.final and final.version == 5
    (who, submit), *_ = ch.submitted
    assert (who, submit.action, submit.signed) == (0, "conclude_cooperative", final)

    receipt = ch.tx(0, backend.close_cooperative(ch.params, final, ch.accounts[0]))
    assert receipt.operation == "close_cooperative" and receipt.block is not None
    ch.withdraw_all()

    eth_a = dep_a - ETH // 2 + 1 - (ETH // 4 + 3)
    eth_b = dep_b + ETH // 2 - 1 + (ETH // 4 + 3)
    assert final.state.free(eth) == (eth_a, eth_b)
    assert ch.eth_delta(0) == -dep_a + eth_a - ch.fees[0]
    assert ch.eth_delta(1) == -dep_b + eth_b - ch.fees[1]
    assert (ch.token_delta(0), ch.token_delta(1)) == (10**20, -(10**20))
    assert backend.adjudicator.holding(ch.cid, token.token) == 0


# ------------------------------------------------------------------------------ disputes


def test_dispute_cheater_registers_old_state_honest_challenges(backend: EvmBackend) -> None:
    eth = backend.assets()[0]
    ch = open_channel(backend, {eth: (2 * ETH, 2 * ETH)})
    old = ch.update(0, Transfer(eth, ETH))  # b's best state: 1 / 3
    ch.update(1, Transfer(eth, ETH + 5))
    latest = ch.update(1, Transfer(eth, 7))  # 2 ETH + 12 / 2 ETH - 12

    ch.tx(1, backend.register(ch.params, old, ch.accounts[1]))  # the cheater
    with pytest.raises(LedgerError) as err:  # the contract's words come back
        backend.conclude(ch.params, ch.accounts[1])
    assert err.value.operation == "conclude"
    assert err.value.reason.startswith("ChallengePeriodActive(")

    receipt = ch.tx(0, backend.challenge(ch.params, latest, ch.accounts[0]))
    assert receipt.operation == "challenge"
    with pytest.raises(LedgerError) as err:
        backend.register(ch.params, old, ch.accounts[1])
    assert err.value.reason == f"StaleVersion({latest.version}, {old.version})"

    backend.advance_time(CHALLENGE + 1)
    ch.tx(1, backend.conclude(ch.params, ch.accounts[1]))
    ch.withdraw_all()
    assert ch.eth_delta(0) == 12 - ch.fees[0]
    assert ch.eth_delta(1) == -12 - ch.fees[1]


def test_silent_peer_register_wait_conclude_from_another_backend(backend: EvmBackend) -> None:
    eth, token = backend.assets()[0], backend.assets()[1]
    ch = open_channel(backend, {eth: (ETH, 0), token: (0, 1000)})
    ch.update(0, Transfer(eth, 3 * ETH // 10))
    ch.update(1, Transfer(token, 250))
    # b goes silent: a's proposal is never answered; a force-closes with what both signed
    ch.machines[0].propose((Transfer(eth, 1),), backend.now())
    (effect,) = ch.machines[0].force_close()
    assert isinstance(effect, SubmitToLedger) and effect.action == "register"
    ch.tx(0, backend.register(ch.params, effect.signed, ch.accounts[0]))

    # a watcher that never saw the registration concludes: it rebuilds the registered
    # state from the register transaction's input
    watcher = EvmBackend(backend.w3, backend.adjudicator.address, from_block=0)
    assert watcher.registered_state(ch.params).abi_hash() == (
        backend.registered_state(ch.params).abi_hash()
    )
    backend.advance_time(CHALLENGE + 1)
    ch.tx(0, watcher.conclude(ch.params, ch.accounts[0]))
    ch.withdraw_all()
    assert ch.eth_delta(0) == -3 * ETH // 10 - ch.fees[0]
    assert ch.eth_delta(1) == 3 * ETH // 10 - ch.fees[1]
    assert (ch.token_delta(0), ch.token_delta(1)) == (250, -250)


# --------------------------------------------------------------------------------- HTLCs


def test_htlc_claimed_on_chain_then_conclude_pays_payee_and_events(backend: EvmBackend) -> None:
    eth = backend.assets()[0]
    backend.poll_events()  # start from here
    ch = open_channel(backend, {eth: (ETH, ETH // 2)})
    htlc, preimage = add_htlc(ch, payer=0, amount=ETH // 5)
    # a (the payer) goes silent and will not settle; b holds the preimage
    with pytest.raises(LedgerError) as err:
        backend.claim_htlc(ch.params, htlc, secrets.token_bytes(32), ch.accounts[1])
    assert err.value.reason == f"BadPreimage({htlc.id})"
    reg = ch.tx(1, backend.register(ch.params, ch.latest(), ch.accounts[1]))
    claim = ch.tx(1, backend.claim_htlc(ch.params, htlc, preimage, ch.accounts[1]))
    assert claim.operation == "claim_htlc"
    revealed_at = backend.adjudicator.revealed_at(htlc.payment_hash)
    assert 0 < revealed_at <= htlc.native_expiry
    timeout = registered_timeout(backend, ch.cid)
    backend.advance_time(CHALLENGE + 1)
    ch.tx(1, backend.conclude(ch.params, ch.accounts[1]))
    ch.withdraw_all()
    assert ch.eth_delta(0) == -ETH // 5 - ch.fees[0]
    assert ch.eth_delta(1) == ETH // 5 - ch.fees[1]

    events = backend.poll_events()
    mine = [e for e in events if getattr(e, "channel_id", None) == ch.cid]
    assert mine == [
        Funded(ch.cid, eth, 0, ETH),
        Funded(ch.cid, eth, 1, ETH // 2),
        Registered(ch.cid, ch.latest().version, timeout),
        Concluded(ch.cid, ch.latest().version),
    ]
    assert PreimageRevealed(htlc.payment_hash, preimage, revealed_at) in events
    assert isinstance(events[-1], NewBlock) and events[-1].height == backend.w3.eth.block_number
    assert reg.block is not None and reg.block < events[-1].height
    assert [e for e in backend.poll_events() if not isinstance(e, NewBlock)] == []


def test_expired_htlc_refunded_by_concluding(backend: EvmBackend, ledger: Ledger) -> None:
    eth = backend.assets()[0]
    ch = open_channel(backend, {eth: (ETH, ETH)})
    ch.update(1, Transfer(eth, 10))
    htlc, preimage = add_htlc(ch, payer=0, amount=ETH // 3)
    # b (the payee) goes silent and never settles nor fails; a registers
    ch.tx(0, backend.register(ch.params, ch.latest(), ch.accounts[0]))
    backend.advance_time(CHALLENGE + 1)
    with pytest.raises(LedgerError) as err:
        backend.refund_htlc(ch.params, htlc, ch.accounts[0])
    assert err.value.reason.startswith(f"HtlcNotExpired({htlc.id}, {htlc.native_expiry})")
    with pytest.raises(LedgerError) as err:  # nor can anyone conclude before it expires
        backend.conclude(ch.params, ch.accounts[1])
    assert err.value.reason == f"HtlcNotResolvable({htlc.id})"

    # a block exactly at the expiry (not yet refundable); stamped by the ledger, since a
    # relative advance on anvil lands a second late when the wall clock ticks meanwhile
    ledger.time_travel(htlc.native_expiry)
    with pytest.raises(LedgerError) as err:
        backend.refund_htlc(ch.params, htlc, ch.accounts[0])
    assert err.value.reason.startswith("HtlcNotExpired(")
    backend.advance_time(1)
    receipt = ch.tx(0, backend.refund_htlc(ch.params, htlc, ch.accounts[0]))
    assert receipt.operation == "refund_htlc"
    with pytest.raises(LedgerError) as err:  # too late for the payee now
        backend.claim_htlc(ch.params, htlc, preimage, ch.accounts[1])
    assert err.value.reason.startswith(f"HtlcExpired({htlc.id}, ")
    ch.withdraw_all()
    assert ch.eth_delta(0) == 10 - ch.fees[0]
    assert ch.eth_delta(1) == -10 - ch.fees[1]


# ------------------------------------------------------------------ credited payouts


def test_a_refused_payout_is_credited_and_pulled_by_the_withdraw_duty(
    backend: EvmBackend, ledger: Ledger
) -> None:
    """b's token receiver refuses (a USDC-like blocklist): the close pays a and credits b;
    b's withdraw duty fails while the block lasts (the credit stays), then pulls it."""
    deployer = ledger.accounts[3].address
    blk = Erc20.deploy_blocklist_token(backend.w3, deployer)
    asset = Asset(backend.chain, blk.address)
    ch = open_channel(
        backend, {asset: (600, 400)}, prepare=lambda acct: blk.mint(acct.address, 1000, deployer)
    )
    ch.update(0, Transfer(asset, 100))
    final = ch.update(1, Close())
    blk.set_blocked(ch.accounts[1].address, True, deployer)
    ch.tx(0, backend.close_cooperative(ch.params, final, ch.accounts[0]))
    assert blk.balance_of(ch.accounts[0].address) == 1000 - 600 + 500
    assert backend.withdraw(ch.params, 0, ch.accounts[0], asset) == already_paid(backend)
    assert backend.adjudicator.payout(ch.cid, blk.address, 1) == (500, False)

    with pytest.raises(LedgerError) as err:
        backend.withdraw(ch.params, 1, ch.accounts[1], asset)
    assert err.value.reason == f"TransferFailed({blk.address})"
    assert backend.adjudicator.payout(ch.cid, blk.address, 1) == (500, False)
    with pytest.raises(LedgerError) as err:  # nobody else may pull it
        backend.withdraw(ch.params, 1, ch.accounts[0], asset)
    assert err.value.reason == f"Unauthorized({ch.accounts[0].address})"

    blk.set_blocked(ch.accounts[1].address, False, deployer)
    receipt = ch.tx(1, backend.withdraw(ch.params, 1, ch.accounts[1], asset))
    assert receipt.operation == "withdraw"
    assert blk.balance_of(ch.accounts[1].address) == 1000 - 400 + 500
    assert backend.withdraw(ch.params, 1, ch.accounts[1], asset) == already_paid(backend)
    assert blk.balance_of(backend.adjudicator.address) == 0
    assert ch.eth_delta(0) == -ch.fees[0] and ch.eth_delta(1) == -ch.fees[1]
