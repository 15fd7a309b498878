"""The watcher's duties, as data, and the pure logic that turns chain events and the
passing of time into on-chain actions.

A hub is safe only if it acts on-chain in time when a peer goes silent or cheats:

* a peer registers a stale state -> answer with our latest (refute / punish);
* we know the preimage of an incoming HTLC but the peer will not settle it off-chain ->
  before its expiry, register the latest state and claim the HTLC on-chain;
* an outgoing HTLC is past its expiry and the peer will not fail it off-chain -> register
  and let the ledger refund it;
* a preimage shows up on any chain -> settle the matching upstream HTLC.

Duties are plain msgspec values so the node can persist them and resume after a restart;
this module never touches a ledger itself (sans-IO: events in, actions out).
"""

from __future__ import annotations

import msgspec

from .model import Bytes32


class GuardChannel(msgspec.Struct, frozen=True, tag="guard"):
    """Refute any registration of a version older than ours, for the channel's whole life."""

    channel_id: Bytes32


class ClaimIncoming(msgspec.Struct, frozen=True, tag="claim_incoming"):
    """We are the payee of this HTLC and know its preimage: claim on-chain by ``deadline``
    (the HTLC's expiry minus the time the chain needs to confirm the claim)."""

    channel_id: Bytes32
    htlc_id: int
    preimage: Bytes32
    deadline: int


class RefundOutgoing(msgspec.Struct, frozen=True, tag="refund_outgoing"):
    """We are the payer: if the HTLC is still locked at ``expiry``, go on-chain for a refund."""

    channel_id: Bytes32
    htlc_id: int
    expiry: int


Duty = GuardChannel | ClaimIncoming | RefundOutgoing


# --- actions ------------------------------------------------------------------------------


class Refute(msgspec.Struct, frozen=True):
    channel_id: bytes
    registered_version: int


class ForceClose(msgspec.Struct, frozen=True):
    channel_id: bytes
    reason: str


class ClaimOnChain(msgspec.Struct, frozen=True):
    channel_id: bytes
    htlc_id: int
    preimage: bytes


class RefundOnChain(msgspec.Struct, frozen=True):
    channel_id: bytes
    htlc_id: int


class ConcludeAndWithdraw(msgspec.Struct, frozen=True):
    channel_id: bytes


class PreimageLearned(msgspec.Struct, frozen=True):
    payment_hash: bytes
    preimage: bytes


Action = Refute | ForceClose | ClaimOnChain | RefundOnChain | ConcludeAndWithdraw | PreimageLearned


class DisputeStatus(msgspec.Struct, frozen=True):
    version: int
    timeout: int
    concluded: bool = False


class WatcherState(msgspec.Struct, frozen=True):
    """Everything the watcher knows; persisted by the node after every change."""

    duties: tuple[Duty, ...] = ()
    disputes: tuple[tuple[bytes, DisputeStatus], ...] = ()
    fired: tuple[tuple[str, bytes, int], ...] = ()  # (duty kind, channel, htlc) already acted on


class Watcher:
    """Pure: every method returns the actions to take and updates ``state``."""

    def __init__(self, state: WatcherState | None = None) -> None:
        self.state = state or WatcherState()

    # --- duties ------------------------------------------------------------------------

    def add(self, duty: Duty) -> None:
        if duty not in self.state.duties:
            self.state = msgspec.structs.replace(self.state, duties=(*self.state.duties, duty))

    def resolved(self, channel_id: bytes, htlc_id: int) -> None:
        """The HTLC was settled or failed off-chain: nothing left to enforce."""
        remaining = tuple(
            d
            for d in self.state.duties
            if isinstance(d, GuardChannel) or (d.channel_id, d.htlc_id) != (channel_id, htlc_id)
        )
        fired = tuple(
            f for f in self.state.fired if f[0] == "conclude" or f[1:] != (channel_id, htlc_id)
        )
        self.state = msgspec.structs.replace(self.state, duties=remaining, fired=fired)

    def duties_of(self, channel_id: bytes) -> tuple[Duty, ...]:
        return tuple(d for d in self.state.duties if d.channel_id == channel_id)

    # --- events ------------------------------------------------------------------------

    def on_registered(
        self, channel_id: bytes, version: int, timeout: int, our_latest: int | None
    ) -> list[Action]:
        """A state of ``channel_id`` was registered on-chain."""
        disputes = dict(self.state.disputes)
        disputes[channel_id] = DisputeStatus(version, timeout)
        self.state = msgspec.structs.replace(self.state, disputes=tuple(disputes.items()))
        guarded = any(
            isinstance(d, GuardChannel) and d.channel_id == channel_id for d in self.state.duties
        )
        if guarded and our_latest is not None and version < our_latest:
            return [Refute(channel_id, version)]
        return []

    def on_concluded(self, channel_id: bytes) -> None:
        disputes = dict(self.state.disputes)
        if channel_id in disputes:
            disputes[channel_id] = msgspec.structs.replace(disputes[channel_id], concluded=True)
        duties = tuple(d for d in self.state.duties if d.channel_id != channel_id)
        self.state = msgspec.structs.replace(
            self.state, disputes=tuple(disputes.items()), duties=duties
        )

    def on_preimage(self, payment_hash: bytes, preimage: bytes) -> list[Action]:
        return [PreimageLearned(payment_hash, preimage)]

    def tick(self, now: int) -> list[Action]:
        """Time passed: act on every duty whose moment has come, once."""
        actions: list[Action] = []
        fired = set(self.state.fired)
        disputes = dict(self.state.disputes)
        for duty in self.state.duties:
            if isinstance(duty, ClaimIncoming) and now >= duty.deadline:
                key = ("claim", duty.channel_id, duty.htlc_id)
                if key not in fired:
                    fired.add(key)
                    if duty.channel_id not in disputes:
                        actions.append(ForceClose(duty.channel_id, "peer did not settle"))
                    actions.append(ClaimOnChain(duty.channel_id, duty.htlc_id, duty.preimage))
            elif isinstance(duty, RefundOutgoing) and now >= duty.expiry:
                key = ("refund", duty.channel_id, duty.htlc_id)
                if key not in fired:
                    fired.add(key)
                    if duty.channel_id not in disputes:
                        actions.append(ForceClose(duty.channel_id, "peer did not fail"))
                    actions.append(RefundOnChain(duty.channel_id, duty.htlc_id))
        for channel_id, status in disputes.items():
            key = ("conclude", channel_id, status.version)
            if not status.concluded and now >= status.timeout and key not in fired:
                fired.add(key)
                actions.append(ConcludeAndWithdraw(channel_id))
        self.state = msgspec.structs.replace(self.state, fired=tuple(sorted(fired)))
        return actions

    def postpone(self, channel_id: bytes, until: int) -> None:
        """Concluding failed for now (an HTLC neither revealed nor expired): try again later."""
        disputes = dict(self.state.disputes)
        status = disputes.get(channel_id)
        if status is None:
            return
        disputes[channel_id] = msgspec.structs.replace(status, timeout=until)
        fired = tuple(f for f in self.state.fired if f != ("conclude", channel_id, status.version))
        self.state = msgspec.structs.replace(
            self.state, disputes=tuple(disputes.items()), fired=fired
        )

    def next_wakeup(self) -> int | None:
        """The earliest time ``tick`` may have something to do."""
        times = [d.deadline for d in self.state.duties if isinstance(d, ClaimIncoming)]
        times += [d.expiry for d in self.state.duties if isinstance(d, RefundOutgoing)]
        times += [s.timeout for _, s in self.state.disputes if not s.concluded]
        return min(times) if times else None
