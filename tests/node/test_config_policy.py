"""``[policy.open]`` and ``[policy.peers]``: parsed strictly, safe when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from chenilles_hub.core import Asset
from chenilles_hub.node.config import ConfigError, load_config
from chenilles_hub.node.hub.open_policy import OpenPolicy
from chenilles_hub.node.runtime.bootstrap import build_member_stakes, build_open_policy

pytestmark = pytest.mark.node


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "hub.toml"
    path.write_text('[node]\nname = "n"\n' + text)
    return load_config(path)


def test_without_a_policy_the_node_deposits_nothing_for_peers(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    policy = build_open_policy(config)
    assert policy == OpenPolicy()
    assert policy.deposit_limit(Asset("eip155:1", "native")) == 0
    assert config.peer_policy.max_faults == 20 and config.peer_policy.ban_seconds == 600
    assert (config.peer_policy.max_strangers, config.peer_policy.max_handshakes) == (64, 128)
    assert config.peer_policy.max_handshakes_per_host == 16
    assert config.peer_policy.stranger_tenure == 60.0
    assert build_member_stakes(config) == {}
    assert config.virtual_request_timeout == 120


def test_a_full_policy_is_read(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
[policy.open]
accept = true
min_challenge = 3600
max_challenge = 86400
max_pending_per_peer = 1
max_pending = 10
pending_timeout = 30

[[policy.open.deposit]]
asset = "native@eip155:1"
max = 1000000000000000000000000000000

[policy.peers]
max_faults = 3
fault_window = 10
ban_seconds = 1.5
max_strangers = 0
max_handshakes = 8
max_handshakes_per_host = 2
stranger_tenure = 300

[[policy.peers.stake]]
asset = "native@eip155:1"
min = 1000000000000000000

[policy.virtual]
request_timeout = 45
""",
    )
    policy = build_open_policy(config)
    eth = Asset("eip155:1", "native")
    assert policy.deposit_limit(eth) == 10**30
    assert (policy.min_challenge, policy.max_challenge) == (3600, 86400)
    assert (policy.max_pending_per_peer, policy.max_pending, policy.pending_timeout) == (1, 10, 30)
    assert policy.refusal({eth: (10**30, 0)}, 3600) is None
    assert "challenge" in (policy.refusal({eth: (0, 0)}, 60) or "")
    assert (config.peer_policy.max_faults, config.peer_policy.ban_seconds) == (3, 1.5)
    assert (config.peer_policy.max_strangers, config.peer_policy.max_handshakes) == (0, 8)
    assert config.peer_policy.max_handshakes_per_host == 2
    assert config.peer_policy.stranger_tenure == 300.0
    assert build_member_stakes(config) == {eth: 10**18}
    assert config.virtual_request_timeout == 45


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[policy.open]\nmax_pendng = 3\n", "unknown key"),
        ("[policy.open]\nmin_challenge = -1\n", "min_challenge"),
        ("[policy.open]\nmin_challenge = 10\nmax_challenge = 5\n", "above"),
        ("[policy.open]\naccept = 1\n", "accept"),
        ('[[policy.open.deposit]]\nasset = "native"\nmax = 1\n', "token@chain"),
        ('[[policy.open.deposit]]\nasset = "native@eip155:1"\nmax = -5\n', "max"),
        ('[[policy.open.deposit]]\nasset = "native@eip155:1"\n', "max"),
        ('[policy.peers]\nban_seconds = "x"\n', "ban_seconds"),
        ("[policy.peers]\nmax_faults = 0\n", "max_faults"),
        ("[policy.peers]\nmax_strangers = -1\n", "max_strangers"),
        ("[policy.peers]\nmax_handshakes = 0\n", "max_handshakes"),
        ("[policy.peers]\nmax_handshakes_per_host = 0\n", "max_handshakes_per_host"),
        ('[policy.peers]\nmax_strangers = "many"\n', "max_strangers"),
        ("[policy.peers]\nstranger_tenure = -1\n", "stranger_tenure"),
        ("[policy.peers]\nstranger_tenure = 0.5\n", "stranger_tenure"),
        ('[[policy.peers.stake]]\nasset = "native@eip155:1"\nmin = -1\n', "min"),
        ('[[policy.peers.stake]]\nasset = "native"\nmin = 1\n', "token@chain"),
        ('[[policy.peers.stake]]\nasset = "native@"\nmin = 1\n', "token@chain"),
        ('[[policy.open.deposit]]\nasset = "@eip155:1"\nmax = 1\n', "token@chain"),
        ('[[policy.peers.stake]]\nasset = "native@eip155:1"\nmax = 1\n', "stake"),
        ("[policy]\nopen = 3\n", "must be a table"),
        ("[policy.virtual]\nrequest_timeout = 0\n", "request_timeout"),
        ("[policy.virtual]\nrequest_timout = 5\n", "unknown key"),
    ],
)
def test_mistakes_are_refused_with_where_they_are(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        _load(tmp_path, text)
