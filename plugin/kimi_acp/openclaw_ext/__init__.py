"""kimi-acp's OpenClaw extension, shipped inside the Python package.

OpenClaw plugins are ES modules running in the gateway process, so the extension
is a thin JavaScript bridge (``index.js``, hand-written): for every
``sessions_spawn`` with ``runtime: "acp"`` it runs ``kimi-acp hook before-tool-call``
(:mod:`kimi_acp.commands.hook`) and returns that command's answer to OpenClaw.
All routing policy stays in Python.

Files in this folder:

- ``index.js`` — the plugin entry (hand-written): the ``before_tool_call`` hook and the
  service that registers the ACP runtime backend ``kimi-acp``;
- ``runtime.js`` — the ``AcpRuntime`` object: OpenClaw's calls carried as ACP messages;
- ``acp-client.js`` — the warm ``kimi-acp acp`` process and its JSON-RPC wire.
- ``openclaw.plugin.json`` and ``package.json`` — generated from the pydantic
  models by ``kimi-acp manifest --write`` (a test fails when they are stale).
- ``bridge.json`` — written by ``kimi-acp install``: ``{"command": [argv...]}``, the
  absolute path of the ``kimi-acp`` program the bridge runs (not shipped; the bridge
  falls back to ``$KIMI_ACP_BIN``, then ``kimi-acp`` on ``PATH``).

``kimi-acp install`` puts this folder in ``plugins.load.paths``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PLUGIN_ID = "kimi-acp"
PACKAGE_NAME = "kimi-acp-openclaw"
ENTRY = "./index.js"
BRIDGE_FILE = "bridge.json"

# The keys of kimi-acp's manifest that OpenClaw's openclaw.plugin.json knows
# (docs/plugins/manifest.md); anything else ("hooks") stays out of it.
MANIFEST_KEYS = ("id", "name", "description", "version", "activation", "configSchema", "uiHints")


def extension_dir() -> Path:
    """The folder OpenClaw loads (put in ``plugins.load.paths``)."""
    return Path(__file__).resolve().parent


def bridge_path(directory: Path | None = None) -> Path:
    return (directory or extension_dir()) / BRIDGE_FILE


def _render(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def plugin_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """``openclaw.plugin.json``: the OpenClaw-known subset of kimi-acp's manifest."""
    out = {k: manifest[k] for k in MANIFEST_KEYS if k in manifest}
    out["id"] = PLUGIN_ID
    return out


def package_json(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": PACKAGE_NAME,
        "version": manifest.get("version", "0.0.0"),
        "type": "module",
        "private": True,
        "openclaw": {"extensions": [ENTRY]},
    }


def generated_files(manifest: dict[str, Any]) -> dict[Path, str]:
    """The extension's generated files, ``{path: text}``, from kimi-acp's manifest dict."""
    here = extension_dir()
    return {
        here / "openclaw.plugin.json": _render(plugin_manifest(manifest)),
        here / "package.json": _render(package_json(manifest)),
    }
