"""Escrow with an arbiter and a timeout: a conditional payment, mirrored by
ArbiterEscrow.sol and escrow.c.

The buyer owes the seller ``amount`` of the channel's first asset if a condition holds
(goods delivered, work done). While the escrow is LOCKED the amount stays in the buyer's
balance, so a channel that ends there pays nothing: payment needs proof. The arbiter is
a third party the two agree on at opening; it commits to its two possible rulings by
publishing ``release_hash = sha256(r)`` and ``refund_hash = sha256(f)`` and rules by
handing the matching secret to the winner. A hash commitment verifies on every chain
(EVM's and Solana's SHA-256 precompile / syscall) without the arbiter holding a key on
that chain or being a channel participant.

App data, 138 bytes (integers big-endian)::

    status u8 | buyer u8 | deadline u64 | amount u256 | release_hash 32 | refund_hash 32 |
    ruling 32

From LOCKED (0), each move ends the escrow:

- RELEASED (1), ``amount`` moves buyer -> seller: by the buyer at any time, or by anyone
  showing the release secret (``sha256(ruling) == release_hash``) at chain time
  ``now <= deadline`` (the condition must be shown in time);
- REFUNDED (2), balances unchanged: by the seller at any time, by anyone showing the
  refund secret, or by the buyer once ``now > deadline`` (the timeout).

Every move keeps buyer, deadline, amount and both hashes, leaves other assets alone,
needs the buyer's balance to cover ``amount`` and is not final. ``ruling`` is free
except where a move relies on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from chenilles_hub.core import AssetBalances, ChannelParams, ChannelState
from chenilles_hub.core.errors import InvalidTransition

APP_ID = "escrow"
DATA_LENGTH = 138
LOCKED, RELEASED, REFUNDED = 0, 1, 2
STATUS = {LOCKED: "locked", RELEASED: "released", REFUNDED: "refunded"}
#: Moves (``AppMove.data``): the first byte, then for a ruling the 32-byte secret.
MOVE_RELEASE, MOVE_REFUND, MOVE_RULING = 1, 2, 3
MAX_UINT256 = 2**256 - 1


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class Escrow:
    status: int
    buyer: int
    deadline: int
    amount: int
    release_hash: bytes
    refund_hash: bytes
    ruling: bytes = bytes(32)

    @property
    def seller(self) -> int:
        return 1 - self.buyer

    def encode(self) -> bytes:
        return (
            bytes([self.status, self.buyer])
            + self.deadline.to_bytes(8, "big")
            + self.amount.to_bytes(32, "big")
            + self.release_hash
            + self.refund_hash
            + self.ruling
        )

    @classmethod
    def decode(cls, data: bytes) -> Escrow | None:
        """``None`` for anything but a well-formed escrow (the chains refuse those too)."""
        if len(data) != DATA_LENGTH or data[0] > REFUNDED or data[1] > 1:
            return None
        return cls(
            status=data[0],
            buyer=data[1],
            deadline=int.from_bytes(data[2:10], "big"),
            amount=int.from_bytes(data[10:42], "big"),
            release_hash=bytes(data[42:74]),
            refund_hash=bytes(data[74:106]),
            ruling=bytes(data[106:138]),
        )

    def terms(self) -> tuple[int, int, int, bytes, bytes]:
        return (self.buyer, self.deadline, self.amount, self.release_hash, self.refund_hash)


def allowed(before: Escrow, after: Escrow, mover: int, now: int) -> bool:
    """Whether ``mover`` may take the escrow from ``before`` to ``after``'s status at ``now``
    (terms and balances are checked by the caller)."""
    if after.status == RELEASED:
        shown = sha256(after.ruling) == before.release_hash
        return mover == before.buyer or (shown and now <= before.deadline)
    if after.status == REFUNDED:
        shown = sha256(after.ruling) == before.refund_hash
        return mover == before.seller or shown or (mover == before.buyer and now > before.deadline)
    return False


def _with_first(state: ChannelState, amounts: tuple[int, int]) -> tuple[AssetBalances, ...]:
    first, *rest = state.balances
    return (AssetBalances(first.asset, amounts), *rest)


class EscrowApp:
    """The rule as the core's :class:`~chenilles_hub.core.AppRules`."""

    app_id = APP_ID

    def apply(
        self, params: ChannelParams, state: ChannelState, mover: int, data: bytes
    ) -> ChannelState:
        escrow = Escrow.decode(state.app_data)
        if escrow is None or escrow.status != LOCKED:
            raise InvalidTransition("the escrow is not locked")
        if data == bytes([MOVE_RELEASE]):
            after = replace(escrow, status=RELEASED)
        elif data == bytes([MOVE_REFUND]):
            after = replace(escrow, status=REFUNDED)
        elif len(data) == 33 and data[0] == MOVE_RULING:
            secret = bytes(data[1:])
            if sha256(secret) == escrow.release_hash:
                after = replace(escrow, status=RELEASED, ruling=secret)
            elif sha256(secret) == escrow.refund_hash:
                after = replace(escrow, status=REFUNDED, ruling=secret)
            else:
                raise InvalidTransition("that secret is neither of the arbiter's rulings")
        else:
            raise InvalidTransition("an escrow move is release (1), refund (2) or ruling (3)")
        balances = state.balances
        if after.status == RELEASED:
            a = list(state.balances[0].amounts)
            if a[escrow.buyer] < escrow.amount:
                raise InvalidTransition("the buyer's balance does not cover the escrow")
            a[escrow.buyer] -= escrow.amount
            a[escrow.seller] += escrow.amount
            balances = _with_first(state, (a[0], a[1]))
        return msgspec.structs.replace(state, app_data=after.encode(), balances=balances)

    def valid_transition(
        self,
        params: ChannelParams,
        before: ChannelState,
        after: ChannelState,
        mover: int,
        now: int,
    ) -> bool:
        e0, e1 = Escrow.decode(before.app_data), Escrow.decode(after.app_data)
        if e0 is None or e1 is None or after.final or not before.balances or mover > 1:
            return False
        if e0.status != LOCKED or e1.terms() != e0.terms():
            return False
        if len(after.balances) != len(before.balances) or after.balances[1:] != before.balances[1:]:
            return False
        fb, tb = before.balances[0].amounts, after.balances[0].amounts
        buyer, seller = e0.buyer, e0.seller
        if fb[buyer] < e0.amount or not allowed(e0, e1, mover, now):
            return False
        if e1.status == RELEASED:
            return tb[buyer] == fb[buyer] - e0.amount and tb[seller] == fb[seller] + e0.amount
        return tuple(tb) == tuple(fb)

    def turn(self, params: ChannelParams, state: ChannelState) -> tuple[int, ...]:
        escrow = Escrow.decode(state.app_data)
        return (0, 1) if escrow is not None and escrow.status == LOCKED else ()

    def outcome(self, params: ChannelParams, state: ChannelState) -> tuple[AssetBalances, ...]:
        """The balances as they stand: the escrowed amount moves only when released."""
        return state.balances

    def check_initial(self, params: ChannelParams, state: ChannelState) -> None:
        escrow = Escrow.decode(state.app_data)
        if escrow is None or escrow.status != LOCKED:
            raise InvalidTransition("an escrow channel opens on a locked escrow")
        if not state.balances or state.balances[0].amounts[escrow.buyer] < escrow.amount:
            raise InvalidTransition("the buyer's deposit must cover the escrowed amount")

    def describe(self, params: ChannelParams, state: ChannelState) -> dict[str, Any]:
        escrow = Escrow.decode(state.app_data)
        if escrow is None:
            return {"error": "not an escrow state"}
        return {
            "status": STATUS[escrow.status],
            "buyer": escrow.buyer,
            "seller": escrow.seller,
            "deadline": escrow.deadline,
            "amount": escrow.amount,
            "release_hash": escrow.release_hash.hex(),
            "refund_hash": escrow.refund_hash.hex(),
        }


def _hash_option(options: Mapping[str, Any], key: str) -> bytes:
    value = options.get(key)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{key} is the arbiter's 32-byte sha256 commitment, in hex")
    return raw


def initial_data(options: Mapping[str, Any]) -> bytes:
    """``{"buyer": 0|1, "amount": int, "deadline": unix seconds, "release_hash": hex,
    "refund_hash": hex}``."""
    known = {"buyer", "amount", "deadline", "release_hash", "refund_hash"}
    if set(options) != known:
        raise ValueError(f"escrow options are exactly {sorted(known)}")
    buyer, amount, deadline = options["buyer"], options["amount"], options["deadline"]
    if buyer not in (0, 1) or isinstance(buyer, bool):
        raise ValueError("buyer is participant 0 or 1")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_UINT256:
        raise ValueError("amount is a positive integer in base units")
    if not isinstance(deadline, int) or isinstance(deadline, bool) or not 0 < deadline < 2**64:
        raise ValueError("deadline is unix seconds")
    return Escrow(
        LOCKED,
        buyer,
        deadline,
        amount,
        _hash_option(options, "release_hash"),
        _hash_option(options, "refund_hash"),
    ).encode()


def encode_move(options: Mapping[str, Any]) -> bytes:
    """``{"action": "release" | "refund"}`` or ``{"ruling": <the arbiter's secret, hex>}``."""
    if set(options) == {"action"} and options["action"] in ("release", "refund"):
        return bytes([MOVE_RELEASE if options["action"] == "release" else MOVE_REFUND])
    if set(options) == {"ruling"} and isinstance(options["ruling"], str):
        try:
            secret = bytes.fromhex(options["ruling"])
        except ValueError:
            secret = b""
        if len(secret) == 32:
            return bytes([MOVE_RULING]) + secret
    raise ValueError('an escrow move is {"action": "release"|"refund"} or {"ruling": "<hex>"}')
