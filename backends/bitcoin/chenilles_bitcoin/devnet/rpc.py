"""The JSON-RPC methods: Bitcoin Core's names, arguments, checks, errors and results.

Each method declares its arguments (name, Core's type, default) so that positional and
named parameters, argument counts and type errors behave as Core's RPCHelpMan: too few or
too many arguments -> RPC_MISC_ERROR with the usage text; a value of the wrong JSON type ->
RPC_TYPE_ERROR "JSON value of type X is not of expected type Y"; a malformed hash ->
RPC_INVALID_PARAMETER. Handlers run on the node's single worker thread.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pbk

from ..ledger.interface import BlockRejected, LedgerError, OutPoint, TransactionRejected
from ..ledger.txparse import TxParseError, parse_block_txs
from . import errors as E
from .addresses import AddressError, address_to_script, script_to_address, witness_program
from .amounts import Amount, FeeRate, amount_from_json, feerate_from_json
from .descriptors import Descriptor, DescriptorError, checksum, parse, split_checksum
from .errors import RpcError
from .mempool import DecodeError, decode
from .node import DevnetNode
from .policy import MIN_RELAY_FEE, Reject
from .views import (
    block_json,
    chainwork,
    difficulty,
    header_json,
    mempool_entry_json,
    script_pubkey_json,
    tx_json,
)

#: What getnetworkinfo reports: the RPC shapes here follow Bitcoin Core 28.
CORE_VERSION = 280000
SUBVERSION = "/Satoshi:28.0.0(chenilles-devnet)/"
DEFAULT_MAX_FEE_RATE = 10_000_000  # sat/kvB: Core's 0.10 BTC/kvB
MAX_GENERATE = 10_000  # blocks per call: a devnet guard, Core has none
REGTEST_BITS = 0x207FFFFF
_TYPE_NAMES = {"num": "number", "str": "string", "bool": "bool", "arr": "array", "obj": "object"}


@dataclass(frozen=True)
class Arg:
    """An argument: its name, Core's type ("num", "str", "bool", "arr", "obj", "amount", or
    "any" when the handler parses it) and whether it may be omitted."""

    name: str
    type: str
    optional: bool = False


@dataclass
class Context:
    """What a handler may use: the node and the server's controls."""

    node: DevnetNode
    request_stop: Callable[[], None] = lambda: None
    started: float = field(default_factory=time.time)


Handler = Callable[[Context, dict[str, Any]], Any]


@dataclass(frozen=True)
class Method:
    name: str
    args: tuple[Arg, ...]
    handler: Handler
    summary: str

    def usage(self) -> str:
        words = [a.name if not a.optional else f"( {a.name} )" for a in self.args]
        return f"{self.name} {' '.join(words)}".rstrip() + f"\n\n{self.summary}\n"


METHODS: dict[str, Method] = {}


def method(name: str, *args: Arg, summary: str = "") -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name] = Method(name, args, fn, summary or (fn.__doc__ or "").strip())
        return fn

    return register


# -- argument handling ----------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | Decimal | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _matches(arg: Arg, value: Any) -> bool:
    kind = _json_type(value)
    if arg.type == "any":
        return True
    if arg.type == "amount":
        return kind in ("number", "string")
    return kind == _TYPE_NAMES[arg.type]


def bind(m: Method, params: Any) -> dict[str, Any]:
    """Positional or named parameters -> {name: value}, checked as Core's RPCHelpMan."""
    if isinstance(params, dict):
        names = {a.name for a in m.args}
        for key in params:
            if key not in names:
                raise RpcError(E.RPC_INVALID_PARAMETER, f"Unknown named parameter {key}")
        values = [params.get(a.name) for a in m.args]
        while values and values[-1] is None:
            values.pop()
    else:
        values = list(params)
    required = sum(1 for a in m.args if not a.optional)
    if not required <= len(values) <= len(m.args):
        raise RpcError(E.RPC_MISC_ERROR, m.usage())
    bound: dict[str, Any] = {}
    for arg, value in zip(m.args, values, strict=False):
        if value is None and arg.optional:
            continue
        if value is None or not _matches(arg, value):
            expected = _TYPE_NAMES.get(arg.type, "number")
            raise RpcError(
                E.RPC_TYPE_ERROR,
                f"JSON value of type {_json_type(value)} is not of expected type {expected}",
            )
        bound[arg.name] = value
    return bound


def dispatch(ctx: Context, name: str, params: Any) -> Any:
    """Run one call; RpcError for every failure a client should see."""
    m = METHODS.get(name)
    if m is None:
        raise RpcError(E.RPC_METHOD_NOT_FOUND, "Method not found")
    args = bind(m, params)
    try:
        return m.handler(ctx, args)
    except RpcError:
        raise
    except RecursionError:
        raise RpcError(E.RPC_MISC_ERROR, "nesting too deep") from None


def as_int(value: Any, name: str = "") -> int:
    """UniValue::getInt: a JSON integer, else "JSON integer out of range" (RPC_MISC_ERROR)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        raise RpcError(E.RPC_MISC_ERROR, "JSON integer out of range")
    if not -(2**63) <= value < 2**63:
        raise RpcError(E.RPC_MISC_ERROR, "JSON integer out of range")
    return value


def parse_hash(value: Any, name: str) -> str:
    """Core's ParseHashV: 64 hex digits, else RPC_INVALID_PARAMETER."""
    text = str(value)
    if len(text) != 64:
        raise RpcError(
            E.RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not {len(text)}, for '{text}')"
        )
    if re.fullmatch(r"[0-9a-fA-F]{64}", text) is None:
        raise RpcError(E.RPC_INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{text}')")
    return text.lower()


def parse_hex(value: str) -> bytes | None:
    if len(value) % 2 or re.fullmatch(r"[0-9a-fA-F]*", value) is None:
        return None
    return bytes.fromhex(value)


def verbosity(value: Any, default: int) -> int:
    """Core's ParseVerbosity with allow_bool: true/false or an integer."""
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    return as_int(value)


def _max_fee_rate(value: Any) -> int:
    if value is None:
        return DEFAULT_MAX_FEE_RATE
    rate = feerate_from_json(value)
    if rate >= 100_000_000:
        raise RpcError(
            E.RPC_TYPE_ERROR, "Fee rates larger than or equal to 1BTC/kvB are not accepted"
        )
    return rate


def _block(ctx: Context, block_hash: str) -> Any:
    try:
        return ctx.node.chain.block_info(block_hash)
    except KeyError:
        raise RpcError(E.RPC_INVALID_ADDRESS_OR_KEY, "Block not found") from None


def _destination(text: str, allow_descriptor: bool) -> bytes:
    try:
        return address_to_script(text)
    except AddressError:
        if not allow_descriptor:
            raise RpcError(E.RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address") from None
    try:
        desc = parse(text)
    except DescriptorError:
        raise RpcError(
            E.RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address or descriptor"
        ) from None
    return _single_script(desc)


def _single_script(desc: Descriptor) -> bytes:
    if len(desc.scripts) != 1:
        raise RpcError(
            E.RPC_INVALID_ADDRESS_OR_KEY, "Ranged or multi-script descriptors are not accepted"
        )
    return desc.scripts[0]


def _blocks(value: Any) -> int:
    n = as_int(value)
    if n > MAX_GENERATE:
        raise RpcError(E.RPC_INVALID_PARAMETER, f"at most {MAX_GENERATE} blocks per call here")
    return max(0, n)


# -- blockchain -----------------------------------------------------------------------------


@method("getblockchaininfo")
def _getblockchaininfo(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns an object containing various state info regarding blockchain processing."""
    chain = ctx.node.chain
    tip = chain.tip_height()
    size = sum(p.stat().st_size for p in chain.datadir.rglob("*") if p.is_file())
    return {
        "chain": "regtest",
        "blocks": tip,
        "headers": tip,
        "bestblockhash": chain.tip_hash(),
        "difficulty": difficulty(REGTEST_BITS),
        "time": chain.tip_time(),
        "mediantime": chain.median_time_past(),
        "verificationprogress": 1,
        "initialblockdownload": False,
        "chainwork": chainwork(tip),
        "size_on_disk": size,
        "pruned": False,
        "warnings": [],
    }


@method("getblockcount")
def _getblockcount(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns the height of the most-work fully-validated chain."""
    return ctx.node.chain.tip_height()


@method("getbestblockhash")
def _getbestblockhash(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns the hash of the best (tip) block in the most-work fully-validated chain."""
    return ctx.node.chain.tip_hash()


@method("getdifficulty")
def _getdifficulty(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns the proof-of-work difficulty as a multiple of the minimum difficulty."""
    return difficulty(REGTEST_BITS)


@method("getblockhash", Arg("height", "num"))
def _getblockhash(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns hash of block in best-block-chain at height provided."""
    height = as_int(a["height"])
    chain = ctx.node.chain
    if not 0 <= height <= chain.tip_height():
        raise RpcError(E.RPC_INVALID_PARAMETER, "Block height out of range")
    return chain.block_hash(height)


@method("getblockheader", Arg("blockhash", "str"), Arg("verbose", "bool", True))
def _getblockheader(ctx: Context, a: dict[str, Any]) -> Any:
    """If verbose is false, returns a string that is serialized, hex-encoded data for
    blockheader 'hash'. If verbose is true, returns an Object with information about it."""
    info = _block(ctx, parse_hash(a["blockhash"], "hash"))
    if not a.get("verbose", True):
        return info.header.hex()
    return header_json(ctx.node.chain, info)


@method("getblock", Arg("blockhash", "str"), Arg("verbosity", "any", True))
def _getblock(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns a block: hex (verbosity 0), with txids (1), decoded txs (2), prevouts (3)."""
    info = _block(ctx, parse_hash(a["blockhash"], "blockhash"))
    level = verbosity(a.get("verbosity"), 1)
    if level <= 0:
        return ctx.node.chain.raw_block(info.block_hash).hex()
    return block_json(ctx.node.chain, info, min(level, 3))


@method("gettxout", Arg("txid", "str"), Arg("n", "num"), Arg("include_mempool", "bool", True))
def _gettxout(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns details about an unspent transaction output (null if spent or unknown)."""
    txid = parse_hash(a["txid"], "txid")
    n = as_int(a["n"])
    node = ctx.node
    if n < 0:
        return None
    op = OutPoint(txid, n)
    base = {"bestblock": node.chain.tip_hash()}
    if a.get("include_mempool", True):
        if op in node.mempool.spends:
            return None
        out = node.mempool.output(op)
        if out is not None:
            value, script = out
            return base | {
                "confirmations": 0,
                "value": Amount(value),
                "scriptPubKey": script_pubkey_json(script),
                "coinbase": False,
            }
    utxo = node.chain.get_utxo(op)
    if utxo is None:
        return None
    return base | {
        "confirmations": node.chain.tip_height() - utxo.height + 1,
        "value": Amount(utxo.value),
        "scriptPubKey": script_pubkey_json(utxo.script_pubkey),
        "coinbase": node.chain.is_coinbase_output(op),
    }


@method("scantxoutset", Arg("action", "str"), Arg("scanobjects", "arr", True))
def _scantxoutset(ctx: Context, a: dict[str, Any]) -> Any:
    """Scans the unspent transaction output set for entries that match descriptors
    (addr, raw, pk, pkh, wpkh, sh(wpkh), combo). A scan is instant here: "status" answers
    null and "abort" false, as Core does with no scan in progress."""
    action = a["action"]
    if action == "status":
        return None
    if action == "abort":
        return False
    if action != "start":
        raise RpcError(E.RPC_INVALID_PARAMETER, f"Invalid action '{action}'")
    objects = a.get("scanobjects")
    if objects is None:
        raise RpcError(
            E.RPC_INVALID_PARAMETER, "scanobjects argument is required for the start action"
        )
    by_script: dict[bytes, str] = {}
    for obj in objects:
        if isinstance(obj, dict):
            text = obj.get("desc")
            if not isinstance(text, str):
                raise RpcError(E.RPC_INVALID_PARAMETER, "Invalid scan object")
        elif isinstance(obj, str):
            text = obj
        else:
            raise RpcError(
                E.RPC_INVALID_PARAMETER, "Scan object needs to be either a string or an object"
            )
        try:
            desc = parse(text)
        except DescriptorError as exc:
            raise RpcError(E.RPC_INVALID_ADDRESS_OR_KEY, str(exc)) from None
        for script in desc.scripts:
            by_script.setdefault(script, desc.with_checksum)
    chain = ctx.node.chain
    tip = chain.tip_height()
    unspents = []
    total = 0
    for coin in chain.scan_utxos(list(by_script)):
        total += coin.value
        unspents.append(
            {
                "txid": coin.outpoint.txid,
                "vout": coin.outpoint.vout,
                "scriptPubKey": coin.script_pubkey.hex(),
                "desc": by_script[coin.script_pubkey],
                "amount": Amount(coin.value),
                "coinbase": coin.coinbase,
                "height": coin.height,
                "blockhash": chain.block_hash(coin.height),
                "confirmations": tip - coin.height + 1,
            }
        )
    return {
        "success": True,
        "txouts": len(chain.utxo_set()),
        "height": tip,
        "bestblock": chain.tip_hash(),
        "unspents": unspents,
        "total_amount": Amount(total),
    }


# -- transactions ---------------------------------------------------------------------------


def _decode_tx(text: str) -> bytes:
    raw = parse_hex(text)
    if raw is None:
        raise RpcError(
            E.RPC_DESERIALIZATION_ERROR,
            "TX decode failed. Make sure the tx has at least one input.",
        )
    try:
        decode(raw)
    except DecodeError:
        raise RpcError(
            E.RPC_DESERIALIZATION_ERROR,
            "TX decode failed. Make sure the tx has at least one input.",
        ) from None
    return raw


@method(
    "getrawtransaction",
    Arg("txid", "str"),
    Arg("verbose", "any", True),
    Arg("blockhash", "str", True),
)
def _getrawtransaction(ctx: Context, a: dict[str, Any]) -> Any:
    """Return the raw transaction data (mempool, or any block: this devnet indexes all)."""
    txid = parse_hash(a["txid"], "parameter 1")
    level = verbosity(a.get("verbose"), 0)
    node = ctx.node
    chain = node.chain
    genesis = parse_block_txs(chain.raw_block(chain.block_hash(0)))[0].txid
    if txid == genesis:
        raise RpcError(
            E.RPC_INVALID_ADDRESS_OR_KEY,
            "The genesis block coinbase is not considered an ordinary transaction and cannot "
            "be retrieved",
        )
    given = a.get("blockhash")
    if given is not None:
        info = chain.block_info(parse_hash(given, "parameter 3")) if _known(ctx, given) else None
        if info is None:
            raise RpcError(E.RPC_INVALID_ADDRESS_OR_KEY, "Block hash not found")
        return _tx_in_block(ctx, txid, info, level, explicit=True)
    entry = node.mempool.entries.get(txid)
    if entry is not None:
        if level <= 0:
            return entry.raw.hex()
        spent = [(s.value, s.script_pubkey) for s in entry.spent] if level >= 2 else None
        return tx_json(entry.raw, spent, prevouts=level >= 2)
    loc = chain.tx_location(txid)
    if loc is None:
        raise RpcError(
            E.RPC_INVALID_ADDRESS_OR_KEY,
            "No such mempool or blockchain transaction. Use gettransaction for wallet "
            "transactions.",
        )
    return _tx_in_block(ctx, txid, chain.block_info(loc.block_hash), level, explicit=False)


def _known(ctx: Context, block_hash: str) -> bool:
    try:
        ctx.node.chain.block_info(parse_hash(block_hash, "parameter 3"))
        return True
    except KeyError:
        return False


def _tx_in_block(ctx: Context, txid: str, info: Any, level: int, *, explicit: bool) -> Any:
    chain = ctx.node.chain
    txs = parse_block_txs(chain.raw_block(info.block_hash))
    index = next((i for i, t in enumerate(txs) if t.txid == txid), None)
    if index is None:
        raise RpcError(
            E.RPC_INVALID_ADDRESS_OR_KEY,
            "No such transaction found in the provided block. Use gettransaction for wallet "
            "transactions.",
        )
    raw = txs[index].raw
    if level <= 0:
        return raw.hex()
    spent = None
    if level >= 2 and index > 0:
        spent = chain.spent_outputs(info.block_hash)[index - 1]
    out: dict[str, Any] = {"in_active_chain": info.in_active_chain} if explicit else {}
    out |= tx_json(raw, spent, prevouts=level >= 2)
    out["blockhash"] = info.block_hash
    if info.in_active_chain:
        header_time = int.from_bytes(info.header[68:72], "little")
        out["confirmations"] = chain.tip_height() - info.height + 1
        out["time"] = header_time
        out["blocktime"] = header_time
    else:
        out["confirmations"] = 0
    return out


@method("decoderawtransaction", Arg("hexstring", "str"), Arg("iswitness", "bool", True))
def _decoderawtransaction(ctx: Context, a: dict[str, Any]) -> Any:
    """Return a JSON object representing the serialized, hex-encoded transaction."""
    raw = _decode_tx(a["hexstring"])
    return tx_json(raw, include_hex=False)


def _burn_check(raw: bytes, max_burn: int) -> None:
    _, tx = decode(raw)
    for out in tx.vout:
        script = bytes(out.scriptPubKey)
        if (script[:1] == b"\x6a" or len(script) > 10_000) and out.nValue > max_burn:
            raise RpcError(
                E.RPC_VERIFY_ERROR,
                "Unspendable output exceeds maximum configured by user (maxburnamount)",
            )


@method(
    "sendrawtransaction",
    Arg("hexstring", "str"),
    Arg("maxfeerate", "amount", True),
    Arg("maxburnamount", "amount", True),
)
def _sendrawtransaction(ctx: Context, a: dict[str, Any]) -> Any:
    """Submit a raw transaction (serialized, hex-encoded) to the node's mempool."""
    raw = _decode_tx(a["hexstring"])
    max_rate = _max_fee_rate(a.get("maxfeerate"))
    max_burn = amount_from_json(a.get("maxburnamount", 0))
    _burn_check(raw, max_burn)
    node = ctx.node
    parsed, _ = decode(raw)
    if parsed.txid in node.mempool:
        return parsed.txid
    if any(node.chain.get_utxo(OutPoint(parsed.txid, i)) for i in range(len(parsed.outputs))):
        raise RpcError(E.RPC_VERIFY_ALREADY_IN_CHAIN, "Transaction outputs already in utxo set")
    try:
        entry = node.mempool.check(raw, int(time.time()))
    except Reject as exc:
        code = E.RPC_VERIFY_ERROR if exc.missing_inputs else E.RPC_VERIFY_REJECTED
        raise RpcError(code, exc.text) from None
    if max_rate and entry.fee > max_rate * entry.vsize // 1000:
        raise RpcError(
            E.RPC_VERIFY_ERROR,
            "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
        )
    node.mempool.add(entry)
    node._save_mempool()
    return parsed.txid


@method("testmempoolaccept", Arg("rawtxs", "arr"), Arg("maxfeerate", "amount", True))
def _testmempoolaccept(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns result of mempool acceptance tests: whether raw transactions (a package
    in dependency order, at most 25) would be accepted, without adding them."""
    rawtxs = a["rawtxs"]
    if not 1 <= len(rawtxs) <= 25:
        raise RpcError(E.RPC_INVALID_PARAMETER, "Array must contain between 1 and 25 transactions.")
    max_rate = _max_fee_rate(a.get("maxfeerate"))
    raws = []
    for item in rawtxs:
        if not isinstance(item, str):
            raise RpcError(
                E.RPC_TYPE_ERROR, "JSON value of type number is not of expected type string"
            )
        raw = parse_hex(item)
        try:
            if raw is None:
                raise DecodeError("not hex")
            decode(raw)
        except DecodeError as exc:
            raise RpcError(
                E.RPC_DESERIALIZATION_ERROR,
                f"TX decode failed: {exc}. Make sure the tx has at least one input.",
            ) from None
        raws.append(raw)
    node = ctx.node
    package: dict[str, Any] = {}
    results = []
    failed = False
    for raw in raws:
        parsed, _ = decode(raw)
        result: dict[str, Any] = {"txid": parsed.txid, "wtxid": parsed.wtxid}
        if failed:
            results.append(result)  # not validated after a failure, as Core's packages
            continue
        try:
            entry = node.mempool.check(raw, int(time.time()), extra=package)
        except Reject as exc:
            failed = True
            results.append(
                result | {"allowed": False, "reject-reason": exc.reason, "reject-details": exc.text}
            )
            continue
        if max_rate and entry.fee > max_rate * entry.vsize // 1000:
            failed = True
            results.append(result | {"allowed": False, "reject-reason": "max-fee-exceeded"})
            continue
        package[entry.txid] = entry
        rate = entry.fee * 1000 // entry.vsize
        results.append(
            result
            | {
                "allowed": True,
                "vsize": entry.vsize,
                "fees": {
                    "base": Amount(entry.fee),
                    "effective-feerate": FeeRate(rate),
                    "effective-includes": [entry.parsed.wtxid],
                },
            }
        )
    return results


# -- mempool --------------------------------------------------------------------------------


@method("getrawmempool", Arg("verbose", "bool", True), Arg("mempool_sequence", "bool", True))
def _getrawmempool(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns all transaction ids in memory pool (or their entries, when verbose)."""
    pool = ctx.node.mempool
    verbose = a.get("verbose", False)
    sequence = a.get("mempool_sequence", False)
    if verbose and sequence:
        raise RpcError(
            E.RPC_INVALID_PARAMETER, "Verbose results cannot contain mempool sequence values."
        )
    if verbose:
        return {t: mempool_entry_json(pool, e) for t, e in pool.entries.items()}
    if sequence:
        return {"txids": list(pool.entries), "mempool_sequence": pool.sequence}
    return list(pool.entries)


@method("getmempoolentry", Arg("txid", "str"))
def _getmempoolentry(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns mempool data for given transaction."""
    pool = ctx.node.mempool
    entry = pool.entries.get(parse_hash(a["txid"], "txid"))
    if entry is None:
        raise RpcError(E.RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
    return mempool_entry_json(pool, entry)


@method("getmempoolinfo")
def _getmempoolinfo(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns details on the active state of the TX memory pool."""
    pool = ctx.node.mempool
    entries = list(pool.entries.values())
    return {
        "loaded": True,
        "size": len(entries),
        "bytes": sum(e.vsize for e in entries),
        "usage": sum(len(e.raw) for e in entries),
        "total_fee": Amount(sum(e.fee for e in entries)),
        "maxmempool": 300_000_000,
        "mempoolminfee": FeeRate(MIN_RELAY_FEE),
        "minrelaytxfee": FeeRate(MIN_RELAY_FEE),
        "incrementalrelayfee": FeeRate(MIN_RELAY_FEE),
        "unbroadcastcount": 0,
        "fullrbf": False,
    }


@method("estimatesmartfee", Arg("conf_target", "num"), Arg("estimate_mode", "str", True))
def _estimatesmartfee(ctx: Context, a: dict[str, Any]) -> Any:
    """Estimates the fee rate (BTC/kvB) from what recent blocks' transactions paid
    (see fees.py: on a devnet every tx meeting the relay minimum is in the next block)."""
    target = as_int(a["conf_target"])
    if not 1 <= target <= 1008:
        raise RpcError(E.RPC_INVALID_PARAMETER, "Invalid conf_target, must be between 1 and 1008")
    mode = str(a.get("estimate_mode", "economical")).lower()
    if mode not in ("unset", "economical", "conservative"):
        raise RpcError(
            E.RPC_INVALID_PARAMETER,
            "Invalid estimate_mode parameter, must be one of: "
            '"unset", "economical", "conservative"',
        )
    rate = ctx.node.fees.estimate()
    if rate is None:
        return {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
    return {"feerate": FeeRate(rate), "blocks": max(2, target)}


# -- mining ---------------------------------------------------------------------------------


@method(
    "generatetoaddress", Arg("nblocks", "num"), Arg("address", "str"), Arg("maxtries", "num", True)
)
def _generatetoaddress(ctx: Context, a: dict[str, Any]) -> Any:
    """Mine blocks immediately to a specified address (the mempool goes in the first)."""
    n = _blocks(a["nblocks"])
    script = _destination(a["address"], allow_descriptor=False)
    return _mine(ctx, n, script)


@method(
    "generatetodescriptor",
    Arg("num_blocks", "num"),
    Arg("descriptor", "str"),
    Arg("maxtries", "num", True),
)
def _generatetodescriptor(ctx: Context, a: dict[str, Any]) -> Any:
    """Mine to a specified descriptor and return the block hashes."""
    n = _blocks(a["num_blocks"])
    try:
        desc = parse(a["descriptor"])
    except DescriptorError as exc:
        raise RpcError(E.RPC_INVALID_ADDRESS_OR_KEY, str(exc)) from None
    return _mine(ctx, n, _single_script(desc))


def _mine(ctx: Context, n: int, script: bytes) -> list[str]:
    try:
        return ctx.node.mine(n, script)
    except (BlockRejected, LedgerError) as exc:
        raise RpcError(E.RPC_MISC_ERROR, f"block rejected: {exc}") from None


@method(
    "generateblock", Arg("output", "str"), Arg("transactions", "arr"), Arg("submit", "bool", True)
)
def _generateblock(ctx: Context, a: dict[str, Any]) -> Any:
    """Mine a set of ordered transactions (mempool txids or raw hex) to an address or
    descriptor. Relay policy does not apply; the kernel judges the block. With submit
    false the block is returned unvalidated (the kernel has no TestBlockValidity)."""
    script = _destination(a["output"], allow_descriptor=True)
    node = ctx.node
    raws: list[bytes] = []
    for item in a["transactions"]:
        text = str(item)
        if re.fullmatch(r"[0-9a-fA-F]{64}", text):
            entry = node.mempool.entries.get(text.lower())
            if entry is None:
                raise RpcError(E.RPC_INVALID_ADDRESS_OR_KEY, f"Transaction {text} not in mempool.")
            raws.append(entry.raw)
            continue
        raw = parse_hex(text)
        try:
            if raw is None:
                raise DecodeError("not hex")
            decode(raw)
        except DecodeError:
            raise RpcError(
                E.RPC_DESERIALIZATION_ERROR,
                f"Transaction decode failed for {text}. Make sure the tx has at least one input.",
            ) from None
        raws.append(raw)
    submit = a.get("submit", True)
    try:
        block_hash, raw_block = node.generate_block(raws, script, submit)
    except (BlockRejected, TransactionRejected) as exc:
        raise RpcError(E.RPC_VERIFY_ERROR, f"TestBlockValidity failed: {exc.reason}") from None
    out: dict[str, Any] = {"hash": block_hash}
    if not submit:
        out["hex"] = raw_block.hex()
    return out


@method("submitblock", Arg("hexdata", "str"), Arg("dummy", "any", True))
def _submitblock(ctx: Context, a: dict[str, Any]) -> Any:
    """Attempts to submit new block to network (null when accepted, else the reason)."""
    raw = parse_hex(a["hexdata"])
    try:
        if raw is None or len(raw) < 81:
            raise ValueError("short")
        txs = parse_block_txs(raw)
        pbk.Block(raw)
    except (TxParseError, KeyError, ValueError, RuntimeError, pbk.KernelException):
        raise RpcError(E.RPC_DESERIALIZATION_ERROR, "Block decode failed") from None
    if not txs or not txs[0].is_coinbase:
        raise RpcError(E.RPC_DESERIALIZATION_ERROR, "Block does not start with a coinbase")
    return ctx.node.submit_block(raw)


@method("getmininginfo")
def _getmininginfo(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns a json object containing mining-related information."""
    chain = ctx.node.chain
    return {
        "blocks": chain.tip_height(),
        "difficulty": difficulty(REGTEST_BITS),
        "networkhashps": 0,
        "pooledtx": len(ctx.node.mempool),
        "chain": "regtest",
        "warnings": [],
    }


# -- descriptors and addresses ----------------------------------------------------------------


@method("getdescriptorinfo", Arg("descriptor", "str"))
def _getdescriptorinfo(ctx: Context, a: dict[str, Any]) -> Any:
    """Analyses a descriptor."""
    text = a["descriptor"]
    try:
        desc = parse(text)
        payload = split_checksum(text)
    except DescriptorError as exc:
        raise RpcError(E.RPC_INVALID_ADDRESS_OR_KEY, str(exc)) from None
    return {
        "descriptor": desc.with_checksum,
        "checksum": checksum(payload),
        "isrange": False,
        "issolvable": desc.solvable,
        "hasprivatekeys": False,
    }


@method("validateaddress", Arg("address", "str"))
def _validateaddress(ctx: Context, a: dict[str, Any]) -> Any:
    """Return information about the given bitcoin address."""
    try:
        script = address_to_script(a["address"])
    except AddressError as exc:
        return {"isvalid": False, "error_locations": [], "error": str(exc)}
    address = script_to_address(script)
    out: dict[str, Any] = {"isvalid": True, "address": address, "scriptPubKey": script.hex()}
    wp = witness_program(script)
    out["isscript"] = script[:1] == b"\xa9" or (wp is not None and len(wp[1]) == 32 and wp[0] == 0)
    out["iswitness"] = wp is not None
    if wp is not None:
        out["witness_version"] = wp[0]
        out["witness_program"] = wp[1].hex()
    return out


# -- node -------------------------------------------------------------------------------------


@method("getnetworkinfo")
def _getnetworkinfo(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns an object containing various state info regarding P2P networking (none here)."""
    return {
        "version": CORE_VERSION,
        "subversion": SUBVERSION,
        "protocolversion": 70016,
        "localservices": "0000000000000409",
        "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED"],
        "localrelay": True,
        "timeoffset": 0,
        "networkactive": False,
        "connections": 0,
        "connections_in": 0,
        "connections_out": 0,
        "networks": [],
        "relayfee": FeeRate(MIN_RELAY_FEE),
        "incrementalfee": FeeRate(MIN_RELAY_FEE),
        "localaddresses": [],
        "warnings": [],
    }


@method("getconnectioncount")
def _getconnectioncount(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns the number of connections to other nodes (a devnet has no P2P: 0)."""
    return 0


@method("ping")
def _ping(ctx: Context, a: dict[str, Any]) -> Any:
    """Requests that a ping be sent to all other nodes (there are none)."""
    return None


@method("uptime")
def _uptime(ctx: Context, a: dict[str, Any]) -> Any:
    """Returns the total uptime of the server."""
    return int(time.time() - ctx.started)


@method("stop", Arg("wait", "num", True))
def _stop(ctx: Context, a: dict[str, Any]) -> Any:
    """Request a graceful shutdown of the devnet."""
    ctx.request_stop()
    return "Bitcoin Core stopping"


@method("help", Arg("command", "str", True))
def _help(ctx: Context, a: dict[str, Any]) -> Any:
    """List all commands, or get help for a specified command."""
    name = a.get("command")
    if name is None:
        return "\n".join(
            m.usage().splitlines()[0] for m in sorted(METHODS.values(), key=lambda m: m.name)
        )
    m = METHODS.get(name)
    return m.usage() if m is not None else f"help: unknown command: {name}"


# -- devnet only ------------------------------------------------------------------------------


@method(
    "chenilles_reorg",
    Arg("depth", "num"),
    Arg("blocks", "num", True),
    Arg("transactions", "arr", True),
    Arg("address", "str", True),
)
def _chenilles_reorg(ctx: Context, a: dict[str, Any]) -> Any:
    """Devnet only: replace the last `depth` blocks with a longer branch of `blocks` blocks
    (default depth + 1) whose first block holds exactly `transactions` (raw hex; e.g. a
    double spend). The kernel reorganizes to it because it has more work. Transactions of
    the disconnected blocks return to the mempool when still valid; mempool transactions
    the new branch invalidates are evicted. Stands in for invalidateblock, which the
    kernel's API cannot do."""
    depth = as_int(a["depth"])
    blocks = as_int(a["blocks"]) if "blocks" in a else None
    if blocks is not None and blocks > MAX_GENERATE:
        raise RpcError(E.RPC_INVALID_PARAMETER, f"at most {MAX_GENERATE} blocks per call here")
    raws = []
    for item in a.get("transactions", []):
        raw = parse_hex(str(item))
        if raw is None:
            raise RpcError(E.RPC_DESERIALIZATION_ERROR, f"Transaction decode failed for {item}.")
        raws.append(raw)
    script = _destination(a["address"], allow_descriptor=True) if "address" in a else None
    try:
        old, new, change = ctx.node.reorg(depth, blocks, raws, script)
    except ValueError as exc:
        raise RpcError(E.RPC_INVALID_PARAMETER, str(exc)) from None
    except (BlockRejected, TransactionRejected) as exc:
        raise RpcError(E.RPC_VERIFY_ERROR, f"reorg refused: {exc.reason}") from None
    return {
        "disconnected": old,
        "connected": new,
        "reinstated": change.reinstated,
        "evicted": [{"txid": t, "reason": r} for t, r in change.evicted],
    }
