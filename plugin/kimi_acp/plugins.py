"""The plugin manager: hookspecs, entry-point plugins, then the default plugins.

Built in a factory (:func:`get_plugin_manager`), never at import time. Set
``KIMI_ACP_BLOCK_PLUGINS=name,name`` to block plugins by name, and
``KIMI_ACP_DISABLE_ENTRYPOINTS=1`` to skip third-party entry points.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pluggy

from . import PROJECT, hookspecs

DEFAULT_PLUGINS = ("kimi_acp.default_plugins.kimi", "kimi_acp.default_plugins.anthropic")

_pm: pluggy.PluginManager | None = None


def build_plugin_manager(*, entrypoints: bool | None = None, extra: tuple[Any, ...] = ()) -> pluggy.PluginManager:
    """A fresh plugin manager (tests build their own)."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in filter(None, (n.strip() for n in os.environ.get("KIMI_ACP_BLOCK_PLUGINS", "").split(","))):
        pm.set_blocked(name)
    if entrypoints is None:
        entrypoints = not os.environ.get("KIMI_ACP_DISABLE_ENTRYPOINTS")
    if entrypoints:
        for name, value in entry_points():
            if pm.is_blocked(name) or pm.has_plugin(name):
                continue
            pm.register(_load(value), name=name)
    for plugin in extra:  # like entry points: before the defaults, so their registrations win
        pm.register(plugin)
    for modname in DEFAULT_PLUGINS:
        if not pm.is_blocked(modname):
            pm.register(importlib.import_module(modname), name=modname)
    pm.check_pending()
    return pm


def _load(value: str) -> Any:
    """Load an entry point's object: ``module`` or ``module:attr.attr``."""
    modname, _, attrs = value.partition(":")
    obj = importlib.import_module(modname.strip())
    for attr in filter(None, attrs.strip().split(".")):
        obj = getattr(obj, attr)
    return obj


def entry_points() -> list[tuple[str, str]]:
    """``(name, value)`` of every ``kimi_acp`` entry point.

    Scanning every installed distribution costs ~30 ms per start; the answer is cached in
    the state dir, keyed by the modification times of the ``sys.path`` directories (an
    install or uninstall changes them).
    """
    import sys

    from .sessions import read_cache, state_dir, write_cache

    key = []
    for entry in sys.path:
        try:
            key.append([entry, os.stat(entry).st_mtime_ns])
        except OSError:
            continue
    cache = state_dir() / "entrypoints-cache.json"
    cached = read_cache(cache)  # None unless the dir and the file are the user's own (see sessions.py)
    try:
        if isinstance(cached, dict) and cached["key"] == key:
            return [tuple(ep) for ep in cached["entry_points"]]  # type: ignore[misc]
    except (KeyError, TypeError):
        pass
    from importlib.metadata import entry_points as _scan

    found = sorted({(ep.name, ep.value) for ep in _scan(group=PROJECT)})
    write_cache(cache, {"key": key, "entry_points": found})
    return found


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    if _pm is None:
        _pm = build_plugin_manager()
    return _pm


def set_plugin_manager(pm: pluggy.PluginManager | None) -> None:
    """Replace the process-wide manager (tests; embedding hosts)."""
    global _pm
    _pm = pm


def registered_backends(pm: pluggy.PluginManager | None = None) -> list[Any]:
    """Backends registered by plugins through ``kimi_acp_register_backends``."""
    from .backends import Backend

    found: list[Backend] = []

    def register(backend: Backend) -> None:
        if not isinstance(backend, Backend):
            raise TypeError(f"kimi_acp_register_backends: expected a Backend, got {type(backend).__name__}")
        found[:] = [b for b in found if b.name != backend.name]
        found.append(backend)

    (pm or get_plugin_manager()).hook.kimi_acp_register_backends(register=register)
    return found
