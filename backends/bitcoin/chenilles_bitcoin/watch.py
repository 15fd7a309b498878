"""Reading a channel's transactions back from the chain.

A commitment on-chain is recognised by its BOLT 3 shape (nLockTime 0x20......, nSequence
0x80......), its version by the obscured commitment number, and its owner by matching every
output's scriptPubKey against the scripts that owner's commitment of that version would
have: to_local and HTLC scripts need the owner's per-commitment point and the version's
HTLC set, to_remote is the other side's static payment key. Only a full match counts, so
a watcher never sweeps an output it misidentified.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from bitcoin.core import CTransaction

from chenilles_hub.core import Htlc

from .bolt3 import Bolt3Error, OutPoint, decode_commitment_number, p2wsh, txid_of
from .commitments import ChannelView


@dataclass(frozen=True)
class ChainOutput:
    """One recognised output of a commitment on-chain."""

    outpoint: OutPoint
    amount: int
    kind: str  # "to_local", "to_remote" or "htlc"
    witness_script: bytes | None
    htlc: Htlc | None = None


@dataclass(frozen=True)
class SeenCommitment:
    tx: CTransaction
    version: int
    owner: int
    point: bytes
    outputs: tuple[ChainOutput, ...]

    @property
    def txid(self) -> str:
        return txid_of(self.tx)

    def output(self, kind: str, htlc_id: int | None = None) -> ChainOutput | None:
        for out in self.outputs:
            if out.kind == kind and (htlc_id is None or (out.htlc and out.htlc.id == htlc_id)):
                return out
        return None


def parse_tx(raw: bytes) -> CTransaction:
    return CTransaction.deserialize(raw)


def commitment_version(view: ChannelView, tx: CTransaction) -> int | None:
    """The commitment number of ``tx`` if it has a commitment's shape, else ``None``."""
    if len(tx.vin) != 1:
        return None
    try:
        return decode_commitment_number(tx.nLockTime, tx.vin[0].nSequence, view.obscuring)
    except Bolt3Error:
        return None


def match_commitment(
    view: ChannelView, tx: CTransaction, owner: int, point: bytes, htlcs: Iterable[Htlc]
) -> SeenCommitment | None:
    """``tx`` read as ``owner``'s commitment under ``point``; ``None`` unless every output fits.
    ``htlcs`` may name more HTLCs than ``tx`` has outputs for (every attempt at its version)."""
    version = commitment_version(view, tx)
    if version is None:
        return None
    candidates: dict[bytes, list[tuple[str, bytes | None, Htlc | None]]] = {}

    def add(spk: bytes, kind: str, ws: bytes | None, htlc: Htlc | None = None) -> None:
        candidates.setdefault(spk, []).append((kind, ws, htlc))

    try:
        local_ws = view.to_local_script(owner, point)
        add(bytes(p2wsh(local_ws)), "to_local", local_ws)
        add(view.payout_spk(1 - owner), "to_remote", None)
        for htlc in htlcs:
            ws = view.htlc_script(owner, point, htlc)
            add(bytes(p2wsh(ws)), "htlc", ws, htlc)
    except (Bolt3Error, ValueError):
        return None
    txid = txid_of(tx)
    outputs = []
    for index, out in enumerate(tx.vout):
        options = candidates.get(bytes(out.scriptPubKey))
        if not options:
            return None
        # ``htlcs`` may hold several attempts' HTLCs of one version: two with one script
        # (the same payment offered again) are told apart by their amount
        value = int(out.nValue)
        at = next((i for i, o in enumerate(options) if o[2] is None or o[2].amount == value), 0)
        kind, script, matched = options.pop(at)
        outputs.append(ChainOutput(OutPoint(txid, index), int(out.nValue), kind, script, matched))
    return SeenCommitment(tx, version, owner, point, tuple(outputs))


def revealed_preimages(tx: CTransaction, wanted: set[bytes]) -> list[tuple[bytes, bytes]]:
    """(payment hash, preimage) for every 32-byte witness item that hashes to a wanted hash."""
    found: list[tuple[bytes, bytes]] = []
    if not wanted or not tx.wit or not tx.wit.vtxinwit:
        return found
    for inwit in tx.wit.vtxinwit:
        for item in inwit.scriptWitness.stack:
            if len(item) == 32:
                digest = hashlib.sha256(item).digest()
                if digest in wanted:
                    found.append((digest, bytes(item)))
    return found


def takes_with_preimage(tx: CTransaction, outpoint: OutPoint, payment_hash: bytes) -> bool:
    """Whether ``tx`` spends the HTLC output ``outpoint`` by its success path: its witness
    there holds the preimage. Only the HTLC's payee can take that path (and only its payer
    the timeout path; the revocation path belongs to revoked commitments), so this says
    who took the HTLC, whatever fee the spend paid."""
    if not tx.wit or not tx.wit.vtxinwit:
        return False
    for txin, inwit in zip(tx.vin, tx.wit.vtxinwit, strict=False):
        prevout = txin.prevout
        if bytes(reversed(prevout.hash)).hex() == outpoint.txid and prevout.n == outpoint.index:
            return any(
                len(item) == 32 and hashlib.sha256(item).digest() == payment_hash
                for item in inwit.scriptWitness.stack
            )
    return False


__all__ = [
    "ChainOutput",
    "SeenCommitment",
    "commitment_version",
    "match_commitment",
    "parse_tx",
    "revealed_preimages",
    "takes_with_preimage",
]
