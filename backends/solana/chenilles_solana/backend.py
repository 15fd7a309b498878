"""The Solana ChainBackend: the Chenilles channel program through a ``Ledger``.

``embedded_backend()`` deploys the committed program (contracts/solana/build) into an
in-process LiteSVM, with the SPL Token program, a test mint, and a clock that
``advance_time`` moves. ``connect_backend(url, program_id=...)`` talks to a cluster where
the program is deployed, through solana-py; both share every transaction builder below.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import msgspec
from solders.clock import Clock
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from chenilles_hub.backend import (
    FEE_OPERATIONS,
    AssetInfo,
    BackendInfo,
    ChainEvent,
    Concluded,
    Funded,
    LedgerError,
    NewBlock,
    PreimageRevealed,
    Registered,
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
    payment_hash,
)
from chenilles_hub.core.errors import AmountOutOfRange, BadPreimage, UnknownAsset
from chenilles_hub.core.timing import TimeModel

from . import program_client as pc
from . import spl_token as spl
from .authority import (
    CLOCK_MARGIN,
    NATIVE,
    U64_MAX,
    SolanaAuthority,
    htlc_capacity,
    mint_of,
    mints_of,
    participant_keys,
    state_message,
)
from .closing import closing_ixs, withdraw_ixs
from .forced_moves import ForcedMoves
from .keys import keypair_from_secret
from .ledger import FailedSend, Ledger, LiteSVMLedger, RpcLedger, Sent

LAMPORTS_PER_SOL = 1_000_000_000
SIGNATURE_FEE = 5000  # lamports per signature, payer's and the Ed25519 precompile's alike
EMBEDDED_CHAIN = "solana:localnet"
#: Where the embedded ledger deploys the program (any address works; a fixed one keeps
#: channel ids reproducible across runs). The devnet server uses the same one.
EMBEDDED_PROGRAM_ID = pc.DEFAULT_PROGRAM_ID
TEST_TOKENS = 10**12  # base units of the test mint given to each funded account
TEST_SOL = 100 * LAMPORTS_PER_SOL

#: Signatures per operation (fee payer + the two state signatures the precompile checks).
_SIGNATURES = {"register": 3, "challenge": 3, "close_cooperative": 3}

INFO = BackendInfo(
    name="solana",
    version=metadata.version("chenilles-solana"),
    family="Solana",
    chains=("solana:localnet", "solana:devnet", "solana:mainnet"),
    description="Chenilles channel program; embedded LiteSVM or any Solana JSON-RPC cluster",
    supports_apps=True,
    max_members=16,  # chenilles_group.c (N-party channels, core.group)
)


@dataclass(frozen=True)
class SolanaAccount:
    """A Solana key; ``chain_key`` is its base58 public key."""

    keypair: Keypair

    @property
    def pubkey(self) -> Pubkey:
        return self.keypair.pubkey()

    @property
    def chain_key(self) -> str:
        return str(self.keypair.pubkey())


@dataclass(frozen=True)
class _Channel:
    """What the backend derives from the params: addresses and the program's view of assets
    (and, for an app channel, the app program the channel id commits to)."""

    cid: bytes
    address: Pubkey
    parts: tuple[Pubkey, Pubkey]
    mints: tuple[bytes, ...]
    app: Pubkey | None = None

    def asset_index(self, asset: Asset) -> int:
        try:
            return self.mints.index(mint_of(asset))
        except ValueError:
            raise UnknownAsset(f"{asset} is not an asset of this channel") from None


@dataclass(frozen=True)
class _Fetched:
    """What one poll read off the node's thread: the program's log lines per slot, and
    the Clock sysvar after them."""

    batches: list[tuple[int, list[str]]]
    clock: Clock


def _keypair(account: Any) -> Keypair:
    if isinstance(account, SolanaAccount):
        return account.keypair
    if isinstance(account, Keypair):
        return account
    raise TypeError(f"not a Solana account: {account!r}")


class SolanaBackend(ForcedMoves):
    """One Solana ledger as the node sees it (see chenilles_hub.backend.ChainBackend)."""

    info = INFO

    def __init__(
        self,
        ledger: Ledger,
        chain: str,
        *,
        test_mint: Pubkey | None = None,
        mint_authority: Keypair | None = None,
        faucet: Keypair | None = None,
        mints: Sequence[Pubkey] = (),
    ) -> None:
        self.ledger = ledger
        self.chain = chain
        self.program_id = ledger.program_id
        self.test_mint = test_mint
        self._mint_authority = mint_authority
        self._faucet = faucet
        self._mints = [*([test_mint] if test_mint else []), *mints]
        self._cursor: str | None = None
        self._last_slot = -1
        self._channel_mints: dict[bytes, tuple[bytes, ...]] = {}
        #: app id -> its app program (``use_app``)
        self._apps: dict[str, Pubkey] = {}
        self.last_sent: Sent | None = None  # for cost reports (scripts/solana_costs.py)

    # --- describing the chain -------------------------------------------------------------

    def time_model(self) -> TimeModel:
        return TimeModel(
            block_interval_ms=400,
            finality_depth=32,
            inclusion_delay=60,
            timelock_horizon=30 * 86400,
            safety_margin=600,
        )

    def assets(self) -> Sequence[Asset]:
        return [Asset(self.chain, NATIVE), *(Asset(self.chain, str(m)) for m in self._mints)]

    def now(self) -> int:
        return self.ledger.clock().unix_timestamp

    def next_block_time(self) -> int:
        """The Clock sysvar's unix time: what the program compares deadlines and expiries
        with when it runs a transaction (the next slot's clock is never earlier)."""
        return self.now()

    def holdings(self, params: ChannelParams, min_confirmations: int) -> dict[Asset, list[int]]:
        """The channel account's deposits per asset and participant, read at commitment
        ``finalized`` when ``min_confirmations`` reaches the finality depth (32 slots),
        else ``confirmed`` (a supermajority voted on the block). Nothing while the account
        does not exist, is not the program's, or once the channel is concluded or closed.
        On the embedded LiteSVM every executed transaction is final at once (no forks)."""
        ch = self._channel(params)
        held = {asset: [0] * len(params.participants) for asset in params.assets}
        depth = self.time_model().finality_depth
        view = self.ledger.account(
            ch.address, "finalized" if min_confirmations >= depth else "confirmed"
        )
        if view is None or view.owner != self.program_id:
            return held
        onchain = pc.ChannelAccount.decode(view.data)
        if onchain.channel_id != ch.cid or onchain.status not in (pc.ST_OPEN, pc.ST_DISPUTE):
            return held
        for asset in params.assets:
            held[asset] = list(onchain.deposits[ch.asset_index(asset)])
        return held

    def native_expiry(self, expiry: int) -> int:
        return expiry - CLOCK_MARGIN

    def asset_info(self, asset: Asset) -> AssetInfo:
        """SOL in lamports; the test mint has 6 decimals; other mints in base units."""
        if asset.token == NATIVE:
            return AssetInfo("SOL", 9, "lamport")
        if self.test_mint is not None and asset.token == str(self.test_mint):
            return AssetInfo("TOKEN", 6, "token unit")
        return AssetInfo(f"SPL-{asset.token[:6]}", 0, "token unit")

    def estimate_fee(self, operation: str) -> int:
        """Signature fees only (no priority fee); rent deposits are extra: the channel
        account's and its vaults' come back to the opener when its withdraw closes them
        (CLOSE_ACCOUNTS), a preimage record's stays locked."""
        if operation not in FEE_OPERATIONS and operation != "force_move":
            raise ValueError(f"unknown operation {operation!r}; one of {list(FEE_OPERATIONS)}")
        return SIGNATURE_FEE * _SIGNATURES.get(operation, 1)

    # --- accounts ---------------------------------------------------------------------------

    def create_account(self, fund: bool = True) -> SolanaAccount:
        """A new key; funded with test SOL (an airdrop) and, where the backend holds a test
        mint's authority, test tokens in its associated token account."""
        account = SolanaAccount(Keypair())
        if fund:
            self.fund_account(account)
        return account

    def fund_account(self, account: SolanaAccount) -> None:
        """Development clusters: airdrop test SOL and, with a test mint, mint test tokens."""
        self.ledger.airdrop(account.pubkey, TEST_SOL)
        if self.test_mint is not None and self._mint_authority:
            payer = self._faucet or account.keypair  # on a cluster: the airdropped SOL
            ata = spl.associated_token_address(account.pubkey, self.test_mint)
            self._send(
                "create_account",
                [
                    spl.create_ata_idempotent_ix(payer.pubkey(), account.pubkey, self.test_mint),
                    spl.mint_to_ix(self.test_mint, ata, self._mint_authority.pubkey(), TEST_TOKENS),
                ],
                [payer, self._mint_authority],
            )

    def account_from_key(self, key: bytes | str) -> SolanaAccount:
        """The account of a configured secret key: a 32-byte seed or a 64-byte keypair, as
        bytes, hex, base58 or a solana-keygen JSON array (see :mod:`.keys`)."""
        return SolanaAccount(keypair_from_secret(key))

    def balance(self, account: Any, asset: Asset) -> int:
        owner = _keypair(account).pubkey()
        if asset.token == NATIVE:
            view = self.ledger.account(owner)
            return view.lamports if view else 0
        view = self.ledger.account(
            spl.associated_token_address(owner, Pubkey.from_bytes(mint_of(asset)))
        )
        return spl.TokenAccountData.decode(view.data).amount if view else 0

    # --- the node's wallet (the optional ``Wallet`` role) -----------------------------------

    def decimals(self, asset: Asset) -> int:
        """9 for SOL (a lamport is 1e-9 SOL); an SPL token's mint says its own."""
        if asset.token == NATIVE:
            return 9
        view = self.ledger.account(Pubkey.from_bytes(mint_of(asset)))
        if view is None or len(view.data) < 45:
            raise LedgerError("decimals", f"no SPL mint {asset.token} on this ledger")
        return int(view.data[44])  # SPL Mint: authority option (36), supply (8), decimals

    def address(self, account: Any) -> str:
        return str(_keypair(account).pubkey())

    def send(self, account: Any, asset: Asset, to: str, amount: int) -> TxReceipt:
        """Pay ``amount`` lamports (or token base units, into the receiver's associated
        token account, created if missing) to the base58 address ``to``."""
        if not 0 < amount <= U64_MAX:
            raise LedgerError("send", "the amount must be 1 to 2**64-1")
        try:
            target = Pubkey.from_string(to)
        except ValueError:
            raise LedgerError("send", f"{to!r} is not a Solana address") from None
        payer = _keypair(account)
        if asset.token == NATIVE:
            ix = transfer(
                TransferParams(from_pubkey=payer.pubkey(), to_pubkey=target, lamports=amount)
            )
            return self._send("send", [ix], [payer])
        mint = Pubkey.from_bytes(mint_of(asset))
        source = spl.associated_token_address(payer.pubkey(), mint)
        dest = spl.associated_token_address(target, mint)
        ixs = [
            spl.create_ata_idempotent_ix(payer.pubkey(), target, mint),
            spl.transfer_ix(source, dest, payer.pubkey(), amount),
        ]
        return self._send("send", ixs, [payer])

    def participant_key(self, account: Any, nonce: bytes) -> str:
        return str(_keypair(account).pubkey())

    def new_nonce(
        self,
        participants: Sequence[Participant],
        deposits: Mapping[Asset, Sequence[int]],
        account: Any,
    ) -> bytes:
        return os.urandom(32)

    # --- channels ---------------------------------------------------------------------------

    def _channel(self, params: ChannelParams) -> _Channel:
        a, b = participant_keys(params)
        mints = tuple(mints_of(params))
        app = self.app_program(params)
        cid = pc.channel_id(
            self.program_id, a, b, params.challenge_duration, params.nonce, mints, app
        )
        return _Channel(cid, pc.channel_pda(self.program_id, cid)[0], (a, b), mints, app)

    def channel_id(self, params: ChannelParams) -> bytes:
        return self._channel(params).cid

    def deployment(self, params: ChannelParams) -> str:
        """The programs that hold the channel (``Deployments``): its id commits to the
        channel program and its app's, so a channel opened at others is not ours to
        enforce here."""
        where = f"program {self.program_id}"
        if not params.app:
            return where
        return f"{where}, app {params.app} at {self.app_program(params)}"

    def channel_account(self, params: ChannelParams) -> pc.ChannelAccount | None:
        view = self.ledger.account(self._channel(params).address)
        return pc.ChannelAccount.decode(view.data) if view else None

    def channel_rules(self, params: ChannelParams) -> ChannelRules:
        """None: transaction fees are paid by the sender, and the rent that keeps the
        channel account and its token vaults alive is deposited beside the channel's
        balances when they are created (``fund``), never taken from them; a payout goes to
        the participant's own (already rent-exempt) account or token account, so any
        amount, down to 1 lamport or token unit, can be paid out. A newer state wins a
        dispute: no reserve is needed. What the program limits is the HTLCs per state
        (``htlc_capacity``): one register transaction carries the whole state."""
        return ChannelRules(max_htlcs=htlc_capacity(params))

    def authority(self, params: ChannelParams, account: Any, me: int) -> StateAuthority:
        keypair = _keypair(account)
        if participant_keys(params)[me] != keypair.pubkey():
            raise ValueError(f"account {keypair.pubkey()} is not participant {me}")
        return SolanaAuthority(self.program_id, keypair)

    # --- sending ----------------------------------------------------------------------------

    def _send(
        self, operation: str, instructions: Sequence[Instruction], signers: Sequence[Keypair]
    ) -> TxReceipt:
        try:
            sent = self.ledger.send(operation, instructions, signers)
        except FailedSend as failed:
            # the books must show the fee of a failed transaction the chain charged
            receipt = self._receipt(operation, failed.sent) if failed.sent.fee else None
            raise LedgerError(operation, failed.reason, receipt) from None
        self.last_sent = sent
        return self._receipt(operation, sent)

    def _receipt(self, operation: str, sent: Sent) -> TxReceipt:
        return TxReceipt(
            operation=operation,
            txid=sent.signature,
            fee=sent.fee,
            fee_asset=Asset(self.chain, NATIVE),
            cost=sent.compute_units,
            cost_unit="CU",
            block=sent.slot,
        )

    def _signed_state_ix(self, params: ChannelParams, signed: SignedState) -> Instruction:
        """The Ed25519 precompile instruction carrying both signatures over the state."""
        if len(signed.signatures) != 2 or not all(signed.signatures):
            raise ValueError("a state needs both participants' signatures on-chain")
        message = state_message(self.program_id, params, signed.state)
        keys = participant_keys(params)
        return pc.ed25519_verify_ix(
            message, [(bytes(k), sig) for k, sig in zip(keys, signed.signatures, strict=True)]
        )

    def _ata_ready(self, payer: Pubkey, owner: Pubkey, mint: Pubkey) -> list[Instruction]:
        """Creates ``owner``'s token account for ``mint`` first if it does not exist yet."""
        if self.ledger.account(spl.associated_token_address(owner, mint)) is not None:
            return []
        return [spl.create_ata_idempotent_ix(payer, owner, mint)]

    # --- funding and closing ----------------------------------------------------------------

    def fund(
        self, params: ChannelParams, me: int, account: Any, asset: Asset, amount: int
    ) -> TxReceipt:
        """Deposits ``amount`` of ``asset`` for participant ``me`` (once per asset), opening
        the channel account and its vaults first if nobody has yet. A zero amount only opens."""
        if not 0 <= amount <= U64_MAX:
            raise AmountOutOfRange(f"deposit {amount} does not fit a Solana u64")
        ch = self._channel(params)
        k = ch.asset_index(asset)
        keypair = _keypair(account)
        ixs: list[Instruction] = []
        rent = 0
        if self.ledger.account(ch.address) is None:
            channel_rent = self.ledger.rent(
                pc.CHANNEL_ACCOUNT_SIZE + (pc.APP_TAIL_SIZE if ch.app is not None else 0)
            )
            vault_rent = self.ledger.rent(spl.TOKEN_ACCOUNT_SIZE)
            rent = channel_rent + vault_rent * sum(m != pc.NATIVE_MINT for m in ch.mints)
            open_ix, _, _ = pc.open_ix(
                self.program_id,
                keypair.pubkey(),
                ch.parts[0],
                ch.parts[1],
                params.challenge_duration,
                params.nonce,
                channel_rent,
                mints=ch.mints,
                vault_rent_lamports=vault_rent,
                app=ch.app,
            )
            ixs.append(open_ix)
        if amount:
            if ch.mints[k] == pc.NATIVE_MINT:
                ixs.append(pc.deposit_ix(self.program_id, keypair.pubkey(), ch.address, me, amount))
            else:
                mint = Pubkey.from_bytes(ch.mints[k])
                ixs.append(
                    pc.deposit_ix(
                        self.program_id,
                        keypair.pubkey(),
                        ch.address,
                        me,
                        amount,
                        asset=k,
                        mint=mint,
                        source=spl.associated_token_address(keypair.pubkey(), mint),
                    )
                )
        if not ixs:
            return TxReceipt("fund", "", 0, Asset(self.chain, NATIVE), 0, "CU", None)
        return msgspec.structs.replace(self._send("fund", ixs, [keypair]), rent=rent)

    def close_cooperative(
        self, params: ChannelParams, signed: SignedState, account: Any
    ) -> TxReceipt:
        if done := self._already_concluded("close_cooperative", params):
            return done
        ch = self._channel(params)
        payer = _keypair(account)
        prelude: list[Instruction] = []
        legs = []
        for m in ch.mints:
            if m == pc.NATIVE_MINT:
                continue
            mint = Pubkey.from_bytes(m)
            for owner in ch.parts:
                prelude += self._ata_ready(payer.pubkey(), owner, mint)
            legs.append(
                pc.TokenLeg(
                    pc.vault_pda(self.program_id, ch.address, mint)[0],
                    spl.associated_token_address(ch.parts[0], mint),
                    spl.associated_token_address(ch.parts[1], mint),
                )
            )
        ed_index = len(prelude)
        close = pc.coop_close_ix(
            self.program_id, ch.address, ch.parts[0], ch.parts[1], ed_index, legs
        )
        return self._send(
            "close_cooperative",
            [*prelude, self._signed_state_ix(params, signed), close],
            [payer],
        )

    # --- disputes ---------------------------------------------------------------------------

    def register(self, params: ChannelParams, signed: SignedState, account: Any) -> TxReceipt:
        return self._register("register", params, signed, account)

    def challenge(self, params: ChannelParams, signed: SignedState, account: Any) -> TxReceipt:
        """Refutes a registered state with a newer one (no revocation to punish on Solana)."""
        return self._register("challenge", params, signed, account)

    def _register(
        self, operation: str, params: ChannelParams, signed: SignedState, account: Any
    ) -> TxReceipt:
        ch = self._channel(params)
        onchain = self.channel_account(params)
        if (
            onchain is not None
            and onchain.status == pc.ST_DISPUTE
            and onchain.version == signed.state.version
        ):
            # asked again (a stale registration is answered on every block until the chain
            # shows the answer): this very version is registered already
            return TxReceipt(
                f"{operation} (already registered)", "", 0, Asset(self.chain, NATIVE), 0, "CU"
            )
        return self._send(
            operation,
            [
                self._signed_state_ix(params, signed),
                pc.register_ix(self.program_id, ch.address, 0),
            ],
            [_keypair(account)],
        )

    def conclude(self, params: ChannelParams, account: Any) -> TxReceipt:
        return self._conclude("conclude", params, account)

    def _already_concluded(self, operation: str, params: ChannelParams) -> TxReceipt | None:
        """A conclusion asked for again (after a reorg, or the node's check at depth): the
        chain has it, nothing is sent. A channel account that is gone was closed by
        CLOSE_ACCOUNTS, which the program allows only once the channel is concluded and
        paid out (a node concludes only channels it funded, so "never opened" is not a
        case here)."""
        view = self.ledger.account(self._channel(params).address)
        if view is None:
            return _no_tx(f"{operation} (channel accounts closed)", self.chain)
        onchain = pc.ChannelAccount.decode(view.data)
        if onchain.status not in (pc.ST_CONCLUDED, pc.ST_CLOSED):
            return None
        return _no_tx(f"{operation} (already concluded)", self.chain)

    def _conclude(self, operation: str, params: ChannelParams, account: Any) -> TxReceipt:
        if operation == "conclude" and (done := self._already_concluded(operation, params)):
            return done
        ch = self._channel(params)
        view = self.ledger.account(ch.address)
        hashes = [h.payment_hash for h in pc.ChannelAccount.decode(view.data).htlcs] if view else []
        return self._send(
            operation,
            [pc.conclude_ix(self.program_id, ch.address, hashes)],
            [_keypair(account)],
        )

    def withdraw(self, params: ChannelParams, me: int, account: Any, asset: Asset) -> TxReceipt:
        """Pay out a concluded channel's share. A cooperative close already paid both sides
        in its own transaction: then there is nothing left to withdraw, and the receipt says
        so (no transaction, no fee), as the hub's protocol expects a withdraw after any close.

        The rent payer (the participant whose ``fund`` opened the channel) also closes the
        channel's accounts here, in the same transaction, so their rent comes back: it pays
        whatever the peer has not withdrawn yet (WITHDRAW sends money only to its owner) and
        appends CLOSE_ACCOUNTS; the receipt books the refund as negative ``rent``. Only the
        rent payer does, so the refund always shows in the books of the wallet it reaches.
        Once the accounts are gone everything was paid: a later withdraw sends nothing.

        App channels are not closed: the node reads their concluded state on chain after
        the payout (``app_dispute``: the app's outcome, a virtual channel's guarantee), and
        a closed account has no state left to read."""
        ch = self._channel(params)
        payer = _keypair(account)
        view = self.ledger.account(ch.address)
        if view is None:
            return _no_tx("withdraw (channel accounts closed)", self.chain)
        onchain = pc.ChannelAccount.decode(view.data)
        closer = payer.pubkey() if ch.app is None else None
        if onchain.status == pc.ST_CLOSED:
            closing, refund = closing_ixs(self.ledger, ch, onchain, view.lamports, closer)
            if not closing:
                return _no_tx("withdraw (paid at close)", self.chain)
            receipt = self._send("close_accounts", closing, [payer])
            return msgspec.structs.replace(receipt, rent=-refund)
        k = ch.asset_index(asset)
        ixs = withdraw_ixs(self.ledger, ch, me, k, payer.pubkey())
        closing, refund = closing_ixs(
            self.ledger, ch, onchain, view.lamports, closer, sending=(k, me)
        )
        receipt = self._send("withdraw", [*ixs, *closing], [payer])
        return msgspec.structs.replace(receipt, rent=-refund) if closing else receipt

    # --- HTLCs ------------------------------------------------------------------------------

    def claim_htlc(
        self, params: ChannelParams, htlc: Htlc, preimage: bytes, account: Any
    ) -> TxReceipt:
        """Reveals the preimage in the program's global registry, timestamped by the chain.
        A conclusion then pays every registered HTLC with that hash whose expiry is not
        earlier than the reveal (whichever channel it is in, and whenever it concludes)."""
        if payment_hash(preimage) != htlc.payment_hash:
            raise BadPreimage(f"preimage does not hash to HTLC {htlc.id}'s payment hash")
        payer = _keypair(account)
        rent = self.ledger.rent(pc.PREIMAGE_RECORD_SIZE)
        ix, record = pc.reveal_ix(self.program_id, payer.pubkey(), preimage, rent)
        created = self.ledger.account(record) is None
        receipt = self._send("claim_htlc", [ix], [payer])
        # the preimage record's rent-exempt deposit is locked for good: the books count it
        return msgspec.structs.replace(receipt, rent=rent) if created else receipt

    def refund_htlc(self, params: ChannelParams, htlc: Htlc, account: Any) -> TxReceipt:
        """There is no per-HTLC refund on Solana: the conclusion of a registered state pays
        each expired, unrevealed HTLC back to its payer. So this concludes the dispute (after
        both the challenge period and the HTLC's expiry); the refunded amount is then part
        of the payer's ``withdraw``. The channel must have been registered first."""
        state = self.channel_account(params)
        if state is None or state.status != pc.ST_DISPUTE:
            status = "no channel account" if state is None else f"status {state.status}"
            raise LedgerError(
                "refund_htlc",
                f"BAD_STATUS ({status}): register the latest state first, the conclusion "
                "refunds expired HTLCs",
            )
        return self._conclude("refund_htlc", params, account)

    # --- events and time --------------------------------------------------------------------

    def _asset_of(self, cid: bytes, index: int) -> Asset:
        mints = self._channel_mints.get(cid)
        if mints is None:
            view = self.ledger.account(pc.channel_pda(self.program_id, cid)[0])
            mints = pc.ChannelAccount.decode(view.data).mints if view else ()
            self._channel_mints[cid] = mints
        if index >= len(mints):
            return Asset(self.chain, f"asset#{index}")
        m = mints[index]
        return Asset(self.chain, NATIVE if m == pc.NATIVE_MINT else str(Pubkey.from_bytes(m)))

    def poll_events(self) -> list[ChainEvent]:
        """Chain events from the program's own log lines, oldest first, then a NewBlock if
        the ledger's slot moved since the last poll."""
        return self.apply_events(self.fetch_events())

    def fetches_off_thread(self) -> bool:
        """Over RPC, yes: the client runs every request on its own event loop, from any
        thread. LiteSVM runs in this process: its poll costs no round trip."""
        return isinstance(self.ledger, RpcLedger)

    def fetch_events(self) -> _Fetched:
        """The program's new log lines and the Clock sysvar (``EventFetcher``): the poll's
        RPC calls. The cursor is the fetch's own (nothing else reads it), and moves only
        once both reads succeeded: a failed read loses no log line."""
        cursor, batches = self.ledger.program_logs(self._cursor)
        clock = self.ledger.clock()
        self._cursor = cursor
        return _Fetched(batches, clock)

    def fetch_clock(self, fetched: object) -> int:
        """The Clock sysvar the fetch read (``ClockFetcher``): ``next_block_time``, with no
        second round trip."""
        assert isinstance(fetched, _Fetched)
        return fetched.clock.unix_timestamp

    def apply_events(self, fetched: object) -> list[ChainEvent]:
        """The log lines as hub events, on the node's thread (a channel's mints are read
        once, and kept for the node's other calls)."""
        assert isinstance(fetched, _Fetched)
        batches, clock = fetched.batches, fetched.clock
        events: list[ChainEvent] = []
        for _slot, logs in batches:
            for ev in pc.events_from_logs(self.program_id, logs):
                if ev.kind == pc.EV_FUNDED:
                    asset = self._asset_of(ev.channel_id, ev.asset)
                    events.append(Funded(ev.channel_id, asset, ev.participant, ev.amount))
                elif ev.kind == pc.EV_REGISTERED:
                    events.append(Registered(ev.channel_id, ev.version, ev.deadline))
                elif ev.kind == pc.EV_CONCLUDED:
                    events.append(Concluded(ev.channel_id, ev.version))
                elif ev.kind == pc.EV_REVEALED:
                    events.append(PreimageRevealed(ev.payment_hash, ev.preimage, ev.time))
                elif ev.kind == pc.EV_PROGRESSED:
                    events.append(Registered(ev.channel_id, ev.version, ev.deadline))
                    events.append(self._progressed(ev))
        if clock.slot != self._last_slot:
            self._last_slot = clock.slot
            events.append(NewBlock(clock.slot, clock.unix_timestamp))
        return events

    def close(self) -> None:
        """Stops the RPC client's thread (the embedded ledger has nothing to close)."""
        close = getattr(self.ledger, "close", None)
        if close is not None:
            close()

    def advance_time(self, seconds: int) -> None:
        """Moves the Clock sysvar's unix time, and the slot at 400 ms each: the embedded
        ledger directly, a devnet server through its ``devnetAdvanceClock``; a real
        cluster's clock cannot be moved (NotImplementedError)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        if not isinstance(self.ledger, LiteSVMLedger):
            advance = getattr(self.ledger, "advance_clock", None)
            if advance is None:
                raise NotImplementedError("a real cluster's clock cannot be moved")
            if seconds > 0:
                advance(seconds)
            return
        clock = self.ledger.clock()
        clock.unix_timestamp = clock.unix_timestamp + seconds
        clock.slot = clock.slot + seconds * 1000 // 400
        self.ledger.set_clock(clock)


def _no_tx(operation: str, chain: str) -> TxReceipt:
    """The receipt of an action the chain already has: nothing sent, no fee."""
    return TxReceipt(operation, "", 0, Asset(chain, NATIVE), 0, "CU")


def _create_test_mint(ledger: LiteSVMLedger, faucet: Keypair) -> tuple[Pubkey, Keypair]:
    mint, authority = Keypair(), Keypair()
    ledger.send(
        "create_test_mint",
        [
            spl.create_account_ix(
                faucet.pubkey(), mint.pubkey(), ledger.rent(spl.MINT_SIZE), spl.MINT_SIZE
            ),
            spl.initialize_mint2_ix(mint.pubkey(), authority.pubkey(), 6),
        ],
        [faucet, mint],
    )
    return mint.pubkey(), authority


def embedded_backend(
    *, start_time: int | None = None, test_mint: bool = True, **_options: Any
) -> SolanaBackend:
    """A fresh LiteSVM with the committed program deployed, the SPL Token program (LiteSVM's
    default programs), a test mint (6 decimals) and the clock set to ``start_time`` (default:
    now)."""
    svm = LiteSVM()
    svm.add_program(EMBEDDED_PROGRAM_ID, pc.load_program())
    clock = svm.get_clock()
    clock.unix_timestamp = int(time.time()) if start_time is None else start_time
    svm.set_clock(clock)
    ledger = LiteSVMLedger(svm, EMBEDDED_PROGRAM_ID)
    faucet = Keypair()
    ledger.airdrop(faucet.pubkey(), 1000 * LAMPORTS_PER_SOL)
    mint: Pubkey | None = None
    authority: Keypair | None = None
    if test_mint:
        mint, authority = _create_test_mint(ledger, faucet)
    return SolanaBackend(
        ledger, EMBEDDED_CHAIN, test_mint=mint, mint_authority=authority, faucet=faucet
    )


def connect_backend(
    url: str,
    *,
    program_id: str | None = None,
    chain: str = "solana:devnet",
    mints: Sequence[str] = (),
    test_mint: str | None = None,
    mint_authority: bytes | str | None = None,
    commitment: str | None = None,
    from_block: int | None = None,
    timeout: float = 30.0,
    **_options: Any,
) -> SolanaBackend:
    """A cluster at ``url`` where the program is deployed at ``program_id``.

    The program id is required and checked (an executable account must be there): this
    backend never deploys, silently or otherwise. On a devnet server (python -m
    chenilles_solana.devnet) it is :data:`chenilles_solana.devnet.PROGRAM_ID`; elsewhere
    deploy the committed contracts/solana/build/chenilles_channel.so with ``solana program
    deploy`` and name its address.

    ``mints``: SPL mints (base58) offered as channel assets. ``test_mint`` with its
    ``mint_authority`` (a secret key, as ``account_from_key`` reads them): a mint this
    backend may mint test tokens of, offered too; ``create_account(fund=True)`` then gives
    each new account test tokens besides its airdropped SOL (the devnet server's ready line
    names both). ``from_block``: the slot the event feed starts at (a restarted node passes
    where it was). ``commitment``: of every read and confirmation; by default ``finalized``
    on a real cluster (a finalized block is never rolled back, so events and deposits need
    no reorg handling: Solana has no ``Reorged``), ``confirmed`` on the local devnet (one
    server, no forks). ``apps``: app id -> the
    program id of its deployed app program (see ``use_app``).
    """
    if not program_id:
        raise ValueError(
            "a Solana chain reached by URL needs program_id: the address where the Chenilles "
            "program is deployed (this backend never deploys it)"
        )
    if (test_mint is None) != (mint_authority is None):
        raise ValueError("test_mint and mint_authority go together")
    if commitment is None:
        commitment = "confirmed" if chain == "solana:localnet" else "finalized"
    ledger = RpcLedger(
        url, Pubkey.from_string(program_id), commitment, from_slot=from_block, timeout=timeout
    )
    try:
        program = ledger.account(ledger.program_id)
        if program is None or not program.executable:
            raise ValueError(f"no program at {program_id} on {url}")
    except BaseException:
        ledger.close()
        raise
    backend = SolanaBackend(
        ledger,
        chain,
        test_mint=Pubkey.from_string(test_mint) if test_mint else None,
        mint_authority=keypair_from_secret(mint_authority) if mint_authority else None,
        mints=[Pubkey.from_string(m) for m in mints],
    )
    for app_id, address in dict(_options.get("apps", {})).items():
        backend.use_app(app_id, address=address)
    return backend
