"""Amounts as Bitcoin Core prints and parses them: decimal BTC with 8 places, never a float.

Core writes ``"value": 0.00010000`` (a JSON number with exactly 8 decimals) and clients such
as python-bitcoinlib read it with ``Decimal``. Python's json module can only print floats,
which would turn 0.1 BTC into 0.1 and 21e6 BTC minus a satoshi into 20999999.99999999 only
by luck, so responses go through `dumps`, which prints an `Amount` from its integer satoshi.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import RPC_TYPE_ERROR, RpcError

COIN = 100_000_000
MAX_MONEY = 21_000_000 * COIN


class Amount(int):
    """Satoshi that serialize as decimal BTC (``Amount(10_000)`` -> ``0.00010000``)."""

    def to_json(self) -> str:
        sign = "-" if self < 0 else ""
        whole, frac = divmod(abs(int(self)), COIN)
        return f"{sign}{whole}.{frac:08d}"


class FeeRate(int):
    """sat/kvB that serialize as BTC/kvB with 8 decimals (Core's ``feerate`` fields)."""

    def to_json(self) -> str:
        return Amount(self).to_json()


def dumps(value: Any) -> str:
    """JSON text of an RPC result; `Amount` and `FeeRate` print exactly."""
    if isinstance(value, Amount | FeeRate):
        return value.to_json()
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot serialize {type(value).__name__}")


def amount_from_json(value: Any, decimals: int = 8) -> int:
    """Core's AmountFromValue: a JSON number or numeric string of BTC -> satoshi.

    ``decimals`` > 8 (fee rates) returns the amount in units of 10^-decimals BTC. Raises
    RPC_TYPE_ERROR "Amount is not a number or string", "Invalid amount" or
    "Amount out of range", as Core does.
    """
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str | float):
        raise RpcError(RPC_TYPE_ERROR, "Amount is not a number or string")
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        raise RpcError(RPC_TYPE_ERROR, "Invalid amount") from None
    if not dec.is_finite():
        raise RpcError(RPC_TYPE_ERROR, "Invalid amount")
    scaled = dec.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise RpcError(RPC_TYPE_ERROR, "Invalid amount")
    units = int(scaled)
    if units < 0 or units > MAX_MONEY * 10 ** (decimals - 8):
        raise RpcError(RPC_TYPE_ERROR, "Amount out of range")
    return units


def feerate_from_json(value: Any) -> int:
    """A BTC/kvB fee rate (up to 11 decimals, as Core's ParseFeeRate) -> sat/kvB, rounded down."""
    milli_sat = amount_from_json(value, decimals=11)
    return milli_sat // 1000
