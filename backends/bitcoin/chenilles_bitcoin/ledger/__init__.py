"""Bitcoin ledgers for Chenilles: an embedded regtest chain validated by Bitcoin Core's
consensus library (`KernelChain`) and a bitcoind JSON-RPC client (`BitcoindRpcLedger`),
both behind the `BitcoinLedger` interface."""

from .interface import (
    BitcoinLedger,
    BlockRejected,
    Coin,
    EventKind,
    LedgerError,
    LedgerEvent,
    OutPoint,
    TransactionRejected,
    Utxo,
)
from .kernel_chain import KernelChain
from .rpc_client import BitcoindRpcLedger, RpcError
from .wallet import Wallet, p2wpkh_script, p2wsh_script, segwit_v0_sighash, sign_digest

__all__ = [
    "BitcoinLedger",
    "BitcoindRpcLedger",
    "BlockRejected",
    "Coin",
    "EventKind",
    "KernelChain",
    "LedgerError",
    "LedgerEvent",
    "OutPoint",
    "RpcError",
    "TransactionRejected",
    "Utxo",
    "Wallet",
    "p2wpkh_script",
    "p2wsh_script",
    "segwit_v0_sighash",
    "sign_digest",
]
