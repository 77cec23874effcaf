"""``kimi-acp env``: the backend a spawn would get, why, and the child's variables: what kimi-acp
sets, what it passes on from its own environment (and why), and what it does not pass."""

from __future__ import annotations

import os
from typing import Any

from ..environment import build_child_env
from ..redact import mask_env
from .common import load, print_json, route_for
from .doctor import describe_model


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


NO_KEY = "<not set>"

MCP_NOTE = ("each run gets --mcp-config <state dir>/mcp-config/<run id>.json, 0600, removed when the run ends; "
            "an ACP session's own servers come on top")


def model_json(backend: Any, model: str | None) -> dict[str, Any] | None:
    """What kimi-acp knows of a route's model (``env --json``'s ``modelInfo``), or None."""
    from ..environment import CLAUDE_CODE_MAX_OUTPUT_CAP

    if backend.passthrough or not model:
        return None
    info = backend.model_info(model)
    context = (info.context_window if info and info.context_window else None) or backend.context_window
    out = (info.max_tokens if info and info.max_tokens else None) or backend.max_tokens
    return {
        "id": model,
        "name": info.name if info else None,
        "contextWindow": context,
        "maxContextWindow": info.max_context_window if info else None,
        "maxOutputTokens": min(out, CLAUDE_CODE_MAX_OUTPUT_CAP) if out else None,
        "efforts": list(info.efforts) if info and info.efforts else None,
        "cost": info.cost.to_json() if info and info.cost and not info.cost.free else None,
        "legacy": bool(info and info.legacy),
        "known": info is not None,
    }


def run(args: Any) -> int:
    """Exit 0, or 3 when the backend's key is missing: routing is still shown in full (with the
    key as ``<not set>``), so it can be checked before a key exists."""
    from ..errors import MissingKeyError, split_hint

    cfg = load(args)
    route = route_for(cfg, args)
    missing: MissingKeyError | None = None
    key = None
    if not route.backend.passthrough:
        try:
            key = route.backend.resolve_key(os.environ)
        except MissingKeyError as exc:
            missing, key = exc, NO_KEY
    from ..routing import default_target

    target = getattr(args, "target", None) or default_target(cfg)
    child = build_child_env(os.environ, route.backend, key=key, model=route.model,
                            secret_names=cfg.secret_names(), secret_values=cfg.secret_values(),
                            pass_names=cfg.pass_env(backend=route.name, requester=getattr(args, "agent", None), target=target))
    thinking = getattr(args, "thinking", None)
    effort, effort_env = (None, {})
    if thinking and not route.backend.passthrough:
        from ..harness.command import effort_for

        info = route.backend.model_info(route.model)
        effort, effort_env = effort_for(thinking, info.efforts if info else None)
        child.set.update(effort_env)
    elif thinking:
        from ..harness.command import effort_for

        effort, effort_env = effort_for(thinking, None)
    shown = child.set if args.reveal else mask_env(child.set)
    inherited = {name: child.env[name] for name in child.passed}
    inherited_shown = inherited if args.reveal else mask_env(inherited)
    if missing is not None:
        shown = {k: (NO_KEY if v == NO_KEY or child.set.get(k) == NO_KEY else v) for k, v in shown.items()}
    base = (route.backend.base_url or "").rstrip("/")
    notes = list(route.notes)
    if base.endswith("/v1"):
        notes.append(f"the base URL {base} ends in /v1: Claude Code appends /v1/messages itself, so it would call "
                     f"{base}/v1/messages (a 404 on Kimi); set baseUrl to {base[:-3]}")
    layers = claude_settings(route.backend, getattr(args, "cwd", None))
    from ..mcp import configured

    servers = list(configured(cfg.settings, requester=getattr(args, "agent", None), target=target).values())
    override = None if route.backend.passthrough else OVERRIDE_NOTE
    described = None if route.backend.passthrough or not route.model else describe_model(route.backend, route.model)
    if args.json:
        print_json(
            {
                "backend": route.name,
                "model": route.model,
                "modelRef": route.model_ref,
                "modelInfo": model_json(route.backend, route.model),
                **({"thinking": {"level": thinking, "effort": effort, "env": effort_env}} if thinking else {}),
                "rule": route.rule,
                "reason": route.reason,
                "set": shown,
                "passed": {name: {"value": inherited_shown[name], "why": why} for name, why in child.passed.items()},
                "unset": child.unset,
                "notes": notes,
                "config": str(cfg.path) if cfg.exists else None,
                "claudeSettings": layers,
                "settingsOverride": override,
                "mcpServers": [s.to_json(reveal=args.reveal) for s in servers],
                **({"error": {"code": missing.code, "message": split_hint(str(missing))[0], "hint": missing.hint}} if missing else {}),
            }
        )
        return missing.exit_code if missing else 0
    lines = [
        f"backend: {route.name}" + (f" (model {route.model})" if route.model else ""),
        f"reason:  {route.reason}",
        f"config:  {cfg.path if cfg.exists else f'{cfg.path} (not found; built-in presets only)'}",
    ]
    if described:
        lines.append(f"model:   {described}")
    if thinking:
        lines.append(f"thinking: {thinking} -> " + (f"--effort {effort}" if effort else "no --effort (unknown level)")
                     + (f" and {', '.join(f'{k}={v}' for k, v in effort_env.items())} (Claude Code cannot send "
                        "thinking.type disabled: it drops the thinking field)" if effort_env else ""))
    lines += [f"note:    {n}" for n in notes]
    if shown:
        lines.append("set:")
        lines += [f"  {k}={v}" for k, v in shown.items()]
    if child.passed:
        lines.append("passed from this environment (everything else is not):")
        lines += [f"  {k}={inherited_shown[k]}  — {why}" for k, why in child.passed.items()]
    if child.unset:
        lines.append("unset:")
        lines += [f"  {k}" for k in child.unset]
    if override:
        lines.append(f"claude settings override: {override}")
    if servers:
        lines.append(f"mcp servers ({MCP_NOTE}):")
        lines += [f"  {s.describe(reveal=args.reveal)}" for s in servers]
    if layers:
        lines.append("claude settings files:")
        for layer in layers:
            lines.append(f"  {layer['file']} ({layer['layer']}) sets {', '.join(layer['sets']) or '?'}: {layer['action']}")
    if route.backend.passthrough:
        lines.append("(passthrough: the child keeps the parent's environment unchanged)")
    print("\n".join(lines))
    if missing is not None:
        from .output import emit_error

        emit_error("env", missing.code, split_hint(str(missing))[0], missing.hint, as_json=False)
        return missing.exit_code
    return 0
