"""What ``/metrics`` reports of the node's channels (counts per status, free balances per
asset and side, HTLC-locked totals per asset), kept up to date from the channels each
checkpoint changed rather than summed over every channel at each scrape: a hub of 100,000
channels spent 0.4-0.9 s of its thread per scrape, and every payment waited meanwhile."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping

from chenilles_hub.core import Asset

from .records import Channel

#: One channel's part of the totals: its status, its free balances ((asset, side),
#: amount) and what its HTLCs lock (asset, amount); a closed channel counts by status only.
Row = tuple[str, tuple[tuple[tuple[str, str], int], ...], tuple[tuple[str, int], ...]]


@functools.lru_cache(maxsize=4096)  # the assets of our channels: a few
def _name(asset: Asset) -> str:
    return str(asset)


def channel_row(channel: Channel) -> Row:
    if channel.status == "closed":
        return (channel.status, (), ())
    # a channel unused since a restart: from the holdings kept beside its snapshot
    holdings = channel.machine.holdings
    balances = []
    for asset in channel.params.assets:
        free = holdings.free(asset)
        balances.append(((_name(asset), "local"), free[channel.me]))
        balances.append(((_name(asset), "remote"), free[1 - channel.me]))
    locked = tuple((_name(asset), amount) for asset, amount in holdings.locked)
    return (channel.status, tuple(balances), locked)


class ChannelTotals:
    """The totals, and each counted channel's row. ``changed`` is fed by every checkpoint
    (the channels whose state or record it wrote, with or without a store); ``refresh``
    takes those rows again, and counts channels it has not seen (adopted since). A channel
    leaves ``Node.channels`` only when the job that added it rolls back, before any
    checkpoint: never one counted here."""

    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.balances: Counter[tuple[str, str]] = Counter()
        self.locked: Counter[str] = Counter()
        #: open channels per asset (an asset is reported while one holds it)
        self.assets: Counter[str] = Counter()
        self._rows: dict[bytes, Row] = {}
        self._changed: set[bytes] = set()

    def changed(self, channel_ids: Iterable[bytes]) -> None:
        self._changed.update(channel_ids)

    def refresh(self, channels: Mapping[bytes, Channel]) -> None:
        changed, self._changed = self._changed, set()
        if len(self._rows) != len(channels):
            changed.update(cid for cid in channels if cid not in self._rows)
        for channel_id in changed:
            old = self._rows.pop(channel_id, None)
            if old is not None:
                self._count(old, -1)
            channel = channels.get(channel_id)
            if channel is not None:
                row = self._rows[channel_id] = channel_row(channel)
                self._count(row, 1)

    def _count(self, row: Row, sign: int) -> None:
        status, balances, locked = row
        self.by_status[status] += sign
        for key, amount in balances:
            self.balances[key] += sign * amount
            if key[1] == "local":
                self.assets[key[0]] += sign
        for asset, amount in locked:
            self.locked[asset] += sign * amount
