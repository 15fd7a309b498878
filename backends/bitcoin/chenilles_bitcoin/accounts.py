"""Bitcoin accounts: one secp256k1 secret and the P2WPKH wallet it controls.

The wallet pays channel fundings; every sweep the backend makes for the account (penalty,
to_local, HTLC claims, payouts) pays back into the wallet's script, where the wallet finds it
on the chain (``Wallet.coins``), so the balance the hub sees is what the account can spend.
"""

from __future__ import annotations

import coincurve

from .ledger import BitcoinLedger, Wallet


def parse_secret(key: bytes | str) -> bytes:
    """An account secret from 32 raw bytes or 64 hex digits (``0x`` allowed).

    Raises ValueError (without echoing the key) for anything else, including a number that
    is not a valid secp256k1 secret key (zero, or not below the group order).
    """
    if isinstance(key, str):
        text = key.strip()
        if text[:2].lower() == "0x":
            text = text[2:]
        if len(text) != 64:
            raise ValueError(f"a Bitcoin account key is 64 hex digits, got {len(text)} characters")
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            raise ValueError("a Bitcoin account key must be hexadecimal") from None
    elif isinstance(key, bytes | bytearray):
        secret = bytes(key)
        if len(secret) != 32:
            raise ValueError(f"a Bitcoin account key is 32 bytes, got {len(secret)}")
    else:
        raise TypeError(f"a Bitcoin account key is bytes or a hex string, not {type(key).__name__}")
    try:
        coincurve.PrivateKey(secret)
    except ValueError:
        raise ValueError(
            "not a valid secp256k1 secret key (zero or above the group order)"
        ) from None
    return secret


class BitcoinAccount:
    """``chain_key`` is the wallet's public key; channel keys derive from ``secret``."""

    def __init__(self, ledger: BitcoinLedger, secret: bytes) -> None:
        self.secret = secret
        self.wallet = Wallet(ledger, secret)

    @property
    def chain_key(self) -> str:
        return self.wallet.pubkey.hex()

    @property
    def script_pubkey(self) -> bytes:
        return self.wallet.script_pubkey

    def __repr__(self) -> str:  # never print the secret
        return f"BitcoinAccount({self.chain_key})"


__all__ = ["BitcoinAccount", "parse_secret"]
