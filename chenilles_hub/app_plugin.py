"""What an app plugin is: the contract between the hub and an app distribution.

An app ("generalized state channel": a game, a conditional payment, any rule over the
channel's assets) ships as its own distribution registered under the ``chenilles.apps``
entry-point group (see ``hookspecs.chenilles_apps``), exactly as chain backends do. It
provides:

- its off-chain rule: a pure :class:`~chenilles_hub.core.AppRules` (valid transition,
  whose turn, outcome as balances, initial-state check, display decoder), which the
  channel machine runs on every move;
- its on-chain rule for each chain family that can enforce it, as code the family's
  backend installs: for ``EVM`` the creation bytecode of a contract implementing the
  adjudicator's ``IApp``; for ``Solana`` the SBF program the adjudicator invokes through
  CPI. A family an app ships no code for cannot run it (the node refuses the channel).

The app's identity on a chain (a contract address, a program id) is a deployment detail
given to the backend (``ChainBackend.use_app``), never part of the app itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any, Protocol

import msgspec

from .core import AppRules


class AppInfo(msgspec.Struct, frozen=True):
    """``name`` is the app id channels carry (``ChannelParams.app``); ``families`` are the
    backend families (``BackendInfo.family``: ``EVM``, ``Solana``) it ships on-chain code
    for."""

    name: str
    version: str
    families: tuple[str, ...]
    description: str = ""


class AppPlugin(Protocol):
    """What an app distribution registers."""

    info: AppInfo

    def rules(self) -> AppRules:
        """The off-chain rule (pure; the same object may serve every channel)."""
        ...

    def onchain_code(self, family: str) -> bytes | None:
        """The on-chain rule for backend family ``family``, as that family's backend
        installs it (EVM: contract creation bytecode; Solana: the SBF ELF), or ``None``."""
        ...

    def initial_data(self, options: Mapping[str, Any]) -> bytes:
        """The app data of a new channel's opening state, from an operator's JSON options
        (e.g. who plays first, an escrow's terms); ``ValueError`` names a bad option."""
        ...

    def encode_move(self, options: Mapping[str, Any]) -> bytes:
        """``AppMove.data`` for a move described in JSON (e.g. ``{"cell": 4}``)."""
        ...


__all__ = ["AppInfo", "AppPlugin"]


def built_onchain_code(package: str, artifacts: Mapping[str, str], family: str) -> bytes | None:
    """An app's on-chain rule for ``family`` as the project's build scripts leave it in the
    package's ``build/`` folder (``artifacts``: family -> file name): an EVM contract's
    bytecode out of its JSON artifact, a Solana program's ``.so`` as it is; ``None`` for a
    family the app ships no code for. What an app plugin's ``onchain_code`` usually is."""
    name = artifacts.get(family)
    if name is None:
        return None
    data = resources.files(package).joinpath("build", name).read_bytes()
    if family == "EVM":
        return bytes.fromhex(json.loads(data)["bytecode"].removeprefix("0x"))
    return data
