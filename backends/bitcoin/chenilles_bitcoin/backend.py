"""The Bitcoin ``ChainBackend``: BOLT 3 channels on a ``BitcoinLedger``.

``embedded_backend()`` runs on a :class:`KernelChain` (regtest, every block validated by
libbitcoinkernel) and, by default, mines one block after each on-chain action so that the
action's fate (accepted, or rejected with Bitcoin Core's reason) is known when it returns.
``connect_backend(url)`` talks to bitcoind and leaves mining to the network.

Time: heights are what Bitcoin's timelocks use. On the embedded ledger the kernel refuses
block times past now + 2 h, so the backend keeps a *height clock*: ``now()`` is the time at
which the backend started plus 600 s per block mined since; ``advance_time`` mines blocks.
Against bitcoind ``now()`` is the tip's block time.

See docs/bitcoin.md for the design (keys, bundle, fees, duties, events).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from bitcoin import segwit_addr
from bitcoin.core import CTransaction

from chenilles_hub.backend import (
    Account,
    AppDispute,
    AssetInfo,
    BackendInfo,
    ChainEvent,
    Concluded,
    Funded,
    LedgerError,
    NewBlock,
    NothingToTake,
    NotRegistered,
    NotYet,
    PreimageRevealed,
    Registered,
    Reorged,
    TxReceipt,
)
from chenilles_hub.core import (
    Asset,
    ChannelParams,
    ChannelRules,
    Htlc,
    Participant,
    SignedState,
    StateAuthority,
    TimeModel,
    payment_hash,
)
from chenilles_hub.core.errors import AmountOutOfRange, InvalidParams

from . import ledger as btc
from .accounts import BitcoinAccount, parse_secret
from .authority import EXPIRY_TOLERANCE, BitcoinAuthority
from .bolt3 import OutPoint as Bolt3OutPoint
from .bolt3 import closing_weight, commitment_weight, funding_script, p2wsh, txid_of, weight
from .bolt3.commitment import HTLC_SUCCESS_WEIGHT, HTLC_TIMEOUT_WEIGHT
from .channel_keys import derivation_tag, derive_secrets, parse_chain_key, secrets_for
from .commitments import (
    MAX_SAT,
    NATIVE_TOKEN,
    ChannelPolicy,
    ChannelView,
    channel_rules,
)
from .duties import (
    ChannelContext,
    DutyError,
    Immature,
    Signed,
    delayed_sweep,
    direct_htlc_spend,
    htlc_outpoint,
    payout_sweep,
    penalty,
    second_stage,
    signed_closing,
    signed_commitment,
)
from .ledger.miner import COINBASE_MATURITY
from .members import TWO_PARTY_ONLY
from .policy import DUST_EXPOSURE_SAT, policy_in_key, terms_refusal, with_policy
from .record import ChannelRecord, RecordError
from .watch import (
    SeenCommitment,
    commitment_version,
    parse_tx,
    revealed_preimages,
    takes_with_preimage,
)

REGTEST = "bip122:regtest"
#: Blocks taken off a native HTLC expiry, so it fires before the unix expiry it images.
EXPIRY_MARGIN = 2
FINALITY_DEPTH = 6
INCLUSION_DELAY_BLOCKS = 3
TIMELOCK_HORIZON = 14 * 86400
#: Blocks below the tip whose image of an HTLC's expiry a peer's offer may carry: its read
#: of the tip is kept up to ``TIP_TTL`` (replaced when a poll finds new blocks), so it may
#: be a block behind ours, two on a devnet mining every second (``_late_native_expiry_ok``).
LATE_TIPS = 2
#: Tips whose LATE_TIPS ancestors a backend keeps (``BitcoinBackend._ancestors``).
_ANCESTORS_KEPT = 8
#: Seconds the tip read over RPC stands for the chain's clock (``BitcoinBackend.tip_ttl``):
#: far inside EXPIRY_MARGIN blocks; a payment then makes no call to the ledger while the
#: read is kept (it made ~17 before there was a kept read, then one: the payer's).
TIP_TTL = 1.0
#: Fee basis of a funding transaction: one P2WPKH input and change weigh 609 WU (measured),
#: rounded up for a second input's share.
FUNDING_WEIGHT = 690
#: What ``create_account(fund=True)`` pays a new account from a faucet: 10 BTC.
FAUCET_GRANT = 10 * 100_000_000
SWEEP_WEIGHT = 500  # one-input sweep, the common case; penalties grow by ~400 WU per input

try:
    from importlib.metadata import version as _dist_version

    _VERSION = _dist_version("chenilles-bitcoin")
except Exception:  # pragma: no cover - not installed as a distribution
    _VERSION = "0.0.0"


NO_APPS = (
    "Bitcoin enforces no app rules on-chain (no forced moves): app channels are refused; "
    "open them on a chain whose backend supports apps (EVM, Solana)"
)


class _TipRead(NamedTuple):
    """A read of the chain's tip: the block, and when (``time.monotonic``) it was read."""

    height: int
    time: int
    read_at: float
    hash: str


#: The blocks before a tip (``ancestor_headers``): (height, time), parent first.
_Ancestors = tuple[tuple[int, int], ...]


@dataclass  # ``fetch_clock`` adds its tip, on the reading thread, before the hand-over
class _Fetched:
    """What one poll read off the node's thread: the ledger's events, the raw
    transactions they confirmed (None: the ledger no longer has it), and the tip after
    them when a block came (height, time, read at, hash: the new blocks' times), else
    the tip ``fetch_clock`` read (``clock_tip``: the node's kept read, refreshed)."""

    events: list[btc.LedgerEvent]
    raws: Mapping[str, bytes | None]
    tip: _TipRead | None = None
    clock_tip: _TipRead | None = None
    #: the blocks before the tip read (``_prefetch_ancestors``), for the node's thread
    ancestors: tuple[str, _Ancestors] | None = None


class BitcoinBackend:
    """One Bitcoin ledger as the hub sees it."""

    def __init__(
        self,
        ledger: btc.BitcoinLedger,
        *,
        chain: str = REGTEST,
        policy: ChannelPolicy | None = None,
        max_dust_exposure_sat: int = DUST_EXPOSURE_SAT,
        auto_mine: bool = False,
        height_clock: bool = False,
        faucet: BitcoinAccount | None = None,
        tip_ttl: float = 0.0,
    ) -> None:
        self.ledger = ledger
        self.chain = chain
        self.info = BackendInfo(
            name="bitcoin",
            version=_VERSION,
            family="Bitcoin",
            chains=(chain,),
            description="BOLT 3 channels (legacy format, static remotekey)",
            max_members=2,
            members_note=TWO_PARTY_ONLY,
            single_funder=True,
            dispute="penalty",
            reorgs=True,
            conclusion_resolves_htlcs=False,
        )
        self.policy = policy or ChannelPolicy()
        self.policy.check()
        if type(max_dust_exposure_sat) is not int or max_dust_exposure_sat < 0:
            raise ValueError(
                f"max_dust_exposure_sat is whole satoshi, 0 or more: {max_dust_exposure_sat!r}"
            )
        #: The most this node lets a channel's HTLCs without an output add up to (their
        #: value goes to fees if a commitment is mined); this node's, not the channel's.
        self.max_dust_exposure_sat = max_dust_exposure_sat
        self.auto_mine = auto_mine
        self.height_clock = height_clock
        #: pays ``create_account(fund=True)`` on a chain whose subsidy may have run out
        self.faucet = faucet
        self.asset = Asset(chain, NATIVE_TOKEN)
        self._anchor = (ledger.tip_height(), max(ledger.tip_time(), int(time.time())))
        self._contexts: dict[tuple[bytes, int], ChannelContext] = {}
        self._views: dict[bytes, ChannelView] = {}
        self._by_funding: dict[str, bytes] = {}  # funding txid -> channel id
        self._prepared: dict[str, bytes] = {}  # funding txid -> signed, unbroadcast funding tx
        self._sent: dict[str, bytes] = {}  # txid -> raw, every tx this backend broadcast
        self.rebroadcast: dict[str, str] = {}  # txid -> "ok" or the reason it failed
        self._events_seen: set[str] = set()
        #: Off the height clock, the chain's clock is the tip's (height, time), read over
        #: RPC. A payment used it many times on each side (deadlines, the HTLC's native
        #: expiry and the peer's check of it): it is kept ``tip_ttl`` seconds (and for a
        #: whole poll_events; the reading thread's reads refresh it). A new block seen by a
        #: poll, our own mining and advance_time drop it at once.
        self.tip_ttl = tip_ttl
        self._tip: _TipRead | None = None
        self._tip_pinned = False
        #: when we last mined (``_mined``): reads begun before are not kept
        self._mined_at = 0.0
        #: the last tip read, kept across drops of ``_tip``: a fresh read that finds the
        #: same block hash reuses its height and time
        self._known_tip: _TipRead | None = None
        #: tip hash -> (height, time) of the LATE_TIPS blocks before it, parent first: read
        #: once per tip (by the reading thread when it reads a new tip), for the check of a
        #: peer's late image (``_late_native_expiry_ok``); the last few tips only
        self._ancestors: dict[str, _Ancestors] = {}

    # --- describing the chain ------------------------------------------------------------

    def time_model(self) -> TimeModel:
        interval = self.policy.block_interval
        return TimeModel(
            block_interval_ms=interval * 1000,
            finality_depth=FINALITY_DEPTH,
            inclusion_delay=INCLUSION_DELAY_BLOCKS * interval,
            timelock_horizon=TIMELOCK_HORIZON,
            safety_margin=EXPIRY_MARGIN * interval,
        )

    def assets(self) -> Sequence[Asset]:
        return (self.asset,)

    def _time_at(self, height: int) -> int:
        """The time of ``height``: on the height clock, the anchor's time plus a block
        interval a block; against bitcoind, the tip's time, plus a block interval a block for
        a later height (what a deadline expressed in heights is expected to be reached at)."""
        if self.height_clock:
            anchor_height, anchor_time = self._anchor
            return anchor_time + (height - anchor_height) * self.policy.block_interval
        tip_height, tip_time = self._chain_tip()
        later = max(0, height - tip_height)
        return tip_time + later * self.policy.block_interval

    def _chain_tip(self) -> tuple[int, int]:
        """The tip's height and time (off the height clock), read at most once per
        ``tip_ttl`` seconds and once per poll_events."""
        tip = self._kept_tip()
        return tip.height, tip.time

    def _kept_tip(self) -> _TipRead:
        """``_chain_tip`` with when it was read and its hash."""
        read_at = time.monotonic()
        tip = self._tip
        if tip is None or (not self._tip_pinned and read_at - tip.read_at >= self.tip_ttl):
            self._tip = tip = self._read_tip(read_at)
        return tip

    def _read_tip(self, read_at: float) -> _TipRead:
        """The tip now (``_tip_now``), kept as the last known."""
        tip = self._known_tip = self._tip_now(read_at)
        return tip

    def _tip_now(self, read_at: float) -> _TipRead:
        """The tip now: one call (its hash) while it is the block we know, two once per new
        block (its header: the height and time of the block that hash names, whatever
        comes after it). Writes nothing: the fetch thread reads the tip this way too."""
        for _ in range(3):
            tip_hash = self.ledger.tip_hash()
            known = self._known_tip
            if known is not None and known.hash == tip_hash:
                return _TipRead(known.height, known.time, read_at, tip_hash)
            try:
                height, block_time = self.ledger.block_header(tip_hash)
            except KeyError:
                continue  # reorganised away between the two reads: read the new tip
            return _TipRead(height, block_time, read_at, tip_hash)
        raise LedgerError("tip", "the chain's tip kept moving away while it was read")

    def _clock(self) -> tuple[int, int]:
        """The tip's height and its time: one read of the ledger at most."""
        if self.height_clock:
            height = self.ledger.tip_height()  # the embedded chain: no RPC behind it
            return height, self._time_at(height)
        return self._chain_tip()

    def now(self) -> int:
        return self._clock()[1]

    def next_block_time(self) -> int:
        """The time of the next height: Bitcoin's timelocks (CSV, CLTV) judge heights, and
        a transaction sent now is judged in the block at ``tip + 1``."""
        return self._clock()[1] + self.policy.block_interval

    def holdings(self, params: ChannelParams, min_confirmations: int) -> dict[Asset, list[int]]:
        """The channel's funding output (``params.nonce`` is its txid, output 0), for
        participant 0 who funds it whole, once its transaction has ``min_confirmations``
        confirmations, pays the channel's 2-of-2 script and is unspent. Anything else (not
        broadcast, not deep enough, another script, spent) holds nothing for the channel."""
        _, view = self._view(params)
        held = {asset: [0] * len(params.participants) for asset in params.assets}
        txid = view.funding_outpoint.txid
        confirmations = self.ledger.get_tx_confirmations(txid)
        if confirmations is None or confirmations < max(1, min_confirmations):
            return held
        utxo = self.ledger.get_utxo(btc.OutPoint(txid, view.funding_outpoint.index))
        if utxo is None or utxo.script_pubkey != view.funding_spk or self.asset not in held:
            return held
        held[self.asset][0] = utxo.value
        return held

    def native_expiry(self, expiry: int) -> int:
        """``tip + floor((expiry - now) / interval) - margin``: a height reached before
        ``expiry``, from the tip as last read (within ``tip_ttl``, or with the last poll):
        what we offer a peer and how we check a peer's offers. A peer whose read is newer or
        older than ours by a block may image one block later than we do (when that block
        came later than the interval after its parent): see ``_late_native_expiry_ok``."""
        tip, now = self._clock()
        return self._image(tip, now, expiry)

    def _image(self, tip: int, tip_time: int, expiry: int) -> int:
        blocks = (expiry - tip_time) // self.policy.block_interval
        return max(0, tip + blocks - EXPIRY_MARGIN)

    def _late_native_expiry_ok(self, expiry: int, native_expiry: int) -> bool:
        """A peer's native expiry later than our kept image (the authority asks, before
        refusing it): whether a tip up to ``LATE_TIPS`` blocks behind our kept read images
        it so (the peer's read, kept as ours is, may be a block or two behind), else
        whether the tip read now does (a block we have not read yet), or one of the
        ``LATE_TIPS`` blocks before it. A later image only gives us, the HTLC's receiver,
        more time to claim it on chain; what it may not be is later than every recent
        tip's image. The blocks before a tip are read once per tip, by the reading thread
        when it can: a peer's late offers cost the node's thread no call then, and at most
        the fresh read of the tip (as before there were kept reads) otherwise."""
        if self.height_clock:  # no read moves an image there: refused
            return False
        known = self._ancestors.get(self._kept_tip().hash)
        if known is not None and native_expiry <= self._latest_image(known, expiry):
            return True
        for _ in range(2):  # once more if the tip is reorganised away between the reads
            if not self._tip_pinned:
                self._tip = None
            tip = self._kept_tip()
            fresh = self._image(tip.height, tip.time, expiry)
            if native_expiry <= fresh:
                return native_expiry >= fresh - EXPIRY_TOLERANCE
            try:
                ancestors = self._ancestors_of(tip.hash)
            except KeyError:
                continue
            return native_expiry <= self._latest_image(ancestors, expiry)
        return False

    def _latest_image(self, tips: Sequence[tuple[int, int]], expiry: int) -> int:
        return max((self._image(height, tip_time, expiry) for height, tip_time in tips), default=0)

    def _ancestors_of(self, tip_hash: str) -> _Ancestors:
        """The ``LATE_TIPS`` blocks before ``tip_hash`` (``_ancestors``), read if unknown."""
        known = self._ancestors.get(tip_hash)
        if known is None:
            known = self._read_ancestors(tip_hash)
            self._keep_ancestors(tip_hash, known)
        return known

    def _read_ancestors(self, tip_hash: str) -> _Ancestors:
        return tuple(self.ledger.ancestor_headers(tip_hash, LATE_TIPS))

    def _keep_ancestors(self, tip_hash: str, ancestors: _Ancestors) -> None:
        self._ancestors[tip_hash] = ancestors
        while len(self._ancestors) > _ANCESTORS_KEPT:
            del self._ancestors[next(iter(self._ancestors))]  # the oldest kept

    def _prefetch_ancestors(self, tip: _TipRead | None) -> tuple[str, _Ancestors] | None:
        """On the reading thread: the blocks before a tip it read, unless already kept (the
        node's thread keeps them with the apply; a dict read across threads is safe)."""
        if tip is None or tip.hash in self._ancestors:
            return None
        try:
            return tip.hash, self._read_ancestors(tip.hash)
        except Exception:  # optional: the node's thread reads them if it needs them
            # (reorganised away since, or the endpoint failed: neither may fail the read of
            # the chain's events or its clock, which this only accompanies)
            return None

    def asset_info(self, asset: Asset) -> AssetInfo:
        return AssetInfo("BTC", 8, "sat")

    def estimate_fee(self, operation: str) -> int:
        weights = {
            "fund": FUNDING_WEIGHT,
            "close_cooperative": closing_weight(b"\x00" * 22, b"\x00" * 22),
            "register": commitment_weight(0),
            "challenge": SWEEP_WEIGHT + 400,
            "conclude": SWEEP_WEIGHT,
            "withdraw": SWEEP_WEIGHT - 60,
            "claim_htlc": HTLC_SUCCESS_WEIGHT,
            "refund_htlc": HTLC_TIMEOUT_WEIGHT,
        }
        if operation not in weights:
            raise ValueError(f"unknown operation {operation!r}")
        return self.policy.feerate_per_kw * weights[operation] // 1000

    # --- accounts --------------------------------------------------------------------------

    def create_account(self, fund: bool = True, secret: bytes | None = None) -> BitcoinAccount:
        """A new key; ``fund`` (regtest only) pays it ``FAUCET_GRANT`` sat from the faucet
        and mines one block when the backend has one, else mines a coinbase to it and 100
        blocks to mature it. Regtest's subsidy halves every 150 blocks: on a long-lived chain
        the coinbase is soon worth nothing, the faucet's early coinbases keep their value."""
        account = BitcoinAccount(self.ledger, secret or secrets.token_bytes(32))
        if fund and self.faucet is not None:
            try:
                self.faucet.wallet.fund_output(account.script_pubkey, FAUCET_GRANT)
            except btc.LedgerError as exc:
                raise LedgerError("create_account", f"the faucet cannot pay: {exc}") from exc
            self.ledger.mine(1)
        elif fund:
            account.wallet.mine_to_self(1)
            self.ledger.mine(COINBASE_MATURITY)
        return account

    def account_from_key(self, key: bytes | str) -> BitcoinAccount:
        """The account of a secret given as 32 bytes or 64 hex digits (the node's config).

        Its wallet finds its coins on the ledger (``scan_utxos``), so an account reloaded
        after a restart sees what it owns; nothing is mined for it.
        """
        return BitcoinAccount(self.ledger, parse_secret(key))

    def balance(self, account: Account, asset: Asset) -> int:
        """What the account's wallet can spend (channel payouts count once withdrawn)."""
        self._check_asset(asset)
        return _account(account).wallet.balance()

    # --- the node's wallet (the optional ``Wallet`` and ``CoinWallet`` roles) ---------------

    def decimals(self, asset: Asset) -> int:
        """8: a bitcoin is 100,000,000 sat."""
        self._check_asset(asset)
        return 8

    def address(self, account: Account) -> str:
        """The wallet's P2WPKH address (bech32, this network's prefix)."""
        program = _account(account).script_pubkey[2:]
        return str(segwit_addr.encode(_hrp(self.chain), 0, program))

    def send(self, account: Account, asset: Asset, to: str, amount: int) -> TxReceipt:
        """Pay ``amount`` sat to the segwit address ``to``; the fee is the wallet's (from
        the ledger's estimate) and comes on top. Confirmed once the next block is mined."""
        self._check_asset(asset)
        if amount <= 0:
            raise LedgerError("send", "the amount must be positive")
        version, program = segwit_addr.decode(_hrp(self.chain), to.lower())
        if version is None or program is None:
            raise LedgerError("send", f"{to!r} is not a segwit address of {self.chain}")
        script = bytes([0x50 + version if version else 0, len(program), *program])
        wallet = _account(account).wallet
        values = {c.outpoint: c.value for c in wallet.coins()}
        try:
            raw = wallet.build_payment([(script, amount)])
        except Exception as exc:  # the wallet's own error: too little to pay amount + fee
            raise LedgerError("send", str(exc)) from None
        tx = parse_tx(raw)
        spent = sum(
            values.get(btc.OutPoint(txid_of_prevout(txin), txin.prevout.n), 0) for txin in tx.vin
        )
        try:
            txid = self.ledger.broadcast(raw)
        except Exception as exc:
            wallet.release(raw)
            raise LedgerError("send", f"the ledger refused the payment: {exc}") from None
        return TxReceipt(
            operation="send",
            txid=txid,
            fee=spent - sum(out.nValue for out in tx.vout),
            fee_asset=self.asset,
            cost=weight(tx),
            cost_unit="weight",
        )

    def coins(self, account: Account) -> list[dict[str, Any]]:
        """The wallet's confirmed unspent outputs (a coinbase is spendable 100 blocks deep;
        coins spent by a transaction not yet mined are not spendable)."""
        wallet = _account(account).wallet
        spendable = {c.outpoint for c in wallet.spendable()}
        return [
            {
                "txid": c.outpoint.txid,
                "vout": c.outpoint.vout,
                "value": c.value,
                "height": c.height,
                "coinbase": c.coinbase,
                "spendable": c.outpoint in spendable,
            }
            for c in sorted(wallet.coins(), key=lambda c: (c.height, c.outpoint))
        ]

    def advance_time(self, seconds: int) -> None:
        """Mine one block per started block interval (heights are what timelocks see)."""
        if seconds > 0:
            self._tip = None
            try:
                self.ledger.mine(math.ceil(seconds / self.policy.block_interval))
            finally:
                self._mined()

    def mine(self, blocks: int = 1) -> None:
        self._tip = None
        try:
            self.ledger.mine(blocks)
        finally:
            self._mined()

    def _mined(self) -> None:
        """We moved the chain: the kept read is gone, and no read that started before
        (the reading thread's, applied later) may bring it back."""
        self._tip = None
        self._mined_at = time.monotonic()

    # --- channels ----------------------------------------------------------------------------

    def participant_key(self, account: Account, nonce: bytes) -> str:
        """``"<funding pubkey>:<point 0>:<tag>:<fee policy>"``; ``nonce`` is the node's
        opening salt. The opener's policy becomes the channel's (see policy.py); the
        acceptor's is carried too, and unused."""
        keys = derive_secrets(_account(account).secret, derivation_tag(nonce)).public.chain_key
        return with_policy(keys, self.policy)

    def terms_refusal(self, opener_key: str) -> str | None:
        """Why this node does not join a channel on the fee policy the opener's key carries
        (``policy.terms_refusal``: a feerate below ours or above ten times it, a dust limit
        above ours, another block interval), or ``None``. A key without a policy (a node of
        an earlier version) is taken: its channel is built with our options, as before."""
        try:
            parse_chain_key(opener_key)
            offered = policy_in_key(opener_key)
        except ValueError as exc:
            return f"bad Bitcoin participant key: {exc}"
        return None if offered is None else terms_refusal(offered, self.policy)

    def new_nonce(
        self,
        participants: Sequence[Participant],
        deposits: Mapping[Asset, Sequence[int]],
        account: Account,
    ) -> bytes:
        """Build (not broadcast) participant 0's funding transaction; its txid is the nonce."""
        acct = _account(account)
        if secrets_for(acct.secret, participants[0].chain_key) is None:
            raise InvalidParams("the opener (participant 0) funds a Bitcoin channel")
        amounts = deposits.get(self.asset)
        if amounts is None or set(deposits) != {self.asset}:
            raise InvalidParams(f"a Bitcoin channel holds exactly {self.asset}")
        total = sum(amounts)
        if total > MAX_SAT:
            raise AmountOutOfRange(f"{total} sat exceeds 21e14 sat")
        keys = [parse_chain_key(p.chain_key).funding_pubkey for p in participants]
        spk = bytes(p2wsh(bytes(funding_script(keys[0], keys[1]))))
        # the channel's own rate, or more when the ledger's estimate is higher
        fee = self.policy.feerate_per_kw * FUNDING_WEIGHT // 1000
        try:
            raw = acct.wallet.build_payment([(spk, total)], min_fee=fee)
        except btc.LedgerError as exc:
            raise LedgerError("fund", str(exc)) from exc
        txid = txid_of(parse_tx(raw))
        self._prepared[txid] = raw
        return bytes.fromhex(txid)

    def release_funding(self, params: ChannelParams, account: Account) -> None:
        """An open given up before its deposit left (the peer never signed version 0, or
        the operator abandoned it): the prepared funding transaction will never be sent,
        so its coins are the wallet's to spend again (they stayed reserved until a restart,
        and the next open found the wallet empty)."""
        raw = self._prepared.pop(params.nonce.hex(), None)
        if raw is not None:
            _account(account).wallet.release(raw)

    def channel_id(self, params: ChannelParams) -> bytes:
        """sha256("chenilles/bitcoin" || nonce || canonical params): the funding txid is unique."""
        if params.app:
            raise InvalidParams(f"app {params.app!r}: {NO_APPS}")
        channel_id = hashlib.sha256(
            b"chenilles/bitcoin" + params.nonce + msgspec.json.encode(params)
        ).digest()
        if channel_id not in self._views:
            self._views[channel_id] = ChannelView(params, self.policy)
            self._by_funding[params.nonce.hex()] = channel_id
        return channel_id

    def _view(self, params: ChannelParams) -> tuple[bytes, ChannelView]:
        channel_id = self.channel_id(params)
        return channel_id, self._views[channel_id]

    def context(self, params: ChannelParams, me: int, account: Account) -> ChannelContext:
        channel_id, view = self._view(params)
        key = (channel_id, me)
        if key not in self._contexts:
            secrets_ = secrets_for(_account(account).secret, params.participants[me].chain_key)
            if secrets_ is None:
                raise InvalidParams(f"the account does not hold participant {me}'s key")
            record = ChannelRecord(me)
            record.note_policy(view.policy)  # the channel's for life, written with it
            raw = self._prepared.get(params.nonce.hex()) if me == 0 else None
            if raw is not None:
                record.note_funding_tx(raw)  # durable with the channel, before it is sent
            self._contexts[key] = ChannelContext(view, secrets_, me, record)
        return self._contexts[key]

    def _my_context(
        self, operation: str, params: ChannelParams, account: Account
    ) -> ChannelContext:
        secret = _account(account).secret
        for me, participant in enumerate(params.participants):
            if secrets_for(secret, participant.chain_key) is not None:
                return self.context(params, me, account)
        raise LedgerError(operation, "the account is not a participant of this channel")

    def channel_rules(self, params: ChannelParams) -> ChannelRules:
        """BOLT 2/3: dust limit, 1% channel reserve, the funder's commitment fee and HTLC
        trimming at the channel's feerate (see ``commitments.channel_rules``): the
        opener's when the channel opened, kept in its record after; and this node's cap on
        the HTLCs without an output (``max_dust_exposure_sat``)."""
        return channel_rules(params, self._view(params)[1].policy, self.max_dust_exposure_sat)

    def authority(self, params: ChannelParams, account: Account, me: int) -> StateAuthority:
        ctx = self.context(params, me, account)
        return BitcoinAuthority(
            ctx.view, ctx.secrets, me, ctx.record, self.native_expiry, self._late_native_expiry_ok
        )

    def export_record(
        self, params: ChannelParams, me: int, account: Account
    ) -> Mapping[str, bytes] | None:
        """The parts of the channel's record (revocation secrets, the peer's points, past
        HTLC sets: what punishing and enforcing need after a restart, see record.py) that
        changed since the last export; ``None`` if none did. The node writes them in the
        checkpoint of the event that changed them, before anything that event sends."""
        return self.context(params, me, account).record.export_changes() or None

    def restore_record(
        self, params: ChannelParams, me: int, account: Account, parts: Mapping[str, bytes]
    ) -> None:
        """Load every stored part of the channel's record (a restart); raises
        ``InvalidParams`` if they do not decode. The channel is then built with the fee
        policy it was opened with, whatever the backend's options are now. A record
        written before policies were kept has none: its channel is built with the options
        in force, as it always was, and none is written for it (a guess, wrong if the
        options changed on this very restart, would stay wrong once the options are put
        back)."""
        ctx = self.context(params, me, account)
        try:
            ctx.record.load_parts(parts)
        except RecordError as exc:
            raise InvalidParams(str(exc)) from exc
        kept = ctx.record.policy
        if ctx.view.agreed is not None and kept is not None and kept != ctx.view.agreed:
            del self._contexts[(self.channel_id(params), me)]  # nothing of it stays loaded
            raise InvalidParams(
                f"the record keeps the fee policy {kept}, the channel's params {ctx.view.agreed}"
            )
        if kept is not None and kept != ctx.view.policy:
            ctx.view.use_policy(kept)

    # --- submitting ----------------------------------------------------------------------------

    def _submit(self, operation: str, signed: Signed, *, from_channel: bool = False) -> TxReceipt:
        raw = bytes(signed.tx.serialize())
        try:
            txid = self.ledger.broadcast(raw)
        except btc.TransactionRejected as exc:
            raise LedgerError(operation, exc.reason) from exc
        except btc.LedgerError as exc:
            raise LedgerError(operation, str(exc)) from exc
        self._sent[txid] = raw
        block = None
        if self.auto_mine:
            self._tip = None
            try:
                self.ledger.mine(1)
            except btc.TransactionRejected as exc:
                self._sent.pop(txid, None)
                raise LedgerError(operation, exc.reason) from exc
            except btc.LedgerError as exc:
                self._sent.pop(txid, None)
                raise LedgerError(operation, str(exc)) from exc
            finally:
                self._mined()
            block = self.ledger.tip_height()
        fee = signed.input_total - sum(int(o.nValue) for o in signed.tx.vout)
        return TxReceipt(
            operation,
            txid,
            fee,
            self.asset,
            weight(signed.tx),
            "WU",
            block,
            fee_from_channel=from_channel,
        )

    def _noop(self, operation: str) -> TxReceipt:
        return TxReceipt(operation, "", 0, self.asset, 0, "WU", None)

    def _spender_of(self, outpoint: Bolt3OutPoint) -> CTransaction | None:
        raw = self.ledger.find_spending_tx(btc.OutPoint(outpoint.txid, outpoint.index))
        return None if raw is None else parse_tx(raw)

    def _confirmations(self, txid: str) -> int | None:
        return self.ledger.get_tx_confirmations(txid)

    def _closing_spend(self, ctx: ChannelContext) -> CTransaction | None:
        """The confirmed transaction spending the funding output, if any."""
        return self._spender_of(ctx.view.funding_outpoint)

    def commitment_on_chain(self, params: ChannelParams, account: Account) -> SeenCommitment:
        """The channel's commitment on-chain, read from ``account``'s side (watchers, tests)."""
        ctx = self._my_context("commitment_on_chain", params, account)
        return self._onchain_commitment("commitment_on_chain", ctx)

    def _onchain_commitment(self, operation: str, ctx: ChannelContext) -> SeenCommitment:
        tx = self._closing_spend(ctx)
        if tx is None:
            funding = ctx.view.funding_outpoint
            if self.ledger.get_utxo(btc.OutPoint(funding.txid, funding.index)) is None:
                # spent by a transaction the ledger does not find (against bitcoind, one
                # older than its scan of recent blocks), or the deposit itself is gone
                raise LedgerError(
                    operation,
                    "the funding output is not unspent on the chain, and what spent it is not "
                    "found (older than the ledger's scan depth?)",
                )
            raise NotRegistered(
                operation, "no commitment of this channel is on-chain: register first"
            )
        version = commitment_version(ctx.view, tx)
        if version is None:
            raise LedgerError(operation, "the channel was closed cooperatively")
        seen = ctx.read_commitment(tx, version)
        if seen is None:
            raise LedgerError(operation, f"commitment {version} on-chain is not recognised")
        return seen

    # --- funding and closing -------------------------------------------------------------------

    def fund(
        self, params: ChannelParams, me: int, account: Account, asset: Asset, amount: int
    ) -> TxReceipt:
        """Broadcast participant 0's prepared funding transaction (single-funded channels)."""
        self._check_asset(asset)
        if me != 0:
            raise LedgerError("fund", "single-funded: participant 0 funds the whole channel")
        self._view(params)
        txid = params.nonce.hex()
        # built by new_nonce; after a restart, read back from the channel's record
        raw = self._prepared.get(txid) or self.context(params, 0, account).record.funding_tx
        if raw is None:
            raise LedgerError("fund", f"no funding transaction {txid} was prepared by new_nonce")
        tx = parse_tx(raw)
        if amount > int(tx.vout[0].nValue):
            raise LedgerError("fund", f"{amount} sat exceeds the funding output")
        inputs = 0
        for txin in tx.vin:
            utxo = self.ledger.get_utxo(btc.OutPoint(txid_of_prevout(txin), txin.prevout.n))
            inputs += utxo.value if utxo is not None else 0
        receipt = self._submit("fund", Signed(tx, inputs))
        self._prepared.pop(txid, None)
        return receipt

    def close_cooperative(
        self, params: ChannelParams, signed: SignedState, account: Account
    ) -> TxReceipt:
        ctx = self._my_context("close_cooperative", params, account)
        if self._closing_spend(ctx) is not None:
            return self._noop("close_cooperative (already closed)")  # asked again after a reorg
        try:
            closing = signed_closing(ctx, signed)
        except DutyError as exc:
            raise LedgerError("close_cooperative", str(exc)) from exc
        return self._submit("close_cooperative", closing, from_channel=True)

    # --- the dispute ---------------------------------------------------------------------------

    def register(self, params: ChannelParams, signed: SignedState, account: Account) -> TxReceipt:
        """Unilateral close: broadcast our commitment of ``signed``.

        Our claims on that commitment's HTLCs need the record to say which state we put
        on-chain (``note_registered``). Asked again for a commitment on-chain already, this
        notes it and sends nothing, as it does for one it sent that waits to be mined; any
        other spend of the funding output is refused, as a broadcast would be."""
        ctx = self._my_context("register", params, account)
        commitment = self._our_commitment("register", ctx, signed)
        spend = self._closing_spend(ctx)
        if spend is not None:
            if txid_of(spend) != txid_of(commitment.tx):
                raise LedgerError("register", "the funding output is spent by another transaction")
            ctx.record.note_registered(signed)
            return self._noop("register (on-chain already)")
        ctx.record.note_registered(signed)
        txid = txid_of(commitment.tx)
        if txid in self._sent and self.ledger.get_raw_tx(txid) is not None:
            # asked again while it waits to be mined (the node's conclusion finds nothing
            # registered on every block until then): one broadcast, one fee in the books
            return self._noop("register (already sent)")
        return self._submit("register", commitment, from_channel=True)

    def note_registration(
        self, params: ChannelParams, signed: SignedState, account: Account
    ) -> bool:
        """The chain reported a registration of ``signed``'s version (``ChannelRecords``):
        if our commitment of it spends the funding output, note it, as ``register`` did when
        it broadcast it (a crash between that broadcast and the node's next checkpoint lost
        the note, and our HTLC claims on it need it). Sends nothing, whatever the chain
        holds: the registration may be the peer's, or gone again in a reorg."""
        ctx = self._my_context("note_registration", params, account)
        spend = self._closing_spend(ctx)
        if spend is None:
            return False
        commitment = self._our_commitment("note_registration", ctx, signed)
        if txid_of(spend) != txid_of(commitment.tx):
            return False  # the peer's commitment: nothing of ours to note
        ctx.record.note_registered(signed)
        return True

    def _our_commitment(self, operation: str, ctx: ChannelContext, signed: SignedState) -> Signed:
        """Our commitment of ``signed``, with both signatures, or ``LedgerError``."""
        try:
            return signed_commitment(ctx, signed)
        except DutyError as exc:
            raise LedgerError(operation, str(exc)) from exc

    def challenge(self, params: ChannelParams, signed: SignedState, account: Account) -> TxReceipt:
        """Punish a revoked commitment of the peer: one justice transaction takes it all."""
        ctx = self._my_context("challenge", params, account)
        seen = self._onchain_commitment("challenge", ctx)
        if seen.owner == ctx.me:
            raise LedgerError("challenge", "the commitment on-chain is ours")
        try:
            tx = penalty(ctx, seen, self._spender_of, _account(account).script_pubkey)
        except DutyError as exc:
            if "already spent" in str(exc):  # every output of it is taken: nothing left
                return self._noop("challenge (already punished)")
            raise LedgerError("challenge", str(exc)) from exc
        txid = txid_of(tx.tx)
        if txid in self._sent and self.ledger.get_raw_tx(txid) is not None:
            # asked again (the node answers a stale commitment on every block until it is
            # punished): this penalty is sent already, queued or confirmed
            return self._noop("challenge (already sent)")
        return self._submit("challenge", tx)

    def conclude(self, params: ChannelParams, account: Account) -> TxReceipt:
        """Sweep our to_local and second-stage HTLC outputs after ``to_self_delay``."""
        ctx = self._my_context("conclude", params, account)
        seen = self._onchain_commitment("conclude", ctx)
        if seen.owner != ctx.me:
            return self._noop("conclude")  # the peer's commitment pays us via to_remote
        try:
            tx = delayed_sweep(
                ctx, seen, self._spender_of, self._confirmations, _account(account).script_pubkey
            )
        except Immature as exc:
            raise NotYet("conclude", str(exc)) from exc
        except DutyError as exc:
            raise LedgerError("conclude", str(exc)) from exc
        if tx is None:
            return self._noop("conclude")
        return self._submit("conclude", tx)

    def withdraw(self, params: ChannelParams, me: int, account: Account, asset: Asset) -> TxReceipt:
        """Sweep what the closing tx or the peer's commitment paid our payment basepoint."""
        self._check_asset(asset)
        ctx = self.context(params, me, account)
        tx = self._closing_spend(ctx)
        if tx is None:
            raise LedgerError("withdraw", "the channel is not closed on-chain")
        try:
            sweep = payout_sweep(ctx, tx, self._spender_of, _account(account).script_pubkey)
        except DutyError as exc:
            raise LedgerError("withdraw", str(exc)) from exc
        if sweep is None:
            return self._noop("withdraw")
        return self._submit("withdraw", sweep)

    # --- HTLCs ------------------------------------------------------------------------------

    def claim_htlc(
        self, params: ChannelParams, htlc: Htlc, preimage: bytes, account: Account
    ) -> TxReceipt:
        """HTLC-success on our commitment, or a direct preimage spend on the peer's."""
        ctx = self._my_context("claim_htlc", params, account)
        if htlc.payee != ctx.me:
            raise LedgerError("claim_htlc", f"we are not the payee of HTLC {htlc.id}")
        if len(preimage) != 32 or payment_hash(preimage) != htlc.payment_hash:
            raise LedgerError("claim_htlc", "preimage does not hash to the payment hash")
        return self._resolve_htlc("claim_htlc", ctx, htlc, preimage, _account(account))

    def refund_htlc(self, params: ChannelParams, htlc: Htlc, account: Account) -> TxReceipt:
        """HTLC-timeout on our commitment, or a direct timeout spend on the peer's."""
        ctx = self._my_context("refund_htlc", params, account)
        if htlc.payer != ctx.me:
            raise LedgerError("refund_htlc", f"we are not the payer of HTLC {htlc.id}")
        return self._resolve_htlc("refund_htlc", ctx, htlc, None, _account(account))

    def _resolve_htlc(
        self,
        operation: str,
        ctx: ChannelContext,
        htlc: Htlc,
        preimage: bytes | None,
        account: BitcoinAccount,
    ) -> TxReceipt:
        """Take the HTLC's output. Asked again on every block until the chain holds our
        spend (``ChainActions``), so it is idempotent: our spend confirmed is a no-op
        receipt whose ``block`` is where it landed; our spend waiting to be mined, one
        without (nothing sent twice, after a restart too: the transaction is the same)."""
        seen = self._onchain_commitment(operation, ctx)
        if seen.owner != ctx.me and ctx.record.revocation_secret(seen.version) is not None:
            raise NothingToTake(
                operation, "the peer's commitment on-chain is revoked: its penalty takes it all"
            )
        outpoint = htlc_outpoint(seen, htlc)
        if outpoint is None:
            raise NothingToTake(
                operation,
                f"HTLC {htlc.id} has no output in commitment {seen.version} (trimmed as dust)",
            )
        try:
            if seen.owner == ctx.me:
                signed = second_stage(ctx, seen, htlc, preimage)
            else:
                signed = direct_htlc_spend(ctx, seen, htlc, preimage, account.script_pubkey)
        except DutyError as exc:
            raise LedgerError(operation, str(exc)) from exc
        txid = txid_of(signed.tx)
        spender = self._spender_of(outpoint)
        if spender is not None:
            # Whose spend it is, by its path rather than its txid: ours may have paid another
            # fee (built before a restart under other options, see ``sweep_fees``).
            spent_by = txid_of(spender)
            by_payee = takes_with_preimage(spender, outpoint, htlc.payment_hash)
            if by_payee == (preimage is not None):
                confirmations = self._confirmations(spent_by) or 1
                block = self.ledger.tip_height() - confirmations + 1
                return TxReceipt(
                    f"{operation} (on-chain already)", "", 0, self.asset, 0, "WU", block
                )
            if preimage is not None:  # the peer took it back at its expiry: too late
                raise NothingToTake(operation, f"HTLC {htlc.id} was taken back by the peer")
            # The peer took it with the preimage: its witness reveals it (PreimageRevealed),
            # and the payment is settled upstream, never failed.
            raise LedgerError(operation, f"HTLC {htlc.id} was taken by the peer ({spent_by})")
        if txid in self._sent and self.ledger.get_raw_tx(txid) is not None:
            return self._noop(f"{operation} (already sent)")
        return self._submit(operation, signed)

    # --- events ------------------------------------------------------------------------------

    def poll_events(self) -> list[ChainEvent]:
        """Ledger events as hub events; transactions lost in a reorg are broadcast again.
        If turning them into hub events fails, the ledger's events are put back for the
        next poll (the scan that found them does not run twice)."""
        events = self.ledger.poll_events()
        try:
            return self._ledger_events(events, {})
        except BaseException:
            self.ledger.requeue_events(events)
            raise

    def fetches_off_thread(self) -> bool:
        """Against bitcoind, yes: the RPC ledger scans blocks under a lock of its own and
        sends one request at a time on its connection. The kernel chain runs in this
        process: its poll costs no round trip, and stays on the node's thread."""
        return isinstance(self.ledger, btc.BitcoindRpcLedger)

    def fetch_events(self) -> _Fetched:
        """The ledger's block scan (``EventFetcher``): every RPC call of a poll in which
        nothing of ours happened (the tip's hash, the new blocks), and the confirmed
        transactions themselves, read now: the scan keeps only recent ones, and a scan on
        the node's thread before the apply could drop them."""
        events = self.ledger.poll_events()
        try:
            raws: dict[str, bytes | None] = {}
            for event in events:
                if event.kind is btc.EventKind.TX_CONFIRMED and event.txid:
                    raws[event.txid] = self.ledger.get_raw_tx(event.txid)
            tip = None
            if not self.height_clock and any(
                e.kind is btc.EventKind.BLOCK_CONNECTED for e in events
            ):  # the new blocks' times come from the tip: read here, not on the node's thread
                tip = self._tip_now(time.monotonic())
            ancestors = self._prefetch_ancestors(tip)
        except BaseException:  # the scan's events come again with the next read
            self.ledger.requeue_events(events)
            raise
        return _Fetched(events, raws, tip, ancestors=ancestors)

    def fetch_clock(self, fetched: object) -> int:
        """``next_block_time`` on the reading thread (``ClockFetcher``): the tip the fetch
        read with new blocks, else read as the fetch reads it (its hash, and its header
        once per new block); the cached tip of the node's thread neither used nor
        written."""
        assert isinstance(fetched, _Fetched)
        if self.height_clock:
            tip_time = self._time_at(self.ledger.tip_height())
        elif fetched.tip is not None:
            tip_time = fetched.tip.time
        else:  # handed to the node's thread with the read: its kept read, refreshed
            fetched.clock_tip = self._tip_now(time.monotonic())
            fetched.ancestors = self._prefetch_ancestors(fetched.clock_tip)
            tip_time = fetched.clock_tip.time
        return tip_time + self.policy.block_interval

    def apply_events(self, fetched: object) -> list[ChainEvent]:
        """The scanned blocks as hub events, on the node's thread: the clock, the channels'
        transactions and the rebroadcasts touch what the node's other calls use."""
        assert isinstance(fetched, _Fetched)
        if fetched.ancestors is not None:
            self._keep_ancestors(*fetched.ancestors)
        if not fetched.events and fetched.clock_tip is not None:
            # the tip read for the watcher's clock: while HTLCs are in flight the reads
            # come every tick, and the kept read (``native_expiry``, ``now``) then never
            # expires on the node's thread, where re-reading it held a payment for a round
            # trip once a second
            self._keep_fetched_tip(fetched.clock_tip)
        return self._ledger_events(fetched.events, fetched.raws, fetched.tip)

    def _keep_fetched_tip(self, tip: _TipRead) -> None:
        """Keep a tip read off the node's thread as its kept read, if newer than what the
        node's thread knows (the kept read, when there is one, is that too): read after
        its last read of the tip and after our own last mining (a read begun before it,
        applied after, would bring back the tip before it). The time of the read decides,
        not the height: after a reorganisation the newer read is the chain's tip, even at
        a lower height."""
        known = self._known_tip
        if tip.read_at > self._mined_at and (known is None or known.read_at <= tip.read_at):
            self._tip = self._known_tip = tip

    def _ledger_events(
        self,
        events: list[btc.LedgerEvent],
        raws: Mapping[str, bytes | None],
        tip: _TipRead | None = None,
    ) -> list[ChainEvent]:
        if events:
            self._tip = None  # a new block: the clock moved
            if tip is not None:
                self._keep_fetched_tip(tip)  # read with the blocks
        self._tip_pinned = True  # one read of the tip per poll, not two per block
        try:
            return self._hub_events(events, raws)
        finally:
            self._tip_pinned = False

    def _hub_events(
        self, events: list[btc.LedgerEvent], raws: Mapping[str, bytes | None]
    ) -> list[ChainEvent]:
        out: list[ChainEvent] = []
        status: dict[str, bool] = {}
        disconnected = 0
        reorg_at: int | None = None
        for event in events:
            kind = event.kind
            if kind is btc.EventKind.BLOCK_CONNECTED:
                out.append(NewBlock(event.height, self._time_at(event.height)))
            elif kind is btc.EventKind.BLOCK_DISCONNECTED:
                disconnected += 1
                reorg_at = len(out) if reorg_at is None else reorg_at
            elif kind is btc.EventKind.TX_UNCONFIRMED and event.txid:
                status[event.txid] = False
                reorg_at = len(out) if reorg_at is None else reorg_at
            elif kind is btc.EventKind.TX_CONFIRMED and event.txid:
                status[event.txid] = True
                raw = raws.get(event.txid) or self.ledger.get_raw_tx(event.txid)
                out.extend(self._tx_events(raw, event.txid, event.height))
        # Coinbases of orphaned blocks never come back: report what can (ours or queued).
        lost = tuple(
            t
            for t, confirmed in status.items()
            if not confirmed and (t in self._sent or self.ledger.get_raw_tx(t) is not None)
        )
        if reorg_at is not None:
            out.insert(reorg_at, Reorged(disconnected, lost))
            for txid in lost:
                self._rebroadcast(txid)
        return out

    def _rebroadcast(self, txid: str) -> None:
        raw = self._sent.get(txid)
        if raw is None:
            return
        try:
            self.ledger.broadcast(raw)
            self.rebroadcast[txid] = "ok"
        except btc.TransactionRejected as exc:
            self.rebroadcast[txid] = exc.reason
        except btc.LedgerError as exc:
            self.rebroadcast[txid] = str(exc)

    def _tx_events(self, raw: bytes | None, txid: str, height: int) -> list[ChainEvent]:
        if raw is None:
            return []
        tx = parse_tx(raw)
        events: list[ChainEvent] = []
        channel_id = self._by_funding.get(txid)
        if channel_id is not None:
            events.append(Funded(channel_id, self.asset, 0, int(tx.vout[0].nValue)))
        for txin in tx.vin:
            spent = self._by_funding.get(txid_of_prevout(txin))
            if spent is None or txin.prevout.n != 0:
                continue
            view = self._views[spent]
            version = commitment_version(view, tx)
            if version is None:
                final = [
                    c.record.final_version for (cid, _), c in self._contexts.items() if cid == spent
                ]
                known = [v for v in final if v is not None]
                events.append(Concluded(spent, known[0] if known else -1))
            else:
                timeout = self._time_at(height + view.to_self_delay)
                events.append(Registered(spent, version, timeout))
        wanted: set[bytes] = set()
        for ctx in self._contexts.values():
            wanted |= ctx.record.known_payment_hashes()
        for digest, preimage in revealed_preimages(tx, wanted):
            events.append(PreimageRevealed(digest, preimage, self._time_at(height)))
        return events

    def _check_asset(self, asset: Asset) -> None:
        if asset != self.asset:
            raise LedgerError("asset", f"{asset} is not held by this ledger ({self.asset})")

    # --- apps: none on Bitcoin ----------------------------------------------------------------
    # Bitcoin script cannot run an app's rule over a channel state (``info.supports_apps``
    # is false): an app channel is refused at ``channel_id``, and forced moves are refused.

    def use_app(self, app_id: str, code: bytes | None = None, address: str | None = None) -> str:
        raise LedgerError("use_app", NO_APPS)

    def force_move(
        self, params: ChannelParams, move: SignedState, mover: int, account: Account
    ) -> TxReceipt:
        raise LedgerError("force_move", NO_APPS)

    def app_dispute(self, params: ChannelParams) -> AppDispute | None:
        return None


def txid_of_prevout(txin: Any) -> str:
    return bytes(txin.prevout.hash[::-1]).hex()


def _hrp(chain: str) -> str:
    """The bech32 prefix of a chain's addresses."""
    return {"bip122:mainnet": "bc", "bip122:regtest": "bcrt"}.get(chain, "tb")


def _account(account: Account) -> BitcoinAccount:
    if not isinstance(account, BitcoinAccount):
        raise TypeError(f"not a Bitcoin account: {account!r}")
    return account


def embedded_backend(**options: Any) -> BitcoinBackend:
    """A backend on a fresh in-process regtest chain validated by libbitcoinkernel.

    Options: ``datadir`` (default: a temporary directory), ``auto_mine`` (default True: each
    on-chain action is mined at once and a kernel rejection raises ``LedgerError``),
    ``feerate_per_kw``, ``dust_limit_sat``, ``max_fee_sat``, ``max_dust_exposure_sat``.
    """
    chain = btc.KernelChain(options.pop("datadir", None))
    return BitcoinBackend(
        chain,
        chain=REGTEST,
        policy=_policy(options),
        max_dust_exposure_sat=options.pop("max_dust_exposure_sat", DUST_EXPOSURE_SAT),
        auto_mine=options.pop("auto_mine", True),
        height_clock=True,
    )


def connect_backend(url: str, **options: Any) -> BitcoinBackend:
    """A backend on bitcoind's JSON-RPC at ``url``.

    Options: ``user``, ``password``, ``cookie_file``, ``chain`` (CAIP-2, default
    ``bip122:regtest``), the fee policy, ``block_interval`` and ``max_dust_exposure_sat``,
    and for a regtest devnet mined on demand: ``auto_mine`` (mine a block after each
    action), ``height_clock``
    (``now()`` moves ``block_interval`` a block from the time of connecting, as on the
    embedded chain: a devnet's block times follow the wall clock, not its heights) and
    ``faucet_key_file`` (the devnet's ``faucet.key``: ``create_account(fund=True)`` is paid
    from it). ``from_block``: the height the event feed starts at (a restarted node passes
    where it stopped, so what was mined meanwhile is reported); by default the tip.
    """
    ledger = btc.BitcoindRpcLedger(
        url,
        options.pop("user", None),
        options.pop("password", None),
        cookie_file=options.pop("cookie_file", None),
        from_height=_height(options.pop("from_block", None)),
    )
    faucet_file = options.pop("faucet_key_file", None)
    faucet = None
    if faucet_file is not None:
        faucet = BitcoinAccount(ledger, parse_secret(Path(faucet_file).read_text().strip()))
    return BitcoinBackend(
        ledger,
        chain=options.pop("chain", REGTEST),
        policy=_policy(options),
        max_dust_exposure_sat=options.pop("max_dust_exposure_sat", DUST_EXPOSURE_SAT),
        auto_mine=bool(options.pop("auto_mine", False)),
        height_clock=bool(options.pop("height_clock", False)),
        faucet=faucet,
        tip_ttl=TIP_TTL,
    )


def _height(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"from_block must be a block height (an integer >= 0), not {value!r}")
    return value


def _policy(options: dict[str, Any]) -> ChannelPolicy:
    default = ChannelPolicy()
    return ChannelPolicy(
        feerate_per_kw=options.pop("feerate_per_kw", default.feerate_per_kw),
        dust_limit_sat=options.pop("dust_limit_sat", default.dust_limit_sat),
        max_fee_sat=options.pop("max_fee_sat", default.max_fee_sat),
        block_interval=int(options.pop("block_interval", default.block_interval)),
    )


__all__ = ["BitcoinBackend", "connect_backend", "embedded_backend"]
