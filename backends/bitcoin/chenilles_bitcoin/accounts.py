"""Bitcoin accounts: one secp256k1 secret and the P2WPKH wallet it controls.

The wallet pays channel fundings; every sweep the backend makes for the account (penalty,
to_local, HTLC claims, payouts) pays back into the wallet's script and is tracked as a coin,
so the balance the hub sees is what the account can spend.
"""

from __future__ import annotations

from .ledger import BitcoinLedger, OutPoint, Wallet


class AccountWallet(Wallet):
    """A ``Wallet`` that also tracks outputs other transactions pay to it."""

    def receive(self, outpoint: OutPoint) -> None:
        if outpoint not in self._coins:
            self._coins.append(outpoint)


class BitcoinAccount:
    """``chain_key`` is the wallet's public key; channel keys derive from ``secret``."""

    def __init__(self, ledger: BitcoinLedger, secret: bytes) -> None:
        self.secret = secret
        self.wallet = AccountWallet(ledger, secret)

    @property
    def chain_key(self) -> str:
        return self.wallet.pubkey.hex()

    @property
    def script_pubkey(self) -> bytes:
        return self.wallet.script_pubkey


__all__ = ["AccountWallet", "BitcoinAccount"]
