"""Making Claude Code use the backend kimi-acp chose, whatever its settings files say.

Claude Code applies the ``env`` block of its settings files over the environment it was
started with: ``~/.claude/settings.json`` (user), ``<cwd>/.claude/settings.json`` (project)
and ``<cwd>/.claude/settings.local.json`` (local). A provider switcher's
``{"env": {"ANTHROPIC_BASE_URL": ...}}`` there would send a Kimi-routed run, with the Kimi
key, to another provider. ``apiKeyHelper`` in any of them adds its output as a Bearer token.

The one layer that ranks above all three (managed settings excepted, by design) is
``--settings <file>``. So every run on a non-passthrough backend gets

    claude ... --settings <state dir>/claude-settings/<run id>.json

a 0600 file (in a 0700 directory) whose ``env`` block repeats every variable kimi-acp set
for the child, blanks (``""``) the ones that could redirect or re-authenticate it or send its
requests through a proxy or another TLS trust (unless the child has them: then their value), and whose
``apiKeyHelper`` is ``""`` (no helper runs). Nothing else is in it: the user's permissions,
hooks, MCP servers and plugins still come from their own files. The key is in the file
(never in argv) only while the run lasts: the file is removed when the run ends, and files
left by a crash are removed when their run is found lost, or after two days.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..environment import REDIRECTING, SCRUBBED
from ..runfiles import remove_run_file, run_file, write_run_file

OVERRIDE_DIR = "claude-settings"
"""The directory under the state dir that holds the override files."""


# Pinned to the child's own value, or "" when it has none: each could send Claude Code
# elsewhere, add a header or a credential, or pick another model (REDIRECTING); route its
# requests, key included, through a proxy, or make it trust another certificate (proxies and
# TLS switches: the gateway operator's own are in the child's environment and are repeated
# here; a settings file cannot add or change one). Empty means unset for Claude Code: no
# Authorization header for an empty ANTHROPIC_AUTH_TOKEN, no Bedrock and no proxy for "".
# PATH, LD_* and the like act when the process starts, before settings are read: not here.
BLANKED = (
    *REDIRECTING,
    *(name for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") for name in (base, base.lower())),
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "NODE_EXTRA_CA_CERTS",
    "NODE_OPTIONS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


def override_settings(env: Mapping[str, str], child_set: Mapping[str, str]) -> dict[str, object]:
    """The ``--settings`` content for a child started with ``env`` (of which kimi-acp set
    ``child_set``): every variable kimi-acp set, plus :data:`BLANKED` as the child has them
    (``""`` when absent), and no ``apiKeyHelper``."""
    block = {name: env.get(name, "") for name in BLANKED}
    block.update({name: env[name] for name in child_set if name in env})
    return {"env": dict(sorted(block.items())), "apiKeyHelper": ""}


def override_path(state_dir: Path | str, run_id: str) -> Path:
    """Where the override file of run ``run_id`` lives."""
    return run_file(state_dir, OVERRIDE_DIR, run_id)


def write_override(state_dir: Path | str, content: Mapping[str, object], run_id: str) -> Path:
    """Write ``content`` to run ``run_id``'s file under ``state_dir`` (0600, in a 0700
    directory, replaced atomically: :mod:`kimi_acp.runfiles`) and return the path."""
    return write_run_file(state_dir, OVERRIDE_DIR, run_id, content)


def remove_override(state_dir: Path | str, run_id: str) -> None:
    """Remove run ``run_id``'s override file (the key goes with it). Never raises."""
    remove_run_file(state_dir, OVERRIDE_DIR, run_id)


def with_override(argv: Sequence[str], path: Path | str) -> list[str]:
    """``argv`` with ``--settings <path>`` last, so that it wins over any ``--settings`` in
    the configured extra arguments."""
    return [*argv, "--settings", str(path)]


def is_claude_argv(argv: Sequence[str], claude: str | None = None) -> bool:
    """True when ``argv`` starts Claude Code (the binary kimi-acp found, or one named ``claude``)."""
    if not argv:
        return False
    first = str(argv[0])
    return (claude is not None and first == claude) or os.path.basename(first) == "claude"


def apply_override(argv: Sequence[str], env: Mapping[str, str], child_set: Mapping[str, str],
                   state_dir: Path | str, run_id: str) -> list[str]:
    """The argv of a run on a non-passthrough backend: ``--settings`` with its override file."""
    return with_override(argv, write_override(state_dir, override_settings(env, child_set), run_id))


# --------------------------------------------------------------------------- what the layers say

MANAGED_SETTINGS = Path("/etc/claude-code/managed-settings.json")
"""Claude Code's managed (enterprise) settings on Linux: they outrank ``--settings``."""

# CLAUDE_CODE_* variables that choose a model, a provider, a credential or the context size.
_CLAUDE_CODE_RISKY = frozenset(n for n in SCRUBBED if n.startswith("CLAUDE_CODE_"))


def risky_name(name: str) -> bool:
    """True for a settings ``env`` variable that could redirect, re-authenticate or re-model a run."""
    return name.startswith("ANTHROPIC_") or name in _CLAUDE_CODE_RISKY or name in BLANKED


def settings_layers(cwd: Path | str, environ: Mapping[str, str]) -> list[tuple[str, Path]]:
    """Claude Code's settings files for a run in ``cwd``, lowest rank first:
    (``user``, ``project``, ``local``, ``managed``)."""
    home = Path(environ.get("HOME") or Path.home())
    config_dir = Path(environ["CLAUDE_CONFIG_DIR"]) if environ.get("CLAUDE_CONFIG_DIR") else home / ".claude"
    cwd = Path(cwd)
    return [
        ("user", config_dir / "settings.json"),
        ("project", cwd / ".claude" / "settings.json"),
        ("local", cwd / ".claude" / "settings.local.json"),
        ("managed", MANAGED_SETTINGS),
    ]


def scan_settings(cwd: Path | str, environ: Mapping[str, str]) -> list[dict[str, object]]:
    """Every settings file of :func:`settings_layers` that sets something kimi-acp must
    override: ``{"layer", "file", "sets": [names], "outranks": bool}`` (``outranks``: the
    managed layer, which ``--settings`` cannot beat). Unreadable files are reported with
    ``"error"``. Only names are returned, never values."""
    found: list[dict[str, object]] = []
    for layer, path in settings_layers(cwd, environ):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            found.append({"layer": layer, "file": str(path), "sets": [], "outranks": layer == "managed",
                          "error": f"cannot read: {type(exc).__name__}"})
            continue
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            found.append({"layer": layer, "file": str(path), "sets": [], "outranks": layer == "managed",
                          "error": "not valid JSON (Claude Code ignores it)"})
            continue
        if not isinstance(data, dict):
            continue
        env = data.get("env") if isinstance(data.get("env"), dict) else {}
        sets = sorted(f"env.{n}" for n in env if isinstance(n, str) and risky_name(n))
        if data.get("apiKeyHelper"):
            sets.append("apiKeyHelper")
        if sets:
            found.append({"layer": layer, "file": str(path), "sets": sets, "outranks": layer == "managed"})
    return found
