"""What a chain backend is: the duties docs/design.md section 4 lists, as a typed protocol.

The node talks to chains only through this protocol, and finds implementations only
through the plugin manager (``chenilles_hub.plugins``), so a backend installed from PyPI by
a third party is indistinguishable from a built-in one. Backends may import this module
and ``chenilles_hub.core``, never ``chenilles_hub.node``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from .core import (
    Asset,
    AssetBalances,
    ChannelParams,
    ChannelRules,
    ChannelState,
    Htlc,
    Participant,
    SignedState,
    StateAuthority,
)

# The errors a backend raises for input it refuses before anything reaches the ledger
# (``StateAuthority.sign``, ``channel_id``, ``fund``...): the core's typed ``ChannelError``s,
# re-exported here so a backend imports them from a public module. The core lets a
# ``ChannelError`` from ``sign`` reach the proposer (the proposal is not made) or the peer
# (the proposal is refused); any other exception is a bug in the backend.
from .core.errors import AmountOutOfRange as AmountOutOfRange
from .core.errors import BadPreimage as BadPreimage
from .core.errors import ChannelError as ChannelError
from .core.errors import InvalidParams as InvalidParams
from .core.errors import TooManyHtlcs as TooManyHtlcs
from .core.errors import UnknownAsset as UnknownAsset
from .core.errors import UnmineableState as UnmineableState
from .core.timing import TimeModel

#: The operation names ``ChainBackend.estimate_fee`` must know: each on-chain action of the
#: protocol, named as its ``TxReceipt.operation``. The node asks for ``"fund"`` (a wallet
#: must hold the deposit plus this) before it deposits; an unknown name raises ``ValueError``.
FEE_OPERATIONS = (
    "fund",
    "close_cooperative",
    "register",
    "challenge",
    "conclude",
    "withdraw",
    "claim_htlc",
    "refund_htlc",
)


class BackendInfo(msgspec.Struct, frozen=True):
    """What a backend is and what its chain can do. The capabilities are how the node and
    the conformance suite (``chenilles_hub.testing``) learn where a chain genuinely differs,
    never by the backend's name.

    ``supports_apps``: whether the backend enforces app rules on-chain (forced moves,
    the ``use_app`` ... ``app_dispute`` methods below); an app channel on a backend that
    does not is refused at open.

    ``max_members``: the most members a channel on this backend may have (2: two-party
    only; N-party channels are ``core.group``, enforced by the backend's group contract);
    ``members_note`` says why a backend stops there, for the refusal's message.

    ``single_funder``: only participant 0 deposits (Bitcoin: one funding output); the other
    side's balance comes from payments.

    ``dispute``: how a stale registration is answered. ``"newest_wins"``: ``challenge``
    replaces it with the newer state and the channel concludes on that (EVM, Solana);
    ``"penalty"``: ``challenge`` punishes the revoked state and the honest side takes the
    whole channel (Bitcoin).

    ``reorgs``: the chain can retract blocks it reported, and the backend reports it
    (``Reorged``); ``False`` where it cannot happen (LiteSVM, eth-tester).
    """

    name: str
    version: str
    family: str
    chains: tuple[str, ...]
    description: str = ""
    supports_apps: bool = False
    max_members: int = 2
    members_note: str = ""
    single_funder: bool = False
    dispute: str = "newest_wins"
    reorgs: bool = False


class AssetInfo(msgspec.Struct, frozen=True):
    """How people write amounts of an asset: ``symbol`` (``ETH``), ``decimals`` (18: one
    ETH is 10**18 base units) and the base unit's name (``wei``). What the demo and the
    CLI print; money itself is always an integer of base units."""

    symbol: str
    decimals: int = 0
    unit: str = "base unit"

    def format(self, amount: int) -> str:
        whole = f"{amount / 10**self.decimals:.{min(self.decimals, 8)}f}"
        return f"{whole} {self.symbol} ({amount} {self.unit})"


def asset_info(backend: ChainBackend, asset: Asset) -> AssetInfo:
    """The backend's ``asset_info(asset)`` (an optional method), else the token's name
    (the backend's family for the native coin) in base units."""
    describe = getattr(backend, "asset_info", None)
    if callable(describe):
        info = describe(asset)
        if isinstance(info, AssetInfo):
            return info
    symbol = backend.info.family if asset.token == "native" else asset.token[:12]
    return AssetInfo(symbol)


class TxReceipt(msgspec.Struct, frozen=True):
    """What an on-chain action cost and where it landed."""

    operation: str
    txid: str
    fee: int
    fee_asset: Asset
    cost: int  # gas (EVM), weight units (Bitcoin), compute units (Solana)
    cost_unit: str
    block: int | None = None
    #: Base units of ``fee_asset`` the transaction locked in accounts it created (Solana's
    #: rent-exempt minimum): not a fee, but not paid back either, so an operator's books
    #: count it with the fees.
    rent: int = 0
    #: The fee came out of the channel's funds, borne by whoever the chain's rules charge
    #: (on Bitcoin the funder pays the commitment and closing transactions' fees), not
    #: out of the sender's wallet.
    fee_from_channel: bool = False


# --- chain events the watcher follows ------------------------------------------------------


class Funded(msgspec.Struct, frozen=True, tag="funded"):
    channel_id: bytes
    asset: Asset
    participant: int
    amount: int


class Registered(msgspec.Struct, frozen=True, tag="registered"):
    """``timeout``: the end of the challenge period, in unix seconds on the chain's own
    clock (the clock of ``ChainBackend.next_block_time``): the ledger concludes the dispute
    in a block whose time is ``>= timeout`` (EVM: ``block.timestamp >= timeout``; Solana:
    ``Clock.unix_timestamp >= deadline``; Bitcoin: the height clock's time of the height at
    which the CSV delay of the commitment's outputs has passed)."""

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
    """Blocks the backend had reported left the chain: ``depth`` of them (an upper bound),
    with ``txids`` the transactions they held that are not confirmed any more. The events
    that follow in the same poll are what the new branch holds: every event of each
    channel that had one in the retracted blocks, again from its first (EVM), or the
    transactions the new blocks confirm (Bitcoin). The node re-checks deposits and re-arms
    the watcher's actions for the chain's channels."""

    depth: int
    txids: tuple[str, ...]


class Progressed(msgspec.Struct, frozen=True, tag="progressed"):
    """A forced move in an app channel was recorded: the registered state is now version
    ``version`` (moved by ``mover``), with these free balances (params' asset order), app
    data and final flag; the next move, or a newer state signed by both, is accepted until
    ``timeout``, and the channel concludes on this state from then on. Reported after the
    ``Registered(channel, version, timeout)`` a backend also reports for the same move."""

    channel_id: bytes
    version: int
    timeout: int
    mover: int
    balances: tuple[AssetBalances, ...]
    app_data: bytes
    final: bool


ChainEvent = Funded | Registered | Concluded | PreimageRevealed | NewBlock | Reorged | Progressed


class AppDispute(msgspec.Struct, frozen=True):
    """An app channel's dispute as its ledger records it (chain time throughout).

    ``phase``: ``registered`` (a state both signed; a strictly newer one replaces it until
    ``refute_until``), ``forced`` (the last change was a forced move; a newer state both
    signed, of at least its version, replaces it until ``refute_until``) or
    ``concluded``. A forced move from ``state`` is accepted from ``move_from`` until
    ``move_until``; the channel concludes on ``state`` from ``conclude_at``.
    """

    phase: str
    state: ChannelState
    refute_until: int
    move_from: int
    move_until: int
    conclude_at: int


class LedgerError(Exception):
    """The ledger refused an action (reverted, rejected by consensus). ``reason`` is its word.

    ``receipt`` is set when the refusal still cost a fee (an EVM transaction mined but
    reverted): the operator's books must show it even though the action failed."""

    def __init__(self, operation: str, reason: str, receipt: TxReceipt | None = None) -> None:
        super().__init__(f"{operation}: {reason}")
        self.operation = operation
        self.reason = reason
        self.receipt = receipt


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
        """The ledger's own notion of the current unix time: the latest block's time (EVM
        timestamp, Bitcoin height clock or tip time, Solana Clock sysvar). What HTLC
        expiries are converted from (``native_expiry``)."""
        ...

    def create_account(self, fund: bool = True) -> Account:
        """A new key; on an embedded ledger, funded with every asset for tests and demos."""
        ...

    def account_from_key(self, key: bytes | str) -> Account:
        """The account of a configured secret (``[chains.NAME] account_key(_file)``): what a
        node on a real network signs and pays with. A 32-byte secret as 64 hex digits (or
        as bytes) is accepted, and whatever else the chain's ecosystem uses; an invalid key
        raises ``ValueError`` without echoing it. Nothing is funded or mined for it: its
        coins are found on the chain. The node calls it for every chain reached by URL."""
        ...

    def balance(self, account: Account, asset: Asset) -> int: ...

    def participant_key(self, account: Account, salt: bytes) -> str:
        """What goes into ``Participant.chain_key`` for ``account`` in one channel: an
        address (EVM), a public key (Solana), or the funding key, first per-commitment point
        and a tag of ``salt`` (Bitcoin). ``salt`` is 32 random bytes the node draws per
        channel (before the channel nonce exists); a backend that needs no per-channel key
        ignores it."""
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
        """Expected fee of ``operation`` (one of ``FEE_OPERATIONS``) in the chain's native
        asset's base unit; ``ValueError`` for an unknown name."""
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

    # --- chain truth: deposits at depth, and the chain's own clock ------------------------

    def holdings(
        self, params: ChannelParams, min_confirmations: int
    ) -> Mapping[Asset, Sequence[int]]:
        """What the chain holds for the channel, per asset and per participant (in the
        order of ``params.participants``), counting only what is at least
        ``min_confirmations`` deep (1: in the tip block). The node activates a channel only
        once these equal the agreed deposits: a peer's word about its deposit is never
        taken. Every asset of ``params`` is in the answer (zeros if nothing is held); a
        channel the chain concluded holds nothing. What a participant deposited on behalf
        of the other counts for the one it was deposited for (EVM: the ``participant``
        of the deposit; Bitcoin: participant 0 funds the whole output)."""
        ...

    def next_block_time(self) -> int:
        """The time a transaction sent now will be judged at: the timestamp the next block
        will carry (EVM: the pending block's, which may be the node's wall clock on a chain
        that mines on demand), the height-clock time of the next height (Bitcoin), the
        Clock sysvar (Solana). The watcher acts on a deadline ``T`` (``Registered.timeout``,
        an HTLC's expiry) once this is ``>= T``: the contract will accept the action in that
        block. Never earlier than ``now()``."""
        ...

    # --- apps: forced moves (generalized state channels) ---------------------------------
    #
    # Backends whose ``info.supports_apps`` is true enforce app rules on-chain; the others
    # implement these three by raising ``LedgerError`` (and the node refuses an app channel
    # on them at open). An app channel's dispute, on every ledger that supports apps:
    # ``register`` a state both signed; while the challenge period runs a strictly newer one
    # replaces it (``challenge``); then, for one more challenge period, a *forced move*
    # (``force_move``) may take it one move on, signed by the mover alone and checked by the
    # app's on-chain rule; each forced move opens a new period for the next one, during
    # which a newer state both signed (of at least the forced version) may also replace it
    # (``challenge`` again). When a period ends without a move, ``conclude`` pays the
    # registered state's balances, which an app's rule keeps equal to the app's outcome: the
    # party whose turn it is and who stays silent gets what the app gives a silent party.

    def use_app(self, app_id: str, code: bytes | None = None, address: str | None = None) -> str:
        """Make app ``app_id`` usable in channels on this ledger, and return its on-chain
        identity (an EVM contract address, a Solana program id): bound to ``address`` where
        the app's on-chain rule is deployed already, or, on a development ledger, ``code``
        (the app plugin's ``onchain_code(family)``) deployed now. Channels name the app by
        its id (``ChannelParams.app``) and their id commits to this identity: a channel
        naming an app not made usable here is refused (``InvalidParams``), so a peer can
        never choose the code that judges our moves."""
        ...

    def force_move(
        self, params: ChannelParams, move: SignedState, mover: int, account: Account
    ) -> TxReceipt:
        """A forced move: ``move.state`` follows the registered state by one move of
        participant ``mover`` and carries the mover's signature (the same bundle as in a
        proposal) at ``move.signatures[mover]``. ``LedgerError`` when the ledger refuses it
        (out of its window, not the registered state's successor, refused by the app)."""
        ...

    def app_dispute(self, params: ChannelParams) -> AppDispute | None:
        """The channel's dispute as recorded on-chain, or ``None`` if none was registered."""
        ...

    def channel_rules(self, params: ChannelParams) -> ChannelRules:
        """What a state of this channel must keep for its on-chain form to be mineable, per
        asset: the dust limit (smallest output the chain relays), the channel reserve each
        participant keeps once it has it, and who pays the enforcement transaction's fee
        and how it grows with HTLC outputs. The core refuses to sign or accept a state that
        breaks them (``core.invariants.check_rules``). ``ChannelRules()`` where the chain
        has no such costs (fees paid from outside the channel, no dust)."""
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


@runtime_checkable
class Wallet(Protocol):
    """An optional role: the node's own on-chain account as a wallet the operator can use
    (``chenilles wallet``). ``decimals``: how many decimal places a whole unit of ``asset``
    has (ETH 18, BTC 8, SOL 9, a token its own), so operators write rates in whole units
    while everything on the wire stays in base units. ``send`` pays ``amount`` base units
    of ``asset`` from ``account`` to ``to`` (an address in the chain's own notation) and
    returns once the ledger accepted it; it raises ``LedgerError`` (nothing sent) if the
    address is not one of this chain's or the account cannot pay it and its fee."""

    def decimals(self, asset: Asset) -> int: ...

    def address(self, account: Account) -> str:
        """Where others send to this account (what ``send`` takes as ``to``)."""
        ...

    def send(self, account: Account, asset: Asset, to: str, amount: int) -> TxReceipt: ...


@runtime_checkable
class CoinWallet(Protocol):
    """An optional role of a UTXO chain's wallet (Bitcoin): the account's unspent outputs."""

    def coins(self, account: Account) -> list[dict[str, Any]]:
        """``{"txid", "vout", "value", "height", "spendable"}`` per coin."""
        ...


class BackendFactory(Protocol):
    """What a plugin registers: metadata, plus a way to build ledger instances."""

    info: BackendInfo

    def embedded(self, **options: Any) -> ChainBackend:
        """A backend on the embedded default ledger (tests, demo)."""
        ...

    def connect(self, url: str, **options: Any) -> ChainBackend:
        """A backend on a real node at ``url``. A restarting node passes ``from_block``
        (where its event feed was): take it, or the node leaves the chain unavailable
        rather than miss events (docs/writing-a-backend.md)."""
        ...

    # Optional: ``config_keys(embedded: bool) -> frozenset[str]``, the keys a
    # ``[chains.NAME]`` table may give ``embedded``/``connect`` (besides the node's own:
    # backend, url, embedded, account_key(_file), confirmations). With it, the node refuses
    # a misspelt key at start and suggests the closest; a factory without it is not checked.
