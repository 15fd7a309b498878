"""App channels on a real ledger through the ChainBackend API only (EVM on eth-tester,
Solana on LiteSVM): what the forced-move tests share.

An :class:`AppChannel` is two participants' accounts, the channel's params naming an app,
both deposits made, and helpers that sign states the way the channel machine does (the
backend's own authority), so each test can play any sequence off-chain and then take it
on-chain. Every on-chain action but the deposits is sent by a third account (a relayer),
so the participants' balances change by exactly what the channel pays them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

import msgspec

from chenilles_hub import apps
from chenilles_hub.backend import ChainBackend, TxReceipt
from chenilles_hub.core import (
    Asset,
    AssetBalances,
    ChannelParams,
    ChannelState,
    Participant,
    SignedState,
    check_app_move,
)

CHAINS = ("evm", "solana")
DURATION = 100
STAKE = 10**6


def make_backend(name: str) -> ChainBackend:
    if name == "evm":
        from chenilles_evm.backend import embedded_backend as evm

        backend: ChainBackend = evm()
    else:
        from chenilles_solana.backend import embedded_backend as sol

        backend = sol()
    for plugin in apps.installed_apps():
        if plugin.info.name in ("tictactoe", "escrow"):
            backend.use_app(plugin.info.name, code=plugin.onchain_code(backend.info.family))
    return backend


@dataclass
class AppChannel:
    backend: ChainBackend
    app: str
    deposits: tuple[int, int]
    app_data: bytes
    accounts: tuple = ()
    relayer: object = None
    params: ChannelParams | None = None
    authorities: tuple = ()
    start: tuple[int, int] = (0, 0)
    receipts: list[TxReceipt] = field(default_factory=list)

    @classmethod
    def open(
        cls, backend: ChainBackend, app: str, deposits: tuple[int, int], app_data: bytes
    ) -> AppChannel:
        ch = cls(backend, app, deposits, app_data)
        ch.accounts = (backend.create_account(), backend.create_account())
        ch.relayer = backend.create_account()
        nonce = secrets.token_bytes(32)
        participants = tuple(
            Participant(backend.participant_key(a, nonce), hashlib.sha256(bytes([i])).digest())
            for i, a in enumerate(ch.accounts)
        )
        ch.params = ChannelParams(
            chain=backend.chain,
            participants=participants,
            assets=(ch.native,),
            challenge_duration=DURATION,
            nonce=nonce,
            app=app,
        )
        ch.authorities = tuple(
            backend.authority(ch.params, a, i) for i, a in enumerate(ch.accounts)
        )
        for i, amount in enumerate(deposits):
            if amount:
                backend.fund(ch.params, i, ch.accounts[i], ch.native, amount)
        ch.start = (ch.balance(0), ch.balance(1))
        return ch

    @property
    def native(self) -> Asset:
        return Asset(self.backend.chain, "native")

    @property
    def rules(self):  # type: ignore[no-untyped-def]
        return apps.app(self.app).rules()

    @property
    def channel_id(self) -> bytes:
        assert self.params is not None
        return self.backend.channel_id(self.params)

    def initial(self) -> ChannelState:
        return ChannelState(
            channel_id=self.channel_id,
            version=0,
            balances=(AssetBalances(self.native, self.deposits),),
            app_data=self.app_data,
        )

    def balance(self, who: int) -> int:
        return self.backend.balance(self.accounts[who], self.native)

    def gained(self) -> tuple[int, int]:
        """What each participant received from the channel since both deposits."""
        return (self.balance(0) - self.start[0], self.balance(1) - self.start[1])

    # --- signing, as the channel machine does ------------------------------------------------

    def both(self, state: ChannelState) -> SignedState:
        assert self.params is not None
        return SignedState(state, tuple(a.sign(self.params, state) for a in self.authorities))

    def by(self, who: int, state: ChannelState) -> SignedState:
        """``state`` signed by ``who`` alone: a forced move's signature."""
        assert self.params is not None
        sigs = [b"", b""]
        sigs[who] = self.authorities[who].sign(self.params, state)
        return SignedState(state, (sigs[0], sigs[1]))

    def move(
        self, state: ChannelState, who: int, data: bytes, now: int | None = None
    ) -> ChannelState:
        """The state after ``who``'s move, checked as the machine checks it, version + 1."""
        assert self.params is not None
        after = self.rules.apply(self.params, state, who, data)
        check_app_move(
            self.rules, self.params, state, after, who, self.backend.now() if now is None else now
        )
        return msgspec.structs.replace(after, version=state.version + 1)

    def play(self, moves: list[tuple[int, bytes]]) -> list[ChannelState]:
        """States v0..vn, each signed by both off-chain (only the list is returned)."""
        states = [self.initial()]
        for who, data in moves:
            states.append(self.move(states[-1], who, data))
        return states

    # --- on-chain, sent by the relayer ---------------------------------------------------------

    def register(self, state: ChannelState) -> TxReceipt:
        assert self.params is not None
        return self.backend.register(self.params, self.both(state), self.relayer)

    def challenge(self, state: ChannelState) -> TxReceipt:
        assert self.params is not None
        return self.backend.challenge(self.params, self.both(state), self.relayer)

    def force(self, who: int, state: ChannelState, signer: int | None = None) -> TxReceipt:
        assert self.params is not None
        signed = self.by(who if signer is None else signer, state)
        if signer is not None and signer != who:  # a forged move: another's signature
            signed = SignedState(state, tuple(reversed(signed.signatures)))
        return self.backend.force_move(self.params, signed, who, self.relayer)

    def conclude_and_withdraw(self) -> None:
        assert self.params is not None
        self.backend.conclude(self.params, self.relayer)
        for who in (0, 1):
            # EVM pays both in the conclusion (withdraw sends nothing from the participant);
            # Solana's withdraw may be sent by anyone and pays the participant
            sender = self.relayer if self.backend.info.family == "Solana" else self.accounts[who]
            self.backend.withdraw(self.params, who, sender, self.native)

    def dispute(self):  # type: ignore[no-untyped-def]
        assert self.params is not None
        return self.backend.app_dispute(self.params)
