"""``kimi-acp env``: the backend a spawn would get, why, and the variables set and removed."""

from __future__ import annotations

import os
from typing import Any

from ..environment import build_child_env
from ..redact import mask_env
from .common import load, print_json, route_for


OVERRIDE_NOTE = (
    "each run gets --settings <state dir>/claude-settings/<run id>.json (0600, removed when the run ends): "
    "its env block repeats the variables above and blanks the other ANTHROPIC_*/provider variables, "
    'and apiKeyHelper is "" (Claude Code\'s user, project and local settings cannot redirect the run)'
)


def claude_settings(backend: Any, cwd: str | None) -> list[dict[str, Any]]:
    """Claude Code's settings files that set backend variables, each with what kimi-acp does about it."""
    from ..harness.override import scan_settings

    found = scan_settings(cwd or os.getcwd(), os.environ)
    for layer in found:
        if layer.get("error"):
            layer["action"] = str(layer["error"])
        elif backend.passthrough:
            layer["action"] = "applies (passthrough: kimi-acp changes nothing)"
        elif layer["outranks"]:
            layer["action"] = ("outranks kimi-acp's --settings: it can redirect runs; "
                               "a run whose model is changed fails with an error")
        else:
            layer["action"] = "overridden for kimi-acp runs (see the override above)"
    return found


def run(args: Any) -> int:
    cfg = load(args)
    route = route_for(cfg, args)
    key = None if route.backend.passthrough else route.backend.resolve_key(os.environ)
    child = build_child_env(os.environ, route.backend, key=key, model=route.model,
                            secret_names=cfg.secret_names(), secret_values=cfg.secret_values())
    shown = child.set if args.reveal else mask_env(child.set)
    layers = claude_settings(route.backend, getattr(args, "cwd", None))
    override = None if route.backend.passthrough else OVERRIDE_NOTE
    if args.json:
        print_json(
            {
                "backend": route.name,
                "model": route.model,
                "rule": route.rule,
                "reason": route.reason,
                "set": shown,
                "unset": child.unset,
                "notes": list(route.notes),
                "config": str(cfg.path) if cfg.exists else None,
                "claudeSettings": layers,
                "settingsOverride": override,
            }
        )
        return 0
    lines = [
        f"backend: {route.name}" + (f" (model {route.model})" if route.model else ""),
        f"reason:  {route.reason}",
        f"config:  {cfg.path if cfg.exists else f'{cfg.path} (not found; built-in presets only)'}",
    ]
    lines += [f"note:    {n}" for n in route.notes]
    if shown:
        lines.append("set:")
        lines += [f"  {k}={v}" for k, v in shown.items()]
    if child.unset:
        lines.append("unset:")
        lines += [f"  {k}" for k in child.unset]
    if override:
        lines.append(f"claude settings override: {override}")
    if layers:
        lines.append("claude settings files:")
        for layer in layers:
            lines.append(f"  {layer['file']} ({layer['layer']}) sets {', '.join(layer['sets']) or '?'}: {layer['action']}")
    if route.backend.passthrough:
        lines.append("(passthrough: the child keeps the parent's environment unchanged)")
    print("\n".join(lines))
    return 0
