"""Registers the Bitcoin backend with the hub through the ``chenilles.backends`` entry point."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from chenilles_hub.backend import BackendInfo, ChainBackend
from chenilles_hub.hookspecs import hookimpl


class BitcoinBackendFactory:
    info = BackendInfo(
        name="bitcoin",
        version=metadata.version("chenilles-bitcoin"),
        family="Bitcoin",
        chains=("bip122:regtest", "bip122:signet", "bip122:mainnet"),
        description=(
            "BOLT 3 channels; embedded regtest validated by libbitcoinkernel, or bitcoind JSON-RPC"
        ),
    )

    def embedded(self, **options: Any) -> ChainBackend:
        from .backend import embedded_backend

        return embedded_backend(**options)

    def connect(self, url: str, **options: Any) -> ChainBackend:
        from .backend import connect_backend

        return connect_backend(url, **options)


@hookimpl
def chenilles_backends() -> list[BitcoinBackendFactory]:
    return [BitcoinBackendFactory()]
