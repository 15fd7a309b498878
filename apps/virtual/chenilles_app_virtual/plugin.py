"""Registers the virtual-funding app with the hub through the ``chenilles.apps`` entry point."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import metadata, resources
from typing import Any

from chenilles_hub.app_plugin import AppInfo
from chenilles_hub.hookspecs import hookimpl

from . import rules

#: EVM only: the Solana program is not written yet (docs/virtual-channels.md says why it
#: matters: a virtual channel with one end on Solana is not enforceable without it).
_ARTIFACTS = {"EVM": "VirtualLedger.json"}


class VirtualPlugin:
    info = AppInfo(
        name=rules.APP_ID,
        version=metadata.version("chenilles-app-virtual"),
        families=tuple(sorted(_ARTIFACTS)),
        description="a ledger channel funding one virtual channel through a hub's guarantee",
    )

    def rules(self) -> rules.VirtualLedgerApp:
        return rules.VirtualLedgerApp()

    def onchain_code(self, family: str) -> bytes | None:
        name = _ARTIFACTS.get(family)
        if name is None:
            return None
        data = resources.files("chenilles_app_virtual").joinpath("build", name).read_bytes()
        return bytes.fromhex(json.loads(data)["bytecode"].removeprefix("0x"))

    def initial_data(self, options: Mapping[str, Any]) -> bytes:
        if options:
            raise ValueError("a virtual ledger channel opens without options (no guarantee)")
        return b""

    def encode_move(self, options: Mapping[str, Any]) -> bytes:
        raise ValueError(
            "guarantee moves are made by the node's virtual-channel protocol, not by hand"
        )


@hookimpl
def chenilles_apps() -> list[VirtualPlugin]:
    return [VirtualPlugin()]
