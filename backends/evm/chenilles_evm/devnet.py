"""The EVM devnet ledger: anvil as its own process, the adjudicator and a test token deployed
once (``deploy_contracts``, also behind ``chenilles deploy evm``), funded node accounts.

anvil runs revm (a real EVM) and speaks Ethereum's JSON-RPC; with ``--block-time`` it mines
on an interval like a real network (without it, it mines only for a transaction, and a
dispute whose conclusion needs a later block would never end), and ``--state`` keeps its
chain across restarts (dumped every second and on exit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint

from chenilles_hub.devnet.role import DevnetAsset, DevnetChain

from .backend import _deploy, _fees
from .ledgers import ANVIL_MNEMONIC, anvil_binary
from .mapping import NATIVE, caip2, checksum

#: The first devnet EVM chain id; a second EVM ledger (``index`` 1) gets 31338, and so on.
BASE_CHAIN_ID = 31337
#: What each node account receives: 1,000 ETH and 10**24 base units of the test token.
FUND_ETH = 1_000 * 10**18
FUND_TOKENS = 10**24
DEPLOYMENT_FILE = "deployment.json"


def anvil_command(
    datadir: str, host: str, port: int, block_time: float, index: int = 0
) -> list[str]:
    Path(datadir).mkdir(parents=True, exist_ok=True)
    cmd = [
        anvil_binary(),
        "--host",
        host,
        "--port",
        str(port),
        "--chain-id",
        str(BASE_CHAIN_ID + index),
        "--hardfork",
        "cancun",
        "--mnemonic",
        ANVIL_MNEMONIC,
        "--accounts",
        "10",
        "--state",
        str(Path(datadir) / "state.json"),
        "--state-interval",
        "1",
        "--silent",
    ]
    if block_time > 0:
        cmd += ["--block-time", _seconds(block_time)]
    return cmd


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _w3(url: str) -> Web3:
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))


def dev_funder(index: int = 9) -> LocalAccount:
    """One of anvil's development accounts (funded with 10,000 ETH at genesis)."""
    EthAccount.enable_unaudited_hdwallet_features()
    account: LocalAccount = EthAccount.from_mnemonic(
        ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account


def deploy_contracts(url: str, deployer: LocalAccount, *, token: bool = True) -> dict[str, Any]:
    """Deploy the adjudicator (and a mintable test ERC-20) from ``deployer``; return what a
    node config pins: ``{"adjudicator", "tokens", "from_block", "chain"}``."""
    w3 = _w3(url)
    chain_id = int(w3.eth.chain_id)
    adjudicator = _deploy(w3, chain_id, "Adjudicator", (), deployer, _fees(w3))
    origin = int(w3.eth.block_number)
    tokens: list[str] = []
    if token:
        erc20 = _deploy(w3, chain_id, "TestToken", ("Test", "TST"), deployer, _fees(w3))
        tokens.append(checksum(erc20.address))
    return {
        "chain": caip2(chain_id),
        "adjudicator": checksum(adjudicator.address),
        "tokens": tokens,
        "from_block": origin,
    }


def ready(url: str) -> bool:
    try:
        return bool(_w3(url).is_connected())
    except Exception:
        return False


def provision(url: str, datadir: str, accounts: int) -> DevnetChain:
    """Deploy once (kept in ``datadir/deployment.json``), then fund ``accounts`` new keys."""
    from .backend import connect_backend

    record = Path(datadir) / DEPLOYMENT_FILE
    deployment: dict[str, Any] | None = None
    if record.exists():
        deployment = json.loads(record.read_text())
        if not _w3(url).eth.get_code(deployment["adjudicator"]):
            deployment = None  # the chain was reset: deploy again
    if deployment is None:
        deployment = deploy_contracts(url, dev_funder())
        record.write_text(json.dumps(deployment, indent=1) + "\n")
    tokens = deployment["tokens"]
    backend = connect_backend(
        url,
        adjudicator=deployment["adjudicator"],
        tokens=tokens,
        mintable=tokens,
        funder_keys=[dev_funder().key.hex()],
        fund_eth=FUND_ETH,
        fund_tokens=FUND_TOKENS,
    )
    keys: list[str] = []
    for _ in range(accounts):
        fresh = EthAccount.create()
        backend.fund_account(backend.account_from_key(fresh.key.hex()))
        keys.append(fresh.key.hex())
    chain = deployment["chain"]
    assets = {f"{NATIVE}@{chain}": DevnetAsset("ETH", 18, "3000", FUND_ETH)}
    for token in tokens:
        assets[f"{token}@{chain}"] = DevnetAsset("TST", 18, "1", FUND_TOKENS)
    return DevnetChain(
        chain=chain,
        url=url,
        options={
            "adjudicator": deployment["adjudicator"],
            "tokens": tokens,
            "from_block": deployment["from_block"],
        },
        accounts=keys,
        assets=assets,
    )


def mine(url: str, blocks: int) -> None:
    w3 = _w3(url)
    for _ in range(blocks):
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def advance(url: str, seconds: int) -> None:
    w3 = _w3(url)
    w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [int(seconds)])
    w3.provider.make_request(RPCEndpoint("evm_mine"), [])
