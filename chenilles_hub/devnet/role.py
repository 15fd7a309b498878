"""The devnet role of a backend's plugin factory: what ``chenilles devnet`` needs from a
chain, in four methods. Optional: a backend without it simply has no devnet ledger."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import msgspec


class DevnetAsset(msgspec.Struct, frozen=True):
    """An asset of a devnet ledger, with what a sample hub config needs to quote it."""

    symbol: str
    decimals: int
    #: What one whole unit is worth in a common unit (say, USD), as a decimal string: the
    #: sample hub's conversion rates between two assets are the ratio of these.
    reference_price: str
    #: What each provisioned account received, in base units.
    funded: int


class DevnetChain(msgspec.Struct, frozen=True):
    """A provisioned devnet ledger, as node configs need it."""

    #: CAIP-2 chain id (``eip155:31337``, ``bip122:regtest``, ``solana:localnet``).
    chain: str
    url: str
    #: Keys of ``[chains.NAME]`` besides ``backend``, ``url`` and ``account_key_file``: the
    #: pinned contract or program (``adjudicator``, ``program_id``), tokens offered...
    options: dict[str, Any]
    #: One funded account secret (hex) per node asked for, in order.
    accounts: list[str]
    #: Every asset a channel may hold, by ``token@chain``.
    assets: dict[str, DevnetAsset]


@runtime_checkable
class DevnetRole(Protocol):
    def devnet_command(
        self, datadir: str, host: str, port: int, block_time: float, index: int = 0
    ) -> list[str]:
        """The argv of the ledger process: serves the chain's RPC on ``host:port``, keeps its
        state in ``datadir`` across restarts, produces a block every ``block_time`` seconds
        (0: only on demand). ``index`` tells several ledgers of one family apart (an EVM
        chain id, say)."""
        ...

    def devnet_ready(self, url: str) -> bool:
        """Whether the ledger at ``url`` answers (polled after start)."""
        ...

    def devnet_provision(
        self, url: str, datadir: str, accounts: int, block_time: float
    ) -> DevnetChain:
        """Make the ledger usable by nodes: deploy what must be deployed (once: a second call
        after a restart reuses it, kept in ``datadir``) and fund ``accounts`` new accounts.
        ``block_time`` is what the ledger was started with (a chain whose clock is its
        height converts times at that rate)."""
        ...

    def devnet_mine(self, url: str, datadir: str, blocks: int) -> None:
        """Produce ``blocks`` blocks now."""
        ...

    def devnet_advance(self, url: str, datadir: str, seconds: int) -> None:
        """Move the ledger's clock ``seconds`` ahead (and produce a block at the new time).
        A chain whose clock cannot be moved raises ``ValueError`` saying why."""
        ...
