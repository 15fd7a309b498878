"""The EVM :class:`~chenilles_hub.backend.ChainBackend`: one adjudicator on one EVM ledger.

``embedded_backend()`` runs eth-tester (py-evm) in process and deploys the adjudicator and a
test ERC-20; ``connect_backend(url, adjudicator)`` talks JSON-RPC to any EVM node (anvil in
the tests) and uses the adjudicator the operator pinned (see ``devnet.deploy_contracts``).

Every transaction is signed locally with the acting account's key and sent raw, so the
same code path works on eth-tester, anvil and a production node (which unlocks nothing).
Reverts surface as :class:`~chenilles_hub.backend.LedgerError` whose ``reason`` is the
contract's custom error with its arguments, e.g. ``StaleVersion(5, 3)``.

What the contract does not store, the backend recovers from the chain: the adjudicator
keeps only the hash of a registered state, so ``conclude`` uses the state this backend
registered or, failing that, decodes it from the input of the ``register`` transaction
that the latest ``Registered`` log points to (or from a ``Progressed`` log).

A conclusion, cooperative or not, pays both participants in its own transaction; the
``withdraw`` duty then only pulls a payout the conclusion could not send, and otherwise
returns a receipt that says it was already paid (no transaction, no fee).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, cast

import msgspec
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from eth_utils.exceptions import ValidationError as _EthInvalid
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import Web3Exception
from web3.types import RPCEndpoint, TxParams

from chenilles_hub.backend import (
    Account,
    AssetInfo,
    BackendInfo,
    ChainEvent,
    LedgerError,
    NotRegistered,
    TxReceipt,
)
from chenilles_hub.core import (
    NO_RULES,
    Asset,
    ChannelParams,
    ChannelRules,
    Htlc,
    Participant,
    SignedState,
    StateAuthority,
    TimeModel,
)

from .adjudicator import (
    AdjudicatorClient,
    ContractReverted,
    Erc20,
    Phase,
    State,
    _send,
    _state_from_event,
    load_artifact,
)
from .authority import DEFAULT_EXPIRY_MARGIN, EvmAuthority
from .eip712 import ETH, Params
from .events import EventStream
from .forced_moves import ForcedMoves
from .ledgers import ANVIL_MNEMONIC, Ledger, ethtester_ledger
from .mapping import (
    NATIVE,
    app_address,
    asset_address,
    asset_of,
    caip2,
    checksum,
    to_params,
    to_state,
)

try:  # eth-tester rejects some transactions before execution (e.g. insufficient funds)
    from eth_tester.exceptions import ValidationError as _EthTesterInvalid
except ImportError:  # pragma: no cover

    class _EthTesterInvalid(Exception):  # type: ignore[no-redef]
        pass


__all__ = [
    "GAS_ESTIMATES",
    "WITHDRAW_ALREADY_PAID",
    "EvmAccount",
    "EvmBackend",
    "connect_backend",
    "embedded_backend",
]

#: Gas per backend operation, the larger of eth-tester's and anvil's figures for the
#: costliest common case, a channel in one ERC-20 (``fund``: approve + first deposit;
#: ``register`` and ``conclude``: one HTLC; the conclusions pay both participants, each a
#: first token balance). ETH channels cost less (``scripts/evm_gas_table.py``). States with
#: more HTLCs or assets cost more (about 7k gas per HTLC to register, 8k to conclude, and
#: each further asset its two payouts). ``withdraw``: pulling a credited ERC-20 payout.
GAS_ESTIMATES: Mapping[str, int] = {
    "force_move": 110_000,
    "fund": 133_000,
    "close_cooperative": 136_000,
    "register": 109_000,
    "challenge": 109_000,
    "conclude": 112_000,
    "withdraw": 66_000,
    "claim_htlc": 48_000,
    "refund_htlc": 112_000,
}

#: The operation of the receipt ``withdraw`` returns without a transaction: the
#: conclusion already paid this participant (or it withdrew its credit before).
WITHDRAW_ALREADY_PAID = "withdraw (already paid)"

#: What ``create_account(fund=True)`` gives a new account on a development ledger.
DEFAULT_FUND_ETH = 100 * 10**18
DEFAULT_FUND_TOKENS = 10**24

#: Development chains whose blocks are final at once in practice; any other chain id gets
#: the mainnet finality depth (two epochs of 32 slots: ~12.8 minutes) unless told otherwise.
_DEV_CHAIN_IDS = frozenset({31337, 1337, 131277322940537})
MAINNET_FINALITY_DEPTH = 64
DEV_FINALITY_DEPTH = 2


@dataclass(frozen=True)
class EvmAccount:
    """A locally held secp256k1 key; ``chain_key`` is its checksummed address."""

    local: LocalAccount

    @property
    def chain_key(self) -> str:
        return str(self.local.address)

    @property
    def address(self) -> str:
        return str(self.local.address)

    @property
    def key(self) -> bytes:
        return bytes(self.local.key)

    @classmethod
    def from_key(cls, private_key: bytes | str) -> EvmAccount:
        return cls(EthAccount.from_key(private_key))

    def __repr__(self) -> str:  # never print the key
        return f"EvmAccount({self.address})"


def _format_arg(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and is_address(value):
        return to_checksum_address(value)  # eth-abi decodes addresses in lower case
    return str(value)


def _reason(exc: ContractReverted) -> str:
    """``Name(arg, ...)``: the custom error as Solidity would print it."""
    return f"{exc.error_name}({', '.join(_format_arg(a) for a in exc.error_args)})"


class EvmBackend(ForcedMoves):
    """One adjudicator deployment on one EVM ledger, as the hub's ``ChainBackend``.

    Build it with :func:`embedded_backend` or :func:`connect_backend`. ``funders`` are
    accounts whose ETH (and, for ``mintable`` test tokens, minting) ``create_account``
    spends; ``time_travel`` moves an embedded ledger's clock (JSON-RPC nodes use
    ``evm_increaseTime``).
    """

    def __init__(
        self,
        w3: Web3,
        adjudicator: str,
        *,
        tokens: Sequence[str] = (),
        mintable: Sequence[str] = (),
        funders: Sequence[LocalAccount] = (),
        ledger: Ledger | None = None,
        finality_depth: int | None = None,
        margin: int = DEFAULT_EXPIRY_MARGIN,
        from_block: int | None = None,
        fund_eth: int = DEFAULT_FUND_ETH,
        fund_tokens: int = DEFAULT_FUND_TOKENS,
        owns_ledger: bool = False,
    ) -> None:
        self.w3 = w3
        self.adjudicator = AdjudicatorClient(w3, adjudicator)
        self.chain_id = self.adjudicator.chain_id
        self.chain = caip2(self.chain_id)
        self.native = Asset(self.chain, NATIVE)
        self._tokens: dict[str, Erc20] = {checksum(t): Erc20(w3, t) for t in tokens}
        self._mintable: set[str] = {checksum(t) for t in mintable}
        self._funders = list(funders)
        self._ledger = ledger
        self._owns_ledger = owns_ledger
        if finality_depth is None:
            dev = self.chain_id in _DEV_CHAIN_IDS
            finality_depth = DEV_FINALITY_DEPTH if dev else MAINNET_FINALITY_DEPTH
        self.finality_depth = finality_depth
        self.margin = margin
        #: app id -> the contract of its on-chain rule (``use_app``); shared by the authorities
        self._apps: dict[str, str] = {}
        self._verifier = EvmAuthority(
            self.chain_id, self.adjudicator.address, None, margin=margin, apps=self._apps
        )
        self._authorities: dict[bytes, EvmAuthority] = {}
        head = int(w3.eth.block_number)
        #: where to search for registrations this backend did not make itself
        self._origin_block = 0 if from_block is None else from_block
        #: adjudicator events at the tip, with reorg detection (``poll_events``)
        self._events = EventStream(
            w3,
            self.adjudicator,
            self.chain,
            head + 1 if from_block is None else from_block,
            self._origin_block,
        )
        #: eth-tester has no block parameter for ``eth_estimateGas`` (it estimates at the
        #: pending block already); a JSON-RPC node is asked for the pending block explicitly
        self._estimate_at: str | None = (
            None if type(w3.provider).__name__ == "EthereumTesterProvider" else "pending"
        )
        self._fund_eth = fund_eth
        self._fund_tokens = fund_tokens
        #: the last registered state this backend submitted or recovered, per channel
        self._registered: dict[bytes, State] = {}
        self.info = BackendInfo(
            name="evm",
            version=metadata.version("chenilles-evm"),
            family="EVM",
            chains=(self.chain,),
            description=f"Chenilles adjudicator {self.adjudicator.address} on {self.chain}",
            supports_apps=True,
            max_members=16,  # GroupAdjudicator (N-party channels, core.group)
            reorgs=True,
        )

    # --- the chain ------------------------------------------------------------------------

    def time_model(self) -> TimeModel:
        """Block timestamps are the contract's clock, so a timelock fires exactly at its
        timestamp however far ahead (the horizon is only bounded by ``uint64``): what costs
        time is getting a transaction in (a 60 s worst-case inclusion delay under normal
        fee bidding) and waiting for finality (12 s blocks)."""
        return TimeModel(
            block_interval_ms=12_000,
            finality_depth=self.finality_depth,
            inclusion_delay=60,
            timelock_horizon=10 * 365 * 86400,
        )

    def assets(self) -> Sequence[Asset]:
        return [self.native, *(Asset(self.chain, t) for t in self._tokens)]

    def asset_info(self, asset: Asset) -> AssetInfo:
        """Ether in wei; an ERC-20 under its address's first characters, in its base unit."""
        if asset.token == "native":
            return AssetInfo("ETH", 18, "wei")
        return AssetInfo(f"ERC20-{asset.token[2:8]}", 0, "token unit")

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def close(self) -> None:
        """Stop the ledger this backend started itself (nothing for eth-tester)."""
        if self._owns_ledger and self._ledger is not None:
            self._ledger.stop()

    # --- accounts ---------------------------------------------------------------------------

    def create_account(self, fund: bool = True) -> EvmAccount:
        """A fresh key; with ``fund``, given ETH and every mintable test token from the
        ledger's funded accounts (development ledgers only)."""
        account = EvmAccount(EthAccount.create())
        if fund:
            self.fund_account(account)
        return account

    def fund_account(self, account: Account) -> None:
        """Development ledgers: give ``account`` ETH and every mintable test token."""
        self.faucet(account, self.native, self._fund_eth)
        for token in sorted(self._mintable):
            self.faucet(account, Asset(self.chain, token), self._fund_tokens)

    def faucet(self, account: Account, asset: Asset, amount: int) -> TxReceipt:
        """Development ledgers: send ``amount`` of ETH from a funded account, or mint a test
        token, to ``account``."""
        if not self._funders:
            raise LedgerError("faucet", "no funded account on this ledger")
        funder = self._funders[0]
        to = checksum(account.chain_key)
        token = asset_address(asset, self.chain)
        if token == ETH:
            return self._submit(
                "faucet", funder, lambda tx: {**tx, "to": to, "value": amount, "gas": 21_000}
            )
        if token not in self._mintable:
            raise LedgerError("faucet", f"{token} is not a mintable test token")
        fn = self._erc20(token).contract.functions.mint(to, amount)
        return self._submit_call("faucet", funder, fn)

    def account_from_key(self, private_key: bytes | str) -> EvmAccount:
        return EvmAccount.from_key(private_key)

    def balance(self, account: Account, asset: Asset) -> int:
        address = checksum(account.chain_key)
        token = asset_address(asset, self.chain)
        if token == ETH:
            return int(self.w3.eth.get_balance(address))
        return self._erc20(token).balance_of(address)

    # --- the node's wallet (the optional ``Wallet`` role) -----------------------------------

    def decimals(self, asset: Asset) -> int:
        """18 for ETH; a token's own ``decimals()``."""
        token = asset_address(asset, self.chain)
        if token == ETH:
            return 18
        contract = self._erc20(token).contract
        return int(_send(self.w3, lambda: contract.functions.decimals().call()))

    def address(self, account: Account) -> str:
        return checksum(account.chain_key)

    def send(self, account: Account, asset: Asset, to: str, amount: int) -> TxReceipt:
        """Pay ``amount`` wei (or token base units) to the address ``to``."""
        if not is_address(to):
            raise LedgerError("send", f"{to!r} is not an EVM address")
        if amount <= 0:
            raise LedgerError("send", "the amount must be positive")
        local = self._local(account)
        target = checksum(to)
        token = asset_address(asset, self.chain)
        if token == ETH:
            return self._submit(
                "send", local, lambda tx: {**tx, "to": target, "value": amount, "gas": 21_000}
            )
        fn = self._erc20(token).contract.functions.transfer(target, amount)
        return self._submit_call("send", local, fn)

    def participant_key(self, account: Account, nonce: bytes) -> str:
        """The account's checksummed address (the same in every channel: EVM needs no
        per-channel key, the nonce is unused)."""
        return checksum(account.chain_key)

    def new_nonce(
        self,
        participants: Sequence[Participant],
        deposits: Mapping[Asset, Sequence[int]],
        account: Account,
    ) -> bytes:
        return secrets.token_bytes(32)

    # --- channels and signatures --------------------------------------------------------------

    def channel_id(self, params: ChannelParams) -> bytes:
        self._check_chain(params)
        return self._verifier.channel_id(params)

    def deployment(self, params: ChannelParams) -> str:
        """The contracts that hold the channel (``Deployments``): its id commits to the
        adjudicator's address and its app's, so a channel opened at others is not ours to
        enforce here."""
        where = f"adjudicator {self.adjudicator.address}"
        if not params.app:
            return where
        return f"{where}, app {params.app} at {app_address(params, self._apps)}"

    def channel_rules(self, params: ChannelParams) -> ChannelRules:
        """None: gas is paid by whoever sends a transaction, from outside the channel; the
        adjudicator pays any amount, down to 1 wei (or token unit), and a newer state simply
        wins a dispute, so no reserve is needed to make cheating cost something."""
        return NO_RULES

    def authority(self, params: ChannelParams, account: Account, me: int) -> StateAuthority:
        self._check_chain(params)
        local = self._local(account)
        if params.participants[me].chain_key.lower() != local.address.lower():
            # (hex compared without checksumming: that hashes, once per channel at restore)
            raise ValueError(f"account {local.address} is not participant {me} of this channel")
        # One authority per key serves all of that key's channels (it holds no per-channel
        # state but caches): restoring 100,000 channels built 100,000 of them, half the time.
        key = bytes(local.key)
        authority = self._authorities.get(key)
        if authority is None:
            authority = EvmAuthority(
                self.chain_id, self.adjudicator.address, key, margin=self.margin, apps=self._apps
            )
            self._authorities[key] = authority
        return authority

    def native_expiry(self, expiry: int) -> int:
        """``expiry - margin`` (60 s by default), a block timestamp."""
        return self._verifier.native_expiry(expiry)

    def estimate_fee(self, operation: str) -> int:
        """``GAS_ESTIMATES[operation]`` times the node's current gas price, in wei."""
        try:
            gas = GAS_ESTIMATES[operation]
        except KeyError:
            raise ValueError(
                f"unknown operation {operation!r}; one of {sorted(GAS_ESTIMATES)}"
            ) from None
        return gas * int(self.w3.eth.gas_price)

    # --- funding and closing ----------------------------------------------------------------

    def fund(
        self, params: ChannelParams, me: int, account: Account, asset: Asset, amount: int
    ) -> TxReceipt:
        """Deposit ``amount`` for participant ``me``: ETH as value, an ERC-20 by approve +
        deposit (the receipt is the deposit's, with both transactions' fee and gas)."""
        p = self._params(params)
        local = self._local(account)
        token = asset_address(asset, self.chain)
        fn = self.adjudicator.contract.functions.deposit(p.to_abi(), token, me, amount)
        if token == ETH:
            return self._submit_call("fund", local, fn, value=amount)
        erc20 = self._erc20(token)
        approved = self._submit_call(
            "fund", local, erc20.contract.functions.approve(self.adjudicator.address, amount)
        )
        deposited = self._submit_call("fund", local, fn)
        return TxReceipt(
            operation="fund",
            txid=deposited.txid,
            fee=approved.fee + deposited.fee,
            fee_asset=self.native,
            cost=approved.cost + deposited.cost,
            cost_unit="gas",
            block=deposited.block,
        )

    def close_cooperative(
        self, params: ChannelParams, signed: SignedState, account: Account
    ) -> TxReceipt:
        """``concludeCooperative`` with a final state both signed: it pays both participants
        every asset in the same transaction (a payout a receiver refuses is credited and
        waits for that participant's ``withdraw``)."""
        p = self._params(params)
        if self._concluded(params):
            return self._already_concluded("close_cooperative")
        state = to_state(params, signed.state)
        fn = self.adjudicator.contract.functions.concludeCooperative(
            p.to_abi(), state.to_abi(), list(signed.signatures)
        )
        return self._submit_call("close_cooperative", self._local(account), fn)

    def _concluded(self, params: ChannelParams) -> bool:
        return self.adjudicator.dispute(self.channel_id(params)).phase == Phase.CONCLUDED

    def _already_concluded(self, operation: str) -> TxReceipt:
        """A conclusion asked for again (after a reorg the node cannot tell whether it
        survived): the chain has it, nothing is sent."""
        return TxReceipt(f"{operation} (already concluded)", "", 0, self.native, 0, "gas")

    # --- disputes -----------------------------------------------------------------------------

    def register(self, params: ChannelParams, signed: SignedState, account: Account) -> TxReceipt:
        return self._register("register", params, signed, account)

    def challenge(self, params: ChannelParams, signed: SignedState, account: Account) -> TxReceipt:
        """On EVM a challenge is a registration of a strictly newer state during the period:
        it replaces the registered one and restarts the challenge period."""
        return self._register("challenge", params, signed, account)

    def _register(
        self, operation: str, params: ChannelParams, signed: SignedState, account: Account
    ) -> TxReceipt:
        p = self._params(params)
        state = to_state(params, signed.state)
        info = self.adjudicator.dispute(state.channel_id)
        if info.phase == Phase.DISPUTE and info.version == signed.state.version:
            # asked again (the node answers a stale registration on every block until the
            # chain shows the answer): this very version is registered already
            return TxReceipt(f"{operation} (already registered)", "", 0, self.native, 0, "gas")
        fn = self.adjudicator.contract.functions.register(
            p.to_abi(), state.to_abi(), list(signed.signatures)
        )
        receipt = self._submit_call(operation, self._local(account), fn)
        self._registered[state.channel_id] = state
        return receipt

    def conclude(self, params: ChannelParams, account: Account) -> TxReceipt:
        """Conclude a dispute once its period is over: HTLCs revealed in time pay the payee,
        expired ones refund the payer; one neither revealed nor expired makes it revert
        with ``HtlcNotResolvable(id)`` (try again after that HTLC's native expiry). The same
        transaction pays both participants (as ``close_cooperative`` does)."""
        return self._conclude("conclude", params, account)

    def _conclude(self, operation: str, params: ChannelParams, account: Account) -> TxReceipt:
        p = self._params(params)
        if operation == "conclude" and self._concluded(params):
            return self._already_concluded(operation)
        state = self.registered_state(params, operation)
        fn = self.adjudicator.contract.functions.conclude(p.to_abi(), state.to_abi())
        return self._submit_call(operation, self._local(account), fn)

    def withdraw(self, params: ChannelParams, me: int, account: Account, asset: Asset) -> TxReceipt:
        """Make sure participant ``me`` (whose key ``account`` must hold) has its payout of
        ``asset`` from the concluded channel.

        The conclusion already sent it unless the transfer failed (a receiver that rejects
        ETH, a token that refuses the transfer): then it was credited, and this pulls it
        to ``account`` with ``withdraw``. When nothing is left to pull, this sends no
        transaction and returns ``TxReceipt("withdraw (already paid)", "", 0, ETH, 0,
        "gas")``. Before conclusion, or from another account, the contract's error comes
        back (``NotConcluded()``, ``Unauthorized(address)``) as before.
        """
        p = self._params(params)
        local = self._local(account)
        token = asset_address(asset, self.chain)
        seats = params.participants
        if 0 <= me < len(seats) and checksum(seats[me].chain_key) == local.address:
            _, nothing_left = self.adjudicator.payout(self.channel_id(params), token, me)
            if nothing_left:
                return TxReceipt(
                    operation=WITHDRAW_ALREADY_PAID,
                    txid="",
                    fee=0,
                    fee_asset=self.native,
                    cost=0,
                    cost_unit="gas",
                    block=None,
                )
        fn = self.adjudicator.contract.functions.withdraw(p.to_abi(), me, token, local.address)
        return self._submit_call("withdraw", local, fn)

    def registered_state(self, params: ChannelParams, operation: str = "conclude") -> State:
        """The contract state registered for the channel (the contract keeps only its hash).

        Uses the state this backend last registered when it still matches, else rebuilds it
        from the chain: a ``Progressed`` log carries the state; a ``Registered`` log points
        to the ``register`` transaction whose input carries it.
        """
        cid = self.channel_id(params)
        info = self.adjudicator.dispute(cid)
        if info.phase == Phase.NONE:  # a registration a reorg took, or none ever
            raise NotRegistered(operation, "NotRegistered()")
        if info.phase == Phase.CONCLUDED:
            raise LedgerError(operation, "AlreadyConcluded()")
        cached = self._registered.get(cid)
        if cached is not None and cached.abi_hash() == info.state_hash:
            return cached
        logs = self.w3.eth.get_logs(
            {
                "address": self.adjudicator.address,
                "fromBlock": self._origin_block,
                "toBlock": "latest",
                "topics": [None, Web3.to_hex(cid)],
            }
        )
        for event in reversed(self.adjudicator.decode_logs(logs)):
            candidate: State | None = None
            if event.name == "Progressed":
                candidate = cast(State, event.args["state"])
            elif event.name == "Registered":
                candidate = self._state_from_register_tx(event.tx_hash)
            if candidate is not None and candidate.abi_hash() == info.state_hash:
                self._registered[cid] = candidate
                return candidate
        raise LedgerError(
            operation,
            f"StateUnknown(0x{cid.hex()}): the registered state was not found in logs since "
            f"block {self._origin_block}",
        )

    def _state_from_register_tx(self, tx_hash: bytes) -> State | None:
        tx = self.w3.eth.get_transaction(HexBytes(tx_hash))
        if tx.get("to") is None or checksum(str(tx["to"])) != self.adjudicator.address:
            return None  # registered through another contract: its input is not ours to read
        try:
            fn, args = self.adjudicator.contract.decode_function_input(tx["input"])
        except ValueError:
            return None
        if fn.fn_name != "register":
            return None
        return _state_from_event(args["state"])

    # --- HTLCs on-chain -------------------------------------------------------------------------

    def claim_htlc(
        self, params: ChannelParams, htlc: Htlc, preimage: bytes, account: Account
    ) -> TxReceipt:
        """Reveal the preimage on the adjudicator's registry (``revealPreimage``). The payee
        is paid when the registered state containing the HTLC is concluded: the reveal must
        land at a block timestamp <= the HTLC's native expiry."""
        if hashlib.sha256(preimage).digest() != htlc.payment_hash:
            raise LedgerError("claim_htlc", f"BadPreimage({htlc.id})")
        now = self.now()
        if now >= htlc.native_expiry:
            raise LedgerError(
                "claim_htlc",
                f"HtlcExpired({htlc.id}, {htlc.native_expiry}): a reveal in the next block "
                f"(after {now}) would come too late to pay the payee",
            )
        fn = self.adjudicator.contract.functions.revealPreimage(bytes(preimage))
        return self._submit_call("claim_htlc", self._local(account), fn)

    def refund_htlc(self, params: ChannelParams, htlc: Htlc, account: Account) -> TxReceipt:
        """There is no per-HTLC refund on EVM: concluding the registered state refunds every
        expired, unrevealed HTLC in it. So this concludes the channel, and refuses (without
        spending gas) while the HTLC can still be claimed: before its native expiry, or if
        its preimage was revealed in time. The channel must be registered (``register``)
        and its challenge period over, else the contract's ``NotRegistered()`` or
        ``ChallengePeriodActive(timeout)`` comes back."""
        revealed = self.adjudicator.revealed_at(htlc.payment_hash)
        if revealed and revealed <= htlc.native_expiry:
            raise LedgerError(
                "refund_htlc", f"HtlcClaimed({htlc.id}, {revealed}): the preimage was revealed"
            )
        now = self.now()
        if now <= htlc.native_expiry:
            # Wait for a block past the expiry rather than bet on the next block's timestamp:
            # nodes estimate gas against the latest block's time, so the refund must already
            # be valid there.
            raise LedgerError(
                "refund_htlc",
                f"HtlcNotExpired({htlc.id}, {htlc.native_expiry}): refundable by concluding "
                f"once a block is past timestamp {htlc.native_expiry} (latest {now})",
            )
        return self._conclude("refund_htlc", params, account)

    # --- events and time --------------------------------------------------------------------------

    def poll_events(self) -> list[ChainEvent]:
        """Adjudicator events in the blocks mined since the last poll (since this backend
        was built, or ``from_block``, on the first), then one ``NewBlock`` for the tip.

        Read at the tip, and reorg-aware (:class:`~.events.EventStream`): when blocks it
        reported leave the chain it reports ``Reorged``, then the surviving history of
        every channel they concerned, then reads on from the fork.
        """
        return self.apply_events(self.fetch_events())

    def fetches_off_thread(self) -> bool:
        """Over HTTP, yes: the event stream keeps state nothing else reads, and web3's
        HTTP provider gives each thread a session of its own. eth-tester runs the chain in
        this process and is not made for threads."""
        return isinstance(self.w3.provider, HTTPProvider)

    def fetch_events(self) -> list[ChainEvent]:
        """The whole poll (``EventFetcher``): reading the logs and the tip is the slow part,
        and turning them into events needs nothing of the node's thread."""
        return self._events.poll()

    def apply_events(self, fetched: object) -> list[ChainEvent]:
        return cast(list[ChainEvent], fetched)

    def fetch_clock(self, fetched: object) -> int:
        """``next_block_time`` on the reading thread (``ClockFetcher``): two reads of
        web3, which gives that thread a session of its own, and nothing written (the
        event stream's poll reads the tip's number, not the pending block's time)."""
        return self.next_block_time()

    def holdings(self, params: ChannelParams, min_confirmations: int) -> dict[Asset, list[int]]:
        """Per asset and participant, what the ``Deposited`` events of the channel in blocks
        at least ``min_confirmations`` deep add up to (each counted for the participant it
        names); nothing once a conclusion of the channel is that deep.

        Read from the adjudicator's logs up to block ``tip - min_confirmations + 1``: one
        ``eth_getLogs`` filtered by the channel id, from the adjudicator's first block."""
        self._check_chain(params)
        cid = self.channel_id(params)
        held: dict[Asset, list[int]] = {a: [0] * len(params.participants) for a in params.assets}
        deepest = int(self.w3.eth.block_number) - max(1, min_confirmations) + 1
        if deepest < self._origin_block:
            return held
        logs = self.w3.eth.get_logs(
            {
                "address": self.adjudicator.address,
                "fromBlock": self._origin_block,
                "toBlock": deepest,
                "topics": [None, Web3.to_hex(cid)],
            }
        )
        for event in self.adjudicator.decode_logs(logs):
            if event.name in ("Concluded", "ConcludedCooperatively"):
                return {a: [0] * len(params.participants) for a in params.assets}
            if event.name != "Deposited":
                continue
            asset = asset_of(self.chain, event.args["asset"])
            participant = int(event.args["participant"])
            if asset in held and 0 <= participant < len(params.participants):
                held[asset][participant] += int(event.args["amount"])
        return held

    def next_block_time(self) -> int:
        """The pending block's timestamp: what the next block will carry. On a chain that
        mines on demand (anvil without ``--block-time``) it follows the node's clock even
        when no block comes, and the transaction that needs it mines the block that makes
        it valid. At least the latest block's timestamp."""
        latest = self.now()
        try:
            pending = int(self.w3.eth.get_block("pending")["timestamp"])
        except Exception:  # a node without a pending block: the next one is later
            return latest + 1
        return max(pending, latest)

    def advance_time(self, seconds: int) -> None:
        """Mine a block at least ``seconds`` later (development ledgers only)."""
        if self._ledger is not None:
            self._ledger.advance(seconds)
            return
        for method, args in (("evm_increaseTime", [seconds]), ("evm_mine", [])):
            response = self.w3.provider.make_request(RPCEndpoint(method), args)
            if "error" in response:
                raise LedgerError("advance_time", f"{method}: {response['error']}")

    # --- internals ----------------------------------------------------------------------------

    def _deploy_code(self, operation: str, code: bytes) -> str:
        """Deploy creation bytecode from the first funded development account."""
        if not self._funders:
            raise LedgerError(operation, "no funded account to deploy with on this ledger")
        sender = self._funders[0]

        def build(tx: dict[str, Any]) -> dict[str, Any]:
            tx = {**tx, "data": bytes(code), "value": 0}
            gas = int(self.w3.eth.estimate_gas(cast(TxParams, tx)))
            return {**tx, "gas": gas + gas // 5}

        receipt = self._submit(operation, sender, build)
        address = self.w3.eth.get_transaction_receipt(HexBytes(receipt.txid))["contractAddress"]
        if address is None:
            raise LedgerError(operation, "the deployment created no contract")
        return to_checksum_address(address)

    def _check_chain(self, params: ChannelParams) -> None:
        if params.chain != self.chain:
            raise ValueError(f"channel is on {params.chain}, this backend on {self.chain}")

    def _params(self, params: ChannelParams) -> Params:
        self._check_chain(params)
        return to_params(params, self._apps)

    def _erc20(self, token: str) -> Erc20:
        erc20 = self._tokens.get(token)
        if erc20 is None:
            erc20 = self._tokens[token] = Erc20(self.w3, token)
        return erc20

    @staticmethod
    def _local(account: Account) -> LocalAccount:
        if isinstance(account, EvmAccount):
            return account.local
        if isinstance(account, LocalAccount):
            return account
        raise TypeError(f"an EVM backend acts with an EvmAccount, not {type(account).__name__}")

    def _fees(self) -> dict[str, int]:
        return _fees(self.w3)

    def _submit_call(
        self, operation: str, sender: LocalAccount, fn: Any, value: int = 0
    ) -> TxReceipt:
        """Estimate (a revert surfaces here, before any gas is spent), sign, send, wait."""

        def build(tx: dict[str, Any]) -> dict[str, Any]:
            tx = {**tx, "value": value}
            # Estimated against the block the transaction will land in (the pending one):
            # a conclusion valid from the next block's timestamp on is sent as soon as it
            # is, instead of being refused against the latest block's time.
            gas = int(
                _send(
                    self.w3,
                    lambda: fn.estimate_gas(cast(TxParams, tx), block_identifier=self._estimate_at),
                )
            )
            tx["gas"] = gas + gas // 5  # headroom: state may change between estimate and block
            return cast(dict[str, Any], fn.build_transaction(cast(TxParams, tx)))

        return self._submit(operation, sender, build)

    def _submit(
        self,
        operation: str,
        sender: LocalAccount,
        build: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> TxReceipt:
        w3 = self.w3
        base: dict[str, Any] = {
            "from": sender.address,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": self.chain_id,
            **self._fees(),
        }
        mined: TxReceipt | None = None
        try:
            tx = build(base)
            tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
            mined = self._receipt(operation, tx_hash, receipt)
            if receipt["status"] != 1:
                # mined but reverted (the state changed since estimation): replay for the
                # reason; the gas it burnt is reported with the error
                mined = msgspec.structs.replace(mined, operation=f"{operation} (reverted)")
                call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
                _send(w3, lambda: w3.eth.call(cast(TxParams, call), receipt["blockNumber"] - 1))
                raise ContractReverted("Unknown", ())
        except ContractReverted as exc:
            raise LedgerError(operation, _reason(exc), mined) from exc
        except (Web3Exception, _EthTesterInvalid, _EthInvalid, ValueError) as exc:
            # rejected before execution: insufficient funds, nonce, fee cap, node errors
            raise LedgerError(operation, f"{type(exc).__name__}: {exc}", mined) from exc
        return mined

    def _receipt(self, operation: str, tx_hash: Any, receipt: Any) -> TxReceipt:
        gas = int(receipt["gasUsed"])
        return TxReceipt(
            operation=operation,
            txid=Web3.to_hex(tx_hash),
            fee=gas * int(receipt["effectiveGasPrice"]),
            fee_asset=self.native,
            cost=gas,
            cost_unit="gas",
            block=int(receipt["blockNumber"]),
        )


def _fees(w3: Web3) -> dict[str, int]:
    """EIP-1559 fees: the node's suggested tip, and a cap of twice the base fee plus the tip
    (room for several full blocks of base-fee growth before the transaction would stall)."""
    base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tip = int(w3.eth.max_priority_fee)
    return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}


def _deploy(
    w3: Web3,
    chain_id: int,
    name: str,
    args: Sequence[Any],
    sender: LocalAccount,
    fees: Mapping[str, int],
) -> Contract:
    """Deploy artifact ``name`` with a locally signed transaction (no unlocked account)."""
    art = load_artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    tx: dict[str, Any] = {
        "from": sender.address,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "chainId": chain_id,
        **fees,
    }
    try:
        built = _send(w3, lambda: factory.constructor(*args).build_transaction(cast(TxParams, tx)))
        tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(built).raw_transaction)
    except ContractReverted as exc:
        raise LedgerError("deploy", _reason(exc)) from exc
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise LedgerError("deploy", f"{name} deployment failed")
    return w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])


def _deploy_dev_contracts(
    w3: Web3, deployer: LocalAccount, with_token: bool
) -> tuple[str, list[str], int]:
    """Adjudicator (and a test ERC-20): their addresses and the adjudicator's block."""
    chain_id = int(w3.eth.chain_id)
    adjudicator = _deploy(w3, chain_id, "Adjudicator", (), deployer, _fees(w3))
    origin = int(w3.eth.block_number)
    tokens: list[str] = []
    if with_token:
        token = _deploy(w3, chain_id, "TestToken", ("Test", "TST"), deployer, _fees(w3))
        tokens.append(to_checksum_address(token.address))
    return to_checksum_address(adjudicator.address), tokens, origin


def embedded_backend(**options: Any) -> EvmBackend:
    """eth-tester (py-evm) in process, with a fresh adjudicator and test ERC-20.

    Options: ``ledger`` (an existing eth-tester :class:`Ledger` to share, e.g. in tests),
    ``finality_depth`` (default 2), ``margin`` (HTLC expiry margin, default 60 s),
    ``fund_eth`` / ``fund_tokens`` (what ``create_account`` gives).
    """
    ledger = options.pop("ledger", None)
    owns = ledger is None
    if ledger is None:
        ledger = ethtester_ledger()
    funder = ledger.accounts[-1]
    adjudicator, tokens, origin = _deploy_dev_contracts(ledger.w3, funder, with_token=True)
    return EvmBackend(
        ledger.w3,
        adjudicator,
        tokens=tokens,
        mintable=tokens,
        funders=[funder],
        ledger=ledger,
        from_block=origin,
        owns_ledger=owns,
        **options,
    )


def connect_backend(
    url: str, adjudicator: str | None = None, *, deploy: bool = False, **options: Any
) -> EvmBackend:
    """A backend on the JSON-RPC node at ``url``, using the adjudicator at ``adjudicator``.

    The adjudicator is pinned by the operator (``chenilles deploy evm`` prints one): a node
    that deployed its own on every start would sign channels no peer's node knows, and close
    them against a contract that is not the one its channels were opened on. Only with
    ``deploy=True`` (tests on a throw-away anvil) is a fresh adjudicator and test ERC-20
    deployed from the first funder. Options: ``funder_keys`` (private keys of funded
    accounts; default: anvil's well-known development mnemonic), ``tokens`` (ERC-20
    addresses offered as assets), ``mintable`` (those of them anyone may mint),
    ``from_block`` (where to look for past registrations and start ``poll_events``),
    ``finality_depth``, ``margin``, ``fund_eth``, ``fund_tokens``, ``timeout`` (seconds
    per request), ``apps`` (app id -> the address of its deployed IApp contract; see
    ``use_app``).
    """
    timeout = options.pop("timeout", 30)
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    keys = options.pop("funder_keys", None)
    if keys is None:
        EthAccount.enable_unaudited_hdwallet_features()
        funders = [
            EthAccount.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
            for i in (9,)  # the last of anvil's ten: tests drive the first ones directly
        ]
    else:
        funders = [EthAccount.from_key(k) for k in keys]
    tokens: list[str] = [checksum(t) for t in options.pop("tokens", ())]
    mintable: list[str] = [checksum(t) for t in options.pop("mintable", ())]
    apps: dict[str, str] = dict(options.pop("apps", {}))
    if adjudicator is None:
        if not deploy:
            raise ValueError(
                f"no adjudicator pinned for {url}: deploy one with `chenilles deploy evm --url "
                f'{url} --key-file KEY` and set adjudicator = "0x..." in the chain\'s config'
            )
        adjudicator, deployed, origin = _deploy_dev_contracts(w3, funders[0], with_token=True)
        tokens += deployed
        mintable += deployed
        options.setdefault("from_block", origin)
    elif not is_address(adjudicator):
        raise ValueError(f"adjudicator {adjudicator!r} is not an address")
    elif not w3.eth.get_code(checksum(adjudicator)):
        raise ValueError(f"no contract at {adjudicator} on {url}: wrong adjudicator or chain")
    backend = EvmBackend(
        w3, adjudicator, tokens=tokens, mintable=mintable, funders=funders, **options
    )
    for app_id, address in apps.items():
        backend.use_app(app_id, address=address)
    return backend
