"""The devnet's ledger: LiteSVM executing transactions, a slot clock, and the journal.

No HTTP here: the RPC layer parses requests and formats answers; this module decides what
happens to a transaction and keeps the history the RPC reads.

What happens to a transaction, as on a Solana leader:

- its blockhash must be one of the last 150 slots' (else ``BlockhashNotFound``) and its
  signature new (else ``AlreadyProcessed``); such a transaction is *dropped*: nothing
  changes, no fee, and its signature never gets a status;
- LiteSVM runs it (signatures, fee, the programs). A transaction that fails while
  executing is still *landed*: the fee is charged and its error is recorded. One that fails
  before (bad signature, unknown fee payer, fee unpaid) changes nothing and is dropped. The
  two are told apart by whether any account changed.

Persistence: each landed transaction is journaled with the accounts it changed (their whole
new state), fsynced before the RPC answers. A restart rebuilds genesis, then replays those
account states in order: the same ledger, without re-executing anything. (Re-executing
would need LiteSVM to reproduce the exact clock of each transaction; snapshots do not.)
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import base58
from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.instruction import Instruction
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import (
    FailedTransactionMetadata,
    SimulatedTransactionInfo,
    TransactionMetadata,
)
from solders.transaction_status import TransactionErrorFieldless, TransactionErrorType

from .. import spl_token as spl
from . import genesis, tokens
from .clock import (
    MAX_PROCESSING_AGE,
    MAX_TRANSACTION_FORWARDING_DELAY,
    Blockhashes,
    Segment,
    SlotClock,
)
from .errors import error_json
from .journal import Journal

JOURNAL_FILE = "ledger.journal"
FORMAT_VERSION = 1
MEMO_PROGRAMS = (
    Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EVVDDwQDxFMNo"),
    Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),
)
_ALT_META_SIZE = 56  # address lookup table: metadata before the addresses


class DevnetError(Exception):
    """The devnet cannot start or go on (bad datadir, journal unwritable)."""


@dataclass(frozen=True)
class Landed:
    """A transaction in the ledger's history, in a block at ``slot``."""

    index: int  # position in the history (blocks keep this order)
    signature: str
    slot: int
    block_time: int
    wire: bytes  # the transaction as the client sent it
    keys: tuple[str, ...]  # static account keys, then loaded writable, then loaded readonly
    loaded: tuple[tuple[str, ...], tuple[str, ...]]  # (writable, readonly) from lookup tables
    meta: dict[str, Any]  # the RPC's UiTransactionStatusMeta, as JSON
    memo: str | None

    @property
    def err(self) -> Any:
        return self.meta["err"]

    @property
    def transaction(self) -> VersionedTransaction:
        return VersionedTransaction.from_bytes(self.wire)


@dataclass(frozen=True)
class Dropped:
    """A transaction that never made it into a block: nothing changed."""

    signature: str
    err: TransactionErrorType


@dataclass(frozen=True)
class Simulation:
    """What a transaction would do now (nothing of it is kept)."""

    err: TransactionErrorType | None
    logs: list[str]
    units: int
    fee: int
    return_data: dict[str, Any] | None
    inner: list[dict[str, Any]]
    keys: list[Pubkey]
    loaded: tuple[list[Pubkey], list[Pubkey]]
    pre: dict[Pubkey, Account | None]
    post: dict[Pubkey, Account | None]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _account_json(account: Account | None) -> Any:
    if account is None:
        return None
    return [
        account.lamports,
        str(account.owner),
        base64.b64encode(bytes(account.data)).decode(),
        account.executable,
        account.rent_epoch,
    ]


def _account_from_json(value: Any) -> Account:
    if value is None:  # closed: LiteSVM deletes an account set to zero lamports
        return Account(0, b"", spl.SYSTEM_PROGRAM_ID, False, 0)
    lamports, owner, data, executable, rent_epoch = value
    return Account(
        lamports, base64.b64decode(data), Pubkey.from_string(owner), executable, rent_epoch
    )


def memo_of(tx: VersionedTransaction) -> str | None:
    """Memos of the top-level Memo instructions, as Solana's ``extract_and_fmt_memos``."""
    keys = tx.message.account_keys
    memos = []
    for ix in tx.message.instructions:
        if keys[ix.program_id_index] in MEMO_PROGRAMS:
            data = bytes(ix.data)
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = "(unparseable)"
            memos.append(f"[{len(data)}] {text}")
    return "; ".join(memos) if memos else None


class DevnetChain:
    """The ledger of one datadir. Single-threaded: the server calls it from one loop."""

    def __init__(
        self,
        datadir: Path,
        program: bytes,
        slot_ms: int = 400,
        now_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.datadir = datadir
        self._now_ms = now_ms
        self.svm = genesis.build_svm(program)
        self.program_id = genesis.PROGRAM_ID
        self.history: list[Landed] = []
        self._by_sig: dict[str, Landed] = {}
        self._by_address: dict[str, list[int]] = {}
        self._clock_slot = -1
        datadir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(datadir / JOURNAL_FILE)
        program_sha = hashlib.sha256(program).hexdigest()
        segments: list[Segment] = []
        seed: bytes | None = None
        for number, record in enumerate(self.journal.records(), 1):
            kind = record.get("t")
            try:
                if kind == "genesis":
                    seed = self._check_genesis(record, program_sha)
                    segments.append(Segment(0, record["genesis_ms"], record["slot_ms"]))
                elif seed is None:
                    raise DevnetError(f"{self.journal.path}: the first record is not the genesis")
                elif kind == "clock":
                    segments.append(
                        Segment(
                            record["slot"],
                            record["ms"],
                            record["slot_ms"],
                            record.get("skew_ms", 0),
                        )
                    )
                elif kind == "tx":
                    self._replay(record)
                else:
                    raise DevnetError(f"{self.journal.path}: unknown record kind {kind!r}")
            except (KeyError, TypeError, ValueError) as exc:  # checksummed, yet not ours
                raise DevnetError(
                    f"{self.journal.path}: record {number} does not read back ({exc!r})"
                ) from exc
        if seed is None:  # a new datadir
            seed = os.urandom(32)
            genesis_ms = now_ms()
            self.journal.append(
                {
                    "t": "genesis",
                    "format": FORMAT_VERSION,
                    "seed": seed.hex(),
                    "program_id": str(self.program_id),
                    "program_sha256": program_sha,
                    "genesis_ms": genesis_ms,
                    "slot_ms": slot_ms,
                }
            )
            segments.append(Segment(0, genesis_ms, slot_ms))
        self.clock = SlotClock(segments)
        if self.history:
            self.clock.raise_floor(self.history[-1].slot)
        new_segment = self.clock.restart(now_ms(), slot_ms)
        if new_segment is not None:
            self._journal_segment(new_segment)
        self.hashes = Blockhashes(seed)
        self.sync()

    def _journal_segment(self, segment: Segment) -> None:
        self.journal.append(
            {
                "t": "clock",
                "slot": segment.start_slot,
                "ms": segment.start_ms,
                "slot_ms": segment.slot_ms,
                "skew_ms": segment.skew_ms,
            }
        )

    def _check_genesis(self, record: dict[str, Any], program_sha: str) -> bytes:
        if record.get("format") != FORMAT_VERSION:
            raise DevnetError(f"{self.journal.path}: unknown format {record.get('format')!r}")
        if record["program_sha256"] != program_sha:
            raise DevnetError(
                f"{self.datadir} holds a ledger of another build of the channel program "
                f"(sha256 {record['program_sha256'][:16]}..., this one {program_sha[:16]}...): "
                "start with a fresh --datadir"
            )
        return bytes.fromhex(record["seed"])

    def close(self) -> None:
        self.journal.close()

    # --- time -------------------------------------------------------------------------------

    def warp(self, seconds: int) -> int:
        """Move the chain's clock ``seconds`` ahead (journaled); the new current slot."""
        self._journal_segment(self.clock.warp(self._now_ms(), seconds))
        return self.sync()

    def sync(self) -> int:
        """The current slot; moves the Clock sysvar there first if it is behind."""
        slot = self.clock.slot_at(self._now_ms())
        if slot != self._clock_slot:
            schedule = self.svm.get_epoch_schedule()
            epoch, _ = schedule.get_epoch_and_slot_index(slot)
            first = schedule.get_first_slot_in_epoch(epoch)
            self.svm.set_clock(
                Clock(
                    slot,
                    self.clock.unix_time(first),
                    epoch,
                    schedule.get_leader_schedule_epoch(slot),
                    self.clock.unix_time(slot),
                )
            )
            self._clock_slot = slot
        return slot

    def latest_blockhash(self) -> tuple[Hash, int]:
        """The current slot's blockhash and the last block height it is valid at."""
        slot = self.sync()
        return self.hashes.of(slot), slot + MAX_PROCESSING_AGE

    def blockhash_valid(self, blockhash: Hash) -> bool:
        return self.hashes.age(blockhash, self.sync()) is not None

    # --- state ------------------------------------------------------------------------------

    def account(self, key: Pubkey) -> Account | None:
        self.sync()  # the Clock sysvar is an account too
        account = self.svm.get_account(key)
        if account is None or account.lamports == 0:
            return None
        return account

    def rent(self, size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(size)

    def landed(self, signature: str) -> Landed | None:
        return self._by_sig.get(signature)

    def signatures_for(
        self, address: str, before: str | None, until: str | None, limit: int
    ) -> list[Landed]:
        """Newest first, as getSignaturesForAddress; ``before``/``until`` are exclusive. An
        unknown ``before`` gives nothing, an unknown ``until`` no lower bound (as Solana)."""
        indexes = self._by_address.get(address, [])
        hi = len(indexes)
        if before is not None:
            b = self._by_sig.get(before)
            if b is None:
                return []
            hi = bisect_left(indexes, b.index)
        lo = 0
        if until is not None:
            u = self._by_sig.get(until)
            if u is not None:
                lo = bisect_right(indexes, u.index)
        picked = indexes[max(lo, hi - limit) : hi]
        return [self.history[i] for i in reversed(picked)]

    # --- transactions -----------------------------------------------------------------------

    def _loaded_keys(self, tx: VersionedTransaction) -> tuple[list[Pubkey], list[Pubkey]]:
        """Addresses a v0 transaction loads from lookup tables (writable, readonly)."""
        message = tx.message
        if not isinstance(message, MessageV0):
            return [], []
        writable: list[Pubkey] = []
        readonly: list[Pubkey] = []
        for lookup in message.address_table_lookups:
            table = self.svm.get_account(lookup.account_key)
            data = bytes(table.data) if table is not None else b""
            addresses = [
                Pubkey.from_bytes(data[i : i + 32]) for i in range(_ALT_META_SIZE, len(data), 32)
            ]
            for indexes, out in (
                (lookup.writable_indexes, writable),
                (lookup.readonly_indexes, readonly),
            ):
                out.extend(addresses[i] for i in bytes(indexes) if i < len(addresses))
        return writable, readonly

    def _keys(
        self, tx: VersionedTransaction
    ) -> tuple[list[Pubkey], tuple[list[Pubkey], list[Pubkey]]]:
        loaded = self._loaded_keys(tx)
        return [*tx.message.account_keys, *loaded[0], *loaded[1]], loaded

    def check(
        self, tx: VersionedTransaction, slot: int, max_age: int
    ) -> TransactionErrorType | None:
        """The leader's checks before executing: blockhash age, then the status cache."""
        if self.hashes.age(tx.message.recent_blockhash, slot, max_age) is None:
            return TransactionErrorFieldless.BlockhashNotFound
        if str(tx.signatures[0]) in self._by_sig:
            return TransactionErrorFieldless.AlreadyProcessed
        return None

    def simulate(
        self,
        tx: VersionedTransaction,
        *,
        check_blockhash: bool = True,
        max_age: int = MAX_PROCESSING_AGE - MAX_TRANSACTION_FORWARDING_DELAY,
    ) -> Simulation:
        """Runs ``tx`` on the current state without keeping anything. Signatures are not
        checked here (the RPC verifies them first when asked to)."""
        slot = self.sync()
        keys, loaded = self._keys(tx)
        pre = {k: self.svm.get_account(k) for k in keys}
        refused = self.check(tx, slot, max_age) if check_blockhash else None
        if refused is not None:
            return Simulation(refused, [], 0, 0, None, [], keys, loaded, pre, pre)
        self.svm.with_sigverify(False)
        try:
            result = self.svm.simulate_transaction(tx)
        finally:
            self.svm.with_sigverify(True)
        if isinstance(result, SimulatedTransactionInfo):
            meta, err = result.meta(), None
            changed = dict(result.post_accounts())
            post = {k: changed.get(k, pre[k]) for k in keys}
        else:
            meta, err, post = result.meta(), result.err(), pre
        return Simulation(
            err,
            list(meta.logs()),
            meta.compute_units_consumed(),
            meta.fee(),
            _return_data(meta),
            _inner(meta),
            keys,
            loaded,
            pre,
            post,
        )

    def fee_for(self, tx: VersionedTransaction) -> int | None:
        """The fee ``tx``'s message would pay, from the runtime's own fee rules (signatures,
        precompile signatures, priority fee); None if its blockhash is not current."""
        slot = self.sync()
        if self.hashes.age(tx.message.recent_blockhash, slot) is None:
            return None
        self.svm.with_sigverify(False)
        try:
            return self.svm.simulate_transaction(tx).meta().fee()
        finally:
            self.svm.with_sigverify(True)

    def execute(self, tx: VersionedTransaction) -> Landed | Dropped:
        """The leader's part: check, execute, and if it landed, journal it (durably)."""
        slot = self.sync()
        signature = str(tx.signatures[0])
        refused = self.check(tx, slot, MAX_PROCESSING_AGE)
        if refused is not None:
            return Dropped(signature, refused)
        keys, loaded = self._keys(tx)
        pre = [self.svm.get_account(k) for k in keys]
        result = self.svm.send_transaction(tx)
        post = [self.svm.get_account(k) for k in keys]
        changed = {
            str(k): _account_json(after)
            for k, before, after in zip(keys, pre, post, strict=True)
            if before != after
        }
        if isinstance(result, FailedTransactionMetadata) and not changed:
            return Dropped(signature, result.err())
        if isinstance(result, TransactionMetadata):
            meta, err = result, None
        else:
            meta, err = result.meta(), result.err()
        record = {
            "t": "tx",
            "sig": signature,
            "slot": slot,
            "time": self.clock.unix_time(slot),
            "wire": base64.b64encode(bytes(tx)).decode(),
            "keys": [str(k) for k in keys],
            "loaded": [[str(k) for k in loaded[0]], [str(k) for k in loaded[1]]],
            "meta": self._status_meta(err, meta, keys, loaded, pre, post),
            "memo": memo_of(tx),
            "accounts": {k: v for k, v in changed.items() if not _is_code(v)},
        }
        try:
            self.journal.append(record)
        except OSError as exc:
            # LiteSVM already holds the effects; the disk does not. Going on would answer
            # clients about state a restart would lose: stop instead.
            raise DevnetError(f"cannot write the journal: {exc}") from exc
        return self._index(record)

    def _status_meta(
        self,
        err: TransactionErrorType | None,
        meta: TransactionMetadata,
        keys: Sequence[Pubkey],
        loaded: tuple[list[Pubkey], list[Pubkey]],
        pre: Sequence[Account | None],
        post: Sequence[Account | None],
    ) -> dict[str, Any]:
        """The RPC's UiTransactionStatusMeta (field order and presence as agave's)."""
        err_json = error_json(err)
        out: dict[str, Any] = {
            "err": err_json,
            "status": {"Ok": None} if err is None else {"Err": err_json},
            "fee": meta.fee(),
            "preBalances": [a.lamports if a else 0 for a in pre],
            "postBalances": [a.lamports if a else 0 for a in post],
            "innerInstructions": _inner(meta),
            "logMessages": list(meta.logs()),
            "preTokenBalances": self.token_balances(keys, pre),
            "postTokenBalances": self.token_balances(keys, post),
            "rewards": [],
            "loadedAddresses": {
                "writable": [str(k) for k in loaded[0]],
                "readonly": [str(k) for k in loaded[1]],
            },
        }
        return_data = _return_data(meta)
        if return_data is not None:
            out["returnData"] = return_data
        out["computeUnitsConsumed"] = meta.compute_units_consumed()
        return out

    def token_balances(
        self, keys: Sequence[Pubkey], accounts: Sequence[Account | None]
    ) -> list[dict[str, Any]]:
        by_key = dict(zip(keys, accounts, strict=True))
        out = []
        for i, account in enumerate(accounts):
            holding = tokens.token_account(account)
            if holding is None:
                continue
            mint = (
                by_key[holding.mint]
                if holding.mint in by_key
                else self.svm.get_account(holding.mint)
            )
            decimals = tokens.mint_decimals(mint)
            if decimals is None:
                continue
            out.append(
                {
                    "accountIndex": i,
                    "mint": str(holding.mint),
                    "uiTokenAmount": tokens.ui_token_amount(holding.amount, decimals),
                    "owner": str(holding.owner),
                    "programId": str(holding.program_id),
                }
            )
        return out

    def _replay(self, record: dict[str, Any]) -> None:
        for key, value in record["accounts"].items():
            self.svm.set_account(Pubkey.from_string(key), _account_from_json(value))
        self._index(record)

    def _index(self, record: dict[str, Any]) -> Landed:
        landed = Landed(
            index=len(self.history),
            signature=record["sig"],
            slot=record["slot"],
            block_time=record["time"],
            wire=base64.b64decode(record["wire"]),
            keys=tuple(record["keys"]),
            loaded=(tuple(record["loaded"][0]), tuple(record["loaded"][1])),
            meta=record["meta"],
            memo=record["memo"],
        )
        self.history.append(landed)
        self._by_sig[landed.signature] = landed
        for key in dict.fromkeys(landed.keys):
            self._by_address.setdefault(key, []).append(landed.index)
        return landed

    # --- the faucet -------------------------------------------------------------------------

    def airdrop(self, to: Pubkey, lamports: int) -> Landed | Dropped:
        """A System transfer from the faucet, signed by it. The memo numbers it, so two
        equal airdrops in one slot are two transactions (a faucet that signed the same
        bytes twice would pay once)."""
        slot = self.sync()
        message = Message.new_with_blockhash(
            [
                transfer(
                    TransferParams(
                        from_pubkey=genesis.FAUCET.pubkey(), to_pubkey=to, lamports=lamports
                    )
                ),
                Instruction(MEMO_PROGRAMS[1], f"airdrop {len(self.history)}".encode(), []),
            ],
            genesis.FAUCET.pubkey(),
            self.hashes.of(slot),
        )
        return self.execute(VersionedTransaction(message, [genesis.FAUCET]))


def _is_code(value: Any) -> bool:
    """Executables and loader/sysvar-owned accounts are genesis', not journaled data."""
    if value is None:
        return False
    owner = Pubkey.from_string(value[1])
    return bool(value[3]) or owner in genesis.NOT_DATA_OWNERS


def _return_data(meta: TransactionMetadata) -> dict[str, Any] | None:
    """Solana records return data only when a program set some."""
    rd = meta.return_data()
    data = bytes(rd.data)
    if not data:
        return None
    return {"programId": str(rd.program_id), "data": [base64.b64encode(data).decode(), "base64"]}


def _inner(meta: TransactionMetadata) -> list[dict[str, Any]]:
    """Inner instructions per top-level instruction that made any (the RPC's UI form)."""
    out = []
    for index, inner in enumerate(meta.inner_instructions()):
        if not inner:
            continue
        out.append(
            {
                "index": index,
                "instructions": [
                    {
                        "programIdIndex": ix.program_id_index,
                        "accounts": list(bytes(ix.accounts)),
                        "data": base58.b58encode(bytes(ix.data)).decode(),
                        "stackHeight": ii.stack_height(),
                    }
                    for ii in inner
                    for ix in (ii.instruction(),)
                ],
            }
        )
    return out
