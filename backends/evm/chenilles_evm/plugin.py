"""Registers the EVM backend with the hub through the ``chenilles.backends`` entry point."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from chenilles_hub.backend import BackendInfo, ChainBackend
from chenilles_hub.hookspecs import hookimpl


class EvmBackendFactory:
    info = BackendInfo(
        name="evm",
        version=metadata.version("chenilles-evm"),
        family="EVM",
        chains=("eip155:*",),
        description=(
            "Chenilles adjudicator contract via web3; embedded eth-tester "
            "(py-evm), anvil or any JSON-RPC node"
        ),
        supports_apps=True,
    )

    def embedded(self, **options: Any) -> ChainBackend:
        from .backend import embedded_backend

        return embedded_backend(**options)

    def connect(self, url: str, **options: Any) -> ChainBackend:
        from .backend import connect_backend

        return connect_backend(url, **options)


@hookimpl
def chenilles_backends() -> list[EvmBackendFactory]:
    return [EvmBackendFactory()]
