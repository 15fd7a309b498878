"""Where transactions go: LiteSVM in process, or a Solana cluster over JSON-RPC.

The backend builds every instruction and transaction the same way for both; a ``Ledger``
only signs-and-sends, reads accounts and the clock, and hands back the logs of the
program's transactions (the source of chain events). Both implementations run the real
program: LiteSVM executes the committed SBPF binary with the real SPL Token program and
Ed25519 precompile; a cluster runs whatever is deployed at ``program_id``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from solders.clock import Clock
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.sysvar import CLOCK
from solders.transaction import Transaction
from solders.transaction_metadata import TransactionMetadata
from solders.transaction_status import TransactionErrorInstructionError

from chenilles_hub.backend import LedgerError

from .errors import describe

#: Largest serialized transaction a Solana leader accepts (IPv6 MTU minus headers).
MAX_TRANSACTION_SIZE = 1232


@dataclass(frozen=True)
class Sent:
    """A transaction the ledger executed successfully."""

    signature: str
    fee: int  # lamports
    compute_units: int
    slot: int
    size: int  # bytes on the wire
    logs: tuple[str, ...]


@dataclass(frozen=True)
class AccountView:
    lamports: int
    owner: Pubkey
    data: bytes


class Ledger(Protocol):
    program_id: Pubkey

    def send(
        self, operation: str, instructions: Sequence[Instruction], signers: Sequence[Keypair]
    ) -> Sent:
        """Sign with ``signers`` (the first pays the fee) and execute, or raise LedgerError."""
        ...

    def account(self, key: Pubkey, commitment: str | None = None) -> AccountView | None:
        """The account as of ``commitment`` (``"confirmed"``, ``"finalized"``; ``None``:
        the ledger's own level)."""
        ...

    def clock(self) -> Clock: ...

    def rent(self, size: int) -> int: ...

    def airdrop(self, key: Pubkey, lamports: int) -> None: ...

    def program_logs(self, cursor: str | None) -> tuple[str | None, list[tuple[int, list[str]]]]:
        """(new cursor, [(slot, logs)]) of the program's transactions after ``cursor``."""
        ...


def _programs_of(instructions: Sequence[Instruction]) -> list[Pubkey]:
    return [ix.program_id for ix in instructions]


class LiteSVMLedger:
    """The embedded ledger. Keeps the logs of every transaction it executed, in order."""

    def __init__(self, svm: LiteSVM, program_id: Pubkey) -> None:
        self.svm = svm
        self.program_id = program_id
        self._history: list[tuple[int, list[str]]] = []

    def send(
        self, operation: str, instructions: Sequence[Instruction], signers: Sequence[Keypair]
    ) -> Sent:
        tx = Transaction(
            list(signers),
            Message(list(instructions), signers[0].pubkey()),
            self.svm.latest_blockhash(),
        )
        size = len(bytes(tx))
        if size > MAX_TRANSACTION_SIZE:
            raise LedgerError(operation, f"transaction too large ({size} > 1232 bytes)")
        result = self.svm.send_transaction(tx)
        # A fresh blockhash per transaction: two identical transactions stay distinct.
        self.svm.expire_blockhash()
        if isinstance(result, TransactionMetadata):
            slot = self.svm.get_clock().slot
            logs = list(result.logs())
            self._history.append((slot, logs))
            return Sent(
                str(result.signature()),
                result.fee(),
                result.compute_units_consumed(),
                slot,
                size,
                tuple(logs),
            )
        err = result.err()
        logs = list(result.meta().logs())
        raise LedgerError(
            operation, describe(err, logs, self.program_id, _programs_of(instructions))
        )

    def account(self, key: Pubkey, commitment: str | None = None) -> AccountView | None:
        """LiteSVM has no forks and no commitment levels: every executed transaction is
        final at once, so every level reads the same account."""
        raw = self.svm.get_account(key)
        if raw is None or (raw.lamports == 0 and not raw.data):
            return None
        return AccountView(raw.lamports, raw.owner, bytes(raw.data))

    def clock(self) -> Clock:
        return self.svm.get_clock()

    def set_clock(self, clock: Clock) -> None:
        self.svm.set_clock(clock)

    def rent(self, size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(size)

    def airdrop(self, key: Pubkey, lamports: int) -> None:
        result = self.svm.airdrop(key, lamports)
        if hasattr(result, "err"):
            raise LedgerError("airdrop", str(result.err()))

    def program_logs(self, cursor: str | None) -> tuple[str | None, list[tuple[int, list[str]]]]:
        start = int(cursor) if cursor else 0
        return str(len(self._history)), self._history[start:]


T = TypeVar("T")


class _LoopThread:
    """solana-py 0.41 only ships an asyncio client, while ChainBackend is synchronous (and
    may be called from inside the node's running loop): run the client on a private loop
    in a daemon thread and wait for each call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class RpcLedger:
    """A real cluster (solana-test-validator, devnet, mainnet) over JSON-RPC.

    Not exercised by the test suite (no cluster is reachable here); it shares every
    instruction and transaction builder with the embedded ledger.
    """

    def __init__(self, url: str, program_id: Pubkey, commitment: str = "confirmed") -> None:
        from solana.rpc.async_api import AsyncClient
        from solana.rpc.commitment import Commitment

        self.program_id = program_id
        self._commitment = Commitment(commitment)
        self._runner = _LoopThread()
        self._client = AsyncClient(url, commitment=self._commitment)

    def send(
        self, operation: str, instructions: Sequence[Instruction], signers: Sequence[Keypair]
    ) -> Sent:
        from solana.rpc.core import RPCException

        client = self._client
        blockhash = self._runner.run(client.get_latest_blockhash()).value.blockhash
        tx = Transaction(list(signers), Message(list(instructions), signers[0].pubkey()), blockhash)
        size = len(bytes(tx))
        if size > MAX_TRANSACTION_SIZE:
            raise LedgerError(operation, f"transaction too large ({size} > 1232 bytes)")
        try:
            sig = self._runner.run(client.send_raw_transaction(bytes(tx))).value
            self._runner.run(client.confirm_transaction(sig, self._commitment))
        except RPCException as exc:  # preflight simulation refused it
            data = getattr(exc.args[0], "data", None) if exc.args else None
            err = getattr(data, "err", None)
            logs = list(getattr(data, "logs", None) or [])
            reason = (
                describe(err, logs, self.program_id, _programs_of(instructions))
                if isinstance(err, TransactionErrorInstructionError)
                else str(exc)
            )
            raise LedgerError(operation, reason) from exc
        return self._fetch(operation, sig, size)

    def _fetch(self, operation: str, sig: Signature, size: int) -> Sent:
        for _ in range(20):
            resp = self._runner.run(
                self._client.get_transaction(
                    sig, commitment=self._commitment, max_supported_transaction_version=0
                )
            )
            if resp.value is not None:
                meta = resp.value.transaction.meta
                logs = list(meta.log_messages or []) if meta else []
                if meta is not None and meta.err is not None:
                    raise LedgerError(operation, describe(meta.err, logs, self.program_id))
                cu = meta.compute_units_consumed if meta else None
                return Sent(
                    str(sig),
                    meta.fee if meta else 0,
                    cu if isinstance(cu, int) else 0,
                    resp.value.slot,
                    size,
                    tuple(logs),
                )
            time.sleep(0.5)
        raise LedgerError(operation, f"transaction {sig} confirmed but not retrievable")

    def account(self, key: Pubkey, commitment: str | None = None) -> AccountView | None:
        from solana.rpc.commitment import Commitment

        level = self._commitment if commitment is None else Commitment(commitment)
        value = self._runner.run(self._client.get_account_info(key, commitment=level)).value
        if value is None:
            return None
        return AccountView(value.lamports, value.owner, bytes(value.data))

    def clock(self) -> Clock:
        view = self.account(CLOCK)
        if view is None:
            raise LedgerError("clock", "the Clock sysvar is not readable")
        return Clock.from_bytes(view.data)

    def rent(self, size: int) -> int:
        return self._runner.run(self._client.get_minimum_balance_for_rent_exemption(size)).value

    def airdrop(self, key: Pubkey, lamports: int) -> None:
        sig = self._runner.run(self._client.request_airdrop(key, lamports)).value
        self._runner.run(self._client.confirm_transaction(sig, self._commitment))

    def program_logs(self, cursor: str | None) -> tuple[str | None, list[tuple[int, list[str]]]]:
        until = Signature.from_string(cursor) if cursor else None
        infos = self._runner.run(
            self._client.get_signatures_for_address(self.program_id, until=until, limit=1000)
        ).value
        out: list[tuple[int, list[str]]] = []
        for info in reversed(infos):  # the RPC lists newest first
            if info.err is not None:
                continue
            resp = self._runner.run(
                self._client.get_transaction(
                    info.signature,
                    commitment=self._commitment,
                    max_supported_transaction_version=0,
                )
            )
            meta = resp.value.transaction.meta if resp.value else None
            out.append((info.slot, list(meta.log_messages or []) if meta else []))
        new_cursor = str(infos[0].signature) if infos else cursor
        return new_cursor, out
