"""Registers the virtual-funding app with the hub through the ``chenilles.apps`` entry point."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from chenilles_hub.app_plugin import AppInfo, built_onchain_code
from chenilles_hub.hookspecs import hookimpl

from . import rules

#: The on-chain rule per backend family: VirtualLedger.sol over the 430-byte layout, the
#: Solana program over the compact 256-byte one (compact.py), built by the project's scripts
#: (scripts/build_evm_contracts.mjs, scripts/build_solana_program.py) into build/.
_ARTIFACTS = {"EVM": "VirtualLedger.json", "Solana": "virtual_ledger.so"}


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
        return built_onchain_code("chenilles_app_virtual", _ARTIFACTS, family)

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
