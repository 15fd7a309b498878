"""``[policy]``: forwarding fees and rates, the operator's consent to channels peers open
(``[policy.open]``) and the treatment of misbehaving peers (``[policy.peers]``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chenilles_hub.core import parse_asset

from .config_checks import ConfigError, asset_of, bounded_int, check_keys, table_of

FEE_KEYS = ("asset", "base", "ppm")
RATE_KEYS = ("asset_in", "asset_out", "numerator", "denominator")


#: Seconds a virtual channel request waits for the hub's offer (``[policy.virtual]``).
VIRTUAL_REQUEST_TIMEOUT = 120


@dataclass(frozen=True)
class FeeConfig:
    asset: str
    base: int
    ppm: int


@dataclass(frozen=True)
class RateConfig:
    asset_in: str
    asset_out: str
    numerator: int
    denominator: int


@dataclass(frozen=True)
class OpenPolicyConfig:
    """``[policy.open]``: the operator's consent to channels peers open (see
    ``hub/open_policy.py``). Safe defaults: we deposit nothing into a channel a peer opens,
    challenge durations 10 minutes to 2 weeks, two pending requests per peer, 64 in all,
    each dropped after 2 minutes or when its peer disconnects."""

    accept: bool = True
    #: (asset as ``token@chain``, the most we deposit into one channel a peer opens)
    deposits: tuple[tuple[str, int], ...] = ()
    min_challenge: int = 600
    max_challenge: int = 14 * 86400
    max_pending_per_peer: int = 2
    max_pending: int = 64
    pending_timeout: int = 120


@dataclass(frozen=True)
class PeerPolicyConfig:
    """``[policy.peers]``: a peer whose messages are refused or fail ``max_faults`` times
    within ``fault_window`` seconds is disconnected and banned for ``ban_seconds`` (it may
    not connect, and is not dialled, until then). At most ``max_strangers`` peers that are
    neither configured nor members of a channel of ours with something in it are connected
    at once, and at most ``max_handshakes`` connections are in their handshake at once
    (``max_handshakes_per_host`` from one address): identities cost nothing,
    and each link costs a socket, a task and what its announcement adds to every graph
    build (docs/security.md, "A stranger on the peer port"). A stranger arriving while
    every place is taken takes the place of the stranger that has held its place longest,
    once it has held it ``stranger_tenure`` seconds: whoever holds the places cannot keep
    newcomers out for longer than that without connecting again and again. A peer's own deposit
    makes it a member only from its asset's ``[[policy.peers.stake]] min`` up: a deposit
    of one base unit (and its transaction's fee) would otherwise do."""

    max_faults: int = 20
    fault_window: float = 60.0
    ban_seconds: float = 600.0
    max_strangers: int = 64
    max_handshakes: int = 128
    max_handshakes_per_host: int = 16
    stranger_tenure: float = 60.0
    #: (asset as ``token@chain``, the least a peer's own deposit in it must be for its
    #: channel to make it a member); an asset not listed: any deposit of its own
    stakes: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class PolicyConfig:
    fees: tuple[FeeConfig, ...] = ()
    rates: tuple[RateConfig, ...] = ()
    open_policy: OpenPolicyConfig = field(default_factory=OpenPolicyConfig)
    peer_policy: PeerPolicyConfig = field(default_factory=PeerPolicyConfig)
    #: ``[policy.virtual] request_timeout``: seconds our request for a virtual channel
    #: waits for the hub's offer before it expires (docs/virtual-channels.md)
    virtual_request_timeout: int = VIRTUAL_REQUEST_TIMEOUT


def parse_policy(policy: dict[str, Any]) -> PolicyConfig:
    """The ``[policy]`` table, every entry checked."""
    fees = tuple(
        FeeConfig(
            asset_of(f, "asset", where),
            bounded_int(f, "base", where, 0, 0),
            bounded_int(f, "ppm", where, 0, 0),
        )
        for where, f in _entries(policy, "fees", FEE_KEYS)
    )
    rates = tuple(
        RateConfig(
            asset_of(r, "asset_in", where),
            asset_of(r, "asset_out", where),
            bounded_int(r, "numerator", where, 0, 1, required=True),
            bounded_int(r, "denominator", where, 0, 1, required=True),
        )
        for where, r in _entries(policy, "rates", RATE_KEYS)
    )
    virtual = _subtable(policy, "virtual", {"request_timeout"})
    timeout = bounded_int(virtual, "request_timeout", "policy.virtual", VIRTUAL_REQUEST_TIMEOUT, 1)
    return PolicyConfig(fees, rates, _open_policy(policy), _peer_policy(policy), timeout)


def _subtable(policy: dict[str, Any], key: str, known: set[str]) -> dict[str, Any]:
    return table_of(policy, key, known, f"policy.{key}")


def _entries(
    table: dict[str, Any], key: str, known: tuple[str, ...], where: str = "policy"
) -> list[tuple[str, dict[str, Any]]]:
    """``[[<where>.KEY]]`` entries, each a table of known keys, with where it is."""
    entries = table.get(key, [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}.{key} must be an array of tables ([[{where}.{key}]])")
    out = []
    for index, entry in enumerate(entries):
        at = f"{where}.{key}[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: a table ([[{where}.{key}]])")
        check_keys(entry, known, at)
        out.append((at, entry))
    return out


def _open_policy(policy: dict[str, Any]) -> OpenPolicyConfig:
    where = "policy.open"
    default = OpenPolicyConfig()
    table = _subtable(
        policy,
        "open",
        {
            "accept",
            "deposit",
            "min_challenge",
            "max_challenge",
            "max_pending_per_peer",
            "max_pending",
            "pending_timeout",
        },
    )
    accept = table.get("accept", True)
    if not isinstance(accept, bool):
        raise ConfigError(f"{where}.accept must be true or false")
    result = OpenPolicyConfig(
        accept=accept,
        deposits=_asset_amounts(table, "deposit", "max", where),
        min_challenge=bounded_int(table, "min_challenge", where, default.min_challenge, 1),
        max_challenge=bounded_int(table, "max_challenge", where, default.max_challenge, 1),
        max_pending_per_peer=bounded_int(
            table, "max_pending_per_peer", where, default.max_pending_per_peer, 0
        ),
        max_pending=bounded_int(table, "max_pending", where, default.max_pending, 0),
        pending_timeout=bounded_int(table, "pending_timeout", where, default.pending_timeout, 1),
    )
    if result.min_challenge > result.max_challenge:
        raise ConfigError(f"{where}: min_challenge is above max_challenge")
    return result


def _peer_policy(policy: dict[str, Any]) -> PeerPolicyConfig:
    where = "policy.peers"
    default = PeerPolicyConfig()
    table = _subtable(
        policy,
        "peers",
        {
            "max_faults",
            "fault_window",
            "ban_seconds",
            "max_strangers",
            "max_handshakes",
            "max_handshakes_per_host",
            "stranger_tenure",
            "stake",
        },
    )
    values: dict[str, float] = {}
    for key in ("fault_window", "ban_seconds", "stranger_tenure"):
        value = table.get(key, getattr(default, key))
        # a tenure under a second would let newcomers take places as fast as they connect
        low = 1 if key == "stranger_tenure" else 0
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value < 1e9:
            raise ConfigError(f"{where}.{key}: a number of seconds from {low}, not {value!r}")
        values[key] = float(value)
    return PeerPolicyConfig(
        max_faults=bounded_int(table, "max_faults", where, default.max_faults, 1),
        fault_window=values["fault_window"],
        ban_seconds=values["ban_seconds"],
        max_strangers=bounded_int(table, "max_strangers", where, default.max_strangers, 0),
        max_handshakes=bounded_int(table, "max_handshakes", where, default.max_handshakes, 1),
        max_handshakes_per_host=bounded_int(
            table, "max_handshakes_per_host", where, default.max_handshakes_per_host, 1
        ),
        stranger_tenure=values["stranger_tenure"],
        stakes=_asset_amounts(table, "stake", "min", where),
    )


def _asset_amounts(
    table: dict[str, Any], key: str, amount: str, where: str
) -> tuple[tuple[str, int], ...]:
    """``[[<where>.<key>]]`` entries, each ``asset = "token@chain"`` and ``<amount> = <base
    units>``: (asset, amount) pairs."""
    out = []
    for at, entry in _entries(table, key, ("asset", amount), where):
        asset = entry.get("asset")
        if not isinstance(asset, str) or not _is_asset(asset):
            raise ConfigError(f"{at}.asset: an asset written token@chain")
        value = entry.get(amount)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**256:
            raise ConfigError(f"{at}.{amount}: an integer amount in base units")
        out.append((asset, value))
    return tuple(out)


def _is_asset(text: str) -> bool:
    try:
        parse_asset(text)
    except ValueError:
        return False
    return True
