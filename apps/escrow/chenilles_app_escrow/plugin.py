"""Registers the escrow app with the hub through the ``chenilles.apps`` entry point."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from chenilles_hub.app_plugin import AppInfo, built_onchain_code
from chenilles_hub.hookspecs import hookimpl

from . import rules

#: The on-chain rule per backend family, as built by the project's scripts
#: (scripts/build_evm_contracts.mjs, scripts/build_solana_program.py) into build/.
_ARTIFACTS = {"EVM": "ArbiterEscrow.json", "Solana": "escrow.so"}


class EscrowPlugin:
    info = AppInfo(
        name=rules.APP_ID,
        version=metadata.version("chenilles-app-escrow"),
        families=tuple(sorted(_ARTIFACTS)),
        description="escrow with an arbiter and a timeout: pays the seller only on proof",
    )

    def rules(self) -> rules.EscrowApp:
        return rules.EscrowApp()

    def onchain_code(self, family: str) -> bytes | None:
        return built_onchain_code("chenilles_app_escrow", _ARTIFACTS, family)

    def initial_data(self, options: Mapping[str, Any]) -> bytes:
        return rules.initial_data(options)

    def encode_move(self, options: Mapping[str, Any]) -> bytes:
        return rules.encode_move(options)


@hookimpl
def chenilles_apps() -> list[EscrowPlugin]:
    return [EscrowPlugin()]
