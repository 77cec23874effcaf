"""Where Claude Code keeps a conversation, and how one follows a session to another folder.

Claude Code 2.1.332 writes each conversation to
``$HOME/.claude/projects/<project>/<session id>.jsonl``, where ``<project>`` is the working
directory with every character that is not a letter or a digit replaced by ``-``
(``/tmp/a b/c.d`` → ``-tmp-a-b-c-d``), and ``--resume <id>`` only finds it from that same
directory. A session moved to another folder (``/acp cwd``) keeps its conversation when the
file is copied into the new folder's project directory (checked with the real CLI: the resumed
request carries the earlier messages).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_MAX_PROJECT_NAME = 200  # longer names are shortened by Claude Code in a way not modelled here


def projects_dir(home: str | os.PathLike[str]) -> Path:
    return Path(home) / ".claude" / "projects"


def project_name(cwd: str) -> str | None:
    """Claude Code's directory name for ``cwd`` (None when kimi-acp cannot tell it)."""
    name = _NOT_ALNUM.sub("-", os.path.realpath(cwd))
    return name if len(name) <= _MAX_PROJECT_NAME else None


def find_conversation(home: str | os.PathLike[str], session_id: str) -> Path | None:
    """The transcript file of a Claude Code session, wherever its project is."""
    if not re.fullmatch(r"[0-9a-fA-F-]{36}", session_id or ""):
        return None
    root = projects_dir(home)
    try:
        for project in root.iterdir():
            candidate = project / f"{session_id}.jsonl"
            if candidate.is_file():
                return candidate
    except OSError:
        return None
    return None


def move_conversation(home: str | os.PathLike[str], session_id: str, cwd: str) -> bool:
    """Make ``claude --resume session_id`` work from ``cwd``: copy the conversation into that
    folder's project directory (the old one stays, 0600 like Claude Code's). False when the
    conversation or the new place cannot be found or written."""
    name = project_name(cwd)
    found = find_conversation(home, session_id)
    if name is None or found is None:
        return False
    target_dir = projects_dir(home) / name
    target = target_dir / found.name
    if target == found:
        return True
    try:
        target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(found, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except OSError:
        return False
    return True
