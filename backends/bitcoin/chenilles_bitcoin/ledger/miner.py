"""Building regtest blocks that Bitcoin Core's kernel will accept.

Pure functions: no kernel, no clock. `KernelChain` picks the inputs (tip, height, time,
transactions, fees) and the kernel decides whether the block is valid.

Rules met here (regtest): version 0x20000000 (BIP9 signalling, no deployments forced),
bits 0x207fffff (target ~2^255: about two nonce tries), BIP34 height as the first push of the
coinbase scriptSig (padded to >= 2 bytes, which consensus requires of any coinbase scriptSig),
BIP141 witness commitment in the coinbase, merkle root over txids, subsidy
50 BTC >> (height // 150) (regtest halving interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .txparse import ParsedTx, encode_varint, parse_tx, sha256d

BLOCK_VERSION = 0x20000000
REGTEST_BITS = 0x207FFFFF
REGTEST_HALVING_INTERVAL = 150
COIN = 100_000_000
COINBASE_MATURITY = 100  # a coinbase output is spendable in a block 100 deeper
WITNESS_COMMITMENT_HEADER = bytes.fromhex("aa21a9ed")
# The default coinbase destination: an anyone-can-spend-by-nobody OP_RETURN would burn the
# subsidy; OP_TRUE keeps it (anyone can spend it after maturity). Callers usually pass a key.
DEFAULT_COINBASE_SCRIPT = bytes([0x51])  # OP_TRUE


def block_subsidy(height: int) -> int:
    """Regtest block subsidy in satoshi."""
    halvings = height // REGTEST_HALVING_INTERVAL
    return 0 if halvings >= 64 else (50 * COIN) >> halvings


def target_from_bits(bits: int) -> int:
    """Expand compact nBits into the 256-bit target."""
    exponent = bits >> 24
    mantissa = bits & 0x007FFFFF
    return mantissa << (8 * (exponent - 3))


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Bitcoin merkle root over hashes in internal byte order (odd levels duplicate the last)."""
    level = list(hashes)
    if not level:
        raise ValueError("merkle root of an empty list")
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def _push_int(n: int) -> bytes:
    """Minimal CScriptNum push, as BIP34 requires for the height (n >= 0)."""
    if n == 0:
        return b"\x00"  # OP_0
    if 1 <= n <= 16:
        return bytes([0x50 + n])  # OP_1..OP_16
    body = n.to_bytes((n.bit_length() + 8) // 8, "little")  # room for the sign bit
    return bytes([len(body)]) + body


def coinbase_script_sig(height: int, extra_nonce: int = 0) -> bytes:
    """BIP34 height push, then padding so the scriptSig is 2..100 bytes and unique."""
    script = _push_int(height) + _push_data(extra_nonce.to_bytes(4, "little"))
    return script


def _push_data(data: bytes) -> bytes:
    assert len(data) < 0x4C
    return bytes([len(data)]) + data


def witness_commitment_script(wtxids: Sequence[bytes]) -> bytes:
    """OP_RETURN aa21a9ed || sha256d(witness merkle root || 32 zero bytes).

    The coinbase's wtxid counts as 32 zero bytes; its witness reserved value is also zeros.
    """
    root = merkle_root([b"\x00" * 32, *wtxids])
    commitment = sha256d(root + b"\x00" * 32)
    return b"\x6a\x24" + WITNESS_COMMITMENT_HEADER + commitment


def build_coinbase(
    height: int, value: int, to_script: bytes, commitment_script: bytes, extra_nonce: int = 0
) -> bytes:
    """A segwit coinbase: one input (null outpoint), a payout and the witness commitment."""
    script_sig = coinbase_script_sig(height, extra_nonce)
    outputs = [(value, to_script), (0, commitment_script)]
    return b"".join(
        [
            (2).to_bytes(4, "little"),
            b"\x00\x01",  # segwit marker and flag
            b"\x01",
            b"\x00" * 32,
            b"\xff\xff\xff\xff",
            encode_varint(len(script_sig)),
            script_sig,
            b"\xff\xff\xff\xff",
            encode_varint(len(outputs)),
            *(v.to_bytes(8, "little") + encode_varint(len(s)) + s for v, s in outputs),
            b"\x01\x20" + b"\x00" * 32,  # witness: one 32-byte reserved value
            (0).to_bytes(4, "little"),
        ]
    )


@dataclass(frozen=True, slots=True)
class BuiltBlock:
    """A solved block: its serialization, hash (display hex) and parsed transactions."""

    raw: bytes
    block_hash: str
    txs: tuple[ParsedTx, ...]


def build_block(
    prev_hash: bytes,
    height: int,
    ntime: int,
    txs: Sequence[ParsedTx],
    fees: int,
    to_script: bytes = DEFAULT_COINBASE_SCRIPT,
    extra_nonce: int = 0,
) -> BuiltBlock:
    """Assemble and grind a block on `prev_hash` (internal byte order) at `height`.

    `fees` is added to the subsidy; a coinbase claiming less than allowed is valid, so callers
    that cannot price a transaction (unknown inputs) may count its fee as zero.
    """
    commitment = witness_commitment_script([tx.wtxid_bytes for tx in txs])
    cb_raw = build_coinbase(
        height, block_subsidy(height) + fees, to_script, commitment, extra_nonce
    )
    coinbase = parse_tx(cb_raw)
    all_txs = (coinbase, *txs)
    root = merkle_root([tx.txid_bytes for tx in all_txs])
    prefix = (
        BLOCK_VERSION.to_bytes(4, "little")
        + prev_hash
        + root
        + ntime.to_bytes(4, "little")
        + REGTEST_BITS.to_bytes(4, "little")
    )
    target = target_from_bits(REGTEST_BITS)
    for nonce in range(1 << 32):
        header = prefix + nonce.to_bytes(4, "little")
        h = sha256d(header)
        if int.from_bytes(h, "little") <= target:
            break
    else:  # pragma: no cover - needs 2^32 failures at a ~50% success rate
        raise RuntimeError("no nonce found")
    body = encode_varint(len(all_txs)) + b"".join(tx.raw for tx in all_txs)
    return BuiltBlock(header + body, h[::-1].hex(), all_txs)
