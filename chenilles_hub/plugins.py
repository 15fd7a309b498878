"""Finding installed backends, through entry points only.

The node never imports a backend by name: it asks this module, which asks pluggy, which
loads whatever is registered under ``chenilles.backends``. Built-in backends are separate
distributions installed exactly like third-party ones.
"""

from __future__ import annotations

import functools
from importlib import metadata

import pluggy

from . import hookspecs
from .backend import BackendFactory


class UnknownBackend(LookupError):
    pass


def plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
    return manager


def distribution_of(plugin_name: str) -> str | None:
    for entry_point in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        if entry_point.name == plugin_name and entry_point.dist is not None:
            return f"{entry_point.dist.name} {entry_point.dist.version}"
    return None


@functools.cache
def _cached_factories() -> tuple[BackendFactory, ...]:
    return installed_backends(fresh=True)


def installed_backends(fresh: bool = False) -> tuple[BackendFactory, ...]:
    """Every backend factory, sorted by name. ``fresh`` re-reads the entry points."""
    if not fresh:
        return _cached_factories()
    factories: list[BackendFactory] = []
    for provided in plugin_manager().hook.chenilles_backends():
        factories.extend(provided)
    names = [f.info.name for f in factories]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise RuntimeError(f"two installed plugins claim backend name(s) {sorted(duplicates)}")
    return tuple(sorted(factories, key=lambda f: f.info.name))


def backend(name: str) -> BackendFactory:
    for factory in installed_backends():
        if factory.info.name == name:
            return factory
    known = ", ".join(f.info.name for f in installed_backends()) or "none"
    raise UnknownBackend(f"no backend named {name!r} is installed (installed: {known})")
