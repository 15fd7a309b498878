"""Registers the EVM backend with the hub through the ``chenilles.backends`` entry point."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from chenilles_hub.backend import BackendInfo, ChainBackend
from chenilles_hub.devnet.role import DevnetChain
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
        max_members=16,  # GroupAdjudicator (N-party channels, core.group)
        reorgs=True,
    )

    def embedded(self, **options: Any) -> ChainBackend:
        from .backend import embedded_backend

        return embedded_backend(**options)

    def connect(self, url: str, **options: Any) -> ChainBackend:
        from .backend import connect_backend

        return connect_backend(url, **options)

    def config_keys(self, embedded: bool) -> frozenset[str]:
        """The ``[chains.NAME]`` keys ``embedded``/``connect`` take (the node refuses others)."""
        embedded_keys = {"finality_depth", "margin", "fund_eth", "fund_tokens", "from_block"}
        return frozenset(
            embedded_keys
            if embedded
            else {"adjudicator", "deploy", "funder_keys", "tokens", "mintable", "apps", "timeout"}
            | embedded_keys
        )

    def deploy(self, url: str, key: str, **options: Any) -> dict[str, Any]:
        """Deploy the adjudicator (and, with ``token=True``, a test ERC-20) from ``key``."""
        from eth_account import Account

        from .devnet import deploy_contracts

        deployed = deploy_contracts(url, Account.from_key(key), token=options.get("token", False))
        return {k: v for k, v in deployed.items() if k != "chain"}

    # --- the devnet role (chenilles_hub.devnet.role.DevnetRole) ------------------------------

    def devnet_command(
        self, datadir: str, host: str, port: int, block_time: float, index: int = 0
    ) -> list[str]:
        from .devnet import anvil_command

        return anvil_command(datadir, host, port, block_time, index)

    def devnet_ready(self, url: str) -> bool:
        from .devnet import ready

        return ready(url)

    def devnet_provision(
        self, url: str, datadir: str, accounts: int, block_time: float
    ) -> DevnetChain:
        from .devnet import provision

        return provision(url, datadir, accounts)

    def devnet_mine(self, url: str, datadir: str, blocks: int) -> None:
        from .devnet import mine

        mine(url, blocks)

    def devnet_advance(self, url: str, datadir: str, seconds: int) -> None:
        from .devnet import advance

        advance(url, seconds)


@hookimpl
def chenilles_backends() -> list[EvmBackendFactory]:
    return [EvmBackendFactory()]
