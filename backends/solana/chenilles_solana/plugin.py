"""Registers the Solana backend with the hub through the ``chenilles.backends`` entry point."""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Any

from chenilles_hub.backend import BackendInfo, ChainBackend
from chenilles_hub.devnet.role import DevnetChain
from chenilles_hub.hookspecs import hookimpl


class SolanaBackendFactory:
    info = BackendInfo(
        name="solana",
        version=metadata.version("chenilles-solana"),
        family="Solana",
        chains=("solana:localnet", "solana:devnet", "solana:mainnet"),
        description=("Chenilles channel program; embedded LiteSVM or any Solana JSON-RPC cluster"),
        supports_apps=True,
        max_members=16,  # chenilles_group.c (N-party channels, core.group)
    )

    def embedded(self, **options: Any) -> ChainBackend:
        from .backend import embedded_backend

        return embedded_backend(**options)

    def connect(self, url: str, **options: Any) -> ChainBackend:
        from .backend import connect_backend

        return connect_backend(url, **options)

    def config_keys(self, embedded: bool) -> frozenset[str]:
        """The ``[chains.NAME]`` keys ``embedded``/``connect`` take (the node refuses others)."""
        embedded_keys = {"start_time", "test_mint", "apps"}
        return frozenset(
            embedded_keys
            if embedded
            else {
                "program_id",
                "chain",
                "mints",
                "test_mint",
                "mint_authority",
                "commitment",
                "from_block",
                "timeout",
                "apps",
            }
        )

    # --- the devnet role (chenilles_hub.devnet.role.DevnetRole) ------------------------------

    def devnet_command(
        self, datadir: str, host: str, port: int, block_time: float, index: int = 0
    ) -> list[str]:
        """The argv of a devnet server for this chain (python -m chenilles_solana.devnet):
        Solana's JSON-RPC over LiteSVM, state in ``datadir``, one slot per ``block_time``
        seconds. It prints one JSON line when ready (url, program_id, test_mint, ...) and
        writes it to ``datadir/ready.json``; SIGTERM stops it."""
        if not block_time > 0:
            raise ValueError(f"block_time must be positive, not {block_time}")
        slot_ms = max(1, round(block_time * 1000))
        return [
            sys.executable,
            "-m",
            "chenilles_solana.devnet",
            "--datadir",
            datadir,
            "--host",
            host,
            "--port",
            str(port),
            "--slot-ms",
            str(slot_ms),
        ]

    def devnet_ready(self, url: str) -> bool:
        from .devnet.role import ready

        return ready(url)

    def devnet_provision(
        self, url: str, datadir: str, accounts: int, block_time: float
    ) -> DevnetChain:
        from .devnet.role import provision

        return provision(url, datadir, accounts)

    def devnet_mine(self, url: str, datadir: str, blocks: int) -> None:
        """Slots come with time on the devnet: nothing to mine."""

    def devnet_advance(self, url: str, datadir: str, seconds: int) -> None:
        from .devnet.role import advance

        advance(url, seconds)


@hookimpl
def chenilles_backends() -> list[SolanaBackendFactory]:
    return [SolanaBackendFactory()]
