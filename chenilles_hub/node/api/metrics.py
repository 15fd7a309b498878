"""Prometheus metrics in the text exposition format (version 0.0.4), rendered on demand.

Written by hand rather than with ``prometheus-client``: every value is read from the node at
scrape time (no registry to keep in sync), and the node needs no extra dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..hub.node import Node

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CHANNEL_STATUSES = ("opening", "active", "closing", "disputed", "closed")
PAYMENT_STATUSES = ("pending", "succeeded", "failed")
#: The node's load, from ``Pipeline.load``'s totals: (metric, total, help).
_LOAD_METRICS = (
    (
        "worker_busy_seconds",
        "busy_seconds",
        "Seconds the node's thread was occupied by jobs and direct calls (wall time: waits on "
        "that thread count too, for the interpreter's lock, a core, an embedded ledger's "
        "poll, a backup waiting for the writer).",
    ),
    (
        "worker_cpu_seconds",
        "busy_cpu_seconds",
        "CPU seconds the node's thread used in those jobs and calls: its rate is the share of "
        "a core the node's work takes (near 1, the node is at its capacity and messages queue).",
    ),
    (
        "job_items",
        "items_handled",
        "Frames and API calls handled in worker jobs (chenilles_receive_batches_total counts "
        "the jobs; a job that only goes on proposing handles none).",
    ),
    (
        "checkpoint_write_seconds",
        "write_seconds",
        "Seconds spent writing checkpoints (durable ones with their fsync, relaxed ones "
        "without) and syncing the store; chenilles_checkpoint_writes_total counts them.",
    ),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            # A float as Python's shortest exact form: a counter of seconds keeps its
            # fractions however large it grows (six significant digits, ``:g``, would
            # step a week-old node's busy seconds by tens of seconds, and its rate with it).
            self.lines.append(f"{name}{_labels(labels)} {value!r}")


def render(
    node: Node | None,
    server_stats: Mapping[str, int],
    peers: int,
    role: str,
    chain_polls: Mapping[str, float] | None = None,
    chain_fetches: Mapping[str, float] | None = None,
    load: Mapping[str, float | int] | None = None,
) -> str:
    """Every metric of this node; ``node`` is None while a standby waits for the lease.
    ``chain_polls``: seconds each chain's last poll held the node's thread (by chain
    name); ``chain_fetches``: seconds each chain's last fetch took off it (the RPC);
    ``load``: the worker's and the writer's totals (``Pipeline.load``)."""
    out = _Writer()
    out.family(
        "chenilles_node_leader",
        "gauge",
        "1 when this process holds the lease and runs the node.",
        [({"role": role}, 1 if role == "leader" else 0)],
    )
    out.family("chenilles_peers_connected", "gauge", "Peers connected now.", [({}, peers)])
    for key, help_text in (
        ("messages_received", "Frames received from peers."),
        ("messages_sent", "Messages sent to peers."),
        ("messages_malformed", "Frames that did not decode (the peer was disconnected)."),
        ("peers_dropped", "Peers disconnected for a protocol violation."),
        ("peers_not_reading", "Peers disconnected because they did not read what we sent."),
        ("receive_batches", "Worker jobs (frames and API calls handled together)."),
        ("checkpoint_writes", "Durable store transactions (each covers one or more jobs)."),
        ("connections", "Peer connections set up."),
        ("chain_poll_errors", "Failed polls of a chain."),
        (
            "chain_clock_fetch_errors",
            "Chain clocks asked for with a read that could not be read (the watcher then "
            "read them on the node's thread).",
        ),
        ("chain_event_errors", "Batches of chain events the node failed to handle."),
        ("tick_errors", "Timer ticks that failed (the timer goes on)."),
        ("backup_errors", "Backup files not written (why: GET /v1/info, background_errors)."),
        ("announce_errors", "Announcements of our channels that failed."),
        ("peer_faults", "Peer messages refused or failed that count toward a ban."),
        ("peers_banned", "Peers banned for repeated faults ([policy.peers])."),
        ("handshakes_banned", "Handshakes refused because the peer is banned."),
        (
            "strangers_refused",
            "Peers neither configured nor in a channel with us, refused after their handshake "
            "because max_strangers of them were connected ([policy.peers]).",
        ),
        (
            "strangers_promoted",
            "Strangers' links that stopped counting toward max_strangers: their peer funded a "
            "channel with us, or was added as a peer.",
        ),
        (
            "strangers_evicted",
            "Strangers that gave way to a newcomer while every stranger's place was taken, "
            "after stranger_tenure seconds linked ([policy.peers]).",
        ),
        (
            "members_lapsed",
            "Members' links whose standing lapsed (every channel of their peer closed, or its "
            "deposit under the stake asked): counted toward max_strangers again, or closed "
            "with no stranger's place free ([policy.peers]).",
        ),
        (
            "stranger_check_errors",
            "Ticks that failed to ask which strangers' links are now members' (GET /v1/info, "
            "background_errors).",
        ),
        (
            "member_check_errors",
            "Ticks that failed to ask which members' links still have standing (GET /v1/info, "
            "background_errors).",
        ),
        (
            "handshakes_refused",
            "Incoming connections closed before their handshake because max_handshakes were "
            "in theirs ([policy.peers]).",
        ),
        ("link_errors", "Peer links that ended on an unexpected error."),
    ):
        out.family(f"chenilles_{key}_total", "counter", help_text, [({}, server_stats.get(key, 0))])
    load_totals = load or {}
    for name, key, help_text in _LOAD_METRICS:
        out.family(f"chenilles_{name}_total", "counter", help_text, [({}, load_totals.get(key, 0))])
    for family, help_text, seconds_by_chain in (
        (
            "chenilles_chain_poll_seconds",
            "How long the last poll of each chain held the node's thread: for a chain read "
            "off it (chenilles_chain_fetch_seconds), only turning what was read into events; "
            "for an embedded ledger, the whole poll.",
            chain_polls,
        ),
        (
            "chenilles_chain_fetch_seconds",
            "How long the last read of each chain's new blocks and events took, on a thread "
            "of its own: the endpoint's round trips (a slow or far endpoint shows here; it "
            "delays that chain's events, not payments).",
            chain_fetches,
        ),
    ):
        out.family(
            family,
            "gauge",
            help_text,
            [({"chain": name}, float(s)) for name, s in sorted((seconds_by_chain or {}).items())],
        )
    if node is None:
        return "\n".join(out.lines) + "\n"

    totals = node.channel_totals()  # kept from the checkpoints, not summed per scrape
    by_status = dict.fromkeys(CHANNEL_STATUSES, 0)
    by_status.update((s, n) for s, n in totals.by_status.items() if n)
    balances = {key: v for key, v in totals.balances.items() if totals.assets[key[0]] > 0}
    locked = {asset: v for asset, v in totals.locked.items() if v}
    out.family(
        "chenilles_channels",
        "gauge",
        "Channels by status.",
        [({"status": s}, n) for s, n in sorted(by_status.items())],
    )
    out.family(
        "chenilles_channel_balance",
        "gauge",
        "Free channel balances in base units, per asset and side (open channels).",
        [({"asset": a, "side": s}, v) for (a, s), v in sorted(balances.items())],
    )
    out.family(
        "chenilles_htlc_locked",
        "gauge",
        "Amount locked in HTLCs of open channels, per asset (base units).",
        [({"asset": a}, v) for a, v in sorted(locked.items())],
    )
    kept = node.payment_totals()  # kept from the checkpoints, not counted per scrape
    payments = dict.fromkeys(PAYMENT_STATUSES, 0)
    payments.update((s, n) for s, n in kept.payments.items() if n)
    out.family(
        "chenilles_payments",
        "gauge",
        "Payments this node started, by status.",
        [({"status": s}, n) for s, n in sorted(payments.items())],
    )
    out.family(
        "chenilles_invoices",
        "gauge",
        "Invoices issued by this node, by state.",
        [
            ({"state": "paid"}, kept.invoices["paid"]),
            ({"state": "open"}, kept.invoices["open"]),
        ],
    )
    out.family(
        "chenilles_forwarding_failures_total",
        "counter",
        "HTLCs refused on arrival or failed downstream, since start.",
        [
            ({"kind": "refused"}, node.counters.get("htlc_refused", 0)),
            ({"kind": "downstream"}, node.counters.get("forward_failed_downstream", 0)),
        ],
    )
    out.family(
        "chenilles_forwards_pending",
        "gauge",
        "HTLCs forwarded and not yet settled or failed.",
        [({}, len(node.links_by_out))],
    )
    out.family(
        "chenilles_peer_messages_total",
        "counter",
        "Peer messages the node refused (a protocol refusal) or failed on (contained and "
        "undone), and open requests refused by policy or expired, since start.",
        [
            ({"outcome": outcome}, node.counters.get(key, 0))
            for outcome, key in (
                ("refused", "peer_messages_refused"),
                ("failed", "peer_messages_failed"),
                ("open_refused", "opens_refused"),
                ("open_expired", "opens_expired"),
            )
        ],
    )
    out.family(
        "chenilles_watcher_clock_reads_total",
        "counter",
        "Chain clocks the watcher judged deadlines with, since start: read with the chain's "
        "read off the node's thread (with_read), or by a call on the node's thread "
        "(node_thread: the first tick of an HTLC in flight, an embedded ledger, a backend "
        "without ClockFetcher, a read that failed or was late).",
        [
            ({"where": "with_read"}, node.counters.get("clock_reads_fetched", 0)),
            ({"where": "node_thread"}, node.counters.get("clock_reads_node_thread", 0)),
        ],
    )
    out.family(
        "chenilles_durable_before_chain_errors_total",
        "counter",
        "Times the node answered the chain before the store confirmed its earlier writes "
        "(a disk stalled past a minute), since start: each is also in the node's journal.",
        [({}, node.counters.get("durable_before_chain_errors", 0))],
    )
    actions = {
        k[len("watcher_") :]: v for k, v in node.counters.items() if k.startswith("watcher_")
    }
    out.family(
        "chenilles_watcher_actions_total",
        "counter",
        "On-chain actions the watcher took, by kind, since start.",
        [({"action": a}, n) for a, n in sorted(actions.items())],
    )
    return "\n".join(out.lines) + "\n"
