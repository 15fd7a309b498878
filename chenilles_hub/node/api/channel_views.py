"""What the operator sees of a channel: balances, HTLCs, receipts, and where it stands in
its life cycle: ``waiting`` (what it waits for, in words: a deposit and its
confirmations, the peer's signature, the end of a dispute on the chain's clock, a payout),
``deadline`` (for a dispute: the chain time its challenge period ends, the chain's time
now), ``last_error`` (the last thing that went wrong, and when). A channel that could not
be restored at start is shown as ``quarantined`` with its reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..hub.node import Node
    from ..hub.records import Channel, Quarantined


def channel_view(node: Node, channel: Channel) -> dict[str, Any]:
    state = channel.machine.state
    me = channel.me
    balances = []
    for asset in channel.params.assets:
        free = state.free(asset)
        locked_out = sum(h.amount for h in state.htlcs if h.asset == asset and h.payer == me)
        locked_in = sum(h.amount for h in state.htlcs if h.asset == asset and h.payer != me)
        balances.append(
            {
                "asset": str(asset),
                "local": free[me],
                "remote": free[1 - me],
                "htlc_out": locked_out,
                "htlc_in": locked_in,
                "deposit_local": channel.deposits.get(asset, (0, 0))[0],
                "deposit_remote": channel.deposits.get(asset, (0, 0))[1],
            }
        )
    return {
        "channel_id": channel.channel_id.hex(),
        "peer": channel.peer.hex(),
        "chain": channel.params.chain,
        "status": channel.status,
        **progress(node, channel),
        "last_error": channel.last_error,
        "last_error_at": channel.last_error_at or None,
        "participant": me,
        "version": state.version,
        "final": state.final,
        "idle": channel.machine.idle,
        "challenge_duration": channel.params.challenge_duration,
        "balances": balances,
        "htlcs": [
            {
                "id": h.id,
                "direction": "out" if h.payer == me else "in",
                "asset": str(h.asset),
                "amount": h.amount,
                "payment_hash": h.payment_hash.hex(),
                "expiry": h.expiry,
            }
            for h in state.htlcs
        ],
        "receipts": [
            {
                "operation": r.operation,
                "txid": r.txid,
                "fee": r.fee,
                "rent": r.rent,
                "fee_from_channel": r.fee_from_channel,
            }
            for r in channel.receipts
        ],
    }


def progress(node: Node, channel: Channel) -> dict[str, Any]:
    """``waiting`` in words for every status, and for a dispute its ``deadline`` on the
    chain's own clock (the chain is asked for its time only for disputed channels)."""
    status = channel.status
    depth = node.ctx.depth(channel.params.chain)
    out: dict[str, Any] = {"waiting": channel.waiting, "confirmations_needed": depth}
    if status == "opening" and channel.waiting and channel.funded_by_me:
        have = _confirmations(channel, depth)
        if have is not None:
            out["confirmations"] = {"have": have, "need": depth}
    if status == "opening" and not channel.waiting:
        out["waiting"] = (
            "waiting for our deposit to be sent"
            if channel.machine.latest is not None
            else "waiting for the peer to sign the opening state"
        )
    elif status == "active" and not channel.machine.idle:
        out["waiting"] = (
            f"waiting for the peer to answer version {channel.machine.state.version + 1}"
        )
    elif status == "closing" and not channel.concluded:
        out["waiting"] = "waiting for the peer to sign the final state"
    elif status == "closing":
        missing = [str(a) for a in channel.params.assets if a not in channel.withdrawn]
        out["waiting"] = f"collecting our payout of {', '.join(missing)} from the chain"
    elif status == "disputed":
        out.update(_dispute(node, channel, depth))
    return out


def _confirmations(channel: Channel, need: int) -> int | None:
    """How deep (up to ``need``) the chain holds every agreed deposit of an opening
    channel: the largest depth at which ``holdings`` shows them all, found by bisection
    (``holdings`` at a greater depth counts less). ``None`` if the chain does not answer."""
    totals = {a: mine + theirs for a, (mine, theirs) in channel.deposits.items()}

    def held_at(depth: int) -> bool:
        held = channel.backend.holdings(channel.params, depth)
        return all(sum(held.get(a, ())) == total for a, total in totals.items())

    try:
        if not held_at(1):
            return 0
        low, high = 1, need
        while low < high:
            middle = (low + high + 1) // 2
            if held_at(middle):
                low = middle
            else:
                high = middle - 1
        return low
    except Exception:  # an unreachable chain: the text still says what is awaited
        return None


def _dispute(node: Node, channel: Channel, depth: int) -> dict[str, Any]:
    dispute = node.watcher.dispute(channel.channel_id)
    if dispute is None:
        return {"waiting": "waiting for the chain to report our registration"}
    try:
        now: int | None = channel.backend.now()
    except Exception:  # an unreachable chain: the deadline is still known
        now = None
    deadline: dict[str, Any] = {
        "registered_version": dispute.version,
        "chain_time": dispute.timeout,
        "chain_now": now,
        "seconds_left": None if now is None else max(0, dispute.timeout - now),
    }
    if dispute.concluded:
        text = f"concluded; waiting until the conclusion is {depth} blocks deep, then withdrawing"
    elif now is not None and now < dispute.timeout:
        text = (
            f"dispute of version {dispute.version}: the challenge period ends at chain time "
            f"{dispute.timeout} ({dispute.timeout - now} s from the chain's now), then we "
            "conclude and withdraw"
        )
    else:
        text = f"the challenge period ended at chain time {dispute.timeout}: concluding"
    return {"waiting": text, "deadline": deadline}


def quarantined_view(entry: Quarantined) -> dict[str, Any]:
    """A channel set aside at start: what is known of it without restoring it."""
    return {
        "channel_id": entry.channel_id.hex(),
        "peer": entry.peer.hex(),
        "chain": entry.chain,
        "status": "quarantined",
        "stored_status": entry.status,
        "waiting": "the operator: fix the cause and restart the node",
        "last_error": f"could not be restored at start: {entry.reason}",
        "last_error_at": None,
        "version": None,
        "balances": [],
        "htlcs": [],
        "receipts": [],
    }
