"""Sessions of ``kimi-acp acp``, shared by both doors: what one ACP session keeps (its cwd, its
Claude Code conversation, its model choice, and for OpenClaw its session key, mode, permission
mode and requester) and where it is kept (``<state dir>/acp-sessions/<id>.json``, 0600).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

AGENT_NAME = "kimi-acp"
TARGET_AGENT = "kimi-acp"  # the spawn request's agentId (a harness alias kimi-acp handles)
MODEL_OPTION = "model"  # the config option id acpx's --model sets (session/set_config_option)
THINKING_OPTIONS = ("thinking", "effort", "reasoning_effort", "thought_level")  # OpenClaw's thinking aliases
TIMEOUT_OPTION = "timeout"  # OpenClaw's runTimeoutSeconds, in seconds
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
    model: str | None = None  # the session's model ref; None = no choice (--backend or routing)
    run_id: str | None = None  # the active run
    busy: bool = False  # a prompt is being answered
    cancelled: bool = False  # session/cancel arrived for the active prompt
    # Sessions of OpenClaw's ACP runtime backend (the gateway extension):
    openclaw_key: str | None = None  # OpenClaw's session key (agent:kimi-acp:acp:<uuid>)
    mode: str | None = None  # "oneshot" | "persistent" (OpenClaw's ensureSession mode)
    thinking: str | None = None  # the spawn's thinking level (Claude Code --effort)
    env: dict[str, str] | None = None  # the spawn request's env: kept in memory only, never written
    last_status: str | None = None  # the last run's status, for getStatus
    timeout: int | None = None  # seconds (OpenClaw's timeout config option)
    thinking_explicit: bool = False  # the spawn named a thinking level (OpenClaw's thinkingExplicit)

    def to_json(self) -> dict[str, Any]:
        out = {
            "sessionId": self.session_id,
            "cwd": self.cwd,
            "claudeSessionId": self.claude_session_id,
            "model": self.model,
            "updatedAt": time.time(),
        }
        for key, value in (("openclawKey", self.openclaw_key), ("mode", self.mode), ("thinking", self.thinking)):
            if value is not None:
                out[key] = value
        return out


class SessionFiles:
    """ACP sessions survive the agent process (acpx starts a new one per queue owner):
    ``<state dir>/acp-sessions/<session id>.json``, 0600, written atomically."""

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
        if not isinstance(data, dict) or not isinstance(data.get("cwd"), str):
            return None
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return AcpSession(
            session_id=session_id,
            cwd=data["cwd"],
            claude_session_id=text("claudeSessionId"),
            model=text("model"),
            openclaw_key=text("openclawKey"),
            mode=text("mode"),
            thinking=text("thinking"),
        )

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

