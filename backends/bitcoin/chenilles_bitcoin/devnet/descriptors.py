"""Output script descriptors (BIP 380-382, 385), the subset a devnet's callers use.

``addr(ADDR)``, ``raw(HEX)``, ``pk(KEY)``, ``pkh(KEY)``, ``wpkh(KEY)``, ``sh(wpkh(KEY))`` and
``combo(KEY)``, with hex public keys; the checksum is BIP 380's algorithm (its reference
code, checked against the BIP's test vectors). Extended keys, ranges, private keys and
``tr``/``wsh``/``multi`` are refused with a clear error. Used by scantxoutset,
generatetodescriptor, generateblock and getdescriptorinfo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..ledger.wallet import hash160
from .addresses import AddressError, address_to_script

INPUT_CHARSET = (
    "0123456789()[],'/*abcdefgh@:$%{}"
    "IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~"
    'ijklmnopqrstuvwxyzABCDEFGH`#"\\ '
)
CHECKSUM_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)


class DescriptorError(ValueError):
    """The descriptor cannot be parsed (Core's message)."""


def _polymod(symbols: list[int]) -> int:
    chk = 1
    for value in symbols:
        top = chk >> 35
        chk = (chk & 0x7FFFFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= _GENERATOR[i] if (top >> i) & 1 else 0
    return chk


def checksum(desc: str) -> str:
    """The 8-character BIP 380 checksum of `desc` (without '#')."""
    symbols: list[int] = []
    groups: list[int] = []
    for c in desc:
        v = INPUT_CHARSET.find(c)
        if v < 0:
            raise DescriptorError(f"Invalid character '{c}' in descriptor")
        symbols.append(v & 31)
        groups.append(v >> 5)
        if len(groups) == 3:
            symbols.append(groups[0] * 9 + groups[1] * 3 + groups[2])
            groups = []
    if len(groups) == 1:
        symbols.append(groups[0])
    elif len(groups) == 2:
        symbols.append(groups[0] * 3 + groups[1])
    mod = _polymod([*symbols, 0, 0, 0, 0, 0, 0, 0, 0]) ^ 1
    return "".join(CHECKSUM_CHARSET[(mod >> (5 * (7 - i))) & 31] for i in range(8))


def add_checksum(desc: str) -> str:
    return f"{desc}#{checksum(desc)}"


@dataclass(frozen=True)
class Descriptor:
    """A parsed descriptor: its canonical text (no checksum) and the scripts it stands for."""

    text: str
    scripts: tuple[bytes, ...]
    solvable: bool

    @property
    def with_checksum(self) -> str:
        return add_checksum(self.text)


def split_checksum(desc: str, require: bool = False) -> str:
    """The payload of ``payload#checksum``, after checking the checksum if one is given."""
    if "#" in desc:
        payload, _, given = desc.partition("#")
        if len(given) != 8:
            raise DescriptorError(f"Expected 8 character checksum, not {len(given)} characters")
        expected = checksum(payload)
        if given != expected:
            raise DescriptorError(
                f"Provided checksum '{given}' does not match computed checksum '{expected}'"
            )
        return payload
    if require:
        raise DescriptorError("Missing checksum")
    checksum(desc)  # reject characters outside the descriptor charset
    return desc


def _pubkey(text: str, compressed_only: bool) -> bytes:
    if re.fullmatch(r"[0-9a-fA-F]+", text) is None:
        if text[:4] in ("xpub", "tpub", "xprv", "tprv") or "/" in text or "[" in text:
            raise DescriptorError(
                f"key '{text}' is not supported here: extended keys need a wallet"
            )
        raise DescriptorError(f"key '{text}' is not valid")
    key = bytes.fromhex(text)
    if len(key) == 33 and key[0] in (2, 3):
        return key
    if len(key) == 65 and key[0] == 4:
        if compressed_only:
            raise DescriptorError("Uncompressed keys are not allowed")
        return key
    raise DescriptorError(f"Pubkey '{text}' is invalid")


def _p2pkh(key: bytes) -> bytes:
    return b"\x76\xa9\x14" + hash160(key) + b"\x88\xac"


def _p2wpkh(key: bytes) -> bytes:
    return b"\x00\x14" + hash160(key)


def _p2sh(script: bytes) -> bytes:
    return b"\xa9\x14" + hash160(script) + b"\x87"


def _p2pk(key: bytes) -> bytes:
    return bytes([len(key)]) + key + b"\xac"


def parse(desc: str, require_checksum: bool = False) -> Descriptor:
    """Parse a descriptor of the supported subset; DescriptorError with Core's wording."""
    payload = split_checksum(desc.strip(), require_checksum)
    m = re.fullmatch(r"([a-z]+)\((.*)\)", payload)
    if m is None:
        raise DescriptorError(f"'{payload}' is not a valid descriptor function")
    func, arg = m.group(1), m.group(2)
    if func == "addr":
        try:
            script = address_to_script(arg)
        except AddressError as exc:
            raise DescriptorError(f"Address is not valid: {exc}") from None
        return Descriptor(f"addr({arg})", (script,), False)
    if func == "raw":
        if len(arg) % 2 or re.fullmatch(r"[0-9a-fA-F]*", arg) is None:
            raise DescriptorError("Raw script is not hex")
        return Descriptor(f"raw({arg.lower()})", (bytes.fromhex(arg),), False)
    if func == "sh":
        inner = re.fullmatch(r"wpkh\((.*)\)", arg)
        if inner is None:
            raise DescriptorError("only sh(wpkh(KEY)) is supported by this devnet")
        key = _pubkey(inner.group(1), compressed_only=True)
        return Descriptor(f"sh(wpkh({key.hex()}))", (_p2sh(_p2wpkh(key)),), True)
    if func in ("pk", "pkh", "wpkh", "combo"):
        key = _pubkey(arg, compressed_only=func == "wpkh")
        if func == "pk":
            scripts: tuple[bytes, ...] = (_p2pk(key),)
        elif func == "pkh":
            scripts = (_p2pkh(key),)
        elif func == "wpkh":
            scripts = (_p2wpkh(key),)
        elif len(key) == 33:  # combo of a compressed key: P2PK, P2PKH, P2WPKH, P2SH-P2WPKH
            scripts = (_p2pk(key), _p2pkh(key), _p2wpkh(key), _p2sh(_p2wpkh(key)))
        else:
            scripts = (_p2pk(key), _p2pkh(key))
        return Descriptor(f"{func}({key.hex()})", scripts, True)
    if func in ("tr", "wsh", "multi", "sortedmulti", "rawtr", "musig", "multi_a"):
        raise DescriptorError(f"{func}() descriptors are not supported by this devnet")
    raise DescriptorError(f"'{func}(...)' is not a valid descriptor function")


def infer(script: bytes, address: str | None) -> str:
    """The descriptor Core's InferDescriptor gives a bare scriptPubKey (no key information)."""
    if address is not None:
        return add_checksum(f"addr({address})")
    if len(script) in (35, 67) and script[-1] == 0xAC and script[0] == len(script) - 2:
        key = script[1:-1]
        if (len(key) == 33 and key[0] in (2, 3)) or (len(key) == 65 and key[0] == 4):
            return add_checksum(f"pk({key.hex()})")
    return add_checksum(f"raw({script.hex()})")
