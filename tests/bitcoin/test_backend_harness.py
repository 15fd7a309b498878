"""Two real ``ChannelMachine``s driven over the Bitcoin backend, with a tiny message pump.

Every transaction goes through the embedded ledger and is mined into a block that
libbitcoinkernel accepts or rejects. Imported by the other ``test_backend_*`` modules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from chenilles_bitcoin.accounts import BitcoinAccount
from chenilles_bitcoin.backend import BitcoinBackend, embedded_backend

from chenilles_hub.backend import TxReceipt
from chenilles_hub.core import (
    AddHtlc,
    Asset,
    ChannelError,
    ChannelMachine,
    ChannelParams,
    Effect,
    Htlc,
    HtlcPolicy,
    Participant,
    Persist,
    Send,
    SignedState,
    Update,
    decode_message,
    encode_message,
    initial_state,
    payment_hash,
)

pytestmark = pytest.mark.bitcoin

BTC = Asset("bip122:regtest", "native")
CHALLENGE = 6 * 3600  # 36 blocks of to_self_delay


@dataclass
class Channel:
    backend: BitcoinBackend
    accounts: tuple[BitcoinAccount, BitcoinAccount]
    params: ChannelParams
    channel_id: bytes
    machines: tuple[ChannelMachine, ChannelMachine]
    wire: list[tuple[int, bytes]] = field(default_factory=list)
    errors: list[ChannelError] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    history: dict[int, SignedState] = field(default_factory=dict)
    start_balances: tuple[int, int] = (0, 0)
    funding: TxReceipt | None = None

    @classmethod
    def create(
        cls,
        backend: BitcoinBackend,
        deposits: tuple[int, int] = (1_000_000, 0),
        challenge: int = CHALLENGE,
        accounts: tuple[BitcoinAccount, BitcoinAccount] | None = None,
        nonce: bytes | None = None,
    ) -> Channel:
        """``accounts``: reuse funded accounts (each new one mines 101 blocks, and the
        regtest subsidy halves every 150). ``nonce``: a made-up funding txid, for channels
        that are only signed, never funded (preparing a funding transaction reserves the
        wallet's coins)."""
        alice, bob = accounts or (backend.create_account(), backend.create_account())
        start = (backend.balance(alice, BTC), backend.balance(bob, BTC))
        keys = (
            backend.participant_key(alice, b"salt-a" + bytes(26)),
            backend.participant_key(bob, b"salt-b" + bytes(26)),
        )
        participants = tuple(Participant(k, hashlib.sha256(k.encode()).digest()) for k in keys)
        nonce = nonce or backend.new_nonce(participants, {BTC: deposits}, alice)
        params = ChannelParams(
            chain=BTC.chain,
            participants=participants,
            assets=(BTC,),
            challenge_duration=challenge,
            nonce=nonce,
        )
        channel_id = backend.channel_id(params)
        initial = initial_state(channel_id, params.assets, {BTC: deposits})
        policy = HtlcPolicy(min_lead=3600, max_lead=14 * 86400)
        machines = tuple(
            ChannelMachine(
                params,
                channel_id,
                i,
                backend.authority(params, acct, i),
                initial,
                policy=policy,
                rules=backend.channel_rules(params),
            )
            for i, acct in enumerate((alice, bob))
        )
        assert len(machines) == 2
        channel = cls(backend, (alice, bob), params, channel_id, (machines[0], machines[1]))
        channel.start_balances = start
        return channel

    def open(self) -> None:
        self.run(0, self.machines[0].open())
        self.pump()
        assert self.machines[0].is_open and self.machines[1].is_open
        self.record()

    def run(self, index: int, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.wire.append((1 - index, encode_message(effect.message)))
            elif not isinstance(effect, Persist):
                self.effects.append(effect)

    def pump(self, limit: int = 100) -> None:
        for _ in range(limit):
            if not self.wire:
                return
            recipient, data = self.wire.pop(0)
            machine = self.machines[recipient]
            message = decode_message(data)
            try:
                effects = machine.receive(message, self.backend.now())
            except ChannelError as error:
                self.errors.append(error)
                effects = machine.rejection(message, error)
            self.run(recipient, effects)
        raise AssertionError("message storm")

    def record(self) -> None:
        latest = self.machines[0].latest
        assert latest is not None
        self.history[latest.version] = latest

    def update(self, proposer: int, *updates: Update) -> SignedState:
        self.run(proposer, self.machines[proposer].propose(tuple(updates), self.backend.now()))
        self.pump()
        assert not self.errors, self.errors
        latest = self.machines[0].latest
        assert latest is not None and latest == self.machines[1].latest
        self.record()
        return latest

    def htlc(self, htlc_id: int, payer: int, amount: int, hours: int = 3) -> tuple[Htlc, bytes]:
        preimage = hashlib.sha256(b"preimage" + htlc_id.to_bytes(8, "big")).digest()
        expiry = self.backend.now() + hours * 3600
        htlc = Htlc(
            id=htlc_id,
            payer=payer,
            asset=BTC,
            amount=amount,
            payment_hash=payment_hash(preimage),
            expiry=expiry,
            native_expiry=self.backend.native_expiry(expiry),
        )
        return htlc, preimage

    def add_htlc(self, htlc_id: int, payer: int, amount: int, hours: int = 3) -> tuple[Htlc, bytes]:
        htlc, preimage = self.htlc(htlc_id, payer, amount, hours)
        self.update(payer, AddHtlc(htlc))
        return htlc, preimage

    def latest(self, index: int = 0) -> SignedState:
        latest = self.machines[index].latest
        assert latest is not None
        return latest


def fresh_backend(**options: object) -> Iterator[BitcoinBackend]:
    """A backend on a new embedded chain, closed afterwards (each test module's fixture)."""
    b = embedded_backend(**options)
    try:
        yield b
    finally:
        close = getattr(b.ledger, "close", None)
        if close is not None:
            close()


@pytest.fixture(name="backend")
def _backend() -> Iterator[BitcoinBackend]:
    yield from fresh_backend()


def opened(backend: BitcoinBackend, deposits: tuple[int, int] = (1_000_000, 0)) -> Channel:
    """A channel whose version 0 is signed and whose funding transaction is mined."""
    channel = Channel.create(backend, deposits)
    channel.open()
    channel.funding = backend.fund(channel.params, 0, channel.accounts[0], BTC, deposits[0])
    return channel


def test_harness_opens_a_channel(backend: BitcoinBackend) -> None:
    channel = opened(backend)
    assert channel.latest().version == 0
    funding = backend.ledger.get_tx_confirmations(channel.params.nonce.hex())
    assert funding == 1
