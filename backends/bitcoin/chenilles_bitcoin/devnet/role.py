"""The client side of the Bitcoin devnet for ``chenilles devnet`` (the hub's DevnetRole):
readiness, provisioning (a faucet wallet that mined the chain's early, full-subsidy
coinbases pays each node account), mining and moving time forward (heights)."""

from __future__ import annotations

import json
import math
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path

from chenilles_hub.devnet.role import DevnetAsset, DevnetChain

from ..accounts import BitcoinAccount, parse_secret
from ..commitments import NATIVE_TOKEN
from ..ledger import BitcoindRpcLedger

CHAIN = "bip122:regtest"
#: What each node account receives: 10 BTC.
FUND_SAT = 10 * 100_000_000
#: Coinbases mined to the faucet at first provisioning (regtest halves every 150 blocks:
#: early coinbases are worth 50 BTC), plus 100 for them to mature.
FAUCET_COINBASES = 120
FAUCET_FILE = "faucet.key"


def ready(url: str) -> bool:
    """The server answers HTTP (401 without credentials is an answer)."""
    request = urllib.request.Request(url, data=b"{}", method="POST")
    try:
        urllib.request.urlopen(request, timeout=2)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _ledger(datadir: str, url: str) -> BitcoindRpcLedger:
    return BitcoindRpcLedger(url, cookie_file=str(Path(datadir) / ".cookie"))


def _faucet(datadir: str, ledger: BitcoindRpcLedger) -> BitcoinAccount:
    path = Path(datadir) / FAUCET_FILE
    if path.exists():
        return BitcoinAccount(ledger, parse_secret(path.read_text().strip()))
    faucet = BitcoinAccount(ledger, secrets.token_bytes(32))
    faucet.wallet.mine_to_self(FAUCET_COINBASES)
    ledger.mine(100)
    path.write_text(faucet.secret.hex() + "\n")
    path.chmod(0o600)
    return faucet


def provision(url: str, datadir: str, accounts: int, block_time: float) -> DevnetChain:
    ledger = _ledger(datadir, url)
    faucet = _faucet(datadir, ledger)
    keys: list[str] = []
    for _ in range(accounts):
        secret = secrets.token_bytes(32)
        account = BitcoinAccount(ledger, secret)
        faucet.wallet.fund_output(account.script_pubkey, FUND_SAT)
        keys.append(secret.hex())
    ledger.mine(1)
    return DevnetChain(
        chain=CHAIN,
        url=url,
        options={
            "cookie_file": str(Path(datadir) / ".cookie"),
            # Heights are the chain's clock: times convert at the devnet's block rate.
            "block_interval": max(1, round(block_time)) if block_time > 0 else 600,
        },
        accounts=keys,
        assets={f"{NATIVE_TOKEN}@{CHAIN}": DevnetAsset("BTC", 8, "60000", FUND_SAT)},
    )


def mine(url: str, datadir: str, blocks: int) -> None:
    _ledger(datadir, url).mine(blocks)


def advance(url: str, datadir: str, seconds: int, block_interval: int) -> None:
    """Timelocks on Bitcoin see heights: one block per started block interval."""
    _ledger(datadir, url).mine(max(1, math.ceil(seconds / block_interval)))


def ready_file(datadir: str, timeout: float = 30.0) -> dict[str, object]:
    """The server's ready line (written when it serves)."""
    path = Path(datadir) / "ready.json"
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path}")
        time.sleep(0.05)
    result: dict[str, object] = json.loads(path.read_text())
    return result
