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
from solders.hash import Hash
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
    executable: bool = False


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


class FailedSend(LedgerError):
    """The ledger executed the transaction and it failed, but its fee was charged (Solana
    charges a failed transaction's fee): ``sent`` says what it cost."""

    def __init__(self, operation: str, reason: str, sent: Sent) -> None:
        super().__init__(operation, reason)
        self.sent = sent


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
        meta = result.meta()
        logs = list(meta.logs())
        raise FailedSend(
            operation,
            describe(err, logs, self.program_id, _programs_of(instructions)),
            Sent(
                str(meta.signature()),
                meta.fee(),
                meta.compute_units_consumed(),
                self.svm.get_clock().slot,
                size,
                tuple(logs),
            ),
        )

    def account(self, key: Pubkey, commitment: str | None = None) -> AccountView | None:
        """LiteSVM has no forks and no commitment levels: every executed transaction is
        final at once, so every level reads the same account."""
        raw = self.svm.get_account(key)
        if raw is None or (raw.lamports == 0 and not raw.data):
            return None
        return AccountView(raw.lamports, raw.owner, bytes(raw.data), raw.executable)

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
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class RpcLedger:
    """A Solana cluster over JSON-RPC: the devnet server (chenilles_solana.devnet),
    solana-test-validator, devnet, mainnet. Shares every transaction builder with the
    embedded ledger; tests run it against the devnet server as a separate process.

    ``from_slot``: the event feed starts at this slot (older program transactions are
    skipped), so a restarted node resumes where it was instead of re-reading history.
    """

    #: getSignaturesForAddress answers at most this many per call; the feed pages back.
    PAGE = 1000

    def __init__(
        self,
        url: str,
        program_id: Pubkey,
        commitment: str = "confirmed",
        *,
        from_slot: int | None = None,
        timeout: float = 30.0,
    ) -> None:
        from solana.rpc.async_api import AsyncClient
        from solana.rpc.commitment import Commitment

        self.url = url
        self.program_id = program_id
        self.from_slot = from_slot
        self._commitment = Commitment(commitment)
        self._runner = _LoopThread()
        self._client = AsyncClient(url, commitment=self._commitment, timeout=timeout)
        self._sent_with: dict[Signature, Hash] = {}  # our recent transactions' blockhashes
        self._closed = False

    def close(self) -> None:
        """Closes the HTTP client and its thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._runner.run(self._client.close())
        self._runner.stop()

    def advance_clock(self, seconds: int) -> None:
        """Move the cluster's clock ``seconds`` ahead: only a Chenilles devnet server can
        (its ``devnetAdvanceClock`` method); a real cluster's clock cannot be moved."""
        import json
        import urllib.request

        body = {"jsonrpc": "2.0", "id": 1, "method": "devnetAdvanceClock", "params": [seconds]}
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            reply = json.loads(answer.read())
        error = reply.get("error")
        if error is not None:
            if error.get("code") == -32601:  # Method not found: a real cluster
                raise NotImplementedError("a real cluster's clock cannot be moved")
            raise ValueError(error.get("message", "the clock was not advanced"))

    def _blockhash(self, fresh_from: Hash | None) -> tuple[Hash, int]:
        """The latest blockhash (and its last valid height); a different one than
        ``fresh_from`` if given, waiting for the next slot (up to ~10 s)."""
        for _ in range(100):
            value = self._runner.run(self._client.get_latest_blockhash()).value
            if value.blockhash != fresh_from:
                return value.blockhash, value.last_valid_block_height
            time.sleep(0.1)
        raise LedgerError("send", "the cluster's blockhash did not change for 10 s")

    def send(
        self, operation: str, instructions: Sequence[Instruction], signers: Sequence[Keypair]
    ) -> Sent:
        from solana.rpc.core import RPCException

        message = Message(list(instructions), signers[0].pubkey())
        blockhash, last_valid = self._blockhash(None)
        tx = Transaction(list(signers), message, blockhash)
        if self._sent_with.get(tx.signatures[0]) == blockhash:
            # The very same transaction again (a retried withdraw, say): under the same
            # blockhash it has the same signature and the cluster would drop it as already
            # processed. Like the embedded ledger, make it a new one with a new blockhash.
            blockhash, last_valid = self._blockhash(blockhash)
            tx = Transaction(list(signers), message, blockhash)
        size = len(bytes(tx))
        if size > MAX_TRANSACTION_SIZE:
            raise LedgerError(operation, f"transaction too large ({size} > 1232 bytes)")
        try:
            sig = self._runner.run(self._client.send_raw_transaction(bytes(tx))).value
        except RPCException as exc:  # refused by the preflight checks
            raise LedgerError(operation, self._refusal(exc, instructions)) from exc
        self._remember(sig, blockhash)
        self._confirm(operation, sig, last_valid)
        return self._fetch(operation, sig, size, instructions)

    def _refusal(self, exc: Exception, instructions: Sequence[Instruction]) -> str:
        """A readable reason for a refused send: the program's error name if the
        preflight simulation failed in an instruction, else the RPC's message."""
        error = exc.args[0] if exc.args else None
        data = getattr(error, "data", None)
        err = getattr(data, "err", None)
        logs = list(getattr(data, "logs", None) or [])
        if isinstance(err, TransactionErrorInstructionError):
            return describe(err, logs, self.program_id, _programs_of(instructions))
        return str(getattr(error, "message", None) or exc)

    def _remember(self, sig: Signature, blockhash: Hash) -> None:
        self._sent_with[sig] = blockhash
        if len(self._sent_with) > 1000:
            for old in list(self._sent_with)[:500]:
                del self._sent_with[old]

    def _confirm(self, operation: str, sig: Signature, last_valid: int) -> None:
        from solana.rpc.core import TransactionExpiredBlockheightExceededError

        try:
            self._runner.run(
                self._client.confirm_transaction(
                    sig, self._commitment, sleep_seconds=0.2, last_valid_block_height=last_valid
                ),
                timeout=120,
            )
        except TransactionExpiredBlockheightExceededError as exc:
            raise LedgerError(
                operation, f"transaction {sig} expired before the cluster processed it"
            ) from exc

    def _fetch(
        self, operation: str, sig: Signature, size: int, instructions: Sequence[Instruction]
    ) -> Sent:
        for _ in range(50):
            resp = self._runner.run(
                self._client.get_transaction(
                    sig, commitment=self._commitment, max_supported_transaction_version=0
                )
            )
            if resp.value is not None:
                meta = resp.value.transaction.meta
                logs = list(meta.log_messages or []) if meta else []
                cu = meta.compute_units_consumed if meta else None
                sent = Sent(
                    str(sig),
                    meta.fee if meta else 0,
                    cu if isinstance(cu, int) else 0,
                    resp.value.slot,
                    size,
                    tuple(logs),
                )
                if meta is not None and meta.err is not None:
                    # Landed and failed (it passed the preflight, then lost a race: both
                    # watchers concluding at once, say): the fee was charged, and the books
                    # must show it, as the embedded ledger's FailedSend does.
                    raise FailedSend(
                        operation,
                        describe(meta.err, logs, self.program_id, _programs_of(instructions)),
                        sent,
                    )
                return sent
            time.sleep(0.2)
        raise LedgerError(operation, f"transaction {sig} confirmed but not retrievable")

    def account(self, key: Pubkey, commitment: str | None = None) -> AccountView | None:
        from solana.rpc.commitment import Commitment

        level = self._commitment if commitment is None else Commitment(commitment)
        value = self._runner.run(self._client.get_account_info(key, commitment=level)).value
        if value is None:
            return None
        return AccountView(value.lamports, value.owner, bytes(value.data), value.executable)

    def clock(self) -> Clock:
        view = self.account(CLOCK)
        if view is None:
            raise LedgerError("clock", "the Clock sysvar is not readable")
        return Clock.from_bytes(view.data)

    def rent(self, size: int) -> int:
        return self._runner.run(self._client.get_minimum_balance_for_rent_exemption(size)).value

    def airdrop(self, key: Pubkey, lamports: int) -> None:
        from solana.rpc.core import RPCException

        try:
            sig = self._runner.run(self._client.request_airdrop(key, lamports)).value
        except RPCException as exc:
            raise LedgerError("airdrop", self._refusal(exc, [])) from exc
        _, last_valid = self._blockhash(None)
        self._confirm("airdrop", sig, last_valid)

    def program_logs(self, cursor: str | None) -> tuple[str | None, list[tuple[int, list[str]]]]:
        """Logs of the program's successful transactions after ``cursor`` (a signature),
        oldest first. The RPC lists newest first, a page at a time: page back with
        ``before`` until the cursor (or ``from_slot``) is reached, so a burst of more than
        one page between two polls loses nothing."""
        until = Signature.from_string(cursor) if cursor else None
        infos: list[Any] = []
        before: Signature | None = None
        while True:
            page = self._runner.run(
                self._client.get_signatures_for_address(
                    self.program_id,
                    before=before,
                    until=until,
                    limit=self.PAGE,
                    commitment=self._commitment,
                )
            ).value
            infos += page
            if len(page) < self.PAGE:
                break
            if self.from_slot is not None and page[-1].slot < self.from_slot:
                break
            before = page[-1].signature
        new_cursor = str(infos[0].signature) if infos else cursor
        out: list[tuple[int, list[str]]] = []
        for info in reversed(infos):
            if info.err is not None:  # failed: its effects (and events) were rolled back
                continue
            if self.from_slot is not None and info.slot < self.from_slot:
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
        return new_cursor, out
