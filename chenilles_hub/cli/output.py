"""How the CLI prints: tables for people, the API's JSON under ``--json``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click

Column = tuple[str, "str | Callable[[dict[str, Any]], object]"]


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    cells = [
        [_cell(col(row) if callable(col) else row.get(col)) for _, col in columns] for row in rows
    ]
    widths = [
        max(len(title), *(len(c[i]) for c in cells)) if cells else len(title)
        for i, (title, _) in enumerate(columns)
    ]
    click.echo("  ".join(t.upper().ljust(w) for (t, _), w in zip(columns, widths, strict=True)))
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def output(data: Any, as_json: bool, columns: Sequence[Column] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    elif columns is not None and isinstance(data, list):
        if not data:
            click.echo("(none)")
        else:
            table(data, columns)
    elif isinstance(data, dict):
        width = max((len(k) for k in data), default=0)
        for key, value in data.items():
            if isinstance(value, dict | list):
                value = json.dumps(value)
            click.echo(f"{key.ljust(width)}  {value}")
    else:
        click.echo(data)


def short(value: str | None, n: int = 16) -> str:
    return "" if not value else (value if len(value) <= n else value[:n] + "…")
