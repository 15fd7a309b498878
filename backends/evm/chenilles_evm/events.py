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

from collections.abc import Iterable

from chenilles_hub.backend import (
    ChainEvent,
    Concluded,
    Funded,
    PreimageRevealed,
    Progressed,
    Registered,
)
from chenilles_hub.core import AssetBalances

from .adjudicator import Event
from .mapping import asset_of

__all__ = ["to_chain_event", "to_chain_events"]


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
