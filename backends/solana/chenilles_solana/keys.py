"""Solana secret keys as operators write them in a node's configuration.

Accepted: the 32-byte ed25519 seed or the 64-byte keypair (seed then public key, the
layout of ``solana-keygen``'s files), as bytes, as hex (optionally ``0x``-prefixed), as
base58 (what wallets export), or as the JSON array of a ``solana-keygen`` file. Lengths
tell hex from base58 apart: hex is 64 or 128 characters, base58 of 32 or 64 bytes is at
most 44 or 88. Errors never repeat the key.
"""

from __future__ import annotations

import json
import re

import base58
from solders.keypair import Keypair

_HEX = re.compile(r"(0x)?([0-9a-fA-F]{64}|[0-9a-fA-F]{128})")


def _raw(key: bytes | str) -> bytes:
    if isinstance(key, bytes | bytearray):
        return bytes(key)
    if not isinstance(key, str):
        raise TypeError(f"a Solana key is bytes or str, not {type(key).__name__}")
    text = key.strip()
    if text.startswith("["):
        try:
            numbers = json.loads(text)
            return bytes(numbers)
        except (ValueError, TypeError):
            raise ValueError("not a solana-keygen key file (a JSON array of bytes)") from None
    m = _HEX.fullmatch(text)
    if m:
        return bytes.fromhex(m.group(2))
    try:
        return base58.b58decode(text)
    except ValueError:
        raise ValueError("a Solana key must be hex, base58 or a JSON byte array") from None


def keypair_from_secret(key: bytes | str) -> Keypair:
    """The keypair of a 32-byte seed or a 64-byte keypair; the public half of a keypair
    must match its secret (a mismatched file is refused, not half used)."""
    raw = _raw(key)
    if len(raw) == 32:
        return Keypair.from_seed(raw)
    if len(raw) == 64:
        try:
            return Keypair.from_bytes(raw)
        except ValueError:
            raise ValueError("the keypair's public half does not match its secret") from None
    raise ValueError(f"a Solana key is a 32-byte seed or a 64-byte keypair, not {len(raw)} bytes")
