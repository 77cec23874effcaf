"""Helpers for the spawner tests: an openclaw.json writer, a fake-harness plugin,
executable wrapper scripts for the CLI, and independent /proc scans for orphans.

The /proc scans here are written again on purpose (not imported from the
supervisor): a test that used the code under test to look for orphans would
pass when that code is blind.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio

from kimi_acp.hookspecs import hookimpl
from kimi_acp.plugins import build_plugin_manager

from . import FAKE_HARNESS, fake_argv

HOOKS_TOKEN = "hooks-token-for-tests-5f1e"
REQUESTER = "agent:coder:main"
CONTEXT = {"requesterAgentId": "coder", "requesterSessionKey": REQUESTER}
TERMINAL = {"ok", "error", "timeout", "cancelled", "lost", "rate_limited"}
KIMI_ACP = str(Path(sys.executable).with_name("kimi-acp"))


# --------------------------------------------------------------------------- config


def write_config(
    tmp_path: Path,
    *,
    base_url: str = "http://127.0.0.1:9/coding",
    harness: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
    gateway_url: str | None = None,
    agents: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``tmp_path/openclaw.json`` (where conftest points OPENCLAW_CONFIG_PATH)."""
    section: dict[str, Any] = {
        "agents": dict(agents) if agents is not None else {"coder": {"backend": "kimi"}},
        "backends": {"kimi": {"baseUrl": base_url}},
        "limits": {"graceSeconds": 0.5, **(limits or {})},
    }
    if harness:
        section["harness"] = dict(harness)
    if gateway_url:
        section["report"] = {"gateway": {"url": gateway_url}}
    section.update(extra or {})
    path = tmp_path / "openclaw.json"
    data = {"plugins": {"entries": {"kimi-acp": {"config": section}}}}
    path.write_text("// written by the spawner tests\n" + json.dumps(data, indent=2) + "\n")
    assert Path(os.environ["OPENCLAW_CONFIG_PATH"]) == path, "conftest's OPENCLAW_CONFIG_PATH moved"
    return path


# --------------------------------------------------------------------------- harness plugins


class FakeHarness:
    """A plugin answering ``kimi_acp_harness_command`` with the fake harness (the documented
    way to run another harness). ``argv`` is a list, or a function of the request."""

    def __init__(self, argv: list[str] | Callable[[Any], list[str]]) -> None:
        self._argv = argv
        self.requests: list[Any] = []

    @hookimpl
    def kimi_acp_harness_command(self, request: Any, backend: Any) -> list[str]:
        self.requests.append(request)
        return list(self._argv(request) if callable(self._argv) else self._argv)


class StartedProbe:
    """A ``kimi_acp_run_event`` plugin that reads /proc of the harness the moment it exists
    (the status event comes from on_started, before the task is written to stdin, so the
    child is alive and blocked on its stdin)."""

    def __init__(self) -> None:
        self.cmdline: dict[str, bytes] = {}
        self.environ: dict[str, dict[str, str]] = {}
        self.pids: dict[str, int] = {}

    @hookimpl
    def kimi_acp_run_event(self, run: Any, event: Any) -> None:
        if isinstance(event, dict) and event.get("type") == "status" and event.get("status") == "running":
            pid = int(event["pid"])
            self.pids[run.run_id] = pid
            self.cmdline[run.run_id] = Path(f"/proc/{pid}/cmdline").read_bytes()
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            self.environ[run.run_id] = dict(
                item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if item
            )


def make_pm(*plugins: Any) -> Any:
    """A fresh plugin manager (no entry points) with the default plugins and ``plugins``."""
    return build_plugin_manager(entrypoints=False, extra=plugins)


def wrapper_script(directory: Path, mode: str, *args: str, name: str | None = None) -> Path:
    """An executable that runs the fake harness in ``mode`` and IGNORES its own argv (the
    spawner appends ``-p --output-format stream-json ...``, which the fake would refuse)."""
    path = directory / (name or f"fake-claude-{mode}")
    argv = " ".join(shlex.quote(a) for a in fake_argv(mode, *args))
    path.write_text(f"#!/bin/sh\n# fake Claude Code for kimi-acp tests; ignores \"$@\"\nexec {argv}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# --------------------------------------------------------------------------- /proc


def _proc_pids() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def _state_and_pgrp(pid: int) -> tuple[str, int] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[2])


def is_alive(pid: int) -> bool:
    st = _state_and_pgrp(pid)
    return st is not None and st[0] not in ("Z", "X")


def live_in_group(pgid: int) -> list[int]:
    out = []
    for pid in _proc_pids():
        st = _state_and_pgrp(pid)
        if st is not None and st[1] == pgid and st[0] not in ("Z", "X"):
            out.append(pid)
    return out


def pids_carrying_run_id(run_id: str) -> list[int]:
    """Live processes whose environment holds KIMI_ACP_RUN_ID=<run_id>."""
    wanted = f"KIMI_ACP_RUN_ID={run_id}".encode()
    found = []
    for pid in _proc_pids():
        if pid == os.getpid():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if wanted in env.split(b"\0") and is_alive(pid):
            found.append(pid)
    return found


def processes_of_state_dir(state_dir: Path | str) -> list[tuple[int, str]]:
    """Live processes (not this one) that belong to a state dir: its path in their argv or
    ``KIMI_ACP_STATE_DIR`` (the deliverer, a reaper, its watch, a run's harness), with their argv."""
    needle = str(state_dir).encode()
    found = []
    for pid in _proc_pids():
        if pid == os.getpid() or not is_alive(pid):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline.split(b"\0") or b"KIMI_ACP_STATE_DIR=" + needle in env.split(b"\0") \
                or any(arg.startswith(b"--state-dir") and needle in arg for arg in cmdline.split(b"\0")):
            found.append((pid, cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]))
    return found


def assert_no_orphans(run_id: str, pgid: int | None, extra_pids: Iterable[int] = ()) -> None:
    from kimi_acp.supervisor import alive_in_group

    assert pgid is not None and pgid > 1, f"run {run_id} has no pgid recorded"
    assert alive_in_group(pgid) == [], f"processes of group {pgid} survived"
    assert live_in_group(pgid) == [], f"processes of group {pgid} survived (own scan)"
    assert pids_carrying_run_id(run_id) == [], f"processes with KIMI_ACP_RUN_ID={run_id} survived"
    survivors = [p for p in extra_pids if is_alive(p)]
    assert survivors == [], f"grandchildren {survivors} survived"


def wait_until_sync(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    with anyio.fail_after(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await anyio.sleep(0.02)


def transcript_objects(path: Path | str) -> list[dict[str, Any]]:
    out = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def fake_line(path: Path | str, key: str) -> dict[str, Any] | None:
    """The fake harness's ``{"type": "fake", key: ...}`` line from a transcript, if written yet."""
    try:
        objs = transcript_objects(path)
    except FileNotFoundError:
        return None
    for obj in objs:
        if obj.get("type") == "fake" and key in obj:
            return obj
    return None


__all__ = [
    "CONTEXT",
    "FAKE_HARNESS",
    "HOOKS_TOKEN",
    "KIMI_ACP",
    "REQUESTER",
    "TERMINAL",
    "FakeHarness",
    "StartedProbe",
    "assert_no_orphans",
    "fake_argv",
    "fake_line",
    "is_alive",
    "make_pm",
    "pids_carrying_run_id",
    "processes_of_state_dir",
    "transcript_objects",
    "wait_until",
    "wait_until_sync",
    "wrapper_script",
    "write_config",
]
