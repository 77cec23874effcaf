"""Private per-run files in the state dir: what a run's Claude Code reads and nobody else may.

A run's ``--settings`` override (:mod:`kimi_acp.harness.override`: it holds the backend key)
and its ``--mcp-config`` (:mod:`kimi_acp.mcp`: its servers' secrets) are each one JSON file,
``<state dir>/<folder>/<run id>.json``: 0600 in a 0700 folder of this user's, written
atomically, removed when the run ends; files older than two days (a run whose owner died
before removing its file) are pruned when the next one is written. Kept light: it is on the
fast path of ``kimi-acp spawn``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

#: A per-run file this old is left over from a run whose owner died: removed at the next write.
STALE_SECONDS = 2 * 86_400


def run_file(state_dir: Path | str, folder: str, run_id: str) -> Path:
    """Where run ``run_id``'s file of ``folder`` lives."""
    return Path(state_dir) / folder / f"{run_id}.json"


def write_run_file(state_dir: Path | str, folder: str, run_id: str, content: Mapping[str, object]) -> Path:
    """Write ``content`` to run ``run_id``'s file of ``folder`` (0600, in a 0700 folder of the
    state dir, replaced atomically) and return its path."""
    from .sessions import ensure_state_dir

    ensure_state_dir(Path(state_dir))  # refuses a state dir others could write to
    path = run_file(state_dir, folder, run_id)
    directory = path.parent
    if not directory.is_dir():
        directory.mkdir(mode=0o700)
    if directory.is_symlink() or directory.stat().st_uid != os.getuid():
        raise OSError(f"{directory} is not a directory of yours; remove it")
    os.chmod(directory, 0o700)
    data = json.dumps(content, sort_keys=True, indent=1).encode()
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _prune(directory, keep=path)
    return path


def remove_run_file(state_dir: Path | str, folder: str, run_id: str) -> None:
    """Remove run ``run_id``'s file of ``folder`` (its secrets go with it). Never raises."""
    try:
        run_file(state_dir, folder, run_id).unlink(missing_ok=True)
    except OSError:
        pass


def _prune(directory: Path, keep: Path) -> None:
    cutoff = time.time() - STALE_SECONDS
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if entry != keep and entry.suffix in (".json", ".tmp") and entry.lstat().st_mtime < cutoff:
                entry.unlink()
        except OSError:
            continue
