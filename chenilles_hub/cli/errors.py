"""How the CLI fails: one ``Error:`` line for people, one JSON object under ``--json``.

Every failure a command reports is a :class:`CliError` (or a click usage error) with a
stable ``code``: the API's code when the node refused (``insufficient_balance``,
``unknown_channel``, ...), or one of :data:`CLI_ERRORS` for what fails before or around
the API. Under ``--json`` the error is printed to stdout as
``{"error": {"code", "message", "hint"}}`` (the API's shape), the exit code stays non-zero.
Standard library and click only: the CLI starts fast.
"""

from __future__ import annotations

import json
from typing import IO, Any

import click

#: codes the CLI itself answers (the API's are in ``node/api/errors.py``)
CLI_ERRORS: dict[str, str] = {
    "usage": "the command line is wrong (an unknown option, a missing argument)",
    "config": "the config file is missing, unreadable or invalid (the message says where)",
    "unreachable": "the node's API does not answer (is the node running? --config right?)",
    "timeout": "a wait ended before the channel or payment got where it was going",
    "channel_failed": "the channel failed on its way (the message gives its last error)",
    "payment_failed": "the payment failed (the message says why)",
    "startup": "the node could not start (the message names the cause)",
    "check_failed": "node check found a problem in the config or on a chain",
    "not_running": "the node does not run (no answer and no live pid)",
    "error": "any other failure",
}

#: set by the root group when ``--json`` is on the command line
JSON_MODE = False


class CliError(click.ClickException):
    """A failure with a stable code; shown as one line, or as JSON under ``--json``."""

    def __init__(self, message: str, code: str = "error", hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        show_error(self.code, self.format_message(), self.hint, file)


def show_error(code: str, message: str, hint: str = "", file: IO[Any] | None = None) -> None:
    if JSON_MODE:
        body = {"error": {"code": code, "message": message, "hint": hint}}
        click.echo(json.dumps(body), file=file)
        return
    line = f"Error: {message}" + (f" (hint: {hint})" if hint else "")
    click.echo(" ".join(line.split("\n")), err=True, file=file)
