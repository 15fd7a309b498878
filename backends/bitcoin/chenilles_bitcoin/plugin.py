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

    def devnet_command(self, datadir: str, host: str, port: int, block_time: float) -> list[str]:
        """The argv of a devnet server speaking bitcoind's JSON-RPC (``chenilles devnet``).

        It prints ``{"ready": true, "url": ...}`` on stdout (and writes DIR/ready.json) when
        it serves; connect with ``connect(url, cookie_file=DIR/.cookie)``.
        """
        from .devnet import command

        return command(datadir, host, port, block_time)


@hookimpl
def chenilles_backends() -> list[BitcoinBackendFactory]:
    return [BitcoinBackendFactory()]
