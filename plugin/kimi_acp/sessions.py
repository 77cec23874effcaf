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


def state_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be trusted as a state dir, or None (the rule of OpenSSH's
    StrictModes): it must be owned by the current user and not writable by group or others.
    Anyone who can write there can plant a settings cache that names the harness command,
    or entry points that load their code, and read what runs leave behind."""
    st = path.stat()
    if st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"writable by {'group and others' if st.st_mode & 0o022 == 0o022 else ('others' if st.st_mode & 0o002 else 'group')} (mode {oct(st.st_mode & 0o777)})"
    return None


def _refusal(path: Path, problem: str) -> str:
    return (
        f"state dir {path} is {problem}: another user could plant code there or read your runs: "
        f"fix: chown $(id -u) {path} && chmod 700 {path}, or set KIMI_ACP_STATE_DIR to a private directory"
    )


def ensure_state_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700 (the umask filters mkdir's mode), or check that the
    existing one is safe (:func:`state_dir_problem`); an unsafe one is refused with a
    :class:`~kimi_acp.errors.ConfigError` that says how to fix it."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
    problem = state_dir_problem(path)
    if problem:
        from .errors import ConfigError

        raise ConfigError(_refusal(path, problem))
    return path


_warned: set[str] = set()


def _say_once(message: str) -> None:
    import sys

    if message not in _warned:
        _warned.add(message)
        print(f"kimi-acp: {message}", file=sys.stderr)


def cache_problem(path: Path) -> str | None:
    """Why the cache file ``path`` (in the state dir) cannot be trusted, or None. The state dir
    must be safe, and the file a regular file of the current user's, readable by nobody else."""
    problem = state_dir_problem(path.parent)
    if problem:
        return _refusal(path.parent, problem)
    st = path.lstat()
    import stat as _stat

    if not _stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file; fix: rm {path}"
    if st.st_uid != os.getuid():
        return f"{path} is owned by uid {st.st_uid}, not by you; fix: rm {path}"
    if st.st_mode & 0o077:
        return f"{path} has mode {oct(st.st_mode & 0o777)}, not 0600; fix: rm {path} (kimi-acp writes it again, 0600)"
    return None


def read_cache(path: Path) -> object | None:
    """The JSON in cache file ``path``, or None when it is missing, unreadable, or not to be
    trusted (then a one-line message on stderr names the file, the problem and the fix)."""
    import json

    try:
        problem = cache_problem(path)
    except OSError:
        return None  # no such file (or no state dir): nothing cached
    if problem:
        _say_once(f"ignoring a cache: {problem}")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_cache(path: Path, data: object) -> None:
    """Write cache file ``path`` (0600, atomically) when the state dir is safe; never raises."""
    import json

    from .errors import KimiAcpError

    try:
        ensure_state_dir(path.parent)
    except (OSError, KimiAcpError):  # an unsafe state dir: the cache is simply not written
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


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
