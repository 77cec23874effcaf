"""``manifest.json``: the plugin manifest, generated from the pydantic config model.

``kimi-acp manifest --write`` regenerates it; ``--check`` (and a test) fail when
the file on disk is stale.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .paths import checkout_root

CHECKOUT = checkout_root(__file__)
REPO_ROOT = CHECKOUT or Path(__file__).resolve().parents[2]
MANIFEST_PATH = REPO_ROOT / "manifest.json"

OPENCLAW_HOOKS = ["before_tool_call"]


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref``s (``#/$defs/X``) so any JSON Schema validator reads it; drop pydantic-only formats."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
                extra = {k: v for k, v in node.items() if k != "$ref"}
                return walk({**target, **extra})
            out = {k: walk(v) for k, v in node.items() if k != "title"}
            if out.get("format") == "password":
                del out["format"]
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def config_schema() -> dict[str, Any]:
    from .settings import KimiAcpSettings

    schema = _inline_refs(KimiAcpSettings.model_json_schema())
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    return schema


def ui_hints() -> dict[str, Any]:
    return {
        "defaultBackend": {"label": "Default backend", "help": "Backend for every ACP spawn with no more specific rule (e.g. kimi)."},
        "agents": {"label": "Per-agent backends", "help": "Requesting agent id -> {backend, model}."},
        "backends.*.apiKey": {"label": "API key", "sensitive": True, "placeholder": "${KIMI_API_KEY}"},
        "backends.*.apiKeyEnv": {"label": "API key variable", "placeholder": "KIMI_API_KEY"},
        "backends.*.baseUrl": {"label": "Base URL", "placeholder": "https://api.kimi.com/coding"},
        "report.gateway.token": {"label": "Hooks token", "sensitive": True, "placeholder": "${OPENCLAW_HOOKS_TOKEN}"},
        "mcpServers": {"label": "MCP servers", "help": "Name -> {command, args, env} (stdio) or {type: http|sse, url, headers}, for every run."},
        "mcpServers.*.env.*": {"label": "Server environment value", "sensitive": True},
        "mcpServers.*.headers.*": {"label": "Header value", "sensitive": True},
        "agents.*.mcpServers.*.env.*": {"label": "Server environment value", "sensitive": True},
        "agents.*.mcpServers.*.headers.*": {"label": "Header value", "sensitive": True},
        "targets.*.mcpServers.*.env.*": {"label": "Server environment value", "sensitive": True},
        "targets.*.mcpServers.*.headers.*": {"label": "Header value", "sensitive": True},
        "harness.allowRootBypass": {"label": "Allow bypassPermissions as root", "advanced": True},
        "limits": {"label": "Limits", "advanced": True},
    }


def hook_names() -> list[str]:
    from . import hookspecs

    return sorted(n for n in dir(hookspecs) if n.startswith("kimi_acp_"))


def build_manifest() -> dict[str, Any]:
    return {
        "id": "kimi-acp",
        "name": "kimi-acp",
        "version": __version__,
        "description": (
            "Runs every Claude Code session OpenClaw starts over ACP on Kimi Code's Anthropic-compatible API (K3, kimi-for-coding), "
            "per agent or globally, and reports every result back to the session that asked."
        ),
        # OpenClaw 2026.9+ imports a plugin at gateway start only when it says so; without it the
        # hook and the ACP runtime backend are never registered (plugins list still says enabled).
        "activation": {"onStartup": True},
        "configSchema": config_schema(),
        "uiHints": ui_hints(),
        "hooks": {"openclaw": OPENCLAW_HOOKS, "kimi_acp": hook_names()},
    }


def render(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def generated_files() -> dict[Path, str]:
    """Every file generated from the models: manifest.json (and, when present, the extension's manifest)."""
    files = {MANIFEST_PATH: render(build_manifest())}
    try:
        from .openclaw_ext import generated_files as ext_files
    except ImportError:
        return files
    files.update(ext_files(build_manifest()))
    return files


def stale_files() -> list[Path]:
    return [p for p, text in generated_files().items() if not p.exists() or p.read_text(encoding="utf-8") != text]


def run(args: Any) -> int:
    if (args.check or args.write) and CHECKOUT is None:
        from .errors import UsageError

        raise UsageError("manifest --check and --write work in a source checkout only; this kimi-acp is an installed package",
                         hint="run `kimi-acp manifest` to print the manifest, or use a clone of the repository")
    if args.check:
        stale = stale_files()
        for p in stale:
            print(f"stale: {p} (run: kimi-acp manifest --write)", file=sys.stderr)
        return 1 if stale else 0
    if args.write:
        for p, text in generated_files().items():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
            print(f"wrote {p}")
        return 0
    sys.stdout.write(render(build_manifest()))
    return 0
