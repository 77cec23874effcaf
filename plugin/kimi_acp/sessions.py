"""The session → model ref table: a session's ``/model`` choice for its ACP spawns.

A tiny SQLite table in the state dir, shared by every kimi-acp process.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path


def state_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    explicit = env.get("KIMI_ACP_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".openclaw" / "kimi-acp"


def ensure_state_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700 (the umask filters mkdir's mode). An existing dir is
    left as is: ``$KIMI_ACP_STATE_DIR`` may point at a shared one."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
    return path


class SessionModels:
    """Which model ref each requester session chose for its spawns."""

    def __init__(self, directory: Path | None = None) -> None:
        self.path = ensure_state_dir(directory or state_dir()) / "sessions.sqlite"
        fresh = not self.path.exists()
        self._db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        if fresh:
            os.chmod(self.path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS session_models (session_key TEXT PRIMARY KEY, model_ref TEXT NOT NULL, updated_at REAL NOT NULL)"
        )

    def get(self, session_key: str) -> str | None:
        row = self._db.execute("SELECT model_ref FROM session_models WHERE session_key = ?", (session_key,)).fetchone()
        return row[0] if row else None

    def set(self, session_key: str, model_ref: str) -> None:
        self._db.execute(
            "INSERT INTO session_models VALUES (?, ?, ?) ON CONFLICT(session_key) DO UPDATE SET model_ref = excluded.model_ref, updated_at = excluded.updated_at",
            (session_key, model_ref, time.time()),
        )

    def clear(self, session_key: str) -> bool:
        return self._db.execute("DELETE FROM session_models WHERE session_key = ?", (session_key,)).rowcount > 0

    def all(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT session_key, model_ref FROM session_models ORDER BY session_key"))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SessionModels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
