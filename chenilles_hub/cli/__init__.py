"""The ``chenilles`` command line.

``chenilles node start`` runs a node in the foreground (for systemd, a container, or a
terminal); every other node command talks to a running node's local HTTP API, found
through the node's config file (``--config``, or ``$CHENILLES_CONFIG``): its API address
and token file. Output is a human-readable table; ``--json`` prints what the API returned.

One module per command group (``node``, ``channels``, ``payments``, ...); each adds its
commands to :func:`main` when imported here.
"""

from __future__ import annotations

from . import (
    app_channels,
    backup,
    channels,
    history,
    installed,
    new_backend,
    node,
    payments,
    peers,
    policy,
    tokens,
    tools,
    virtual,
    wallet,
)
from .root import main

__all__ = [
    "app_channels",
    "backup",
    "channels",
    "history",
    "installed",
    "main",
    "new_backend",
    "node",
    "payments",
    "peers",
    "policy",
    "tokens",
    "tools",
    "virtual",
    "wallet",
]
