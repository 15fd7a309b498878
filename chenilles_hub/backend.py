"""What a chain backend is: the duties DESIGN.md section 4 lists, as a typed protocol.

The node talks to chains only through this protocol, and finds implementations only
through the plugin manager (``chenilles_hub.plugins``), so a backend installed from PyPI by
a third party is indistinguishable from a built-in one. Backends may import this module
and ``chenilles_hub.core``, never ``chenilles_hub.node``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from .core import Asset, ChannelParams, Htlc, Participant, SignedState, StateAuthority
from .core.timing import TimeModel


class BackendInfo(msgspec.Struct, frozen=True):
    name: str
    version: str
    family: str
    chains: tuple[str, ...]
    description: str = ""


class TxReceipt(msgspec.Struct, frozen=True):
    """What an on-chain action cost and where it landed."""

    operation: str
    txid: str
    fee: int
    fee_asset: Asset
    cost: int  # gas (EVM), weight units (Bitcoin), compute units (Solana)
    cost_unit: str
    block: int | None = None


# --- chain events the watcher follows ------------------------------------------------------


class Funded(msgspec.Struct, frozen=True, tag="funded"):
    channel_id: bytes
    asset: Asset
    participant: int
    amount: int


class Registered(msgspec.Struct, frozen=True, tag="registered"):
    channel_id: bytes
    version: int
    timeout: int


class Concluded(msgspec.Struct, frozen=True, tag="concluded"):
    channel_id: bytes
    version: int


class PreimageRevealed(msgspec.Struct, frozen=True, tag="preimage_revealed"):
    payment_hash: bytes
    preimage: bytes
    at: int


class NewBlock(msgspec.Struct, frozen=True, tag="new_block"):
    height: int
    time: int


class Reorged(msgspec.Struct, frozen=True, tag="reorged"):
    """Transactions that were confirmed are not any more; the watcher re-checks its duties."""

    depth: int
    txids: tuple[str, ...]


ChainEvent = Funded | Registered | Concluded | PreimageRevealed | NewBlock | Reorged


class LedgerError(Exception):
    """The ledger refused an action (reverted, rejected by consensus). ``reason`` is its word."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"{operation}: {reason}")
        self.operation = operation
        self.reason = reason


class Account(Protocol):
    """A key on one chain. ``chain_key`` is its public form, as ChannelParams carry it."""

    @property
    def chain_key(self) -> str: ...


@runtime_checkable
class ChainBackend(Protocol):
    """One ledger, as the node sees it."""

    info: BackendInfo
    chain: str

    def time_model(self) -> TimeModel:
        """Block time, finality, worst inclusion delay and timelock horizon of this chain."""
        ...

    def assets(self) -> Sequence[Asset]:
        """Assets this ledger instance can hold in channels."""
        ...

    def now(self) -> int:
        """The ledger's own notion of the current unix time (latest block time)."""
        ...

    def create_account(self, fund: bool = True) -> Account:
        """A new key; on an embedded ledger, funded with every asset for tests and demos."""
        ...

    def balance(self, account: Account, asset: Asset) -> int: ...

    def participant_key(self, account: Account, nonce: bytes) -> str:
        """What goes into ``Participant.chain_key`` for ``account`` in a channel with this
        nonce: an address (EVM), a public key (Solana), or the funding key and first
        per-commitment point (Bitcoin)."""
        ...

    def new_nonce(
        self,
        participants: Sequence[Participant],
        deposits: Mapping[Asset, Sequence[int]],
        account: Account,
    ) -> bytes:
        """The opener's channel nonce. Random on account-based chains; on Bitcoin the txid
        of the funding transaction the opener prepares (so the channel id commits to it)."""
        ...

    def channel_id(self, params: ChannelParams) -> bytes:
        """A channel id that cannot collide on this chain (includes chain and deployment)."""
        ...

    def authority(self, params: ChannelParams, account: Account, me: int) -> StateAuthority:
        """Signs and verifies state bundles (and revocations, where used) for one channel."""
        ...

    def native_expiry(self, expiry: int) -> int:
        """The chain-native image of unix time ``expiry``, never later than it."""
        ...

    def estimate_fee(self, operation: str) -> int:
        """Expected fee of ``operation`` in the chain's native asset base unit."""
        ...

    def fund(
        self, params: ChannelParams, me: int, account: Account, asset: Asset, amount: int
    ) -> TxReceipt: ...

    def close_cooperative(
        self, params: ChannelParams, signed: SignedState, account: Account
    ) -> TxReceipt: ...

    def register(self, params: ChannelParams, signed: SignedState, account: Account) -> TxReceipt:
        """Start a dispute with the latest state this side holds."""
        ...

    def challenge(self, params: ChannelParams, signed: SignedState, account: Account) -> TxReceipt:
        """Answer a registered stale state: refute with a newer one, or punish a revoked one."""
        ...

    def conclude(self, params: ChannelParams, account: Account) -> TxReceipt: ...

    def withdraw(self, params: ChannelParams, me: int, account: Account, asset: Asset) -> TxReceipt:
        """Make sure our payout of ``asset`` from the concluded channel reached ``account``.

        Where the conclusion itself paid both sides (EVM), this sends nothing and returns a
        receipt with an empty txid and no fee, unless the payout had to be credited (the
        receiver refused it) and is pulled now; where payouts are claimed (Bitcoin sweeps,
        Solana vaults), this claims it. Refused (``LedgerError``) before the conclusion."""
        ...

    def claim_htlc(
        self, params: ChannelParams, htlc: Htlc, preimage: bytes, account: Account
    ) -> TxReceipt:
        """Enforce an HTLC on-chain with its preimage, before its native expiry."""
        ...

    def refund_htlc(self, params: ChannelParams, htlc: Htlc, account: Account) -> TxReceipt:
        """Take back an expired HTLC on-chain."""
        ...

    def poll_events(self) -> list[ChainEvent]:
        """Chain events since the last call, oldest first."""
        ...

    def advance_time(self, seconds: int) -> None:
        """Embedded ledgers only: move the ledger's clock (challenge periods, expiries)."""
        ...


@runtime_checkable
class ChannelRecords(Protocol):
    """An optional role: a backend that must remember, per channel, more than the signed
    states to act on-chain alone (Bitcoin: the peer's revocation secrets, its recent
    per-commitment points, the HTLC sets of past versions; without them a revoked
    commitment can be neither recognised nor punished). EVM and Solana need nothing beyond
    the latest signed state and do not take this role.

    The record is kept in named *parts* so that a long-lived channel costs little per
    update: ``export_record`` returns only the parts that changed since its previous call
    for this channel (``None`` or ``{}``: none did), and the node writes them, each replacing
    the stored part of that name, in the same transaction as the channel state of the event
    that changed them, before anything that event sends leaves the process. An empty value
    drops a part. After a restart the node calls ``restore_record`` once per channel, with
    every stored part, before it asks for the channel's authority. Part names are short
    ASCII (at most 64 characters, no ``/`` at the start)."""

    def export_record(
        self, params: ChannelParams, me: int, account: Account
    ) -> Mapping[str, bytes] | None: ...

    def restore_record(
        self, params: ChannelParams, me: int, account: Account, parts: Mapping[str, bytes]
    ) -> None: ...


class BackendFactory(Protocol):
    """What a plugin registers: metadata, plus a way to build ledger instances."""

    info: BackendInfo

    def embedded(self, **options: Any) -> ChainBackend:
        """A backend on the embedded default ledger (tests, demo)."""
        ...

    def connect(self, url: str, **options: Any) -> ChainBackend:
        """A backend on a real node at ``url``."""
        ...
