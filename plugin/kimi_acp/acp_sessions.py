"""Sessions of ``kimi-acp acp``, shared by both doors: what one ACP session keeps (its cwd, its
Claude Code conversation, its model choice, and for OpenClaw its session key, mode, permission
mode and requester) and where it is kept (``<state dir>/acp-sessions/<id>.json``, 0600).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

AGENT_NAME = "kimi-acp"
TARGET_AGENT = "kimi-acp"  # the spawn request's agentId (a harness alias kimi-acp handles)
MODEL_OPTION = "model"  # the config option id acpx's --model sets (session/set_config_option)
THINKING_OPTIONS = ("thinking", "effort", "reasoning_effort", "thought_level")  # OpenClaw's thinking aliases
TIMEOUT_OPTION = "timeout"  # OpenClaw's runTimeoutSeconds, in seconds
# Claude Code's permission mode: OpenClaw's /acp permissions sends approval_policy, resolved
# through these aliases against the keys a backend advertises (kimi-acp advertises the first).
PERMISSION_OPTIONS = ("permission_mode", "approval_policy", "permission_profile", "permissions")
DEFAULT_CHOICE = "default"  # the model option value meaning "no session choice: routing decides"
SESSION_PREFIX = "acp:"  # requester session key of an ACP session: "acp:<session id>"


def session_key(session_id: str) -> str:
    return SESSION_PREFIX + session_id


def log(message: str) -> None:
    from .redact import redact

    print(f"kimi-acp acp: {redact(message)}", file=sys.stderr, flush=True)


@dataclass
class AcpSession:
    """One ACP session: where its runs work, its Claude Code conversation, its model choice."""

    session_id: str
    cwd: str
    claude_session_id: str | None = None
    model: str | None = None  # the session's explicit model ref; None = no choice (--backend or routing)
    run_id: str | None = None  # the active run
    busy: bool = False  # a prompt is being answered
    cancelled: bool = False  # session/cancel arrived for the active prompt
    permission_mode: str | None = None  # Claude Code's permission mode for this session (set-mode); None = the default
    history: list[str] = field(default_factory=list)  # run ids of this session's turns, oldest first
    last_backend: str | None = None  # the backend its conversation ran on last (a switch starts a new one)
    # Sessions of OpenClaw's ACP runtime backend (the gateway extension):
    openclaw_key: str | None = None  # OpenClaw's session key (agent:<agent>:acp:<uuid>)
    target: str | None = None  # the ACP agent OpenClaw opened it for (ensureSession's agentId)
    mode: str | None = None  # "oneshot" | "persistent" (OpenClaw's ensureSession mode)
    thinking: str | None = None  # the spawn's thinking level (Claude Code --effort)
    env: dict[str, str] | None = None  # the spawn request's env: kept in memory only, never written
    # The client's MCP servers (ACP session/new, session/load), checked, in ACP's shape. In memory
    # only, never written: their env and headers are secrets, a server without them is broken,
    # and ACP clients hand them over again with session/load (acpx does on every reconnect).
    mcp_servers: list[dict[str, Any]] = field(default_factory=list)
    last_status: str | None = None  # the last run's status, for getStatus
    timeout: int | None = None  # seconds (OpenClaw's timeout config option)
    thinking_explicit: bool = False  # the spawn named a thinking level (OpenClaw's thinkingExplicit)
    requester_agent: str | None = None  # who asked for this session (routing's "agent" rule)
    requester_session: str | None = None  # the requester's session key (routing's "session" rule)
    requester_model: str | None = None  # that session's /model choice when it asked (provider/model)
    requester_via: str | None = None  # how kimi-acp knows: "spawn" (the child's row), "acp-spawn", "binding"
    notes: list[str] = field(default_factory=list)  # said once, at the start of the next turn's stream
    # Live turns (kimi_acp.live), in memory only: "allow for the session" answers (this tool with
    # this exact input), and the running prompt's end, which a steer sent into it waits for.
    allowed_calls: set[str] = field(default_factory=set)
    turn_end: Any = None  # asyncio.Future: the running prompt's answer (or its exception)

    _SAVED = (
        ("claudeSessionId", "claude_session_id"), ("model", "model"), ("openclawKey", "openclaw_key"),
        ("target", "target"), ("mode", "mode"), ("thinking", "thinking"), ("permissionMode", "permission_mode"),
        ("lastBackend", "last_backend"), ("requesterAgent", "requester_agent"),
        ("requesterSession", "requester_session"), ("requesterModel", "requester_model"),
        ("requesterVia", "requester_via"),
    )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sessionId": self.session_id, "cwd": self.cwd, "updatedAt": time.time()}
        for key, attr in self._SAVED:
            value = getattr(self, attr)
            if value is not None or key in ("claudeSessionId", "model"):
                out[key] = value
        if self.timeout:
            out["timeout"] = self.timeout
        if self.history:
            out["history"] = self.history[-50:]
        return out

    @classmethod
    def from_json(cls, session_id: str, data: dict[str, Any]) -> AcpSession | None:
        if not isinstance(data.get("cwd"), str):
            return None
        session = cls(session_id=session_id, cwd=data["cwd"])
        for key, attr in cls._SAVED:
            value = data.get(key)
            if isinstance(value, str):
                setattr(session, attr, value)
        if isinstance(data.get("timeout"), int) and data["timeout"] > 0:
            session.timeout = data["timeout"]
        history = data.get("history")
        if isinstance(history, list):
            session.history = [h for h in history if isinstance(h, str)]
        session.thinking_explicit = session.thinking is not None
        return session


class SessionFiles:
    """ACP sessions survive the agent process (acpx starts a new one per queue owner; the
    gateway's warm process restarts): ``<state dir>/acp-sessions/<session id>.json``, 0600,
    written atomically."""

    def __init__(self, directory: Any = None) -> None:
        from pathlib import Path

        from .sessions import state_dir

        self.dir = Path(directory) if directory is not None else state_dir() / "acp-sessions"

    def _path(self, session_id: str) -> Any:
        import uuid

        return self.dir / f"{uuid.UUID(session_id)}.json"  # only uuids name files

    def save(self, session: AcpSession) -> None:
        from .sessions import ensure_state_dir

        ensure_state_dir(self.dir)
        path = self._path(session.session_id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(session.to_json(), f)
        os.replace(tmp, path)

    def load(self, session_id: str) -> AcpSession | None:
        try:
            data = json.loads(self._path(session_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return AcpSession.from_json(session_id, data) if isinstance(data, dict) else None

    def delete(self, session_id: str) -> None:
        try:
            self._path(session_id).unlink(missing_ok=True)
        except (OSError, ValueError):
            pass


def is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True

