"""`BitcoinLedger` over a real bitcoind's JSON-RPC (regtest, signet, testnet or mainnet).

Standard library only (urllib, json). Amounts come back from bitcoind as decimal BTC; they are
parsed as `Decimal` and converted to int satoshi exactly, never through float.

bitcoind has no index of spends, so `find_spending_tx` and the event stream come from a scan
of recent blocks (`scan_depth`, default 1000) kept up to date on every poll; it follows reorgs
by walking back until the stored hash at a height matches the node's. `get_tx_confirmations`
for transactions not in the node's wallet needs bitcoind started with `-txindex`, except for
transactions seen in the scanned window.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import threading
import urllib.parse
import weakref
from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

from .interface import (
    Coin,
    EventCallback,
    EventKind,
    LedgerError,
    LedgerEvent,
    OutPoint,
    TransactionRejected,
    Utxo,
)

COIN = Decimal(100_000_000)
RPC_INVALID_ADDRESS_OR_KEY = -5  # "No such mempool or blockchain transaction", unknown block
RPC_VERIFY_ERRORS = (-25, -26, -27)  # verify error, rejected, already in chain
BATCH = 50  # calls per JSON-RPC batch in the block scan
RECENT_TXS = 20_000  # raw txs kept from the latest scanned blocks (events read them)


class RpcError(LedgerError):
    """bitcoind answered with a JSON-RPC error (or an HTTP error without one)."""

    def __init__(self, code: int, message: str, method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        super().__init__(f"{method}: error {code}: {message}")


def btc_to_sat(value: Decimal | int | str) -> int:
    """Exact conversion of a bitcoind amount (decimal BTC) to satoshi."""
    sat = Decimal(value) * COIN
    if sat != sat.to_integral_value():
        raise ValueError(f"amount {value} is not a whole number of satoshi")
    return int(sat)


def _is_coinbase(raw: bytes) -> bool:
    from .txparse import parse_tx

    return parse_tx(raw).is_coinbase


class BitcoindRpcLedger:
    """A bitcoind node seen through the `BitcoinLedger` interface."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:18443",
        user: str | None = None,
        password: str | None = None,
        *,
        cookie_file: str | Path | None = None,
        timeout: float = 30.0,
        scan_depth: int = 1000,
        from_height: int | None = None,
    ) -> None:
        """Connect to `url`; authenticate with user/password or bitcoind's `.cookie` file.

        The event stream starts at the tip when first read, or at `from_height` when given
        (a restarted node resumes where it stopped: what was mined meanwhile is reported).
        """
        self.url = url
        self.timeout = timeout
        self.scan_depth = scan_depth
        self.from_height = from_height
        if cookie_file is not None:
            user, password = Path(cookie_file).read_text().strip().split(":", 1)
        self._auth = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if user is not None
            else None
        )
        self._ids = itertools.count(1)
        self._path = urllib.parse.urlsplit(url).path or "/"
        #: one kept-alive connection per thread: a node reads blocks on a thread of its own
        #: (``poll_events``) while its thread sends (a penalty must not wait for a scan)
        self._local = threading.local()
        self._conns: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        #: the block scan's state (what was scanned, the spends and heights it found, the
        #: events not yet polled) is written by ``sync``, which a node runs on a thread of
        #: its own (``poll_events``) while its thread may sync too (``find_spending_tx``,
        #: ``mine``): one scan at a time, and a reader of that state waits for it
        self._scan_lock = threading.RLock()
        #: raw txs of recently scanned blocks: the events' txs, read without a call each
        self._recent_raw: dict[str, bytes] = {}
        self._scanned: dict[int, str] = {}  # height -> hash of the blocks we indexed
        self._block_spends: dict[str, list[OutPoint]] = {}
        self._block_txids: dict[str, list[str]] = {}
        self._spends: dict[OutPoint, tuple[str, bytes]] = {}  # outpoint -> (txid, raw)
        self._tx_heights: dict[str, int] = {}
        self._events: list[LedgerEvent] = []
        self._subscribers: list[EventCallback] = []
        self._synced = False

    # -- transport ------------------------------------------------------------------------

    def request_body(self, method: str, params: list[Any]) -> bytes:
        """The JSON-RPC 1.0 request bitcoind expects (its default dialect)."""
        return json.dumps(
            {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": params}
        ).encode()

    def _post(self, body: bytes, what: str) -> bytes:
        """POST on this thread's kept-alive connection (one reconnect if the server closed
        it)."""
        headers = {"Content-Type": "application/json"}
        if self._auth:
            headers["Authorization"] = self._auth
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request("POST", self._path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, ConnectionError) as exc:
                self._close()
                if attempt == 0 and not isinstance(exc, ConnectionRefusedError):
                    continue  # a kept-alive connection the server dropped: retry once
                raise RpcError(-1, f"cannot reach bitcoind at {self.url}: {exc}", what) from exc
            except OSError as exc:
                self._close()
                raise RpcError(-1, f"cannot reach bitcoind at {self.url}: {exc}", what) from exc
            if resp.getheader("Connection", "").lower() == "close":
                self._close()
            # bitcoind answers RPC errors with HTTP 500 (404 for unknown method) and a body
            if resp.status != 200 and not data:
                raise RpcError(resp.status, f"HTTP {resp.status} {resp.reason}", what)
            return data
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            url = urllib.parse.urlsplit(self.url)
            https = url.scheme == "https"
            cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
            conn = self._local.conn = cls(url.hostname or "", url.port, timeout=self.timeout)
            self._conns.add(conn)
        return conn

    def close(self) -> None:
        """Close every thread's kept connection (a later call opens another)."""
        for conn in list(self._conns):
            conn.close()

    def _close(self) -> None:
        """Drop this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            self._conns.discard(conn)

    def call(self, method: str, *params: Any) -> Any:
        """One RPC call; returns `result` or raises `RpcError`."""
        return self.parse_response(
            method, self._post(self.request_body(method, list(params)), method)
        )

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one JSON-RPC batch (one round trip); results in order.

        Raises `RpcError` for the first call that failed.
        """
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = json.dumps(
            [
                {"jsonrpc": "1.0", "id": i, "method": m, "params": p}
                for i, (m, p) in zip(ids, calls, strict=True)
            ]
        ).encode()
        data = self._post(body, calls[0][0])
        try:
            replies = json.loads(data, parse_float=Decimal)
        except ValueError as exc:
            raise RpcError(-1, f"invalid JSON from bitcoind: {data[:200]!r}", "batch") from exc
        if not isinstance(replies, list):
            err = replies.get("error") if isinstance(replies, dict) else None
            raise RpcError(int((err or {}).get("code", -1)), str(err or replies), "batch")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        results = []
        for i, (method, _) in zip(ids, calls, strict=True):
            reply = by_id.get(i)
            if reply is None:
                raise RpcError(-1, "missing reply in batch", method)
            err = reply.get("error")
            if err:
                raise RpcError(int(err.get("code", -1)), str(err.get("message", err)), method)
            results.append(reply.get("result"))
        return results

    @staticmethod
    def parse_response(method: str, body: bytes) -> Any:
        """Decode a JSON-RPC response; amounts stay exact (`Decimal`)."""
        try:
            doc = json.loads(body, parse_float=Decimal)
        except ValueError as exc:
            raise RpcError(-1, f"invalid JSON from bitcoind: {body[:200]!r}", method) from exc
        err = doc.get("error")
        if err:
            raise RpcError(int(err.get("code", -1)), str(err.get("message", err)), method)
        return doc.get("result")

    # -- reading --------------------------------------------------------------------------

    def tip_height(self) -> int:
        """getblockcount."""
        return int(self.call("getblockcount"))

    def tip_hash(self) -> str:
        """getbestblockhash."""
        return str(self.call("getbestblockhash"))

    def tip_time(self) -> int:
        """nTime of the tip (getblockheader)."""
        return int(self.call("getblockheader", self.tip_hash())["time"])

    def block_header(self, block_hash: str) -> tuple[int, int]:
        """Height and nTime of a block (getblockheader): one call, and both of the block
        the hash names, where getblockcount then the tip's header could straddle a new
        block. KeyError if bitcoind does not know the block, or it is no longer on the
        active chain (reorganised away: bitcoind still answers, with confirmations -1)."""
        header = self._active_header(block_hash)
        return int(header["height"]), int(header["time"])

    def ancestor_headers(self, block_hash: str, count: int) -> list[tuple[int, int]]:
        """Walked back through ``previousblockhash``: one getblockheader per block (each
        names its parent, so a reorganisation meanwhile cannot mix two branches)."""
        out: list[tuple[int, int]] = []
        header = self._active_header(block_hash)
        while len(out) < count and "previousblockhash" in header:
            header = self._active_header(str(header["previousblockhash"]))
            out.append((int(header["height"]), int(header["time"])))
        return out

    def _active_header(self, block_hash: str) -> dict[str, Any]:
        """getblockheader; KeyError if unknown or off the active chain."""
        try:
            header = self.call("getblockheader", block_hash)
        except RpcError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                raise KeyError(block_hash) from exc
            raise
        if int(header.get("confirmations", 0)) < 0:
            raise KeyError(block_hash)
        return header  # type: ignore[no-any-return]

    def median_time_past(self) -> int:
        """Median time past of the tip (getblockheader mediantime)."""
        return int(self.call("getblockheader", self.tip_hash())["mediantime"])

    def get_block_txids(self, block_hash: str) -> list[str]:
        """getblock verbosity 1."""
        return [str(t) for t in self.call("getblock", block_hash, 1)["tx"]]

    def get_raw_tx(self, txid: str) -> bytes | None:
        """getrawtransaction (mempool, wallet, or any tx with -txindex)."""
        recent = self._recent_raw.get(txid)
        if recent is not None:
            return recent
        try:
            return bytes.fromhex(self.call("getrawtransaction", txid, False))
        except RpcError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise

    def get_tx_confirmations(self, txid: str) -> int | None:
        """getrawtransaction verbose: `confirmations`, None if absent or unconfirmed."""
        try:
            info = self.call("getrawtransaction", txid, True)
        except RpcError as exc:
            if exc.code != RPC_INVALID_ADDRESS_OR_KEY:
                raise
            height = self._tx_heights.get(txid)
            return None if height is None else self.tip_height() - height + 1
        conf = info.get("confirmations")
        return int(conf) if conf else None

    def get_utxo(self, outpoint: OutPoint) -> Utxo | None:
        """gettxout excluding the mempool (confirmed outputs only, like the embedded chain)."""
        txid, vout = outpoint
        info = self.call("gettxout", txid, vout, False)
        if info is None:
            return None
        if "bestblock" in info:  # confirmations are counted from this block
            tip = int(self.call("getblockheader", info["bestblock"])["height"])
        else:
            tip = self.tip_height()
        height = tip - int(info["confirmations"]) + 1
        return Utxo(btc_to_sat(info["value"]), bytes.fromhex(info["scriptPubKey"]["hex"]), height)

    def find_spending_tx(self, outpoint: OutPoint) -> bytes | None:
        """A confirmed spend of `outpoint` within the last `scan_depth` blocks."""
        with self._scan_lock:
            self.sync()
            found = self._spends.get(OutPoint(*outpoint))
        return None if found is None else found[1]

    def estimate_fee_rate(self, conf_target: int = 6) -> int | None:
        """estimatesmartfee in sat/kvB (rounded up), or None when the node has no estimate."""
        res = self.call("estimatesmartfee", conf_target)
        rate = res.get("feerate") if isinstance(res, dict) else None
        if rate is None:
            return None
        return int((Decimal(rate) * COIN).to_integral_value(rounding=ROUND_CEILING))

    def scan_utxos(self, scripts: Sequence[bytes]) -> list[Coin]:
        """scantxoutset with one ``raw(<script>)`` descriptor per script (confirmed UTXOs).

        Bitcoin Core scans its whole UTXO set: instant on regtest and signet, minutes on
        mainnet. Nodes that predate the ``coinbase`` field are asked for the transaction.
        """
        if not scripts:
            return []
        descriptors = [f"raw({bytes(s).hex()})" for s in dict.fromkeys(bytes(s) for s in scripts)]
        res = self.call("scantxoutset", "start", descriptors)
        coins = []
        for u in res.get("unspents", []):
            op = OutPoint(str(u["txid"]), int(u["vout"]))
            coinbase = u.get("coinbase")
            if coinbase is None:
                raw = self.get_raw_tx(op.txid)
                coinbase = raw is not None and _is_coinbase(raw)
            coins.append(
                Coin(
                    op,
                    btc_to_sat(u["amount"]),
                    bytes.fromhex(u["scriptPubKey"]),
                    int(u["height"]),
                    bool(coinbase),
                )
            )
        return sorted(coins, key=lambda c: c.outpoint)

    # -- writing --------------------------------------------------------------------------

    def broadcast(self, raw_tx: bytes) -> str:
        """sendrawtransaction; bitcoind's policy/consensus refusals become TransactionRejected."""
        try:
            return str(self.call("sendrawtransaction", bytes(raw_tx).hex()))
        except RpcError as exc:
            if exc.code in RPC_VERIFY_ERRORS:
                raise TransactionRejected(exc.message) from exc
            raise

    def mine(self, n: int = 1, to_script: bytes | None = None) -> list[str]:
        """Regtest only: generatetodescriptor with raw(<script>) (OP_TRUE by default)."""
        script = b"\x51" if to_script is None else to_script
        desc = self._with_checksum(f"raw({script.hex()})")
        hashes = [str(h) for h in self.call("generatetodescriptor", n, desc)]
        self.sync()
        return hashes

    def _with_checksum(self, desc: str) -> str:
        return str(self.call("getdescriptorinfo", desc)["descriptor"])

    # -- events ---------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring the block scan up to the node's tip, emitting events (reorg-aware).

        Block hashes are read in batches of `BATCH` walking back from the tip until they
        agree with what was scanned; the new blocks are then read in batches too. Safe to
        call from several threads: one scan runs at a time.
        """
        with self._scan_lock:
            self._sync()

    def _sync(self) -> None:
        tip = self.tip_height()
        first = not self._synced
        self._synced = True
        lowest = max(0, tip - self.scan_depth + 1)
        replay = self.from_height if first else None
        if replay is not None:
            lowest = max(0, min(lowest, replay))
        # walk back from the tip to the highest height where our view agrees with the node
        fork = tip
        new: list[tuple[int, str]] = []
        agreed = False
        # The first batch asks for the blocks above our top plus the top itself (usually
        # one or two hashes a poll), not BATCH: a node polls every tick, blocks are rare.
        top = max(self._scanned, default=None)
        step = BATCH if top is None else max(1, min(BATCH, tip - top + 1))
        while fork >= lowest and not agreed:
            heights = list(range(fork, max(lowest, fork - step + 1) - 1, -1))
            step = BATCH
            hashes = self.batch([("getblockhash", [h]) for h in heights])
            for height, block_hash in zip(heights, hashes, strict=True):
                if self._scanned.get(height) == str(block_hash):
                    agreed = True
                    break
                new.append((height, str(block_hash)))
                fork = height - 1
        # disconnect what we hold above the agreement point, newest first
        for height in sorted((h for h in self._scanned if h > fork), reverse=True):
            self._disconnect(height, self._scanned.pop(height))
        if len(self._recent_raw) > RECENT_TXS:
            for txid in list(self._recent_raw)[: RECENT_TXS // 2]:
                del self._recent_raw[txid]
        todo = list(reversed(new))
        for i in range(0, len(todo), BATCH):
            chunk = todo[i : i + BATCH]
            blocks = self.batch([("getblock", [h, 2]) for _, h in chunk])
            for (height, block_hash), block in zip(chunk, blocks, strict=True):
                emit = not first or (replay is not None and height >= replay)
                self._connect(height, block_hash, block, emit=emit)
        for height in [h for h in self._scanned if h < lowest]:
            self._forget(self._scanned.pop(height))

    def _connect(self, height: int, block_hash: str, block: Any, *, emit: bool) -> None:
        spends: list[OutPoint] = []
        txids: list[str] = []
        for tx in block["tx"]:
            txids.append(tx["txid"])
            self._tx_heights[tx["txid"]] = height
            raw = bytes.fromhex(tx["hex"])
            if emit:
                self._recent_raw[tx["txid"]] = raw
            for vin in tx["vin"]:
                if "coinbase" in vin:
                    continue
                op = OutPoint(vin["txid"], int(vin["vout"]))
                self._spends[op] = (tx["txid"], raw)
                spends.append(op)
        self._scanned[height] = block_hash
        self._block_spends[block_hash] = spends
        self._block_txids[block_hash] = txids
        if emit:
            self._emit(LedgerEvent(EventKind.BLOCK_CONNECTED, height, block_hash))
            for txid in txids:
                self._emit(LedgerEvent(EventKind.TX_CONFIRMED, height, block_hash, txid))

    def _disconnect(self, height: int, block_hash: str) -> None:
        txids = self._block_txids.get(block_hash, [])
        self._forget(block_hash)
        for txid in txids:
            # no longer confirmed: asked of the node (its mempool) from now on, so a claim a
            # reorg took away reads as unsent and is sent again (pruned blocks keep theirs)
            self._recent_raw.pop(txid, None)
        self._emit(LedgerEvent(EventKind.BLOCK_DISCONNECTED, height, block_hash))
        for txid in txids:
            self._emit(LedgerEvent(EventKind.TX_UNCONFIRMED, height, block_hash, txid))

    def _forget(self, block_hash: str) -> None:
        for op in self._block_spends.pop(block_hash, []):
            self._spends.pop(op, None)
        for txid in self._block_txids.pop(block_hash, []):
            self._tx_heights.pop(txid, None)

    def _emit(self, event: LedgerEvent) -> None:
        self._events.append(event)
        for cb in self._subscribers:
            cb(event)

    def poll_events(self) -> list[LedgerEvent]:
        """Sync with the node, then return the events since the last poll (from any
        thread: the events a sync on another thread found are in the answer)."""
        with self._scan_lock:
            self.sync()
            events, self._events = self._events, []
        return events

    def requeue_events(self, events: list[LedgerEvent]) -> None:
        """Put back what the last poll took and its caller could not use: polled first."""
        with self._scan_lock:
            self._events = [*events, *self._events]

    def subscribe(self, callback: EventCallback) -> None:
        """Call `callback` for every event found by later syncs."""
        self._subscribers.append(callback)
