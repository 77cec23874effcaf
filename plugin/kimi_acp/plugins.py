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
        pm.load_setuptools_entrypoints(PROJECT)
    for plugin in extra:  # like entry points: before the defaults, so their registrations win
        pm.register(plugin)
    for modname in DEFAULT_PLUGINS:
        if not pm.is_blocked(modname):
            pm.register(importlib.import_module(modname), name=modname)
    pm.check_pending()
    return pm


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
