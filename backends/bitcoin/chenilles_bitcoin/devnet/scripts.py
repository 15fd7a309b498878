"""Reading scripts as Bitcoin Core shows them: output types (its Solver) and ``asm`` text.

Both only describe; nothing here decides validity (the kernel's script verifier does).
"""

from __future__ import annotations

from collections.abc import Iterator

from bitcoin.core.script import OPCODE_NAMES

from .addresses import witness_program

OP_RETURN = 0x6A
OP_CHECKSIG = 0xAC
OP_CHECKMULTISIG = 0xAE
_NAMES: dict[int, str] = {int(op): name for op, name in OPCODE_NAMES.items()}
_NAMES.update({0x00: "0", 0x4F: "-1", 0xBA: "OP_CHECKSIGADD"})
_NAMES.update({0x50 + n: str(n) for n in range(1, 17)})
_SIGHASH_NAMES = {
    0x01: "ALL",
    0x02: "NONE",
    0x03: "SINGLE",
    0x81: "ALL|ANYONECANPAY",
    0x82: "NONE|ANYONECANPAY",
    0x83: "SINGLE|ANYONECANPAY",
}


class ScriptParseError(ValueError):
    """A push runs past the end of the script."""


def ops(script: bytes) -> Iterator[tuple[int, bytes | None]]:
    """(opcode, pushed data or None) for each operation; ScriptParseError when truncated."""
    i = 0
    while i < len(script):
        op = script[i]
        i += 1
        if op > 0x4E:
            yield op, None
            continue
        if op < 0x4C:
            size = op
        else:
            width = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
            if i + width > len(script):
                raise ScriptParseError("truncated push length")
            size = int.from_bytes(script[i : i + width], "little")
            i += width
        if i + size > len(script):
            raise ScriptParseError("truncated push")
        yield op, script[i : i + size]
        i += size


def is_push_only(script: bytes) -> bool:
    """Only pushes (OP_0..OP_16 and data), as Core's IsPushOnly."""
    try:
        return all(op <= 0x60 for op, _ in ops(script))
    except ScriptParseError:
        return False


def _is_pubkey(data: bytes) -> bool:
    return (len(data) == 33 and data[0] in (2, 3)) or (len(data) == 65 and data[0] == 4)


def script_type(script: bytes) -> str:
    """Core's output type name: pubkeyhash, witness_v0_keyhash, nulldata, nonstandard, ..."""
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return "pubkeyhash"
    if len(script) == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return "scripthash"
    wp = witness_program(script)
    if wp is not None:
        version, program = wp
        if version == 0:
            return {20: "witness_v0_keyhash", 32: "witness_v0_scripthash"}.get(
                len(program), "nonstandard"
            )
        if version == 1 and len(program) == 32:
            return "witness_v1_taproot"
        if version == 1 and program == b"\x4e\x73":
            return "anchor"
        return "witness_unknown"
    if script[:1] == bytes([OP_RETURN]) and is_push_only(script[1:]):
        return "nulldata"
    p2pk = len(script) in (35, 67) and script[0] == len(script) - 2 and script[-1] == OP_CHECKSIG
    if p2pk and _is_pubkey(script[1:-1]):
        return "pubkey"
    if _multisig(script) is not None:
        return "multisig"
    return "nonstandard"


def _multisig(script: bytes) -> tuple[int, int] | None:
    """(m, n) of a bare ``OP_m <keys> OP_n OP_CHECKMULTISIG``, else None."""
    try:
        parsed = list(ops(script))
    except ScriptParseError:
        return None
    if len(parsed) < 4 or parsed[-1][0] != OP_CHECKMULTISIG:
        return None
    m_op, n_op = parsed[0][0], parsed[-2][0]
    if not (0x51 <= m_op <= 0x60 and 0x51 <= n_op <= 0x60):
        return None
    m, n = m_op - 0x50, n_op - 0x50
    keys = parsed[1:-2]
    if len(keys) != n or m > n or not all(d is not None and _is_pubkey(d) for _, d in keys):
        return None
    return m, n


def multisig_shape(script: bytes) -> tuple[int, int] | None:
    return _multisig(script)


def _script_num(data: bytes) -> int:
    if not data:
        return 0
    value = int.from_bytes(data, "little")
    if data[-1] & 0x80:
        return -(value & ~(0x80 << (8 * (len(data) - 1))))
    return value


def is_der_signature(sig: bytes) -> bool:
    """BIP 66 strict DER (with the trailing sighash byte), as Core's IsValidSignatureEncoding."""
    if not 9 <= len(sig) <= 73 or sig[0] != 0x30 or sig[1] != len(sig) - 3:
        return False
    len_r = sig[3]
    if 5 + len_r >= len(sig):
        return False
    len_s = sig[5 + len_r]
    if len_r + len_s + 7 != len(sig) or sig[2] != 0x02 or len_r == 0 or sig[4] & 0x80:
        return False
    if len_r > 1 and sig[4] == 0 and not sig[5] & 0x80:
        return False
    if sig[len_r + 4] != 0x02 or len_s == 0 or sig[len_r + 6] & 0x80:
        return False
    return not (len_s > 1 and sig[len_r + 6] == 0 and not sig[len_r + 7] & 0x80)


def to_asm(script: bytes, sighash_decode: bool = False) -> str:
    """Core's ScriptToAsmStr: small pushes as numbers, others as hex, opcodes by name."""
    words: list[str] = []
    unspendable = script[:1] == bytes([OP_RETURN])
    try:
        for op, data in ops(script):
            if data is None:
                words.append(_NAMES.get(op, "OP_UNKNOWN"))
            elif len(data) <= 4:
                words.append(str(_script_num(data)))
            elif sighash_decode and not unspendable and is_der_signature(data):
                name = _SIGHASH_NAMES.get(data[-1])
                words.append(data[:-1].hex() + f"[{name}]" if name else data.hex())
            else:
                words.append(data.hex())
    except ScriptParseError:
        words.append("[error]")
    return " ".join(words)
