"""The guarantee's compact layout, for ledger channels on Solana (mirrored by
contracts/solana/virtual_ledger.c).

Solana's channel program holds at most 256 bytes of app data; the EVM layout
(``rules.DATA_LENGTH``, 430 bytes) does not fit. The compact layout holds the same
guarantee in exactly 256 bytes (integers big-endian)::

    vid 32 | hub u8 | end u8 | key0 20 | key1 20 | deadline u32 | grace u32 |
    capacity u64 | num u64 | den u64 |                                          (core, 106)
    version u64 | amount0 u64 | final u8 | sig0 64 | sig1 64 |                  (V state, 145)
    beat u32 | active u8

What it drops, and why the rule stays the same:

- ``base`` is not stored: it is the ledger's first-asset balances minus the guarantee's
  payout, so it is *derived* from the state's balances (and must not be negative). The
  rule's "core unchanged" then says "base preserved between the two states", which is
  what ``base`` being in the core said before.
- ``amount1`` is ``capacity - amount0`` (the EVM rule requires the sum anyway).
- Signatures are EIP-2098 compact (r | s with the recovery bit in s's top bit); a
  high-s signature is stored as its low-s twin, which recovers to the same key.
- Amounts and the rate are u64 (Solana balances are u64) and the guarantee's total
  ``capacity * num // den`` must fit u64; deadline and grace are u32 unix seconds
  (good until 2106); the heartbeat counter is u32.

V's states and their digest (``rules.state_digest``) are the same as on EVM, so one state
signed by both V keys is shown to an EVM ledger and a Solana ledger alike.
"""

from __future__ import annotations

from typing import NamedTuple

from eth_utils.address import to_checksum_address

from chenilles_hub.core.errors import InvalidTransition

LENGTH = 256
CORE_LENGTH = 106
VSTATE_LENGTH = 145
MAX_U64 = 2**64 - 1
MAX_U32 = 2**32 - 1
#: secp256k1's group order (a compact signature's ``s`` is kept below ``N // 2 + 1``).
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_TOP = 1 << 255


def _u(data: bytes, start: int, size: int) -> int:
    return int.from_bytes(data[start : start + size], "big")


def sig_to_compact(sig: bytes) -> bytes:
    """65-byte r | s | v (v 27/28) -> 64-byte EIP-2098; all zeros stays all zeros."""
    if sig == bytes(65):
        return bytes(64)
    if len(sig) != 65 or sig[64] not in (27, 28):
        raise ValueError("a compact guarantee holds signatures with v = 27 or 28")
    r, s, parity = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64] - 27
    if s > N // 2:
        s, parity = N - s, 1 - parity
    return r + (s | (parity << 255)).to_bytes(32, "big")


def sig_from_compact(sig: bytes) -> bytes:
    """64-byte EIP-2098 -> 65-byte r | s | v; all zeros is "no signature"."""
    if sig == bytes(64):
        return bytes(65)
    ys = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (ys & (_TOP - 1)).to_bytes(32, "big") + bytes([27 + (ys >> 255)])


def _uint(value: int, size: int, what: str) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise ValueError(f"a compact guarantee's {what} is a u{8 * size}")
    return value.to_bytes(size, "big")


class Fields(NamedTuple):
    """A compact guarantee's fields as stored (``rules.Guarantee`` without ``base``)."""

    vid: bytes
    hub: int
    end: int
    keys: tuple[str, str]
    deadline: int
    grace: int
    capacity: int
    num: int
    den: int
    version: int
    amounts: tuple[int, int]
    final: bool
    signatures: tuple[bytes, bytes]
    beat: int
    active: bool


def encode(f: Fields) -> bytes:
    """The 256 bytes of a guarantee; ``ValueError`` if a field does not fit the layout."""
    if f.amounts[0] + f.amounts[1] != f.capacity:
        raise ValueError("a compact guarantee's V amounts add up to its capacity")
    out = (
        f.vid
        + bytes([f.hub, f.end])
        + bytes.fromhex(f.keys[0][2:])
        + bytes.fromhex(f.keys[1][2:])
        + _uint(f.deadline, 4, "deadline")
        + _uint(f.grace, 4, "grace")
        + _uint(f.capacity, 8, "capacity")
        + _uint(f.num, 8, "rate numerator")
        + _uint(f.den, 8, "rate denominator")
        + _uint(f.version, 8, "version")
        + _uint(f.amounts[0], 8, "amount")
        + bytes([int(f.final)])
        + sig_to_compact(f.signatures[0])
        + sig_to_compact(f.signatures[1])
        + _uint(f.beat, 4, "heartbeat counter")
        + bytes([int(f.active)])
    )
    assert len(out) == LENGTH
    return out


def parse(data: bytes) -> Fields:
    """The fields in ``data``; :class:`InvalidTransition` for anything the program refuses
    to parse (the guarantee's total ``capacity * num // den`` must fit u64)."""
    if len(data) != LENGTH:
        raise InvalidTransition(f"virtual: a compact guarantee is {LENGTH} bytes")
    hub, end, final, active = data[32], data[33], data[122], data[LENGTH - 1]
    if hub > 1 or end > 1 or final > 1 or active > 1:
        raise InvalidTransition("virtual: hub, end, final and active are 0 or 1")
    capacity, num, den = _u(data, 82, 8), _u(data, 90, 8), _u(data, 98, 8)
    amount0 = _u(data, 114, 8)
    if den == 0 or amount0 > capacity or capacity * num // den > MAX_U64:
        raise InvalidTransition("virtual: a rate 0/0, an amount above capacity or a total > u64")
    return Fields(
        vid=data[0:32],
        hub=hub,
        end=end,
        keys=(to_checksum_address(data[34:54]), to_checksum_address(data[54:74])),
        deadline=_u(data, 74, 4),
        grace=_u(data, 78, 4),
        capacity=capacity,
        num=num,
        den=den,
        version=_u(data, 106, 8),
        amounts=(amount0, capacity - amount0),
        final=bool(final),
        signatures=(sig_from_compact(data[123:187]), sig_from_compact(data[187:251])),
        beat=_u(data, 251, 4),
        active=bool(active),
    )
