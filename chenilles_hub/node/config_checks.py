"""Checking a parsed TOML config: known keys (with the closest suggested), types, bounds.

Shared by ``config.py`` (the node's tables) and ``config_policy.py`` (``[policy]``), so that
every mistake reads the same: where it is, what was expected, what was found.
"""

from __future__ import annotations

import difflib
from typing import Any


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid (the message says where)."""


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "a table",
    list: "an array",
}


def unknown_key_error(key: str, known: Any, where: str) -> ConfigError:
    """``[where]: unknown key 'listn' (did you mean 'listen'?)``: the closest known key by
    ``difflib``, or the list of known keys when none is close."""
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return ConfigError(f"[{where}]: unknown key {key!r} ({hint})")


def check_keys(table: dict[str, Any], known: Any, where: str) -> None:
    for key in table:
        if key not in known:
            raise unknown_key_error(key, known, where)


def table_of(raw: dict[str, Any], key: str, known: Any = None, where: str = "") -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{where or key}] must be a table")
    if known is not None:
        check_keys(value, known, where or key)
    return value


def describe(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:
        return "a number"
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


def get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    wrong_bool = isinstance(value, bool) and bool not in kinds  # TOML true is not a number
    if value is not None and (wrong_bool or not isinstance(value, kind)):
        raise ConfigError(
            f"{where}.{key}: expected {describe(kind)}, got {type(value).__name__} {value!r}"
        )
    return value


def asset_of(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if value is None:
        raise ConfigError(f"{where}: {key} is required (an asset written token@chain)")
    if not isinstance(value, str) or "@" not in value:
        raise ConfigError(f"{where}.{key}: an asset written token@chain, not {value!r}")
    return value


def bounded_int(
    table: dict[str, Any], key: str, where: str, default: int, low: int, required: bool = False
) -> int:
    if required and key not in table:
        raise ConfigError(f"{where}: {key} is required (an integer from {low})")
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**63:
        raise ConfigError(f"{where}.{key}: an integer from {low}, not {value!r}")
    return value
