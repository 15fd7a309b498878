"""Solana's JSON-RPC methods over a :class:`DevnetChain`.

One function per method: check the parameters (``-32602`` before anything runs), ask the
chain, answer in Solana's shape (``{"context": {"slot", "apiVersion"}, "value"}`` where
Solana's methods answer so). Transport and envelopes are the server's business.

Commitment levels are accepted and checked but all mean the same state: a landed
transaction is final at once (there is one node and no fork).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import base58
from solders.message import Message, MessageV0, from_bytes_versioned
from solders.signature import Signature
from solders.transaction import SanitizeError, VersionedTransaction

from . import encoding, tokens
from .chain import DevnetChain, Dropped, Simulation
from .clock import MAX_PROCESSING_AGE
from .errors import (
    BLOCK_NOT_AVAILABLE,
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    MIN_CONTEXT_SLOT_NOT_REACHED,
    SEND_TRANSACTION_PREFLIGHT_FAILURE,
    RpcError,
    error_json,
    error_text,
    invalid_params,
    signature_verification_failure,
)
from .genesis import FAUCET, MAX_AIRDROP
from .params import Config, Params, pubkey, signature

#: The agave release whose runtime LiteSVM runs here (solders 0.29 links
#: solana-program-runtime 4.1.2): what getVersion and every context's apiVersion report.
SOLANA_CORE_VERSION = "4.1.2"
#: Largest serialized transaction (solana_packet::PACKET_DATA_SIZE) and the longest text
#: that can encode it (agave's MAX_BASE58_SIZE / MAX_BASE64_SIZE).
PACKET_DATA_SIZE = 1232
MAX_BASE58_SIZE = 1683
MAX_BASE64_SIZE = 1644
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_FOR_ADDRESS = 1000
_TX_TYPE = "solana_transaction::versioned::VersionedTransaction"
_MSG_TYPE = "solana_message::versions::VersionedMessage"

Handler = Callable[["DevnetRpc", Params], Any]
METHODS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name] = fn
        return fn

    return register


def decode_wire(text: str, enc: str, type_name: str = _TX_TYPE) -> bytes:
    """Base58/base64 text to bytes, within Solana's limits on both (as agave's
    ``decode_and_deserialize``)."""
    if enc == "base58":
        if len(text) > MAX_BASE58_SIZE:
            raise invalid_params(
                f"base58 encoded {type_name} too large: {len(text)} bytes "
                f"(max: encoded/raw {MAX_BASE58_SIZE}/{PACKET_DATA_SIZE})"
            )
        try:
            raw = base58.b58decode(text)
        except ValueError as exc:
            raise invalid_params(f"invalid base58 encoding: {exc}") from None
    else:
        if len(text) > MAX_BASE64_SIZE:
            raise invalid_params(
                f"base64 encoded {type_name} too large: {len(text)} bytes "
                f"(max: encoded/raw {MAX_BASE64_SIZE}/{PACKET_DATA_SIZE})"
            )
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise invalid_params(f"invalid base64 encoding: {exc}") from None
    if len(raw) > PACKET_DATA_SIZE:
        raise invalid_params(
            f"decoded {type_name} too large: {len(raw)} bytes (max: {PACKET_DATA_SIZE} bytes)"
        )
    return raw


def decode_transaction(params: Params, config: Config) -> VersionedTransaction:
    """The transaction of sendTransaction/simulateTransaction, deserialized and sanitized."""
    text = params.string(0, "transaction")
    enc = config.string("encoding", "base58")
    if enc not in ("base58", "base64"):
        raise invalid_params(f"unsupported encoding: {enc}. Supported encodings: base58, base64")
    raw = decode_wire(text, enc)
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except ValueError as exc:
        raise invalid_params(f"failed to deserialize {_TX_TYPE}: {exc}") from None
    if not isinstance(tx.message, Message | MessageV0):
        raise invalid_params("invalid transaction: Transaction version is unsupported")
    try:
        tx.sanitize()
    except SanitizeError:
        raise invalid_params(
            "invalid transaction: Transaction failed to sanitize accounts offsets correctly"
        ) from None
    return tx


class DevnetRpc:
    """Dispatches one call; raises :class:`RpcError` for error responses."""

    def __init__(self, chain: DevnetChain) -> None:
        self.chain = chain

    def call(self, name: str, raw_params: Any) -> Any:
        handler = METHODS.get(name)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not found")
        return handler(self, Params(name, raw_params))

    # --- shared pieces ----------------------------------------------------------------------

    def context_slot(self, config: Config) -> int:
        """The slot a response is about, after the commitment and minContextSlot checks."""
        config.commitment()
        slot = self.chain.sync()
        wanted = config.u64("minContextSlot")
        if wanted is not None and slot < wanted:
            raise RpcError(
                MIN_CONTEXT_SLOT_NOT_REACHED,
                "Minimum context slot has not been reached",
                {"contextSlot": slot},
            )
        return slot

    def with_context(self, slot: int, value: Any) -> dict[str, Any]:
        return {"context": {"slot": slot, "apiVersion": SOLANA_CORE_VERSION}, "value": value}

    def simulation_json(self, sim: Simulation, inner: bool) -> dict[str, Any]:
        """An RpcSimulateTransactionResult without ``accounts`` (the caller adds them)."""
        chain = self.chain
        ok = sim.err is None
        return {
            "err": error_json(sim.err),
            "logs": sim.logs,
            "accounts": None,
            "unitsConsumed": sim.units,
            "loadedAccountsDataSize": None,
            "returnData": sim.return_data,
            "innerInstructions": sim.inner if inner else None,
            "replacementBlockhash": None,
            "fee": sim.fee if ok else None,
            "preBalances": [a.lamports if a else 0 for a in sim.pre.values()] if ok else None,
            "postBalances": [a.lamports if a else 0 for a in sim.post.values()] if ok else None,
            "preTokenBalances": (
                chain.token_balances(sim.keys, list(sim.pre.values())) if ok else None
            ),
            "postTokenBalances": (
                chain.token_balances(sim.keys, list(sim.post.values())) if ok else None
            ),
            "loadedAddresses": (
                {
                    "writable": [str(k) for k in sim.loaded[0]],
                    "readonly": [str(k) for k in sim.loaded[1]],
                }
                if ok
                else None
            ),
        }


def _confirmed_only(config: Config) -> None:
    if config.commitment() == "processed":
        raise invalid_params("Method does not support commitment below `confirmed`")


# --- node and cluster ---------------------------------------------------------------------


@method("getHealth")
def get_health(rpc: DevnetRpc, p: Params) -> str:
    p.at_most(0)
    return "ok"


@method("getVersion")
def get_version(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    p.at_most(0)
    return {"solana-core": SOLANA_CORE_VERSION}


@method("getGenesisHash")
def get_genesis_hash(rpc: DevnetRpc, p: Params) -> str:
    p.at_most(0)
    return str(rpc.chain.hashes.of(0))


@method("getIdentity")
def get_identity(rpc: DevnetRpc, p: Params) -> dict[str, str]:
    """The one node's identity: the faucet's key stands in (there is no validator key)."""
    p.at_most(0)
    return {"identity": str(FAUCET.pubkey())}


# --- slots, blocks, time ------------------------------------------------------------------


@method("getSlot")
def get_slot(rpc: DevnetRpc, p: Params) -> int:
    return rpc.context_slot(p.at_most(1).config(0))


@method("getBlockHeight")
def get_block_height(rpc: DevnetRpc, p: Params) -> int:
    """Every slot has a block here (one leader, never skipping): the height is the slot."""
    return rpc.context_slot(p.at_most(1).config(0))


@method("getTransactionCount")
def get_transaction_count(rpc: DevnetRpc, p: Params) -> int:
    rpc.context_slot(p.at_most(1).config(0))
    return len(rpc.chain.history)


@method("getFirstAvailableBlock")
def get_first_available_block(rpc: DevnetRpc, p: Params) -> int:
    p.at_most(0)
    return 0


@method("minimumLedgerSlot")
def minimum_ledger_slot(rpc: DevnetRpc, p: Params) -> int:
    p.at_most(0)
    return 0


@method("getBlockTime")
def get_block_time(rpc: DevnetRpc, p: Params) -> int:
    slot = p.at_most(1).u64(0, "slot")
    if slot > rpc.chain.sync():
        raise RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")
    return rpc.chain.clock.unix_time(slot)


@method("getEpochInfo")
def get_epoch_info(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    slot = rpc.context_slot(p.at_most(1).config(0))
    schedule = rpc.chain.svm.get_epoch_schedule()
    epoch, index = schedule.get_epoch_and_slot_index(slot)
    return {
        "epoch": epoch,
        "slotIndex": index,
        "slotsInEpoch": schedule.get_slots_in_epoch(epoch),
        "absoluteSlot": slot,
        "blockHeight": slot,
        "transactionCount": len(rpc.chain.history),
    }


@method("getEpochSchedule")
def get_epoch_schedule(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    p.at_most(0)
    s = rpc.chain.svm.get_epoch_schedule()
    return {
        "slotsPerEpoch": s.slots_per_epoch,
        "leaderScheduleSlotOffset": s.leader_schedule_slot_offset,
        "warmup": s.warmup,
        "firstNormalEpoch": s.first_normal_epoch,
        "firstNormalSlot": s.first_normal_slot,
    }


@method("getLatestBlockhash")
def get_latest_blockhash(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    slot = rpc.context_slot(p.at_most(1).config(0))
    blockhash, last_valid = rpc.chain.latest_blockhash()
    return rpc.with_context(slot, {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid})


@method("isBlockhashValid")
def is_blockhash_valid(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    p.at_most(2)
    blockhash = p.hash(0)
    slot = rpc.context_slot(p.config(1))
    return rpc.with_context(slot, rpc.chain.blockhash_valid(blockhash))


# --- accounts -----------------------------------------------------------------------------


def _account_options(config: Config) -> tuple[str, tuple[int, int] | None]:
    enc = config.string("encoding", "base64")
    assert enc is not None
    data_slice = None
    sliced = config.object("dataSlice")
    if sliced is not None:
        offset, length = sliced.u64("offset"), sliced.u64("length")
        if offset is None or length is None:
            raise invalid_params("Invalid params: dataSlice needs offset and length")
        data_slice = (offset, length)
    if enc not in encoding.ACCOUNT_ENCODINGS:
        raise invalid_params(
            f"Invalid params: unknown encoding {enc!r}; this devnet serves "
            + ", ".join(encoding.ACCOUNT_ENCODINGS)
        )
    return enc, data_slice


@method("getAccountInfo")
def get_account_info(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    p.at_most(2)
    key = p.pubkey(0)
    config = p.config(1)
    enc, data_slice = _account_options(config)
    slot = rpc.context_slot(config)
    account = rpc.chain.account(key)
    value = None if account is None else encoding.ui_account(account, enc, data_slice)
    return rpc.with_context(slot, value)


@method("getMultipleAccounts")
def get_multiple_accounts(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    p.at_most(2)
    keys = p.array(0, "addresses")
    if len(keys) > MAX_MULTIPLE_ACCOUNTS:
        raise invalid_params(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
    pubkeys = [pubkey(k) for k in keys]
    config = p.config(1)
    enc, data_slice = _account_options(config)
    slot = rpc.context_slot(config)
    values = []
    for key in pubkeys:
        account = rpc.chain.account(key)
        values.append(None if account is None else encoding.ui_account(account, enc, data_slice))
    return rpc.with_context(slot, values)


@method("getBalance")
def get_balance(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    p.at_most(2)
    key = p.pubkey(0)
    slot = rpc.context_slot(p.config(1))
    account = rpc.chain.account(key)
    return rpc.with_context(slot, account.lamports if account else 0)


@method("getMinimumBalanceForRentExemption")
def get_minimum_balance_for_rent_exemption(rpc: DevnetRpc, p: Params) -> int:
    p.at_most(2)
    size = p.u64(0, "data length")
    rpc.context_slot(p.config(1))
    if size > 10 * 1024 * 1024:  # MAX_PERMITTED_DATA_LENGTH: no account can be larger
        raise invalid_params(f"Invalid params: data length {size} exceeds 10 MiB")
    return rpc.chain.rent(size)


@method("getTokenAccountBalance")
def get_token_account_balance(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    p.at_most(2)
    key = p.pubkey(0)
    slot = rpc.context_slot(p.config(1))
    account = rpc.chain.account(key)
    if account is None:
        raise invalid_params("Invalid param: could not find account")
    holding = tokens.token_account(account)
    if holding is None:
        raise invalid_params("Invalid param: not a Token account")
    decimals = tokens.mint_decimals(rpc.chain.account(holding.mint))
    if decimals is None:
        raise invalid_params("Invalid param: could not find mint")
    return rpc.with_context(slot, tokens.ui_token_amount(holding.amount, decimals))


# --- transactions -------------------------------------------------------------------------


@method("sendTransaction")
def send_transaction(rpc: DevnetRpc, p: Params) -> str:
    """Preflight (unless skipPreflight): signatures (-32003), then a simulation that must
    succeed (-32002 with its logs). Then the transaction executes at once: it lands (maybe
    with an execution error, fee paid) or is dropped, as a leader would; either way the
    answer is its signature, and getSignatureStatuses tells which."""
    p.at_most(2)
    config = p.config(1)
    tx = decode_transaction(p, config)
    rpc.context_slot(Config({"minContextSlot": config.raw.get("minContextSlot")}))
    config.commitment("preflightCommitment")
    if not config.bool("skipPreflight"):
        if not all(tx.verify_with_results()):
            raise signature_verification_failure()
        sim = rpc.chain.simulate(tx)
        if sim.err is not None:
            data = rpc.simulation_json(sim, inner=False)
            raise RpcError(
                SEND_TRANSACTION_PREFLIGHT_FAILURE,
                f"Transaction simulation failed: {error_text(data['err'])}",
                data,
            )
    outcome = rpc.chain.execute(tx)
    return outcome.signature


@method("simulateTransaction")
def simulate_transaction(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    p.at_most(2)
    config = p.config(1)
    tx = decode_transaction(p, config)
    slot = rpc.context_slot(config)
    sig_verify = config.bool("sigVerify")
    replace = config.bool("replaceRecentBlockhash")
    if sig_verify and replace:
        raise invalid_params("sigVerify may not be used with replaceRecentBlockhash")
    if sig_verify and not all(tx.verify_with_results()):
        raise signature_verification_failure()
    wanted = config.object("accounts")
    addresses = []
    account_encoding = "base64"
    if wanted is not None:
        addresses = [pubkey(a) for a in wanted.list("addresses")]
        account_encoding = wanted.string("encoding", "base64") or "base64"
        if account_encoding in ("base58", "binary"):
            raise invalid_params(f"{account_encoding} encoding not supported")
        if len(addresses) > len(tx.message.account_keys):
            raise invalid_params(f"Too many accounts provided; max {len(tx.message.account_keys)}")
    sim = rpc.chain.simulate(tx, check_blockhash=not replace, max_age=MAX_PROCESSING_AGE)
    value = rpc.simulation_json(sim, inner=config.bool("innerInstructions"))
    if wanted is not None and sim.err is None:
        accounts: list[dict[str, Any] | None] = []
        for key in addresses:
            account = sim.post[key] if key in sim.post else rpc.chain.account(key)
            if account is None or account.lamports == 0:
                accounts.append(None)
            else:
                accounts.append(encoding.ui_account(account, account_encoding))
        value["accounts"] = accounts
    if replace:
        blockhash, last_valid = rpc.chain.latest_blockhash()
        value["replacementBlockhash"] = {
            "blockhash": str(blockhash),
            "lastValidBlockHeight": last_valid,
        }
    return rpc.with_context(slot, value)


@method("getFeeForMessage")
def get_fee_for_message(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    p.at_most(2)
    raw = decode_wire(p.string(0, "message"), "base64", _MSG_TYPE)
    slot = rpc.context_slot(p.config(1))
    try:
        message = from_bytes_versioned(raw)
    except ValueError as exc:
        raise invalid_params(f"failed to deserialize {_MSG_TYPE}: {exc}") from None
    if not isinstance(message, Message | MessageV0):
        raise invalid_params("invalid transaction: Transaction version is unsupported")
    unsigned = VersionedTransaction.populate(
        message, [Signature.default()] * message.header.num_required_signatures
    )
    try:
        unsigned.sanitize()
    except SanitizeError:
        raise invalid_params(
            "invalid transaction: Transaction failed to sanitize accounts offsets correctly"
        ) from None
    return rpc.with_context(slot, rpc.chain.fee_for(unsigned))


@method("getTransaction")
def get_transaction(rpc: DevnetRpc, p: Params) -> dict[str, Any] | None:
    p.at_most(2)
    sig = p.signature(0)
    if p.has(1) and isinstance(p.raw[1], str):  # the deprecated form: just an encoding
        config = Config({"encoding": p.raw[1]})
    else:
        config = p.config(1)
    _confirmed_only(config)
    enc = config.string("encoding", "json")
    assert enc is not None
    if enc not in encoding.TRANSACTION_ENCODINGS:
        raise invalid_params(
            f"Invalid params: unsupported encoding {enc!r}; this devnet serves "
            + ", ".join(encoding.TRANSACTION_ENCODINGS)
        )
    max_version = config.u64("maxSupportedTransactionVersion")
    rpc.chain.sync()
    landed = rpc.chain.landed(str(sig))
    if landed is None:
        return None
    return encoding.confirmed_transaction(landed, enc, max_version)


@method("getSignatureStatuses")
def get_signature_statuses(rpc: DevnetRpc, p: Params) -> dict[str, Any]:
    """Every landed transaction is found, searchTransactionHistory or not (this node keeps
    the whole history in its status cache)."""
    p.at_most(2)
    sigs = p.array(0, "signatures")
    if len(sigs) > MAX_SIGNATURE_STATUSES:
        raise invalid_params(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
    parsed = [str(signature(s)) for s in sigs]
    config = p.config(1)
    config.bool("searchTransactionHistory")
    slot = rpc.chain.sync()
    values = []
    for s in parsed:
        landed = rpc.chain.landed(s)
        values.append(None if landed is None else encoding.transaction_status(landed))
    return rpc.with_context(slot, values)


@method("getSignaturesForAddress")
def get_signatures_for_address(rpc: DevnetRpc, p: Params) -> list[dict[str, Any]]:
    p.at_most(2)
    address = p.pubkey(0)
    config = p.config(1)
    _confirmed_only(config)
    limit = config.u64("limit")
    if limit is None:
        limit = MAX_SIGNATURES_FOR_ADDRESS
    if not 1 <= limit <= MAX_SIGNATURES_FOR_ADDRESS:
        raise invalid_params(f"Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}")
    before = config.raw.get("before")
    until = config.raw.get("until")
    before_s = None if before is None else str(signature(before))
    until_s = None if until is None else str(signature(until))
    rpc.context_slot(Config({"minContextSlot": config.raw.get("minContextSlot")}))
    found = rpc.chain.signatures_for(str(address), before_s, until_s, limit)
    return [encoding.signature_info(landed) for landed in found]


@method("requestAirdrop")
def request_airdrop(rpc: DevnetRpc, p: Params) -> str:
    p.at_most(3)
    to = p.pubkey(0)
    lamports = p.u64(1, "lamports")
    rpc.context_slot(p.config(2))
    if not 0 < lamports <= MAX_AIRDROP:
        raise RpcError(
            INTERNAL_ERROR,
            f"Internal error: the faucet pays between 1 and {MAX_AIRDROP} lamports per request",
        )
    outcome = rpc.chain.airdrop(to, lamports)
    err = error_json(outcome.err) if isinstance(outcome, Dropped) else outcome.err
    if err is not None:
        raise RpcError(INTERNAL_ERROR, f"Internal error: the airdrop failed ({error_text(err)})")
    return outcome.signature


#: The longest single clock jump (ten years): beyond it a typo, not a test.
MAX_ADVANCE_SECONDS = 10 * 365 * 86400


@method("devnetAdvanceClock")
def advance_clock(rpc: DevnetRpc, p: Params) -> dict[str, int]:
    """Not a Solana method: the devnet's stand-in for waiting out a challenge period. The
    Clock sysvar's unix time moves ``seconds`` ahead and the slot as many slots as they hold;
    journaled, so a restart keeps the jump."""
    seconds = p.at_most(1).u64(0, "seconds")
    if not 0 < seconds <= MAX_ADVANCE_SECONDS:
        raise invalid_params(f"Invalid params: seconds must be between 1 and {MAX_ADVANCE_SECONDS}")
    slot = rpc.chain.warp(seconds)
    return {"slot": slot, "unixTimestamp": rpc.chain.clock.unix_time(slot)}
