"""pluggy hook specifications of project ``chenilles``.

A backend distribution registers a module (or object) under the ``chenilles.backends``
entry-point group; that module implements :func:`chenilles_backends` with ``@hookimpl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .backend import BackendFactory

PROJECT = "chenilles"
ENTRY_POINT_GROUP = "chenilles.backends"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def chenilles_backends() -> list[BackendFactory]:  # type: ignore[empty-body]
    """The backend factories this plugin provides (usually one)."""
