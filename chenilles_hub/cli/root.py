"""The root ``chenilles`` group; every command module adds itself to it."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from . import errors

#: when the process started, for the node's "imports took" line
PROCESS_START = time.monotonic()


class _Root(click.Group):
    """The root group: under ``--json`` every failure, usage errors included, is one JSON
    object (``errors.show_error``) and the exit code stays click's (1, 2 for usage)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        errors.JSON_MODE = "--json" in argv
        if not errors.JSON_MODE:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            code = getattr(exc, "code", "usage" if isinstance(exc, click.UsageError) else "error")
            errors.show_error(code, exc.format_message(), getattr(exc, "hint", ""))
            sys.exit(exc.exit_code)
        except click.Abort:
            errors.show_error("error", "aborted")
            sys.exit(1)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


@click.group(cls=_Root)
@click.version_option(package_name="chenilles-hub")
def main() -> None:
    """Chenilles: generalized state channels and a cross-chain payment hub."""
