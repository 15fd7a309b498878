"""Closing the channels restored from a static backup (:mod:`.backup`), so their money
comes back on chain.

Each restored channel carries a marker (``recovery/<channel id>``). From the node's first
start after the restore: an active channel is closed cooperatively at once (the Close goes
out when the peer connects, and a peer that moved on since the backup answers with its
newer state through reestablish); if the channel is still not on its way out ``force_after``
seconds later, its latest signed state is registered on chain and the watcher concludes and
withdraws after the challenge period (a peer holding a newer state registers it instead,
and the money follows the newest state). The marker is dropped once the channel is closed.

A backend that punishes old states (it keeps per-channel records of revocations: Bitcoin)
is never force-closed from a backup unless the operator said the backup is current
(``force_revoking``): an old commitment there is a revoked one, and the peer would take
everything.
"""

from __future__ import annotations

import logging

import msgspec

from ...core import Close
from ...core.watcher import GuardChannel
from .backup import RECOVERY_PREFIX, RecoveryMarker
from .chain_actions import ChainActions
from .context import NodeContext
from .proposals import Proposals

log = logging.getLogger("chenilles.node")
#: Seconds between attempts to register a restored channel's state the ledger refused.
RETRY = 10


class Recovery:
    def __init__(self, ctx: NodeContext, proposals: Proposals, chain: ChainActions) -> None:
        self.ctx = ctx
        self.proposals = proposals
        self.chain = chain
        self.markers: dict[bytes, RecoveryMarker] = {}
        #: when each restored channel is registered on chain if not closing by then
        self.deadlines: dict[bytes, int] = {}
        self._asked: set[bytes] = set()
        self._failed: set[bytes] = set()

    def restore(self) -> None:
        """Pick up the channels marked for recovery (after ``Node.restore`` rebuilt them)."""
        store = self.ctx.store
        if store is None:
            return
        now = self.ctx.clock()
        for key, value in store.settings_with_prefix(RECOVERY_PREFIX):
            channel_id = bytes.fromhex(key.removeprefix(RECOVERY_PREFIX))
            if not value or channel_id not in self.ctx.channels:
                continue
            marker = msgspec.json.decode(value, type=RecoveryMarker)
            self.markers[channel_id] = marker
            self.deadlines[channel_id] = now + marker.force_after
            # the duties of a watcher that was not restored: refute, conclude, withdraw
            self.ctx.watcher.add(GuardChannel(channel_id))
            self.ctx.note(f"recovering {channel_id.hex()[:8]} from a backup: closing it")

    def waiting(self, channel_id: bytes) -> str:
        """What a restored channel waits for, in words (empty if it is not restored)."""
        if channel_id not in self.markers:
            return ""
        return (
            "restored from a backup: closing cooperatively, or on chain at "
            f"{self.deadlines[channel_id]} (unix time) if the peer does not answer"
        )

    def tick(self) -> None:
        now = self.ctx.clock()
        for channel_id, marker in list(self.markers.items()):
            channel = self.ctx.channels[channel_id]
            if channel.status == "closed":
                self.ctx.pending.records[RECOVERY_PREFIX + channel_id.hex()] = b""
                del self.markers[channel_id]
                self.ctx.note(f"recovered {channel_id.hex()[:8]}: closed, funds withdrawn")
                continue
            if channel.concluded or channel.status in ("closing", "disputed"):
                continue  # on its way out: the watcher and the withdrawals finish it
            if channel.status == "active":
                channel.waiting = self.waiting(channel_id)
            if channel.status == "active" and channel_id not in self._asked:
                self._asked.add(channel_id)
                self.proposals.queue(channel, Close())
            if marker.force_after < 0 or now < self.deadlines[channel_id]:
                continue
            revoking = getattr(channel.backend, "export_record", None) is not None
            if revoking and not marker.force_revoking:
                continue
            self.deadlines[channel_id] = now + RETRY
            try:
                self.chain.force_close(channel_id)
            except Exception as error:  # the ledger refused (LedgerError) or is down: later
                self.ctx.count("recovery_force_close_failed")
                text = f"registering restored {channel_id.hex()[:8]} failed: {error}"
                if channel_id in self._failed:
                    log.debug("%s: %s", self.ctx.name, text)  # said once; tried again later
                else:
                    self._failed.add(channel_id)
                    self.ctx.note(f"{text} (tried again every {RETRY} s)")
                continue
            self.ctx.note(f"restored {channel_id.hex()[:8]}: the peer did not close; registered")
