"""The client side of the Solana devnet for ``chenilles devnet`` (the hub's DevnetRole):
readiness, provisioning (node accounts airdropped SOL and minted the test token) and what a
node config pins (the program id, the test mint and its public authority key)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from solders.keypair import Keypair

from chenilles_hub.devnet.role import DevnetAsset, DevnetChain

#: The devnet is a local cluster: its CAIP-2 id (Solana names clusters by genesis hash on
#: real networks; the embedded ledger uses the same local name).
CHAIN = "solana:localnet"


def ready(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getHealth"}).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            return bool(json.loads(answer.read()).get("result") == "ok")
    except (OSError, ValueError):
        return False


def provision(url: str, datadir: str, accounts: int) -> DevnetChain:
    from ..backend import TEST_SOL, TEST_TOKENS, connect_backend
    from .genesis import TEST_MINT_DECIMALS

    line = json.loads((Path(datadir) / "ready.json").read_text())
    options = {
        "program_id": line["program_id"],
        "test_mint": line["test_mint"],
        "mint_authority": line["test_mint_authority"],
        "chain": CHAIN,
    }
    backend = connect_backend(url, **options)
    # One server, no forks: a slot confirmed is final (a real cluster's default is 32).
    options["confirmations"] = 1
    keys: list[str] = []
    try:
        for _ in range(accounts):
            keypair = Keypair()
            account = backend.account_from_key(bytes(keypair))
            backend.fund_account(account)
            keys.append(bytes(keypair).hex())
    finally:
        backend.close()
    return DevnetChain(
        chain=CHAIN,
        url=url,
        options=options,
        accounts=keys,
        assets={
            f"native@{CHAIN}": DevnetAsset("SOL", 9, "150", TEST_SOL),
            f"{line['test_mint']}@{CHAIN}": DevnetAsset(
                "TKN", TEST_MINT_DECIMALS, "1", TEST_TOKENS
            ),
        },
    )


def advance(url: str, seconds: int) -> None:
    """Move the devnet's clock ``seconds`` ahead (its ``devnetAdvanceClock`` method)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "devnetAdvanceClock", "params": [seconds]}
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            reply = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        raise ValueError(f"the Solana devnet at {url} does not answer ({exc})") from None
    if "error" in reply:
        raise ValueError(reply["error"].get("message", "refused"))
