"""Ports for the devnet's ledgers and the tests' node processes: free when picked, and out
of the way of outgoing connections.

A port from the kernel's ephemeral range (what binding port 0 gives) can be handed to an
outgoing connection (an RPC client, a peer dial) between the moment it is picked and the
moment the server binds it; the server then fails with "Address already in use". CI saw a
node process fail to start that way.
"""

from __future__ import annotations

import socket

import pytest

from chenilles_hub.devnet import ledgers


def test_ports_are_outside_the_ephemeral_range_distinct_and_bindable() -> None:
    span = ledgers._ephemeral_range()
    if span is None:
        pytest.skip("no /proc/sys/net/ipv4/ip_local_port_range on this system")
    ports = [ledgers.free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)  # never the same one twice in a process
    assert all(ledgers.FIXED_PORTS_FROM <= p < span[0] for p in ports), (span, ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        taken.listen()
        # The busy port is offered twice, then real picks: a fixed third port could itself
        # be taken by another test's connection (CI saw that happen).
        offered = [busy, busy]
        real_pick = ledgers.random.randrange

        def pick(low: int, high: int) -> int:
            return offered.pop() if offered else real_pick(low, high)

        monkeypatch.setattr(ledgers.random, "randrange", pick)
        monkeypatch.setattr(ledgers, "_ephemeral_range", lambda: (65_000, 65_535))
        port = ledgers.free_port()
    assert not offered  # the busy port was offered, and refused
    assert port != busy
