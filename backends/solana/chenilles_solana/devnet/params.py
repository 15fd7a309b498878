"""Positional JSON-RPC parameters, checked before anything runs.

Every Solana method takes a JSON array; a wrong type, a missing or extra parameter, or a
value out of range is ``-32602 Invalid params`` with a message naming the parameter, and
the method does nothing. Integers are exact JSON integers (never floats, never bools),
within u64 where Solana's are.
"""

from __future__ import annotations

from typing import Any

from solders.hash import Hash, ParseHashError
from solders.pubkey import Pubkey
from solders.signature import Signature

from .errors import invalid_params

U64_MAX = 2**64 - 1
COMMITMENTS = ("processed", "confirmed", "finalized")


class Params:
    """The ``params`` of one request for ``method``, which takes ``count`` of them at most."""

    def __init__(self, method: str, raw: Any) -> None:
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise invalid_params(f"Invalid params: {method} takes an array of parameters")
        self.method = method
        self.raw = raw

    def at_most(self, count: int) -> Params:
        if len(self.raw) > count:
            raise invalid_params(
                f"Invalid params: invalid length {len(self.raw)}, {self.method} takes at most "
                f"{count}"
            )
        return self

    def _get(self, i: int, what: str) -> Any:
        if i >= len(self.raw):
            raise invalid_params(f"Invalid params: missing parameter {i + 1} ({what})")
        return self.raw[i]

    def has(self, i: int) -> bool:
        return i < len(self.raw) and self.raw[i] is not None

    def string(self, i: int, what: str) -> str:
        value = self._get(i, what)
        if not isinstance(value, str):
            raise invalid_params(f"Invalid params: {what} must be a string, not {_kind(value)}")
        return value

    def u64(self, i: int, what: str) -> int:
        return u64(self._get(i, what), what)

    def pubkey(self, i: int, what: str = "address") -> Pubkey:
        return pubkey(self.string(i, what))

    def signature(self, i: int, what: str = "signature") -> Signature:
        return signature(self.string(i, what))

    def hash(self, i: int, what: str = "blockhash") -> Hash:
        text = self.string(i, what)
        try:
            return Hash.from_string(text)
        except (ValueError, ParseHashError):
            raise invalid_params(f"Invalid param: {what} {text!r} is not a base58 hash") from None

    def array(self, i: int, what: str) -> list[Any]:
        value = self._get(i, what)
        if not isinstance(value, list):
            raise invalid_params(f"Invalid params: {what} must be an array, not {_kind(value)}")
        return value

    def config(self, i: int) -> Config:
        """The optional configuration object at ``i`` (absent or null: all defaults)."""
        if not self.has(i):
            return Config({})
        value = self.raw[i]
        if not isinstance(value, dict):
            raise invalid_params(
                f"Invalid params: parameter {i + 1} must be a configuration object, "
                f"not {_kind(value)}"
            )
        return Config(value)


class Config:
    """A configuration object; unknown fields are ignored, as Solana's serde does."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid_params(f"Invalid params: {key} must be a boolean, not {_kind(value)}")
        return value

    def u64(self, key: str) -> int | None:
        value = self.raw.get(key)
        return None if value is None else u64(value, key)

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise invalid_params(f"Invalid params: {key} must be a string, not {_kind(value)}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> str | None:
        value = self.string(key, default)
        if value is not None and value not in choices:
            raise invalid_params(
                f"Invalid params: unknown variant `{value}` for {key}, expected one of "
                + ", ".join(f"`{c}`" for c in choices)
            )
        return value

    def commitment(self, key: str = "commitment") -> str:
        """Accepted and checked; every level is the same state on this devnet."""
        value = self.choice(key, COMMITMENTS, "finalized")
        assert value is not None
        return value

    def object(self, key: str) -> Config | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise invalid_params(f"Invalid params: {key} must be an object, not {_kind(value)}")
        return Config(value)

    def list(self, key: str) -> list[Any]:
        value = self.raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid_params(f"Invalid params: {key} must be an array, not {_kind(value)}")
        return value


def u64(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_params(f"Invalid params: {what} must be an integer, not {_kind(value)}")
    if not 0 <= value <= U64_MAX:
        raise invalid_params(f"Invalid params: {what} {value} is out of range for u64")
    return value


def pubkey(text: Any) -> Pubkey:
    if not isinstance(text, str):
        raise invalid_params(f"Invalid params: an address must be a string, not {_kind(text)}")
    try:
        return Pubkey.from_string(text)
    except ValueError:
        raise invalid_params(f"Invalid param: {text!r} is not a base58 public key") from None


def signature(text: Any) -> Signature:
    if not isinstance(text, str):
        raise invalid_params(f"Invalid params: a signature must be a string, not {_kind(text)}")
    try:
        return Signature.from_string(text)
    except ValueError:
        raise invalid_params(f"Invalid param: {text!r} is not a base58 signature") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
