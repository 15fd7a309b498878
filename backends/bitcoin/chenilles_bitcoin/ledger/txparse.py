"""Minimal, strict parsing of serialized Bitcoin transactions.

Why our own parser: the ledger needs txids, wtxids, inputs and outputs of every transaction
in every block (UTXO index, spending index, fees for the coinbase, witness commitment).
This is bookkeeping only: it never judges validity, which is the kernel's job. A small
parser keeps the hot path fast and avoids depending on a library's object model here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .interface import OutPoint


def sha256d(data: bytes) -> bytes:
    """Bitcoin's double SHA-256."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash_to_hex(h: bytes) -> str:
    """Internal byte order (as hashed) to display hex (as bitcoind prints it)."""
    return h[::-1].hex()


def hex_to_hash(s: str) -> bytes:
    """Display hex to internal byte order."""
    return bytes.fromhex(s)[::-1]


def encode_varint(n: int) -> bytes:
    """CompactSize encoding."""
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


class TxParseError(ValueError):
    """The bytes are not one well-formed serialized transaction."""


@dataclass(frozen=True, slots=True)
class TxIn:
    """One input: the outpoint it spends and its nSequence."""

    prevout: OutPoint
    sequence: int


@dataclass(frozen=True, slots=True)
class TxOut:
    """One output: value in satoshi and scriptPubKey."""

    value: int
    script_pubkey: bytes


@dataclass(frozen=True, slots=True)
class ParsedTx:
    """A transaction with the identifiers the ledger indexes by."""

    raw: bytes
    txid: str
    wtxid: str
    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int
    #: size without the witness (what nodes without segwit would see); weight = 3x this + size
    stripped_size: int

    @property
    def weight(self) -> int:
        """BIP 141 weight: 3 * stripped size + total size."""
        return 3 * self.stripped_size + len(self.raw)

    @property
    def vsize(self) -> int:
        """Virtual size in vbytes: weight / 4, rounded up."""
        return -(-self.weight // 4)

    @property
    def is_coinbase(self) -> bool:
        """A coinbase has one input spending the null outpoint."""
        return (
            len(self.inputs) == 1
            and self.inputs[0].prevout.vout == 0xFFFFFFFF
            and self.inputs[0].prevout.txid == "00" * 32
        )

    @property
    def txid_bytes(self) -> bytes:
        """Txid in internal byte order (for merkle trees)."""
        return hex_to_hash(self.txid)

    @property
    def wtxid_bytes(self) -> bytes:
        """Wtxid in internal byte order (for the witness commitment)."""
        return hex_to_hash(self.wtxid)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise TxParseError("truncated transaction")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def varint(self) -> int:
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        return int.from_bytes(self.take(size), "little")


def _parse_at(buf: bytes, start: int) -> tuple[ParsedTx, int]:
    r = _Reader(buf, start)
    version = r.u32()
    segwit = False
    n_in = r.varint()
    if n_in == 0:
        flag = r.take(1)[0]
        if flag != 1:
            raise TxParseError("bad segwit flag")
        segwit = True
        n_in = r.varint()
    inputs = []
    for _ in range(n_in):
        prev = r.take(32)
        vout = r.u32()
        r.take(r.varint())  # scriptSig
        inputs.append(TxIn(OutPoint(hash_to_hex(prev), vout), r.u32()))
    outputs = []
    for _ in range(r.varint()):
        value = int.from_bytes(r.take(8), "little")
        outputs.append(TxOut(value, r.take(r.varint())))
    body_end = r.pos
    if segwit:
        for _ in range(n_in):
            for _ in range(r.varint()):
                r.take(r.varint())
    locktime = r.u32()
    raw = buf[start : r.pos]
    if segwit:
        # txid commits to the legacy serialization: version, inputs, outputs, locktime
        legacy = raw[:4] + buf[start + 6 : body_end] + raw[-4:]
        txid = hash_to_hex(sha256d(legacy))
        stripped = len(legacy)
    else:
        txid = hash_to_hex(sha256d(raw))
        stripped = len(raw)
    wtxid = hash_to_hex(sha256d(raw))
    return (
        ParsedTx(raw, txid, wtxid, version, tuple(inputs), tuple(outputs), locktime, stripped),
        r.pos,
    )


def parse_tx(raw: bytes) -> ParsedTx:
    """Parse exactly one transaction; trailing bytes are an error."""
    tx, end = _parse_at(raw, 0)
    if end != len(raw):
        raise TxParseError("trailing bytes after transaction")
    return tx


def parse_block_txs(raw_block: bytes) -> list[ParsedTx]:
    """Parse the transactions of a serialized block (after its 80-byte header)."""
    r = _Reader(raw_block, 80)
    n = r.varint()
    pos = r.pos
    txs = []
    for _ in range(n):
        tx, pos = _parse_at(raw_block, pos)
        txs.append(tx)
    return txs
