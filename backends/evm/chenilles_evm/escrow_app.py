"""Python mirror of ``contracts/evm/EscrowApp.sol`` (the same ``validTransition``).

``app_data = abi.encode(uint8 status, uint8 buyer, uint64 deadline, uint256 amount)``.
The escrowed ``amount`` of ``assets[0]`` stays in the buyer's balance while LOCKED.
From LOCKED, ending the game (``is_final``):

- RELEASED by the buyer at any time: ``amount`` goes buyer -> seller;
- REFUNDED by the seller at any time, or by the buyer once ``now > deadline``;
  balances unchanged.

``now`` is the block timestamp at which the move would be validated on chain.
The adjudicator's own checks (channel id, version + 1, signature, unchanged assets
and HTLCs, conservation) are not repeated here.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode

from .eip712 import State

LOCKED = 0
RELEASED = 1
REFUNDED = 2

_TYPES = ["uint8", "uint8", "uint64", "uint256"]


@dataclass(frozen=True)
class Escrow:
    status: int
    buyer: int
    deadline: int
    amount: int

    @property
    def seller(self) -> int:
        return 1 - self.buyer

    def encode(self) -> bytes:
        return abi_encode(_TYPES, [self.status, self.buyer, self.deadline, self.amount])

    @classmethod
    def decode(cls, data: bytes) -> Escrow | None:
        """``None`` where the contract's ``abi.decode`` would not give these values."""
        if len(data) != 128:
            return None
        try:
            s, b, d, a = abi_decode(_TYPES, bytes(data), strict=True)
        except Exception:
            return None
        return cls(int(s), int(b), int(d), int(a))


def valid_transition(from_state: State, to_state: State, mover: int, now: int) -> bool | None:
    """The contract's answer: True / False, or ``None`` where the contract reverts
    (malformed app data: ``abi.decode`` rejects dirty padding)."""
    if len(from_state.app_data) != 128 or len(to_state.app_data) != 128:
        return False
    old = Escrow.decode(from_state.app_data)
    new = Escrow.decode(to_state.app_data)
    if old is None or new is None:
        return None
    if old.buyer > 1 or mover > 1:
        return False
    if old.status != LOCKED or (new.buyer, new.deadline, new.amount) != (
        old.buyer,
        old.deadline,
        old.amount,
    ):
        return False
    if not to_state.is_final or len(from_state.assets) == 0:
        return False
    buyer, seller = old.buyer, old.seller
    fb, tb = from_state.balances, to_state.balances
    if fb[0][buyer] < old.amount:
        return False
    for i in range(1, len(from_state.assets)):
        if tuple(tb[i]) != tuple(fb[i]):
            return False
    if new.status == RELEASED:
        return (
            mover == buyer
            and tb[0][buyer] == fb[0][buyer] - old.amount
            and tb[0][seller] == fb[0][seller] + old.amount
        )
    if new.status == REFUNDED:
        allowed = mover == seller or now > old.deadline
        return allowed and tuple(tb[0]) == tuple(fb[0])
    return False


def release(state: State, escrow: Escrow) -> State:
    """The buyer's move: pay the seller."""
    b = [list(x) for x in state.balances]
    b[0][escrow.buyer] -= escrow.amount
    b[0][escrow.seller] += escrow.amount
    return state.replace(
        version=state.version + 1,
        balances=tuple((x[0], x[1]) for x in b),
        app_data=Escrow(RELEASED, escrow.buyer, escrow.deadline, escrow.amount).encode(),
        is_final=True,
    )


def refund(state: State, escrow: Escrow) -> State:
    """The seller's move (any time) or the buyer's (after the deadline)."""
    return state.replace(
        version=state.version + 1,
        app_data=Escrow(REFUNDED, escrow.buyer, escrow.deadline, escrow.amount).encode(),
        is_final=True,
    )
