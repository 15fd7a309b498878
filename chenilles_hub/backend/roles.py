"""The roles a chain backend plays, one concern each (as LDK splits a chain into a chain
source, a broadcaster, a fee estimator and a signer), so a backend author can build and test
them one at a time and the hub's parts can ask for only what they use.

``ChainBackend`` (``protocol.py``) is all of the required roles together: the node takes one
object per chain. The optional roles (``ChannelRecords``, ``Deployments``, ``Wallet``,
``CoinWallet``, ``EventFetcher``, ``ClockFetcher``) are found with ``isinstance`` and used
where present.
A backend usually builds the chain source and the enforcer on one RPC client, and the keys
and the rules on pure computation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..core import (
    Asset,
    ChannelParams,
    ChannelRules,
    Htlc,
    Participant,
    SignedState,
    StateAuthority,
)
from ..core.timing import TimeModel
from .types import Account, AppDispute, ChainEvent, TxReceipt


@runtime_checkable
class ChainSource(Protocol):
    """Where the chain's truth comes from: its clock, its assets, the events the watcher
    follows and what it holds for a channel at a given depth. Read-only; on a real network
    everything the node believes about the chain comes through here, never from a peer."""

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

    def next_block_time(self) -> int:
        """The time a transaction sent now will be judged at: the timestamp the next block
        will carry (EVM: the pending block's, which may be the node's wall clock on a chain
        that mines on demand), the height-clock time of the next height (Bitcoin), the
        Clock sysvar (Solana). The watcher acts on a deadline ``T`` (``Registered.timeout``,
        an HTLC's expiry) once this is ``>= T``: the contract will accept the action in that
        block. Never earlier than ``now()``."""
        ...

    def poll_events(self) -> list[ChainEvent]:
        """Chain events since the last call, oldest first."""
        ...

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


@runtime_checkable
class EventFetcher(Protocol):
    """An optional role: ``poll_events`` in two halves, so that the node's thread never
    waits on the chain's RPC (LDK likewise polls its chain source apart from the channel
    manager). Without it, a poll runs on the node's thread, and every peer's message and
    API call waits for the poll's round trips to the endpoint (several a poll: against a
    remote endpoint, a large share of every tick).

    ``fetch_events`` reads what is new on the chain and returns it in any form the backend
    likes. The node calls it on a thread of its own, one call at a time per chain, *while
    its own thread calls the backend's other methods*: it may keep state of its own
    (cursors, the hashes of blocks it saw), but it must not write what the other methods
    read without a lock, and its connection to the chain must be safe to share (or be its
    own). ``apply_events`` then runs on the node's thread with what the fetch returned
    and turns it into the hub's events, as ``poll_events`` would; it may call the chain for
    what only it needs (rare: a reorg, an unknown channel). ``poll_events()`` must mean
    ``apply_events(fetch_events())``.

    ``fetches_off_thread`` says whether the fetch may run off the node's thread *now*: an
    embedded ledger (in process, not made for threads) answers False, and the node then
    calls ``poll_events`` on its thread as before."""

    def fetches_off_thread(self) -> bool: ...

    def fetch_events(self) -> object: ...

    def apply_events(self, fetched: object) -> list[ChainEvent]: ...


@runtime_checkable
class ClockFetcher(Protocol):
    """An optional role beside ``EventFetcher``: the watcher's clock read with a fetch.

    While an HTLC is in flight or a dispute is open on a chain, every watcher tick needs
    that chain's ``next_block_time``: a round trip or two to the endpoint each tick, on
    the node's thread (on a busy hub, every tick). For a backend that also plays this
    role, the node asks for the clock with the chain's next read instead: ``fetch_clock``
    runs on the chain's reading thread right after ``fetch_events``, with what that fetch
    returned (if it read the clock, answer from it: no second round trip), under the same
    rules (write nothing the other methods read without a lock), and the watcher's tick that
    follows uses its answer if that read started at most one tick interval before: the
    watcher then acts at most a tick later than it could, never earlier. Without the role
    (or when the clock is older, late or fails) the watcher reads ``next_block_time`` on
    the node's thread.

    ``fetch_clock`` answers what a fresh ``next_block_time`` would: never earlier than
    ``now()`` read before it, never later than the time the chain's next block will
    carry."""

    def fetch_clock(self, fetched: object) -> int: ...


@runtime_checkable
class Keys(Protocol):
    """Accounts, channel identities and the per-channel signer. Pure computation on most
    chains (Bitcoin's ``new_nonce`` prepares the funding transaction)."""

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


@runtime_checkable
class Enforcer(Protocol):
    """What sends transactions: funding, the cooperative close, the dispute (register,
    challenge, conclude, withdraw) and the HTLCs on-chain. Each returns a ``TxReceipt`` or
    raises ``LedgerError`` with the ledger's own reason."""

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


@runtime_checkable
class FeeEstimator(Protocol):
    """What an on-chain action is expected to cost, per ``FEE_OPERATIONS`` name."""

    def estimate_fee(self, operation: str) -> int:
        """Expected fee of ``operation`` (one of ``FEE_OPERATIONS``) in the chain's native
        asset's base unit; ``ValueError`` for an unknown name."""
        ...


@runtime_checkable
class ChainRules(Protocol):
    """What a state must keep to be enforceable on this chain (dust, reserve, fees) and
    how unix time maps to the chain's native HTLC expiry."""

    def channel_rules(self, params: ChannelParams) -> ChannelRules:
        """What a state of this channel must keep for its on-chain form to be mineable, per
        asset: the dust limit (smallest output the chain relays), the channel reserve each
        participant keeps once it has it, and who pays the enforcement transaction's fee
        and how it grows with HTLC outputs. The core refuses to sign or accept a state that
        breaks them (``core.invariants.check_rules``). ``ChannelRules()`` where the chain
        has no such costs (fees paid from outside the channel, no dust)."""
        ...

    def native_expiry(self, expiry: int) -> int:
        """The chain-native image of unix time ``expiry``, never later than it."""
        ...


@runtime_checkable
class TestLedger(Protocol):
    """What tests, the demo and the conformance suite use on an embedded or development
    ledger: balances and moving the clock. A backend on a real network raises for
    ``advance_time`` (a devnet may support it)."""

    def balance(self, account: Account, asset: Asset) -> int: ...

    def advance_time(self, seconds: int) -> None:
        """Embedded ledgers only: move the ledger's clock (challenge periods, expiries)."""
        ...


@runtime_checkable
class AppEnforcer(Protocol):
    """Forced moves: the on-chain half of generalized state channels.

    Backends whose ``info.supports_apps`` is true enforce app rules on-chain; the others
    implement these three by raising ``LedgerError`` (and the node refuses an app channel
    on them at open). An app channel's dispute, on every ledger that supports apps:
    ``register`` a state both signed; while the challenge period runs a strictly newer one
    replaces it (``challenge``); then, for one more challenge period, a *forced move*
    (``force_move``) may take it one move on, signed by the mover alone and checked by the
    app's on-chain rule; each forced move opens a new period for the next one, during
    which a newer state both signed (of at least the forced version) may also replace it
    (``challenge`` again). When a period ends without a move, ``conclude`` pays the
    registered state's balances, which an app's rule keeps equal to the app's outcome: the
    party whose turn it is and who stays silent gets what the app gives a silent party."""

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
    ASCII (at most 64 characters, no ``/`` at the start).

    Chain transactions leave in the middle of an event, so what a backend notes while it
    sends one (Bitcoin: which state it registered) is written only with the event's
    checkpoint, after the transaction. When the chain reports a registration of the node's
    latest version, the node calls ``note_registration`` with that state: the backend notes
    the registration if the chain holds its own commitment of that state, and returns
    whether it did. It never sends anything (the registration the chain reported may be
    gone by then, taken back by a reorg: a broadcast would close a channel nobody asked to
    close). So a note a crash took away is made again after the restart. (An exception is
    logged and ignored there: the claims that need the note are retried on every block.)"""

    def export_record(
        self, params: ChannelParams, me: int, account: Account
    ) -> Mapping[str, bytes] | None: ...

    def restore_record(
        self, params: ChannelParams, me: int, account: Account, parts: Mapping[str, bytes]
    ) -> None: ...

    def note_registration(
        self, params: ChannelParams, signed: SignedState, account: Account
    ) -> bool: ...


@runtime_checkable
class Deployments(Protocol):
    """An optional role: a backend whose channels live at a contract or program that its
    configuration names (EVM: the adjudicator; Solana: the channel program; either: the
    contract of a channel's app) says which one holds a channel, in words. The node keeps
    it with the channel when the channel opens. After a restart whose configuration names
    another, the node does not restore that channel: it is quarantined, with both in the
    reason, until the operator puts the option back. Restored as usual, its disputes would
    be watched at, and sent to, a contract that does not hold it, and a peer could close it
    on an old state unanswered.

    Called once per channel at every start: make it cheap (no chain access, no hashing of
    the params). A backend whose channel ids do not depend on its configuration (Bitcoin)
    needs no such role."""

    def deployment(self, params: ChannelParams) -> str: ...


@runtime_checkable
class OpenTerms(Protocol):
    """An optional role: a backend whose channels need terms both sides share beyond the
    params' fields (Bitcoin: the fee policy every transaction both sides sign is built
    with, which has no ``update_fee``) lets the opener's participant key carry them, so
    that the channel id commits to them, and says here whether this node can keep the
    terms an opener proposes. The node asks before it answers an open request: a refusal
    goes back to the opener as the reason of its ``OpenRefused``, and nothing is kept.
    Without the role, any terms are taken (each side's own options are used)."""

    def terms_refusal(self, opener_key: str) -> str | None:
        """Why this node does not join a channel on the terms ``opener_key`` (the peer's
        ``participant_key``) carries, in words that name the option to change; ``None``
        to take them. A key that does not parse is refused here, not raised."""
        ...


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
