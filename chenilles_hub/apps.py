"""Finding installed apps, through entry points only (as ``plugins`` finds backends).

The node never imports an app by name: it asks this module, which asks pluggy, which
loads whatever is registered under ``chenilles.apps``. The example apps (tic-tac-toe,
escrow) are separate distributions installed exactly like a third party's.
"""

from __future__ import annotations

import functools
from importlib import metadata

import pluggy

from . import hookspecs
from .app_plugin import AppInfo, AppPlugin
from .core import AppRules


class AppNotInstalled(LookupError):
    pass


def plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(hookspecs.APP_ENTRY_POINT_GROUP)
    return manager


def distribution_of(plugin_name: str) -> str | None:
    """``name version`` of the distribution that registered entry point ``plugin_name``."""
    for entry_point in metadata.entry_points(group=hookspecs.APP_ENTRY_POINT_GROUP):
        if entry_point.name == plugin_name and entry_point.dist is not None:
            return f"{entry_point.dist.name} {entry_point.dist.version}"
    return None


@functools.cache
def _cached() -> tuple[AppPlugin, ...]:
    return installed_apps(fresh=True)


def installed_apps(fresh: bool = False) -> tuple[AppPlugin, ...]:
    """Every installed app plugin, sorted by name. ``fresh`` re-reads the entry points."""
    if not fresh:
        return _cached()
    found: list[AppPlugin] = []
    for provided in plugin_manager().hook.chenilles_apps():
        found.extend(provided)
    for plugin in found:
        if not isinstance(plugin.info, AppInfo):
            raise RuntimeError(f"app plugin {plugin!r} has no AppInfo")
    names = [p.info.name for p in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise RuntimeError(f"two installed plugins claim app name(s) {sorted(duplicates)}")
    return tuple(sorted(found, key=lambda p: p.info.name))


def app(name: str) -> AppPlugin:
    for plugin in installed_apps():
        if plugin.info.name == name:
            return plugin
    known = ", ".join(p.info.name for p in installed_apps()) or "none"
    raise AppNotInstalled(f"no app named {name!r} is installed (installed: {known})")


def rules_by_id(plugins: tuple[AppPlugin, ...] | None = None) -> dict[str, AppRules]:
    """The off-chain rules of every installed app, keyed by app id: what the channel
    machine is given (``ChannelMachine(apps=...)``)."""
    return {p.info.name: p.rules() for p in (installed_apps() if plugins is None else plugins)}


__all__ = [
    "AppInfo",
    "AppNotInstalled",
    "AppPlugin",
    "app",
    "distribution_of",
    "installed_apps",
    "rules_by_id",
]
