"""Results shaped as Bitcoin Core 28 prints them: headers, blocks, transactions, mempool.

Field names and order follow Core's blockheaderToJSON, blockToJSON, TxToUniv and
entryToJSON; amounts are `Amount` (printed with 8 decimals by amounts.dumps).
"""

from __future__ import annotations

from typing import Any

from bitcoin.core import CTransaction

from ..ledger.kernel_chain import BlockInfo, KernelChain
from ..ledger.miner import target_from_bits
from ..ledger.txparse import hash_to_hex, parse_block_txs
from .addresses import script_to_address
from .amounts import Amount
from .descriptors import infer
from .mempool import Entry, Mempool
from .scripts import script_type, to_asm


def difficulty(bits: int) -> float:
    """Core's GetDifficulty: mainnet's easiest target over this one (16 digits, as Core)."""
    return float(f"{float(0xFFFF * 2**208) / target_from_bits(bits):.16g}")


def chainwork(height: int) -> str:
    """Work of a regtest chain up to `height`: every block at bits 0x207fffff weighs 2."""
    return f"{2 * (height + 1):064x}"


def script_pubkey_json(script: bytes) -> dict[str, Any]:
    address = script_to_address(script)
    out: dict[str, Any] = {"asm": to_asm(script), "desc": infer(script, address)}
    out["hex"] = script.hex()
    if address is not None:
        out["address"] = address
    out["type"] = script_type(script)
    return out


def tx_json(
    raw: bytes,
    spent: list[tuple[int, bytes]] | None = None,
    *,
    prevouts: bool = False,
    include_hex: bool = True,
) -> dict[str, Any]:
    """Core's TxToUniv: `spent` (value, script per input) adds "fee" (and "prevout")."""
    tx = CTransaction.deserialize(raw)
    stripped = len(tx.serialize(params={"include_witness": False}))
    weight = 3 * stripped + len(raw)
    out: dict[str, Any] = {
        "txid": hash_to_hex(tx.GetTxid()),
        "hash": hash_to_hex(tx.GetHash()) if tx.has_witness() else hash_to_hex(tx.GetTxid()),
        "version": tx.nVersion & 0xFFFFFFFF,
        "size": len(raw),
        "vsize": -(-weight // 4),
        "weight": weight,
        "locktime": tx.nLockTime,
    }
    vin = []
    for i, txin in enumerate(tx.vin):
        item: dict[str, Any] = {}
        if tx.is_coinbase():
            item["coinbase"] = bytes(txin.scriptSig).hex()
        else:
            item["txid"] = hash_to_hex(bytes(txin.prevout.hash))
            item["vout"] = txin.prevout.n
            sig = bytes(txin.scriptSig)
            item["scriptSig"] = {"asm": to_asm(sig, sighash_decode=True), "hex": sig.hex()}
        if tx.has_witness() and i < len(tx.wit.vtxinwit):
            stack = [bytes(x).hex() for x in tx.wit.vtxinwit[i].scriptWitness.stack]
            if stack:
                item["txinwitness"] = stack
        if prevouts and spent is not None and not tx.is_coinbase():
            value, script = spent[i]
            item["prevout"] = {
                "generated": False,
                "height": None,
                "value": Amount(value),
                "scriptPubKey": script_pubkey_json(script),
            }
        item["sequence"] = txin.nSequence
        vin.append(item)
    out["vin"] = vin
    out["vout"] = [
        {
            "value": Amount(o.nValue),
            "n": n,
            "scriptPubKey": script_pubkey_json(bytes(o.scriptPubKey)),
        }
        for n, o in enumerate(tx.vout)
    ]
    if spent is not None and not tx.is_coinbase():
        out["fee"] = Amount(sum(v for v, _ in spent) - sum(o.nValue for o in tx.vout))
    if include_hex:
        out["hex"] = raw.hex()
    return out


def header_json(chain: KernelChain, info: BlockInfo) -> dict[str, Any]:
    """Core's blockheaderToJSON."""
    header = info.header
    tip = chain.tip_height()
    bits = int.from_bytes(header[72:76], "little")
    version = int.from_bytes(header[:4], "little")
    out: dict[str, Any] = {
        "hash": info.block_hash,
        "confirmations": tip - info.height + 1 if info.in_active_chain else -1,
        "height": info.height,
        "version": version,
        "versionHex": f"{version:08x}",
        "merkleroot": hash_to_hex(header[36:68]),
        "time": int.from_bytes(header[68:72], "little"),
        "mediantime": _mtp(chain, info),
        "nonce": int.from_bytes(header[76:80], "little"),
        "bits": f"{bits:08x}",
        "difficulty": difficulty(bits),
        "chainwork": chainwork(info.height),
        "nTx": len(parse_block_txs(chain.raw_block(info.block_hash))),
    }
    if info.height > 0:
        out["previousblockhash"] = hash_to_hex(header[4:36])
    if info.in_active_chain and info.height < tip:
        out["nextblockhash"] = chain.block_hash(info.height + 1)
    return out


def _mtp(chain: KernelChain, info: BlockInfo) -> int:
    if info.in_active_chain:
        return chain.median_time_past_at(info.height)
    times = []
    block_hash = info.block_hash
    for _ in range(11):  # a side block: walk its own ancestors
        i = chain.block_info(block_hash)
        times.append(int.from_bytes(i.header[68:72], "little"))
        if i.height == 0:
            break
        block_hash = hash_to_hex(i.header[4:36])
    times.sort()
    return times[len(times) // 2]


def block_json(chain: KernelChain, info: BlockInfo, verbosity: int) -> dict[str, Any]:
    """Core's blockToJSON for verbosity 1 (txids), 2 (decoded txs with fee), 3 (prevouts)."""
    raw = chain.raw_block(info.block_hash)
    txs = parse_block_txs(raw)
    out = header_json(chain, info)
    stripped = (
        80 + (len(raw) - 80 - sum(len(t.raw) for t in txs)) + sum(t.stripped_size for t in txs)
    )
    out["strippedsize"] = stripped
    out["size"] = len(raw)
    out["weight"] = 3 * stripped + len(raw)
    if verbosity <= 1:
        out["tx"] = [t.txid for t in txs]
        return out
    spent = chain.spent_outputs(info.block_hash) if info.in_active_chain or info.height else []
    decoded = []
    for i, t in enumerate(txs):
        coins = spent[i - 1] if i > 0 and i - 1 < len(spent) else None
        decoded.append(tx_json(t.raw, coins, prevouts=verbosity >= 3))
    out["tx"] = decoded
    return out


def mempool_entry_json(pool: Mempool, entry: Entry) -> dict[str, Any]:
    """Core's entryToJSON."""
    ancestors = pool.ancestors(entry.txid)
    descendants = pool.descendants(entry.txid)
    anc = [pool.entries[t] for t in ancestors]
    desc = [pool.entries[t] for t in descendants]
    return {
        "vsize": entry.vsize,
        "weight": entry.weight,
        "time": entry.time,
        "height": entry.height,
        "descendantcount": len(desc) + 1,
        "descendantsize": entry.vsize + sum(e.vsize for e in desc),
        "ancestorcount": len(anc) + 1,
        "ancestorsize": entry.vsize + sum(e.vsize for e in anc),
        "wtxid": entry.parsed.wtxid,
        "fees": {
            "base": Amount(entry.fee),
            "modified": Amount(entry.fee),
            "ancestor": Amount(entry.fee + sum(e.fee for e in anc)),
            "descendant": Amount(entry.fee + sum(e.fee for e in desc)),
        },
        "depends": sorted(entry.parents),
        "spentby": sorted(pool.children(entry.txid)),
        "bip125-replaceable": False,
        "unbroadcast": False,
    }
