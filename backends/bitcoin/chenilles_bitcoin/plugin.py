"""Registers the Bitcoin backend with the hub through the ``chenilles.backends`` entry point."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from chenilles_hub.backend import BackendInfo, ChainBackend
from chenilles_hub.devnet.role import DevnetChain
from chenilles_hub.hookspecs import hookimpl

from .members import TWO_PARTY_ONLY


class BitcoinBackendFactory:
    info = BackendInfo(
        name="bitcoin",
        version=metadata.version("chenilles-bitcoin"),
        family="Bitcoin",
        chains=("bip122:regtest", "bip122:signet", "bip122:mainnet"),
        description=(
            "BOLT 3 channels; embedded regtest validated by libbitcoinkernel, or bitcoind JSON-RPC"
        ),
        max_members=2,
        members_note=TWO_PARTY_ONLY,
        single_funder=True,
        dispute="penalty",
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
        embedded_keys = {
            "datadir",
            "auto_mine",
            "feerate_per_kw",
            "dust_limit_sat",
            "max_fee_sat",
            "block_interval",
            "max_dust_exposure_sat",
        }
        return frozenset(
            embedded_keys
            if embedded
            else {"user", "password", "cookie_file", "chain", "from_block", "height_clock"}
            | {"faucet_key_file"}
            | embedded_keys
        )

    # --- the devnet role (chenilles_hub.devnet.role.DevnetRole) ------------------------------

    def devnet_command(
        self, datadir: str, host: str, port: int, block_time: float, index: int = 0
    ) -> list[str]:
        """The argv of a devnet server speaking bitcoind's JSON-RPC (``chenilles devnet``).

        It prints ``{"ready": true, "url": ...}`` on stdout (and writes DIR/ready.json) when
        it serves; connect with ``connect(url, cookie_file=DIR/.cookie)``.
        """
        from .devnet import command

        return command(datadir, host, port, block_time)

    def devnet_ready(self, url: str) -> bool:
        from .devnet.role import ready

        return ready(url)

    def devnet_provision(
        self, url: str, datadir: str, accounts: int, block_time: float
    ) -> DevnetChain:
        from .devnet.role import provision

        chain = provision(url, datadir, accounts, block_time)
        (Path(datadir) / "block_interval").write_text(str(chain.options["block_interval"]))
        return chain

    def devnet_mine(self, url: str, datadir: str, blocks: int) -> None:
        from .devnet.role import mine

        mine(url, datadir, blocks)

    def devnet_advance(self, url: str, datadir: str, seconds: int) -> None:
        from .devnet.role import advance

        interval_file = Path(datadir) / "block_interval"
        interval = int(interval_file.read_text()) if interval_file.exists() else 600
        advance(url, datadir, seconds, interval)


@hookimpl
def chenilles_backends() -> list[BitcoinBackendFactory]:
    return [BitcoinBackendFactory()]
