"""``kimi-acp env``: the backend a spawn would get, why, and the variables set and removed."""

from __future__ import annotations

import os
from typing import Any

from ..environment import build_child_env
from ..redact import mask_env
from .common import load, print_json, route_for


def run(args: Any) -> int:
    cfg = load(args)
    route = route_for(cfg, args)
    key = None if route.backend.passthrough else route.backend.resolve_key(os.environ)
    child = build_child_env(os.environ, route.backend, key=key, model=route.model,
                            secret_names=cfg.secret_names(), secret_values=cfg.secret_values())
    shown = child.set if args.reveal else mask_env(child.set)
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
    if route.backend.passthrough:
        lines.append("(passthrough: the child keeps the parent's environment unchanged)")
    print("\n".join(lines))
    return 0
