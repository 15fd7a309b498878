"""Registers the Solana backend with the hub through the ``chenilles.backends`` entry point."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from chenilles_hub.backend import BackendInfo, ChainBackend
from chenilles_hub.hookspecs import hookimpl


class SolanaBackendFactory:
    info = BackendInfo(
        name="solana",
        version=metadata.version("chenilles-solana"),
        family="Solana",
        chains=("solana:localnet", "solana:devnet", "solana:mainnet"),
        description=("Chenilles channel program; embedded LiteSVM or any Solana JSON-RPC cluster"),
        supports_apps=True,
    )

    def embedded(self, **options: Any) -> ChainBackend:
        from .backend import embedded_backend

        return embedded_backend(**options)

    def connect(self, url: str, **options: Any) -> ChainBackend:
        from .backend import connect_backend

        return connect_backend(url, **options)


@hookimpl
def chenilles_backends() -> list[SolanaBackendFactory]:
    return [SolanaBackendFactory()]
