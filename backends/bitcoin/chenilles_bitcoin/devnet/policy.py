"""Bitcoin Core's relay policy and context-free consensus checks, with Core's reject reasons.

Pure functions over a parsed transaction (python-bitcoinlib's ``CTransaction``, which keeps
scriptSigs and witnesses) and the outputs it spends. What Core's mempool checks and we check
too (src/policy/policy.cpp, consensus/tx_check.cpp, consensus/tx_verify.cpp):

- CheckTransaction: empty vin/vout, oversize, output values, duplicate inputs;
- IsStandardTx: version 1..3, weight <= 400 000, scriptSig <= 1650 bytes and push-only,
  standard output types (P2PKH, P2SH, P2WPKH, P2WSH, P2TR, other witness versions, P2PK,
  bare multisig up to 3 keys, OP_RETURN up to 83 bytes, one per tx), dust at 3 sat/vB;
- IsFinalTx, BIP 68 sequence locks, coinbase maturity, value in >= value out;
- AreInputsStandard (no spending of non-standard or unknown-witness outputs) and
  IsWitnessStandard for P2WSH (script <= 3600 bytes, <= 100 items of <= 80 bytes) and
  Taproot (no annex).

Not checked (documented in docs/bitcoin.md): signature-operation counts, Core's other policy
script flags (the kernel's verifier offers only the consensus flags), package and TRUC rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bitcoin.core import CTransaction

from .addresses import witness_program
from .amounts import COIN, MAX_MONEY
from .scripts import is_push_only, multisig_shape, script_type

MAX_STANDARD_TX_WEIGHT = 400_000
MAX_STANDARD_SCRIPTSIG_SIZE = 1650
MIN_STANDARD_TX_NONWITNESS_SIZE = 65
MAX_OP_RETURN_RELAY = 83
MAX_STANDARD_P2WSH_SCRIPT_SIZE = 3600
MAX_STANDARD_P2WSH_STACK_ITEMS = 100
MAX_STANDARD_P2WSH_STACK_ITEM_SIZE = 80
MAX_BLOCK_WEIGHT = 4_000_000
DUST_RELAY_FEE = 3_000  # sat/kvB
MIN_RELAY_FEE = 1_000  # sat/kvB
SEQUENCE_FINAL = 0xFFFFFFFF
SEQUENCE_DISABLE_FLAG = 1 << 31
SEQUENCE_TYPE_FLAG = 1 << 22
SEQUENCE_MASK = 0xFFFF
LOCKTIME_THRESHOLD = 500_000_000
COINBASE_MATURITY = 100
_TAPROOT_ANNEX_TAG = 0x50


class Reject(Exception):
    """A transaction refused, as Core's TxValidationState: reason and optional detail.

    ``missing_inputs`` marks TX_MISSING_INPUTS (RPC_VERIFY_ERROR at sendrawtransaction,
    every other reason is RPC_VERIFY_REJECTED).
    """

    def __init__(self, reason: str, debug: str = "", *, missing_inputs: bool = False) -> None:
        self.reason = reason
        self.debug = debug
        self.missing_inputs = missing_inputs
        super().__init__(self.text)

    @property
    def text(self) -> str:
        """Core's ``state.ToString()``: ``reason`` or ``reason, debug``."""
        return f"{self.reason}, {self.debug}" if self.debug else self.reason


@dataclass(frozen=True, slots=True)
class Spent:
    """What an input spends: value, scriptPubKey, confirmation height (None: in the mempool)
    and whether a coinbase made it."""

    value: int
    script_pubkey: bytes
    height: int | None
    coinbase: bool


def format_money(sat: int) -> str:
    """Core's FormatMoney: BTC with trailing zeros trimmed to at least 2 decimals."""
    whole, frac = divmod(abs(sat), COIN)
    text = f"{whole}.{frac:08d}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text += "0" * (2 - len(text.split(".")[1]))
    return ("-" if sat < 0 else "") + text


def tx_weight(tx: CTransaction, raw_size: int) -> int:
    stripped = (
        len(tx.serialize(params={"include_witness": False})) if tx.has_witness() else raw_size
    )
    return stripped * 3 + raw_size


def vsize(weight: int) -> int:
    return -(-weight // 4)


def check_transaction(tx: CTransaction, stripped_size: int) -> None:
    """Core's CheckTransaction (consensus, no context)."""
    if not tx.vin:
        raise Reject("bad-txns-vin-empty")
    if not tx.vout:
        raise Reject("bad-txns-vout-empty")
    if stripped_size * 4 > MAX_BLOCK_WEIGHT:
        raise Reject("bad-txns-oversize")
    total = 0
    for out in tx.vout:
        if out.nValue < 0:
            raise Reject("bad-txns-vout-negative")
        if out.nValue > MAX_MONEY:
            raise Reject("bad-txns-vout-toolarge")
        total += out.nValue
        if total > MAX_MONEY:
            raise Reject("bad-txns-txouttotal-toolarge")
    seen = set()
    for txin in tx.vin:
        key = (bytes(txin.prevout.hash), txin.prevout.n)
        if key in seen:
            raise Reject("bad-txns-inputs-duplicate")
        seen.add(key)
    if tx.is_coinbase():
        if not 2 <= len(tx.vin[0].scriptSig) <= 100:
            raise Reject("bad-cb-length")
    elif any(txin.prevout.is_null() for txin in tx.vin):
        raise Reject("bad-txns-prevout-null")


def dust_threshold(script: bytes) -> int:
    """Core's GetDustThreshold at the default 3 sat/vB dust relay fee."""
    if script[:1] == b"\x6a" or len(script) > 10_000:
        return 0  # provably unspendable: never dust
    size = 8 + len(_compact_size(len(script))) + len(script)
    size += (32 + 4 + 1 + 107 // 4 + 4) if witness_program(script) else (32 + 4 + 1 + 107 + 4)
    return DUST_RELAY_FEE * size // 1000


def _compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    return b"\xfe" + n.to_bytes(4, "little")


def check_standard(tx: CTransaction, weight: int, stripped_size: int) -> None:
    """Core's IsStandardTx, then the minimum non-witness size."""
    if not 1 <= tx.nVersion <= 3:
        raise Reject("version")
    if weight > MAX_STANDARD_TX_WEIGHT:
        raise Reject("tx-size")
    for txin in tx.vin:
        if len(txin.scriptSig) > MAX_STANDARD_SCRIPTSIG_SIZE:
            raise Reject("scriptsig-size")
        if not is_push_only(bytes(txin.scriptSig)):
            raise Reject("scriptsig-not-pushonly")
    data_outputs = 0
    for out in tx.vout:
        script = bytes(out.scriptPubKey)
        kind = script_type(script)
        if kind == "nonstandard":
            raise Reject("scriptpubkey")
        if kind == "nulldata":
            if len(script) > MAX_OP_RETURN_RELAY:
                raise Reject("scriptpubkey")
            data_outputs += 1
        elif kind == "multisig":
            shape = multisig_shape(script)
            if shape is None or not 1 <= shape[0] <= shape[1] <= 3:
                raise Reject("scriptpubkey")
        elif out.nValue < dust_threshold(script):
            raise Reject("dust")
    if data_outputs > 1:
        raise Reject("multi-op-return")
    if stripped_size < MIN_STANDARD_TX_NONWITNESS_SIZE:
        raise Reject("tx-size-small")


def is_final(tx: CTransaction, height: int, mtp: int) -> bool:
    """Core's IsFinalTx for a block at `height` whose median time past is `mtp`."""
    if tx.nLockTime == 0:
        return True
    limit = height if tx.nLockTime < LOCKTIME_THRESHOLD else mtp
    if tx.nLockTime < limit:
        return True
    return all(txin.nSequence == SEQUENCE_FINAL for txin in tx.vin)


def sequence_locks_ok(
    tx: CTransaction,
    spent: Sequence[Spent],
    next_height: int,
    tip_mtp: int,
    mtp_at: object,
) -> bool:
    """BIP 68 (Core's CalculateSequenceLocks + EvaluateSequenceLocks) for the next block.

    An input spending a mempool output counts as confirmed in the next block. `mtp_at` is a
    callable giving the median time past at a height of the active chain.
    """
    if tx.nVersion < 2:
        return True
    min_height = min_time = -1
    for txin, coin in zip(tx.vin, spent, strict=True):
        seq = txin.nSequence
        if seq & SEQUENCE_DISABLE_FLAG:
            continue
        coin_height = next_height if coin.height is None else coin.height
        if seq & SEQUENCE_TYPE_FLAG:
            assert callable(mtp_at)
            coin_time = int(mtp_at(max(coin_height - 1, 0)))
            min_time = max(min_time, coin_time + ((seq & SEQUENCE_MASK) << 9) - 1)
        else:
            min_height = max(min_height, coin_height + (seq & SEQUENCE_MASK) - 1)
    return min_height < next_height and min_time < tip_mtp


def check_inputs_standard(tx: CTransaction, spent: Sequence[Spent]) -> None:
    """AreInputsStandard and IsWitnessStandard (the parts that apply to our script types)."""
    for i, (txin, coin) in enumerate(zip(tx.vin, spent, strict=True)):
        kind = script_type(coin.script_pubkey)
        if kind in ("nonstandard", "witness_unknown"):
            raise Reject("bad-txns-nonstandard-inputs", f"input {i}: spends a {kind} output")
        witness = _witness_stack(tx, i)
        if not witness:
            continue
        program = witness_program(coin.script_pubkey)
        if program is None and kind == "scripthash":
            redeem = _last_push(bytes(txin.scriptSig))
            program = witness_program(redeem) if redeem is not None else None
        if program is None:
            raise Reject("bad-witness-nonstandard", f"input {i}: witness on a non-witness output")
        version, prog = program
        if version == 0 and len(prog) == 32:
            if len(witness[-1]) > MAX_STANDARD_P2WSH_SCRIPT_SIZE:
                raise Reject("bad-witness-nonstandard", f"input {i}: witness script too large")
            items = witness[:-1]
            if len(items) > MAX_STANDARD_P2WSH_STACK_ITEMS:
                raise Reject("bad-witness-nonstandard", f"input {i}: too many witness items")
            if any(len(item) > MAX_STANDARD_P2WSH_STACK_ITEM_SIZE for item in items):
                raise Reject("bad-witness-nonstandard", f"input {i}: witness item too large")
        annex = len(witness) >= 2 and witness[-1][:1] == bytes([_TAPROOT_ANNEX_TAG])
        if version == 1 and len(prog) == 32 and annex:
            raise Reject("bad-witness-nonstandard", f"input {i}: taproot annex")


def _witness_stack(tx: CTransaction, index: int) -> list[bytes]:
    if not tx.has_witness() or index >= len(tx.wit.vtxinwit):
        return []
    return [bytes(item) for item in tx.wit.vtxinwit[index].scriptWitness.stack]


def _last_push(script: bytes) -> bytes | None:
    from .scripts import ScriptParseError, ops

    try:
        parsed = list(ops(script))
    except ScriptParseError:
        return None
    return parsed[-1][1] if parsed else None


def check_tx_inputs(tx: CTransaction, spent: Sequence[Spent], next_height: int) -> int:
    """Core's Consensus::CheckTxInputs: maturity and amounts. Returns the fee."""
    value_in = 0
    for coin in spent:
        if coin.coinbase and coin.height is not None:
            depth = next_height - coin.height
            if depth < COINBASE_MATURITY:
                raise Reject(
                    "bad-txns-premature-spend-of-coinbase",
                    f"tried to spend coinbase at depth {depth}",
                )
        value_in += coin.value
        if not 0 <= coin.value <= MAX_MONEY or value_in > MAX_MONEY:
            raise Reject("bad-txns-inputvalues-outofrange")
    value_out = sum(out.nValue for out in tx.vout)
    if value_in < value_out:
        raise Reject(
            "bad-txns-in-belowout",
            f"value in ({format_money(value_in)}) < value out ({format_money(value_out)})",
        )
    return int(value_in - value_out)
