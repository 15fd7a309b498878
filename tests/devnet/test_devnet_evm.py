"""The EVM part of the devnet: anvil processes, the adjudicator pinned by the operator, two
EVM networks in one node, and a circuit across them between three node processes."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from tests.node.test_server_harness import free_port, wait_for

from .harness import Devnet, DevnetNode, chenilles, open_channel, pay

pytestmark = [pytest.mark.devnet, pytest.mark.evm, pytest.mark.xdist_group("devnet-evm")]

ETH = 10**18
L1 = "native@eip155:31337"
L2 = "native@eip155:31338"


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    root = tmp_path_factory.mktemp("devnet")
    net = Devnet.up(root, "--chains", "evm", "--evm-networks", "2", "--nodes", "hub,alice,bob")
    try:
        yield net
    finally:
        net.down()


def test_two_evm_networks_carry_one_circuit_between_processes(devnet: Devnet) -> None:
    hub, alice, bob = (devnet.node(n) for n in ("hub", "alice", "bob"))
    nodes = (hub, alice, bob)
    try:
        for node in nodes:
            node.start()
        chains = {b["chain"] for b in hub.api.get("/v1/backends")}
        assert chains == {"eip155:31337", "eip155:31338"}
        c1 = open_channel(alice, hub, L1, ETH)
        c2 = open_channel(hub, bob, L2, ETH)
        result = pay(alice, bob, 10**17, L2)
        assert result["status"] == "succeeded", result
        # Bob holds the amount on the second network; Alice paid it plus the hub's fee
        # (1 base unit + 0.1 %) on the first, at the 1:1 rate the devnet hub quotes.
        assert hub.api.get(f"/v1/channels/{c2}")["balances"][0]["remote"] == 10**17
        paid = ETH - alice.api.get(f"/v1/channels/{c1}")["balances"][0]["local"]
        assert paid == 10**17 + 1 + 10**17 // 1000
    finally:
        for node in nodes:
            node.stop()


def test_status_mine_advance_and_a_restart_keeps_the_chains(devnet: Devnet) -> None:
    status = devnet.status()
    assert [x["running"] for x in status["ledgers"]] == [True, True]
    w3 = Web3(Web3.HTTPProvider(devnet.url("evm")))
    height = w3.eth.block_number
    chenilles("devnet", "mine", "--dir", str(devnet.root), "--chain", "evm", "5")
    assert w3.eth.block_number >= height + 5
    before = w3.eth.get_block("latest")["timestamp"]
    chenilles("devnet", "advance", "--dir", str(devnet.root), "--chain", "evm", "3600")
    assert w3.eth.get_block("latest")["timestamp"] >= before + 3600
    adjudicator = tomllib.loads(devnet.node("hub").config_path.read_text())["chains"]["evm"][
        "adjudicator"
    ]
    devnet.down()
    assert [x["running"] for x in devnet.status()["ledgers"]] == [False, False]
    again = Devnet.up(
        devnet.root, "--chains", "evm", "--evm-networks", "2", "--nodes", "hub,alice,bob"
    )
    devnet.info = again.info
    w3 = Web3(Web3.HTTPProvider(devnet.url("evm")))
    assert w3.eth.block_number >= height + 5  # the chain survived the restart
    config = tomllib.loads(devnet.node("hub").config_path.read_text())
    assert config["chains"]["evm"]["adjudicator"] == adjudicator  # deployed once
    assert w3.eth.get_code(adjudicator)


def _bare_config(directory: Path, url: str, key: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "evm.key").write_text(key + "\n")
    path = directory / "node.toml"
    path.write_text(
        f"""
[node]
listen = "127.0.0.1:{free_port()}"
[api]
listen = "127.0.0.1:{free_port()}"
[chains.evm]
url = "{url}"
account_key_file = "evm.key"
"""
    )
    return path


def test_a_url_chain_without_a_pinned_adjudicator_refuses_to_start_then_deploy_pins_it(
    devnet: Devnet, tmp_path: Path
) -> None:
    url = devnet.url("evm")
    key = (devnet.node("bob").directory / "evm.key").read_text().strip()
    config = _bare_config(tmp_path / "solo", url, key)
    refused = chenilles("node", "start", "--config", str(config), check=False, timeout=60)
    assert refused.returncode != 0
    assert "no adjudicator pinned" in refused.stderr
    assert "chenilles deploy evm" in refused.stderr
    assert "Traceback" not in refused.stderr
    deployed = chenilles(
        "deploy",
        "evm",
        "--url",
        url,
        "--key-file",
        str(tmp_path / "solo" / "evm.key"),
        "--config",
        str(config),
        "--json",
    )
    pinned = json.loads(deployed.stdout)
    assert Web3(Web3.HTTPProvider(url)).eth.get_code(pinned["adjudicator"])
    assert (
        tomllib.loads(config.read_text())["chains"]["evm"]["adjudicator"] == pinned["adjudicator"]
    )
    node = DevnetNode("solo", config)
    try:
        node.start()
        assert wait_for(lambda: node.api.get("/v1/backends"))[0]["chain"] == "eip155:31337"
    finally:
        node.stop()
