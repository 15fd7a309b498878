"""The chain under test of the crash harness (:mod:`tests.node.crash_harness`): what differs
between EVM on anvil and the Bitcoin and Solana devnet ledgers, behind one small interface.

Each chain is a real process speaking its chain's RPC over a socket (anvil; the devnet
servers ``chenilles devnet up`` starts), and says how a node is configured against it, what
a channel holds (asset, deposits: Bitcoin is single-funder), how its time is moved on (a
dispute ends in seconds) and what each account paid in fees during an episode:

* EVM: every transaction each account sent, read block by block from anvil (gas used x
  effective gas price), nothing taken from the nodes;
* Bitcoin and Solana: the receipts the nodes' API lists for the channel (fee and rent paid
  from the wallet; fees paid from the channel's funds are the funder's).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from chenilles_hub.identity import NodeIdentity

from .test_server_harness import (
    CHENILLES,
    CONSENTING,
    ETH,
    NATIVE,
    AnvilChain,
    NodeProc,
    free_port,
    make_node,
)

ChainKind = Literal["evm", "bitcoin", "solana"]


class ChainUnderTest(Protocol):
    """What the harness needs from a chain; one instance serves a whole run."""

    kind: ChainKind
    #: ``token@chain`` of the channels' asset
    asset: str
    #: the opener's deposit, the amount of every transfer and payment (base units)
    deposit: int
    amount: int
    #: the channels' challenge period, seconds of the chain's clock
    challenge: int
    #: only the opener deposits (BackendInfo.single_funder)
    single_funder: bool

    def make_node(self, base: Path, name: str, index: int) -> NodeProc:
        """A node configured against this chain with its ``index``-th funded account;
        its ``tail`` holds the open policy (consent to the deposits asked of it)."""
        ...

    def mining(self) -> AbstractContextManager[None]:
        """Blocks come by themselves while the body runs."""
        ...

    def advance(self, seconds: int) -> None:
        """Move the chain's clock ``seconds`` ahead."""
        ...

    def mark(self) -> int:
        """Where the chain stands before an episode (what ``costs`` counts from)."""
        ...

    def wallets(self, nodes: dict[str, NodeProc]) -> dict[str, int]:
        """Each node's on-chain balance of ``asset``."""
        ...

    def costs(self, nodes: dict[str, NodeProc], channel_id: str, mark: int) -> dict[str, int]:
        """What each node's account paid (fees, rent) for the channel since ``mark``."""
        ...

    def close(self) -> None: ...

    #: what the chain saw that the nodes' books did not (counted as outcomes)
    notes: list[str]


def _policy(asset: str, pending_timeout: int = 10) -> str:
    """Consent to any challenge from 1 s and to deposits asked by peers; an open the peer
    forgot in a crash is abandoned after ``pending_timeout`` s (default 120 s)."""
    return (
        f"\n[policy.open]\nmin_challenge = 1\npending_timeout = {pending_timeout}\n\n"
        f'[[policy.open.deposit]]\nasset = "{asset}"\nmax = {10**30}\n'
    )


class EvmUnderTest:
    """Anvil with the adjudicator deployed; fees read from the blocks."""

    kind: ChainKind = "evm"
    asset = NATIVE
    deposit = ETH
    amount = 10**15
    challenge = 3
    single_funder = False

    def __init__(self, chain: AnvilChain, accounts: tuple[int, int] = (4, 5)) -> None:
        self.notes: list[str] = []
        self.chain = chain
        self.accounts = accounts
        self.addresses: dict[str, str] = {}

    def make_node(self, base: Path, name: str, index: int) -> NodeProc:
        node = make_node(base, name, self.chain, self.accounts[index])
        node.tail = CONSENTING.replace(
            "min_challenge = 1\n", "min_challenge = 1\npending_timeout = 10\n"
        )
        key = self.chain.key(node.account)
        self.addresses[name] = self.chain.ledger.w3.eth.account.from_key(key).address
        return node

    def mining(self) -> AbstractContextManager[None]:
        return self.chain.mining(0.2)

    def advance(self, seconds: int) -> None:
        self.chain.ledger.w3.provider.make_request("evm_increaseTime", [seconds])
        self.chain.mine()

    def mark(self) -> int:
        return int(self.chain.ledger.w3.eth.block_number)

    def wallets(self, nodes: dict[str, NodeProc]) -> dict[str, int]:
        w3 = self.chain.ledger.w3
        return {name: int(w3.eth.get_balance(self.addresses[name])) for name in nodes}

    def costs(self, nodes: dict[str, NodeProc], channel_id: str, mark: int) -> dict[str, int]:
        """Every fee each account paid in the blocks after ``mark`` (the chain's word)."""
        w3 = self.chain.ledger.w3
        owners = {self.addresses[name].lower(): name for name in nodes}
        fees = dict.fromkeys(nodes, 0)
        for number in range(mark + 1, self.mark() + 1):
            for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
                name = owners.get(tx["from"].lower())
                if name is not None:
                    receipt = w3.eth.get_transaction_receipt(tx["hash"])
                    fees[name] += int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
        return fees

    def close(self) -> None:
        """The anvil belongs to whoever started it."""


#: per devnet chain: the asset, the opener's deposit, the amount of each step
DEVNET = {
    "bitcoin": ("native@bip122:regtest", 10**8, 10**6, True),
    "solana": ("native@solana:localnet", 10**9, 10**7, False),
}


class DevnetUnderTest:
    """One devnet ledger (``chenilles devnet up --chains bitcoin|solana``) as a process;
    nodes get its ``[chains.NAME]`` table as ``devnet up`` wrote it, fees from receipts."""

    challenge = 3

    def __init__(self, root: Path, kind: Literal["bitcoin", "solana"]) -> None:
        self.kind: ChainKind = kind
        self.asset, self.deposit, self.amount, self.single_funder = DEVNET[kind]
        self.root = root
        self.notes: list[str] = []
        self.ledger: dict[str, Any] = {}
        self._devnet("up", "--chains", kind, "--nodes", "alice,bob", "--block-time", "1", "--json")
        state = json.loads((root / "devnet.json").read_text())
        self.ledger = next(x for x in state["ledgers"] if x["name"] == kind)

    def _devnet(self, *args: str) -> str:
        result = subprocess.run(
            [*CHENILLES, "devnet", *args, "--dir", str(self.root)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"chenilles devnet {args[0]} failed:\n{result.stderr}")
        return result.stdout

    def make_node(self, base: Path, name: str, index: int) -> NodeProc:
        written = self.root / "nodes" / name
        table = tomllib.loads((written / "node.toml").read_text())["chains"][self.kind]
        table["account_key_file"] = str(written / table["account_key_file"])
        lines = [f"[chains.{self.kind}]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
        directory = base / name
        (directory / "data").mkdir(parents=True)
        identity = NodeIdentity()
        seed = directory / "data" / "identity.seed"
        seed.write_text(identity.seed.hex() + "\n")
        seed.chmod(0o600)
        # no anvil: the node's chain is the table above
        node = NodeProc(
            name, directory, identity, free_port(), free_port(), cast(AnvilChain, None), index
        )
        node.chain_toml = "\n".join(lines) + "\n"
        node.tail = _policy(self.asset)
        return node

    def mining(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # the ledger makes a block (a slot) every second

    def advance(self, seconds: int) -> None:
        from chenilles_hub.devnet.ledgers import role_of

        role_of(self.kind).devnet_advance(self.ledger["url"], self.ledger["datadir"], seconds)

    def mark(self) -> int:
        """The slot (Solana) or height (Bitcoin) before the episode."""
        if self.kind == "solana":
            return int(self._rpc("getSlot", []))
        return int(self._bitcoind().call("getblockcount"))

    def wallets(self, nodes: dict[str, NodeProc]) -> dict[str, int]:
        chain = self.asset.rpartition("@")[2]
        result = {}
        for name, node in nodes.items():
            row = next(b for b in node.api.get("/v1/backends") if b["chain"] == chain)
            result[name] = int(row["balances"][self.asset])
        return result

    def costs(self, nodes: dict[str, NodeProc], channel_id: str, mark: int) -> dict[str, int]:
        """Fees and rent each paid from its wallet (its receipts); fees paid from the
        channel's funds (Bitcoin's commitment and closing transactions, whoever broadcast
        them) are borne by the funder, the opener (Alice)."""
        receipts = {
            name: node.api.get(f"/v1/channels/{channel_id}")["receipts"]
            for name, node in nodes.items()
        }
        from_channel = {
            r["txid"]: r["fee"] for rs in receipts.values() for r in rs if r["fee_from_channel"]
        }
        costs = {
            name: sum(r["fee"] + r["rent"] for r in rs if not r["fee_from_channel"])
            for name, rs in receipts.items()
        }
        costs["alice"] += sum(from_channel.values())
        if self.kind == "solana":
            self._unbooked(receipts, costs, mark)
        else:
            self._unbooked_spends(receipts, costs, mark, self._wallet_scripts(nodes))
        return costs

    def _wallet_scripts(self, nodes: dict[str, NodeProc]) -> dict[str, str]:
        """Bitcoin: each node's wallet script (P2WPKH of its account key), hex, to name."""
        from chenilles_bitcoin.bolt3 import p2wpkh

        chain = self.asset.rpartition("@")[2]
        scripts = {}
        for name, node in nodes.items():
            row = next(b for b in node.api.get("/v1/backends") if b["chain"] == chain)
            scripts[bytes(p2wpkh(bytes.fromhex(row["account"]))).hex()] = name
        return scripts

    def _bitcoind(self) -> Any:
        from chenilles_bitcoin.ledger import BitcoindRpcLedger

        return BitcoindRpcLedger(
            self.ledger["url"], cookie_file=str(Path(self.ledger["datadir"]) / ".cookie")
        )

    def _unbooked_spends(
        self,
        receipts: dict[str, list[dict[str, Any]]],
        costs: dict[str, int],
        mark: int,
        wallets: dict[str, str],
    ) -> None:
        """Bitcoin: every transaction in the blocks since ``mark`` that spends the
        channel's funding output (its closing or commitment transaction), or an output of
        one of those into a node's wallet (a payout's sweep, a penalty), against the
        receipts. One a node broadcast and was killed before it booked is added at the fee
        the chain shows and noted, as on Solana (docs/security.md): a funding spend's fee
        is paid from the channel's funds (the funder's), a sweep's by the wallet it pays
        (``wallets``: script hex to node). After a restart, a node asked to sweep again
        finds the output spent and books an empty receipt (the backend contract's
        idempotent withdraw), so the sweep's fee is not in its books."""
        booked = {r["txid"] for rs in receipts.values() for r in rs if r["txid"]}
        funding = {r["txid"] for r in receipts["alice"] if r["operation"] == "fund"}
        closing: set[str] = set()  # the transactions that spent the funding output
        bitcoind = self._bitcoind()
        for height in range(mark + 1, int(bitcoind.call("getblockcount")) + 1):
            block = bitcoind.call("getblock", bitcoind.call("getblockhash", height), 2)
            for tx in block["tx"]:  # in a block, a parent comes before its spenders
                spent = {vin.get("txid") for vin in tx["vin"]}
                spends_funding = bool(spent & funding)
                if spends_funding:
                    closing.add(tx["txid"])
                if tx["txid"] in booked:
                    continue
                if spends_funding:
                    costs["alice"] += round(Decimal(str(tx["fee"])) * 100_000_000)
                    self.notes.append("fee missing from receipts (sent, then killed)")
                elif spent & closing:
                    paid = [wallets.get(out["scriptPubKey"]["hex"]) for out in tx["vout"]]
                    payer = next((name for name in paid if name is not None), None)
                    if payer is not None:
                        costs[payer] += round(Decimal(str(tx["fee"])) * 100_000_000)
                        self.notes.append("a sweep's fee missing from receipts (sent, then killed)")

    def _rpc(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        request = urllib.request.Request(
            self.ledger["url"], body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())["result"]

    def _unbooked(
        self, receipts: dict[str, list[dict[str, Any]]], costs: dict[str, int], mark: int
    ) -> None:
        """Solana: every transaction each account paid for since ``mark`` (the chain's
        history), against its receipts. One the node sent and was killed before it could
        book (it waits for the confirmation, then checkpoints) is added at the fee the
        chain charged, and noted: the node's books are short of it (docs/security.md)."""
        from solders.keypair import Keypair

        for name in costs:
            key = (self.root / "nodes" / name / "solana.key").read_text().strip()
            address = str(Keypair.from_bytes(bytes.fromhex(key)).pubkey())
            booked = {r["txid"] for r in receipts[name]}
            for entry in self._rpc("getSignaturesForAddress", [address, {"limit": 1000}]):
                if entry["slot"] <= mark or entry["signature"] in booked:
                    continue
                tx = self._rpc("getTransaction", [entry["signature"], {"encoding": "json"}])
                if tx["transaction"]["message"]["accountKeys"][0] != address:
                    continue  # paid by someone else
                costs[name] += int(tx["meta"]["fee"])
                self.notes.append("fee missing from receipts (sent, then killed)")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._devnet("down")


@contextlib.contextmanager
def chain_under_test(
    kind: ChainKind, root: Path, anvil: AnvilChain | None = None
) -> Iterator[ChainUnderTest]:
    """The chain of a run: anvil (the caller's, else a new one) or a devnet ledger in
    ``root``; stopped at the end (what this started)."""
    if kind == "evm":
        if anvil is not None:
            yield EvmUnderTest(anvil)
            return
        from .test_server_harness import anvil_chain

        with anvil_chain() as chain:
            yield EvmUnderTest(chain)
        return
    devnet = DevnetUnderTest(root, kind)
    try:
        yield devnet
    finally:
        devnet.close()
