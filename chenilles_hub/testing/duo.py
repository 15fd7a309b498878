"""Two participants and one channel on any ``ChainBackend``, driven through the real core.

The conformance suite needs channels in every shape (funded, updated, with HTLCs, disputed)
without knowing the chain: ``Duo`` builds them the way the node does, through the
backend's own ``participant_key``, ``new_nonce``, ``channel_id``, ``authority`` and
``channel_rules``, with two real ``ChannelMachine``\\ s exchanging encoded messages in
memory. Every on-chain action's receipt is kept per wallet so a test can account for each
base unit (``spent``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from ..backend import Account, ChainBackend, ChainEvent, LedgerError, TxReceipt
from ..core import (
    AddHtlc,
    Asset,
    ChannelMachine,
    ChannelParams,
    Effect,
    Htlc,
    HtlcPolicy,
    Participant,
    Send,
    SignedState,
    Update,
    decode_message,
    encode_message,
    initial_state,
    payment_hash,
)

#: The challenge period the suite's channels use: long enough for every chain's clock
#: granularity (Bitcoin: 6 blocks of CSV), short enough to sit out quickly.
CHALLENGE = 3600


def native(backend: ChainBackend) -> Asset:
    """The chain's own coin: what fees are paid in (``token == "native"``)."""
    for asset in backend.assets():
        if asset.token == "native":
            return asset
    raise AssertionError(f"{backend.chain}: assets() has no native asset")


@dataclass
class Duo:
    """Alice (participant 0) and Bob (participant 1) with one channel between them."""

    backend: ChainBackend
    accounts: tuple[Account, Account]
    params: ChannelParams
    channel_id: bytes
    machines: tuple[ChannelMachine, ChannelMachine]
    deposits: dict[Asset, tuple[int, int]]
    #: every fully signed version, by number
    history: dict[int, SignedState] = field(default_factory=dict)
    #: (participant, receipt) of every action a wallet sent
    receipts: list[tuple[int, TxReceipt]] = field(default_factory=list)
    events: list[ChainEvent] = field(default_factory=list)
    #: each wallet's native balance before anything was done for the channel (taken before
    #: ``new_nonce``: on Bitcoin preparing the funding transaction reserves the coins)
    start: tuple[int, int] = (0, 0)

    @classmethod
    def create(
        cls,
        backend: ChainBackend,
        amount: int | None = None,
        accounts: tuple[Account, Account] | None = None,
        challenge: int = CHALLENGE,
        asset: Asset | None = None,
    ) -> Duo:
        """A channel in one asset (by default the native coin): Alice deposits ``amount``
        (by default a twentieth of what a fresh account holds), Bob half of it unless the
        chain has a single funder (``BackendInfo.single_funder``)."""
        coin = asset or native(backend)
        alice, bob = accounts or (backend.create_account(fund=True), backend.create_account())
        if amount is None:
            amount = backend.balance(alice, coin) // 20
        start = tuple(backend.balance(a, native(backend)) for a in (alice, bob))
        single = backend.info.single_funder
        deposits = {coin: (amount, 0 if single else amount // 2)}
        participants = tuple(
            Participant(
                backend.participant_key(account, secrets.token_bytes(32)),
                hashlib.sha256(bytes([i]) + secrets.token_bytes(16)).digest(),
            )
            for i, account in enumerate((alice, bob))
        )
        params = ChannelParams(
            chain=backend.chain,
            participants=participants,
            assets=(coin,),
            challenge_duration=challenge,
            nonce=backend.new_nonce(participants, deposits, alice),
        )
        channel_id = backend.channel_id(params)
        initial = initial_state(channel_id, params.assets, deposits)
        rules = backend.channel_rules(params)
        policy = HtlcPolicy(min_lead=60, max_lead=30 * 86400)
        m0, m1 = (
            ChannelMachine(
                params,
                channel_id,
                i,
                backend.authority(params, account, i),
                initial,
                policy=policy,
                rules=rules,
            )
            for i, account in enumerate((alice, bob))
        )
        duo = cls(backend, (alice, bob), params, channel_id, (m0, m1), deposits)
        duo.start = (start[0], start[1])
        return duo

    # --- off-chain ---------------------------------------------------------------------------

    def _exchange(self, sender: int, effects: list[Effect]) -> None:
        wire = [(1 - sender, encode_message(e.message)) for e in effects if isinstance(e, Send)]
        for _ in range(64):
            if not wire:
                break
            to, data = wire.pop(0)
            out = self.machines[to].receive(decode_message(data), self.backend.now())
            wire += [(1 - to, encode_message(e.message)) for e in out if isinstance(e, Send)]
        else:
            raise AssertionError("the two machines never went quiet")
        latest = self.latest
        assert latest == self.machines[1].latest, "the two sides disagree on the latest state"
        self.history[latest.version] = latest

    @property
    def latest(self) -> SignedState:
        latest = self.machines[0].latest
        assert latest is not None, "nothing signed yet"
        return latest

    def sign(self) -> Duo:
        """Both sides sign version 0 (nothing moves on-chain before it is signed)."""
        self._exchange(0, self.machines[0].open())
        return self

    def fund(self) -> Duo:
        """Each side funds its own non-zero deposits."""
        for asset, amounts in self.deposits.items():
            for i, amount in enumerate(amounts):
                if amount:
                    fund = partial(self.backend.fund, self.params, i, asset=asset, amount=amount)
                    self.act(i, fund)
        return self

    def open(self) -> Duo:
        """Sign version 0, then fund."""
        return self.sign().fund()

    def update(self, proposer: int, *updates: Update) -> SignedState:
        self._exchange(proposer, self.machines[proposer].propose(updates, self.backend.now()))
        return self.latest

    def htlc(self, htlc_id: int, payer: int, amount: int, lead: int) -> tuple[Htlc, bytes]:
        """Add an HTLC from ``payer`` expiring ``lead`` seconds from the chain's now.

        Its preimage is fresh random bytes, never derived from ``htlc_id``: a preimage
        revealed on a chain is public for good, and on chains that keep a global registry
        (Solana's program) it pays every HTLC with that hash whose expiry has not passed.
        The suite's channels share one ledger on a backend's connect path, so a preimage
        one case claimed would pay the HTLC another case expects refunded."""
        preimage = secrets.token_bytes(32)
        expiry = self.backend.now() + lead
        htlc = Htlc(
            id=htlc_id,
            payer=payer,
            asset=native(self.backend),
            amount=amount,
            payment_hash=payment_hash(preimage),
            expiry=expiry,
            native_expiry=self.backend.native_expiry(expiry),
        )
        self.update(payer, AddHtlc(htlc))
        return htlc, preimage

    # --- on-chain ----------------------------------------------------------------------------

    def act(self, who: int, action: Callable[[Account], TxReceipt]) -> TxReceipt:
        """Run one on-chain action from ``who``'s wallet and book its receipt; a refusal
        that still cost a fee is booked too before the ``LedgerError`` goes on."""
        try:
            receipt = action(self.accounts[who])
        except LedgerError as error:
            if error.receipt is not None:
                self.receipts.append((who, error.receipt))
            raise
        self.receipts.append((who, receipt))
        return receipt

    def attempt(self, who: int, action: Callable[[Account], TxReceipt]) -> TxReceipt | None:
        """``act``, where a refusal is an acceptable answer (the watcher retries later)."""
        try:
            return self.act(who, action)
        except LedgerError:
            return None

    def wallet(self, who: int, asset: Asset | None = None) -> int:
        return self.backend.balance(self.accounts[who], asset or native(self.backend))

    def spent(self, who: int) -> int:
        """Base units of the native asset ``who``'s wallet paid for its own actions: fees
        it paid from outside the channel and rent it locked."""
        return sum(
            (0 if r.fee_from_channel else r.fee) + r.rent
            for w, r in self.receipts
            if w == who and r.fee_asset == native(self.backend)
        )

    def channel_fees(self) -> int:
        """Fees the chain took out of the channel's own funds (Bitcoin's commitments)."""
        return sum(r.fee for _, r in self.receipts if r.fee_from_channel)

    def poll(self) -> list[ChainEvent]:
        new = self.backend.poll_events()
        self.events += new
        return new

    def advance_to(self, deadline: int, limit: int = 200) -> None:
        """Let the chain's clock pass ``deadline``: until a transaction sent now is judged
        at a time ``>= deadline`` (``next_block_time``, the watcher's clock)."""
        for _ in range(limit):
            gap = deadline - self.backend.next_block_time()
            if gap <= 0:
                return
            self.backend.advance_time(gap)
        raise AssertionError(f"the chain's clock never reached {deadline}")

    def settle(self, rounds: int = 3) -> None:
        """What both watchers do once a dispute's period is over: conclude, then withdraw
        every asset, again on later blocks while the chain refuses (Bitcoin's sweeps wait
        for their own CSV delays). Conclusions and withdrawals must be idempotent."""
        for _ in range(rounds):
            self.backend.advance_time(self.params.challenge_duration)
            for who in (0, 1):
                self.attempt(who, lambda a: self.backend.conclude(self.params, a))
            for who in (0, 1):
                for asset in self.params.assets:
                    self.attempt(who, partial(self.backend.withdraw, self.params, who, asset=asset))
        self.poll()


def holdings(duo: Duo, depth: int = 1) -> Mapping[Asset, tuple[int, ...]]:
    return {a: tuple(v) for a, v in duo.backend.holdings(duo.params, depth).items()}
