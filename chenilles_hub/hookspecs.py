"""pluggy hook specifications of project ``chenilles``.

A backend distribution registers a module (or object) under the ``chenilles.backends``
entry-point group; that module implements :func:`chenilles_backends` with ``@hookimpl``.
An app distribution does the same under ``chenilles.apps`` with :func:`chenilles_apps`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .app_plugin import AppPlugin
    from .backend import BackendFactory

PROJECT = "chenilles"
ENTRY_POINT_GROUP = "chenilles.backends"
APP_ENTRY_POINT_GROUP = "chenilles.apps"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def chenilles_backends() -> list[BackendFactory]:  # type: ignore[empty-body]
    """The backend factories this plugin provides (usually one)."""


@hookspec
def chenilles_apps() -> list[AppPlugin]:  # type: ignore[empty-body]
    """The apps this plugin provides: each its off-chain rule and on-chain code per chain."""
