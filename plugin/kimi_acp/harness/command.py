"""Starting Claude Code: finding the binary, its version, and the argv of a headless run.

Kept apart from the stream-json parser (:mod:`.claude_code`) so that building a run's
command line imports no pydantic: ``kimi-acp spawn`` starts Claude Code before the rest
of kimi-acp has finished importing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ..errors import HarnessConfigError, HarnessNotFoundError
from ..paths import checkout_root

PermissionMode = Literal[
    "approve-all", "approve-edits", "approve-reads", "deny-all",
    "default", "acceptEdits", "plan", "bypassPermissions", "dontAsk",
]
CLAUDE_MODES = ("default", "acceptEdits", "plan", "bypassPermissions", "dontAsk")
"""Claude Code's permission modes kimi-acp offers per session (OpenClaw's ``/acp set-mode`` and
``/acp permissions``, an ACP client's ``session/set_mode``)."""

CLAUDE_CODE_VERSION = "2.1.332"
"""The Claude Code version kimi-acp is built and tested against."""

INSTALL_HINT = (
    f"npm install --prefix ~/.local/share/kimi-acp/claude-code @anthropic-ai/claude-code@{CLAUDE_CODE_VERSION} "
    "(on Node 20 pin the version: a plain install picks 2.1.197), or set KIMI_ACP_CLAUDE"
)

ROOT_BYPASS_MESSAGE = (
    "approve-all (bypassPermissions) runs Claude Code without permission checks, which refuses to start as root; "
    "set plugins.entries.kimi-acp.config.harness.allowRootBypass: true (sets IS_SANDBOX=1) "
    "if this machine is a sandbox, or use approve-edits (acceptEdits)"
)

# kimi-acp's permission names (acpx's words), and Claude Code's own -> --permission-mode values.
_CLAUDE_MODES: dict[str, str] = {
    "approve-all": "bypassPermissions",
    "approve-edits": "acceptEdits",
    "approve-reads": "default",
    "deny-all": "dontAsk",
    **{mode: mode for mode in CLAUDE_MODES},
}


def claude_mode(mode: str) -> str:
    """Claude Code's name of a permission mode (acpx's names accepted), or ValueError."""
    found = _CLAUDE_MODES.get(mode) or {m.lower(): m for m in CLAUDE_MODES}.get(mode.strip().lower())
    if found is None:
        raise ValueError(f"unknown permission mode {mode!r}; use one of: {', '.join(CLAUDE_MODES)} (or acpx's {', '.join(list(_CLAUDE_MODES)[:4])})")
    return found

# Where a local install puts the binary, relative to a project root or the per-user prefix.
_LOCAL_BIN = Path(".tools") / "claude-code" / "node_modules" / ".bin" / "claude"
_USER_BIN = Path(".local") / "share" / "kimi-acp" / "claude-code" / "node_modules" / ".bin" / "claude"
# The source checkout this module lives in (plugin/kimi_acp/harness/command.py -> repo).
_REPO_ROOT: Path | None = checkout_root(__file__)  # None when installed: no bogus <site-packages>/../.tools


# --------------------------------------------------------------------------- starting it


def _is_root() -> bool:
    """True when running with effective uid 0 (bypassPermissions then needs IS_SANDBOX=1)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def permission_args(mode: PermissionMode, *, allow_root_bypass: bool) -> tuple[list[str], dict[str, str]]:
    """The ``--permission-mode`` arguments for ``mode``, plus any env they need.

    ``approve-all`` as root only starts with ``IS_SANDBOX=1``; kimi-acp sets it only when the
    user said the machine is a sandbox (``allowRootBypass``), otherwise it refuses up front
    instead of letting Claude Code exit 1 with a message the requester never sees.
    """
    try:
        chosen = claude_mode(mode)
    except ValueError as exc:
        raise HarnessConfigError(str(exc)) from None
    env: dict[str, str] = {}
    if chosen == "bypassPermissions" and _is_root():
        if not allow_root_bypass:
            raise HarnessConfigError(ROOT_BYPASS_MESSAGE)
        env["IS_SANDBOX"] = "1"
    return ["--permission-mode", chosen], env


# OpenClaw's thinking levels -> Claude Code's --effort (low, medium, high, xhigh, max), for a
# model whose effort set kimi-acp does not know (Claude Code sends the value verbatim).
EFFORT_BY_THINKING = {
    "off": "low",
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}

EFFORT_ORDER = ("low", "medium", "high", "xhigh", "max")
"""Claude Code's effort values, weakest first."""

# OpenClaw's levels as a wanted effort, for a model with a known effort set (adaptive is
# OpenClaw's "let the model decide", which Kimi's provider sends as high).
_WANTED = {"minimal": "low", "low": "low", "medium": "medium", "adaptive": "high", "high": "high", "xhigh": "xhigh", "max": "max"}

DISABLE_THINKING = {"CLAUDE_CODE_DISABLE_THINKING": "1"}
"""What ``off`` adds for a model with a known effort set: Claude Code then drops the request's
``thinking`` field. It cannot send ``thinking: {type: "disabled"}`` (OpenClaw's Kimi provider
does), and it still sends an effort, so the weakest one the model accepts goes with it."""


def effort_for(thinking: str | None, efforts: Sequence[str] | None = None) -> tuple[str | None, dict[str, str]]:
    """The ``--effort`` value for OpenClaw's thinking level ``thinking`` and the env it needs.

    ``efforts`` is the set the model accepts (K3: low, high, max); each level then maps to the
    weakest accepted effort at least as strong as the level, else the strongest (as OpenClaw's
    Kimi provider maps them: minimal/low -> low, medium/high/adaptive -> high, xhigh/max -> max),
    and ``off`` to :data:`DISABLE_THINKING` with the weakest effort. Without ``efforts`` (an
    unknown model) the level maps by :data:`EFFORT_BY_THINKING`. Unknown levels: ``(None, {})``.
    """
    level = (thinking or "").strip().lower()
    if not efforts:
        return EFFORT_BY_THINKING.get(level), {}
    accepted = [e for e in EFFORT_ORDER if e in efforts]
    if not accepted:
        return EFFORT_BY_THINKING.get(level), {}
    if level == "off":
        return accepted[0], dict(DISABLE_THINKING)
    wanted = _WANTED.get(level)
    if wanted is None:
        return None, {}
    rank = EFFORT_ORDER.index(wanted)
    stronger = [e for e in accepted if EFFORT_ORDER.index(e) >= rank]
    return (stronger[0] if stronger else accepted[-1]), {}


def asks(mode: str) -> bool:
    """Whether Claude Code would ask before some tool calls in this permission mode (``default``,
    ``acceptEdits``, ``plan``); ``bypassPermissions`` allows and ``dontAsk`` refuses everything
    without asking."""
    try:
        return claude_mode(mode) not in ("bypassPermissions", "dontAsk")
    except ValueError:
        return False


def user_message(text: str, images: Sequence[tuple[str, str]] = ()) -> bytes:
    """One stream-json user message (a line of Claude Code's ``--input-format stream-json``):
    the text, then each image as ``(media type, base64 data)``."""
    import json

    content: list[dict[str, object]] = [{"type": "text", "text": text}]
    content += [{"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}} for mime, data in images]
    line = {"type": "user", "message": {"role": "user", "content": content}, "parent_tool_use_id": None, "session_id": ""}
    return (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")


def build_argv(
    claude: str,
    *,
    model: str | None = None,
    resume: str | None = None,
    session_id: str | None = None,
    permission: PermissionMode = "approve-edits",
    allow_root_bypass: bool = False,
    extra_args: Sequence[str] = (),
    thinking: str | None = None,
    efforts: Sequence[str] | None = None,
    live: bool = False,
    ask: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The argv of one headless Claude Code run, and the extra env it needs.

    ``thinking`` is OpenClaw's thinking level (``off``, ``minimal``, ``low``, ``medium``,
    ``high``, ``adaptive``, ``xhigh``, ``max``), mapped onto Claude Code's ``--effort`` by
    :func:`effort_for` with the model's accepted ``efforts``; unknown levels are ignored.

    The task is not a parameter on purpose: it goes on stdin, as a stream-json user message
    (:func:`user_message`; images travel the same way). ``live``: stdin stays open while the
    run works (more user messages, answers to its questions), and Claude Code echoes each user
    message when it takes it (``--replay-user-messages``), so the caller knows when every one
    has had its turn. ``ask`` (with ``live``, in a mode that asks): Claude Code sends each
    permission question on stdout (a ``can_use_tool`` control request) and waits for the answer
    on stdin (``--permission-prompt-tool stdio``); without it a question is refused by the mode.

    ``resume`` continues an earlier Claude session (same cwd only); otherwise ``session_id``
    fixes the new session's id. When both are given ``resume`` wins (the caller is continuing a
    conversation).
    """
    if isinstance(extra_args, str):
        raise TypeError("extra_args must be a sequence of arguments, not one string")
    perm, env = permission_args(permission, allow_root_bypass=allow_root_bypass)
    argv = [claude, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose", *perm]
    if live:
        argv.append("--replay-user-messages")
        if ask and asks(permission):
            argv += ["--permission-prompt-tool", "stdio"]
    if model:
        argv += ["--model", model]
    effort, effort_env = effort_for(thinking, efforts)
    if effort:
        argv += ["--effort", effort]
    env.update(effort_env)
    if resume:
        argv += ["--resume", resume]
    elif session_id:
        argv += ["--session-id", session_id]
    argv += [str(a) for a in extra_args]
    return argv, env


# --------------------------------------------------------------------------- finding it


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _resolve_explicit(value: str, what: str) -> str:
    """Resolve a path or command name the user chose; a wrong explicit choice is an error,
    not a reason to silently run some other ``claude``."""
    expanded = os.path.expanduser(value)
    if os.sep in expanded:
        path = Path(expanded)
        if _executable(path):
            return str(path.absolute())
        problem = "does not exist" if not path.exists() else "is not an executable file"
    else:
        found = shutil.which(expanded)
        if found:
            return found
        problem = "is not a command on PATH"
    raise HarnessNotFoundError(
        f"{what} is {value!r}, but that {problem}; fix it, or unset it to use `claude` on PATH "
        f"or a local install. To install: {INSTALL_HINT}"
    )


def find_claude(configured: str | None = None) -> str:
    """Path of the ``claude`` binary to run.

    Order: ``configured`` (config ``harness.command``), ``$KIMI_ACP_CLAUDE``, ``claude`` on
    PATH, ``<repo>/.tools/...`` and ``<cwd>/.tools/claude-code/node_modules/.bin/claude``,
    ``~/.local/share/kimi-acp/claude-code/node_modules/.bin/claude``. The two explicit
    choices must work when set; the rest are searched and the error lists them all.
    """
    if configured:
        return _resolve_explicit(configured, "harness.command")
    from_env = os.environ.get("KIMI_ACP_CLAUDE")
    if from_env:
        return _resolve_explicit(from_env, "KIMI_ACP_CLAUDE")
    looked = ["harness.command (not set)", "$KIMI_ACP_CLAUDE (not set)", "`claude` on PATH"]
    on_path = shutil.which("claude")
    if on_path:
        return on_path
    try:
        cwd: Path | None = Path.cwd()
    except OSError:  # the cwd was deleted
        cwd = None
    candidates: list[Path] = []
    for root in (_REPO_ROOT, cwd):
        if root is not None and root / _LOCAL_BIN not in candidates:
            candidates.append(root / _LOCAL_BIN)
    candidates.append(Path.home() / _USER_BIN)
    for path in candidates:
        looked.append(str(path))
        if _executable(path):
            return str(path)
    raise HarnessNotFoundError(
        "Claude Code CLI (claude) not found. Looked at: " + "; ".join(looked) + f". Install it: {INSTALL_HINT}"
    )


def claude_version(claude: str, timeout: float = 10) -> str:
    """Run ``claude --version`` and return the bare version, e.g. ``"2.1.332"``."""
    env = {**os.environ, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    try:
        done = subprocess.run(
            [claude, "--version"], capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, env=env, check=False,
        )
    except OSError as exc:
        raise HarnessNotFoundError(f"cannot run {claude}: {exc}. To install: {INSTALL_HINT}") from exc
    except subprocess.TimeoutExpired as exc:
        raise HarnessNotFoundError(f"`{claude} --version` gave no answer within {timeout:g} s") from exc
    match = re.search(r"\b(\d+\.\d+\.\d+)\b", done.stdout)
    if done.returncode != 0 or match is None:
        said = (done.stderr or done.stdout).strip()[-500:] or "no output"
        raise HarnessNotFoundError(
            f"`{claude} --version` failed (exit {done.returncode}): {said}. "
            f"Reinstall it (without --ignore-scripts): {INSTALL_HINT}"
        )
    return match.group(1)
