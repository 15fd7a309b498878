"""Regtest addresses <-> scriptPubKeys: Base58Check (P2PKH, P2SH) and Bech32/Bech32m.

Why code of our own: python-bitcoinlib 0.12.2 (a dependency) predates Bech32m, so it cannot
encode Taproot (witness v1) addresses, and no small, maintained library in our registries
does both without pulling in its own secp256k1. Bech32/Bech32m here is the reference
algorithm of BIP 173 and BIP 350 (checked against their test vectors and against
python-bitcoinlib's Bech32 for v0); Base58Check is python-bitcoinlib's.
"""

from __future__ import annotations

import bitcoin.base58 as base58

HRP = "bcrt"  # regtest
P2PKH_VERSION = 0x6F
P2SH_VERSION = 0xC4

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32_CONST = 1
BECH32M_CONST = 0x2BC830A3
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class AddressError(ValueError):
    """Not a valid regtest address."""


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_encode(hrp: str, data: list[int], const: int) -> str:
    """Bech32 (const 1) or Bech32m (const 0x2bc830a3) string of 5-bit `data`."""
    values = _hrp_expand(hrp) + data
    mod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ const
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in data + checksum)


def bech32_decode(text: str) -> tuple[str, list[int], int]:
    """(hrp, 5-bit data, const) of a Bech32 or Bech32m string; AddressError otherwise."""
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise AddressError("Invalid character in Bech32 string")
    if text.lower() != text and text.upper() != text:
        raise AddressError("Bech32 string mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text) or len(text) > 90:
        raise AddressError("Invalid Bech32 separator position or length")
    if any(c not in CHARSET for c in text[pos + 1 :]):
        raise AddressError("Invalid Base 32 character")
    hrp = text[:pos]
    data = [CHARSET.find(c) for c in text[pos + 1 :]]
    const = _polymod(_hrp_expand(hrp) + data)
    if const not in (BECH32_CONST, BECH32M_CONST):
        raise AddressError("Invalid Bech32 checksum")
    return hrp, data[:-6], const


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise AddressError("Invalid Bech32 data")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise AddressError("Invalid padding in Bech32 data section")
    return out


def encode_segwit(version: int, program: bytes, hrp: str = HRP) -> str:
    const = BECH32_CONST if version == 0 else BECH32M_CONST
    return bech32_encode(hrp, [version, *_convertbits(program, 8, 5, True)], const)


def decode_segwit(address: str, hrp: str = HRP) -> tuple[int, bytes]:
    got_hrp, data, const = bech32_decode(address)
    if got_hrp != hrp:
        raise AddressError(f"Invalid or unsupported prefix for Segwit (Bech32) address: {got_hrp}")
    if not data or data[0] > 16:
        raise AddressError("Invalid Bech32 address witness version")
    version = data[0]
    program = bytes(_convertbits(data[1:], 5, 8, False))
    if not 2 <= len(program) <= 40:
        raise AddressError("Invalid Bech32 address program size")
    if version == 0 and len(program) not in (20, 32):
        raise AddressError("Invalid Bech32 v0 address program size")
    if (version == 0) != (const == BECH32_CONST):
        raise AddressError(
            "Version 0 witness address must use Bech32 checksum"
            if version == 0
            else "Version 1+ witness address must use Bech32m checksum"
        )
    return version, program


def witness_program(script: bytes) -> tuple[int, bytes] | None:
    """(version, program) if `script` is a witness program (BIP 141), else None."""
    if not 4 <= len(script) <= 42:
        return None
    op = script[0]
    if op != 0 and not 0x51 <= op <= 0x60:
        return None
    if script[1] + 2 != len(script):
        return None
    return (0 if op == 0 else op - 0x50), script[2:]


def script_to_address(script: bytes) -> str | None:
    """The regtest address of a scriptPubKey, or None (P2PK, multisig, OP_RETURN, ...)."""
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return str(base58.CBase58Data.from_bytes(script[3:23], P2PKH_VERSION))
    if len(script) == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return str(base58.CBase58Data.from_bytes(script[2:22], P2SH_VERSION))
    wp = witness_program(script)
    if wp is not None:
        version, program = wp
        if version == 0 and len(program) not in (20, 32):
            return None
        return encode_segwit(version, program)
    return None


def address_to_script(address: str) -> bytes:
    """The scriptPubKey of a regtest address; AddressError for anything else."""
    if address[:5].lower() == HRP + "1":
        version, program = decode_segwit(address)
        op = 0 if version == 0 else 0x50 + version
        return bytes([op, len(program)]) + program
    try:
        data = base58.CBase58Data(address)
    except (base58.Base58Error, ValueError):
        raise AddressError("Invalid or unsupported Segwit (Bech32) or Base58 encoding.") from None
    if len(data) != 20:
        raise AddressError("Invalid checksum or length of Base58 address (P2PKH or P2SH)")
    if data.nVersion == P2PKH_VERSION:
        return b"\x76\xa9\x14" + bytes(data) + b"\x88\xac"
    if data.nVersion == P2SH_VERSION:
        return b"\xa9\x14" + bytes(data) + b"\x87"
    raise AddressError("Invalid or unsupported Base58-encoded address.")
