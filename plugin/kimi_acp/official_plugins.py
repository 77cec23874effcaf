"""OpenClaw's own Kimi and Moonshot plugins: are they on this machine, and will the gateway go
looking for them?

OpenClaw 2026.9 ships its Kimi Coding provider (plugin id ``kimi``, providers ``kimi``,
``kimi-code``, ``kimi-coding``) and its Moonshot provider (plugin id ``moonshot``) as external
plugins, ``@openclaw/kimi-provider`` and ``@openclaw/moonshot-provider``. A gateway that needs
one it does not have installs it at start (npm, then ClawHub): needed means a configured
provider id it owns (``models.providers.kimi``), a model ref with it, or one of its variables in
the gateway's environment (``KIMI_API_KEY`` / ``KIMICODE_API_KEY`` for Kimi; ``KIMI_API_KEY`` /
``MOONSHOT_API_KEY`` for Moonshot and its Kimi web search). Online that happens once; on a
machine without internet it is tried at every start (45-100 s, then "degraded").

What is looked at (nothing is run, nothing is fetched): ``plugins.load.paths`` (a plugin folder
whose ``openclaw.plugin.json`` has the id, or a folder of such folders), ``plugins.installs``,
and OpenClaw's install folders next to the config (``extensions/<id>``,
``npm/.../node_modules/@openclaw/<package>``). ``plugins.entries.<id>.enabled: false`` and
``plugins.deny`` turn a plugin off, and the look-ups with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

KIMI_PLUGIN = "kimi"
MOONSHOT_PLUGIN = "moonshot"
PACKAGES = {KIMI_PLUGIN: "@openclaw/kimi-provider", MOONSHOT_PLUGIN: "@openclaw/moonshot-provider"}
PROVIDERS = {KIMI_PLUGIN: ("kimi", "kimi-code", "kimi-coding"), MOONSHOT_PLUGIN: ("moonshot", "moonshotai", "moonshot-ai")}
ENV_VARS = {KIMI_PLUGIN: ("KIMI_API_KEY", "KIMICODE_API_KEY"), MOONSHOT_PLUGIN: ("KIMI_API_KEY", "MOONSHOT_API_KEY")}

State = Literal["installed", "off", "missing"]


@dataclass(frozen=True)
class PluginState:
    """One official plugin as this gateway's config and machine have it."""

    id: str
    state: State  # installed (found), off (enabled: false or denied), missing (not found)
    where: str | None = None  # where it was found, or the setting that turns it off
    wanted_by: tuple[str, ...] = ()  # why the gateway needs it (a provider id, a variable), if it does

    @property
    def package(self) -> str:
        return PACKAGES[self.id]

    @property
    def looked_up(self) -> bool:
        """The gateway will look for it at start (wanted, not found, not turned off)."""
        return self.state == "missing" and bool(self.wanted_by)


def _dig(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _manifest_id(folder: Path) -> str | None:
    try:
        data = json.loads((folder / "openclaw.plugin.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None


def _load_path_dirs(data: Mapping[str, Any], config_dir: Path) -> Iterable[Path]:
    paths = _dig(data, "plugins", "load", "paths")
    for raw in paths if isinstance(paths, list) else []:
        if not isinstance(raw, str) or not raw:
            continue
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else config_dir / p
        if p.is_file():
            p = p.parent
        yield p
        try:
            yield from (c for c in sorted(p.iterdir()) if c.is_dir())
        except OSError:
            continue


def find(plugin_id: str, data: Mapping[str, Any], config_path: Path) -> str | None:
    """Where ``plugin_id`` is on this machine for the gateway of ``config_path``, or None."""
    config_dir = config_path.parent
    for folder in _load_path_dirs(data, config_dir):
        if _manifest_id(folder) == plugin_id:
            return str(folder)
    installs = _dig(data, "plugins", "installs")
    if isinstance(installs, dict) and plugin_id in installs:
        return f"plugins.installs.{plugin_id}"
    ext = config_dir / "extensions" / plugin_id
    if _manifest_id(ext) == plugin_id:
        return str(ext)
    npm = config_dir / "npm"
    package = PACKAGES.get(plugin_id)
    if package and npm.is_dir():
        candidates = [npm / "node_modules" / package]
        try:
            candidates += [d / "node_modules" / package for d in sorted((npm / "projects").iterdir()) if d.is_dir()]
        except OSError:
            pass
        for c in candidates:
            if (c / "package.json").is_file():
                return str(c)
    return None


def turned_off(plugin_id: str, data: Mapping[str, Any]) -> str | None:
    """The setting that turns ``plugin_id`` off (its look-ups too), or None."""
    if _dig(data, "plugins", "enabled") is False:
        return "plugins.enabled: false"
    if _dig(data, "plugins", "entries", plugin_id, "enabled") is False:
        return f"plugins.entries.{plugin_id}.enabled: false"
    deny = _dig(data, "plugins", "deny")
    if isinstance(deny, list) and plugin_id in deny:
        return f'plugins.deny lists "{plugin_id}"'
    return None


def wanted_by(plugin_id: str, data: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[str, ...]:
    """Why a gateway with this config and environment needs ``plugin_id``: the provider ids it
    owns that are configured (``models.providers``) and its variables that are set."""
    reasons: list[str] = []
    providers = _dig(data, "models", "providers")
    for pid in PROVIDERS.get(plugin_id, ()):
        if isinstance(providers, dict) and pid in providers:
            reasons.append(f"models.providers.{pid}")
    reasons.extend(f"${name}" for name in ENV_VARS.get(plugin_id, ()) if (environ.get(name) or "").strip())
    return tuple(reasons)


def state(plugin_id: str, data: Mapping[str, Any], config_path: Path, environ: Mapping[str, str]) -> PluginState:
    off = turned_off(plugin_id, data)
    reasons = wanted_by(plugin_id, data, environ)
    if off:
        return PluginState(plugin_id, "off", off, reasons)
    where = find(plugin_id, data, config_path)
    return PluginState(plugin_id, "installed" if where else "missing", where, reasons)
