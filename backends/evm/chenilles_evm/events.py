"""Adjudicator logs as the hub's chain events (``chenilles_hub.backend``).

The watcher follows chain-neutral events only; this is the one place that knows which
adjudicator event means what:

========================  =========================================================
adjudicator event         chain event
========================  =========================================================
Deposited                 Funded(channel, asset, participant, amount received)
Registered                Registered(channel, version, timeout)
Progressed (app move)     Registered(channel, version, timeout): a forced move
                          re-registers the channel at a new version and deadline;
                          then Progressed(channel, version, timeout, mover,
                          balances, app data, final): the state it registered
Concluded,                Concluded(channel, version)
ConcludedCooperatively
PreimageRevealed          PreimageRevealed(payment hash, preimage, block timestamp)
HtlcResolved, Withdrawn,  (not reported: consequences of Concluded, which pays both
PayoutCredited            participants, or of a ``withdraw`` call; a payout the
                          conclusion could not send is credited, and the owner's
                          ``withdraw`` duty pulls it)
========================  =========================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from web3 import Web3
from web3.exceptions import Web3RPCError

from chenilles_hub.backend import (
    ChainEvent,
    Concluded,
    Funded,
    NewBlock,
    PreimageRevealed,
    Progressed,
    Registered,
    Reorged,
)
from chenilles_hub.core import AssetBalances

from .adjudicator import AdjudicatorClient, Event
from .mapping import asset_of

__all__ = ["REORG_WINDOW", "EventStream", "to_chain_event", "to_chain_events"]


def to_chain_event(chain: str, event: Event) -> ChainEvent | None:
    """The chain event for one decoded adjudicator log, or ``None`` if the hub ignores it."""
    a = event.args
    if event.name == "Deposited":
        return Funded(
            channel_id=bytes(a["channelId"]),
            asset=asset_of(chain, a["asset"]),
            participant=int(a["participant"]),
            amount=int(a["amount"]),
        )
    if event.name in ("Registered", "Progressed"):
        return Registered(bytes(a["channelId"]), int(a["version"]), int(a["timeout"]))
    if event.name in ("Concluded", "ConcludedCooperatively"):
        return Concluded(bytes(a["channelId"]), int(a["version"]))
    if event.name == "PreimageRevealed":
        return PreimageRevealed(bytes(a["paymentHash"]), bytes(a["preimage"]), int(a["time"]))
    return None


def progressed(chain: str, event: Event) -> Progressed:
    """The forced move a ``Progressed`` log records, with the state it registered."""
    a = event.args
    state = a["state"]
    return Progressed(
        channel_id=bytes(a["channelId"]),
        version=int(a["version"]),
        timeout=int(a["timeout"]),
        mover=int(a["mover"]),
        balances=tuple(
            AssetBalances(asset_of(chain, asset), (int(b[0]), int(b[1])))
            for asset, b in zip(state.assets, state.balances, strict=True)
        ),
        app_data=bytes(state.app_data),
        final=bool(state.is_final),
    )


def to_chain_events(chain: str, events: Iterable[Event]) -> list[ChainEvent]:
    """Chain events for adjudicator logs, in log order (block, then log index)."""
    out: list[ChainEvent] = []
    for e in sorted(events, key=lambda e: (e.block_number, e.log_index)):
        c = to_chain_event(chain, e)
        if c is not None:
            out.append(c)
        if e.name == "Progressed":
            out.append(progressed(chain, e))
    return out


# --- the reorg-aware stream ---------------------------------------------------------------

#: How many recent block hashes the stream remembers (a reorg deeper than this is read
#: again from the adjudicator's first block).
REORG_WINDOW = 256


class EventStream:
    """Adjudicator events at the chain's tip, for ``EvmBackend.poll_events``, that notices
    when the chain reorganizes under it.

    The stream remembers the hash of every block it reported an event from and of the tip
    at each poll (the last ``REORG_WINDOW`` of them). A block's hash commits to all its
    ancestors, so one comparison per poll tells whether the chain it read is still the
    chain: the hash now at the last tip's height. When it differs (or that height is gone,
    as after ``evm_revert``), the stream walks back through the remembered hashes to the
    newest one still on the chain (the fork is just above it), reports ``Reorged`` (the
    retracted depth and the transactions of the events it had reported from the retracted
    blocks), then every event of each channel those events concerned, from the channel's
    first (the node re-derives what the new branch says of it: a registration our
    refutation had answered is stale again, a conclusion may be gone), then reads on from
    the fork as usual.
    """

    def __init__(
        self, w3: Web3, adjudicator: AdjudicatorClient, chain: str, cursor: int, origin: int
    ) -> None:
        self.w3 = w3
        self.adjudicator = adjudicator
        self.chain = chain
        #: the first block whose logs are not reported yet
        self.cursor = cursor
        #: where a channel's history starts (the adjudicator's deployment)
        self.origin = origin
        self._hashes: dict[int, bytes] = {}
        #: block -> (channel ids, txids) of the events reported from it
        self._reported: dict[int, tuple[set[bytes], set[bytes]]] = {}
        self._tip: int | None = None

    def poll(self) -> list[ChainEvent]:
        """The events since the last poll, or an error and no change: a read that fails
        half-way (after the fork was found and its blocks dropped, say) must leave the
        stream as it was, or the next poll would never report what that one found."""
        saved = (
            self.cursor,
            dict(self._hashes),
            {n: (set(c), set(t)) for n, (c, t) in self._reported.items()},
            self._tip,
        )
        try:
            return self._poll()
        except BaseException:
            self.cursor, self._hashes, self._reported, self._tip = saved
            raise

    def _poll(self) -> list[ChainEvent]:
        head = self.w3.eth.get_block("latest")
        number = int(head["number"])
        out: list[ChainEvent] = []
        replayed: set[bytes] = set()
        fork = self._fork_point()
        if fork is not None:
            replayed = self._retract(fork, number, out)
        if number >= self.cursor:
            logs = self.w3.eth.get_logs(
                {"address": self.adjudicator.address, "fromBlock": self.cursor, "toBlock": number}
            )
            fresh = [e for e in self._remember(logs) if e.args.get("channelId") not in replayed]
            out += to_chain_events(self.chain, fresh)
            self.cursor = number + 1
            self._hashes[number] = bytes(head["hash"])
            self._tip = number
            self._prune()
            out.append(NewBlock(number, int(head["timestamp"])))
        return out

    # --- reorgs -------------------------------------------------------------------------

    def _hash_at(self, number: int) -> bytes | None:
        """The hash of block ``number`` now, or None if the chain has no such block (it is
        shorter now: BlockNotFound, or another answer of the node's refusing the read). A
        read that got no answer (a dropped connection, a timeout) raises: it says nothing
        about the chain, and taking it for a missing block reported a reorg that was not."""
        try:
            block = self.w3.eth.get_block(number)
        except Web3RPCError:  # the node answered, without that block
            return None
        return bytes(block["hash"]) if block is not None else None

    def _fork_point(self) -> int | None:
        """The first block of the chain we read that is not on the chain any more, or
        ``None`` when the last tip we read is still there."""
        if self._tip is None:
            return None
        if self._hash_at(self._tip) == self._hashes.get(self._tip):
            return None
        for number in sorted(self._hashes, reverse=True):
            if number < self._tip and self._hash_at(number) == self._hashes[number]:
                return number + 1
        return self.origin  # deeper than the window: read everything again

    def _retract(self, fork: int, head: int, out: list[ChainEvent]) -> set[bytes]:
        """Report the reorg and the surviving history of every channel it touched."""
        assert self._tip is not None
        channels: set[bytes] = set()
        txids: set[bytes] = set()
        for number in [n for n in self._reported if n >= fork]:
            c, t = self._reported.pop(number)
            channels |= c
            txids |= t
        for number in [n for n in self._hashes if n >= fork]:
            del self._hashes[number]
        out.append(Reorged(self._tip - fork + 1, tuple(sorted("0x" + t.hex() for t in txids))))
        self.cursor = min(self.cursor, fork)
        self._tip = max(self._hashes) if self._hashes else None
        history: list[Event] = []
        for channel_id in sorted(channels):
            logs = self.w3.eth.get_logs(
                {
                    "address": self.adjudicator.address,
                    "fromBlock": self.origin,
                    "toBlock": head,
                    "topics": [None, Web3.to_hex(channel_id)],
                }
            )
            history += self._remember(logs)
        out += to_chain_events(self.chain, history)
        return channels

    def _remember(self, logs: Sequence[Mapping[str, Any]]) -> list[Event]:
        """Decode ``logs``, noting the hash of each block they come from and which
        channels and transactions each block's events concerned."""
        events = self.adjudicator.decode_logs(logs)
        for log in logs:
            self._hashes[int(log["blockNumber"])] = bytes(log["blockHash"])
        for event in events:
            channels, txids = self._reported.setdefault(event.block_number, (set(), set()))
            channel_id = event.args.get("channelId")
            if channel_id is not None:
                channels.add(bytes(channel_id))
            txids.add(event.tx_hash)
        return events

    def _prune(self) -> None:
        if len(self._hashes) > REORG_WINDOW:
            keep = sorted(self._hashes)[-REORG_WINDOW:]
            self._hashes = {n: self._hashes[n] for n in keep}
            floor = keep[0]
            self._reported = {n: r for n, r in self._reported.items() if n >= floor}
