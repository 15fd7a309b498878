"""``[chains.X] confirmations = N``: how deep a deposit must be before a node trusts it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chenilles_hub.node.config import ConfigError, load_config
from chenilles_hub.node.runtime.server import HubServer

pytestmark = pytest.mark.node


def write(tmp_path: Path, chain: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f"""
[node]
name = "hub"
listen = "127.0.0.1:0"
tick_interval = 0.2

[api]
listen = "127.0.0.1:0"

[chains.evm]
embedded = true
{chain}
"""
    )
    return path


def test_confirmations_are_parsed_per_chain_and_never_reach_the_backend(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "confirmations = 5"))
    (chain,) = config.chains
    assert chain.confirmations == 5
    assert "confirmations" not in chain.options
    assert load_config(write(tmp_path, "")).chains[0].confirmations is None


@pytest.mark.parametrize("value", ["0", "-1", "1.5", '"3"', "true", "100000"])
def test_a_confirmation_depth_that_is_not_a_block_count_is_refused(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError, match="confirmations"):
        load_config(write(tmp_path, f"confirmations = {value}"))


def test_the_node_counts_the_configured_depth_else_the_chains_finality(tmp_path: Path) -> None:
    async def depth(extra: str) -> tuple[int, int]:
        server = HubServer(load_config(write(tmp_path, extra)))
        await server.start()
        try:
            assert server.node is not None
            (chain,) = server.node.backends
            finality = server.node.backends[chain].time_model().finality_depth
            return server.node.ctx.depth(chain), finality
        finally:
            await server.shutdown()

    configured, _ = asyncio.run(depth("confirmations = 7"))
    assert configured == 7
    default, finality = asyncio.run(depth(""))
    assert default == finality >= 1
