"""Shared fixtures. Every test starts from a clean environment: no Anthropic, Kimi or
OpenClaw variables leak in from the machine, and the state dir and openclaw.json
live under ``tmp_path``."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_CLEARED_PREFIXES = ("ANTHROPIC_", "KIMI", "OPENCLAW_", "CLAUDE_", "MOONSHOT_")
_CLEARED = {"API_TIMEOUT_MS", "ENABLE_TOOL_SEARCH", "IS_SANDBOX", "DISABLE_TELEMETRY"}

# Keep the real binary location before the environment is cleared.
_CLAUDE_ENV = os.environ.get("KIMI_ACP_CLAUDE")

TEST_KEY = "sk-kimi-test0000000000000000000000000000abcd"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name, raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("KIMI_ACP_STATE_DIR", str(state))
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", str(tmp_path / "openclaw.json"))
    monkeypatch.setenv("KIMI_ACP_DISABLE_ENTRYPOINTS", "1")
    yield tmp_path
    # A deliverer of this state dir (started by a spawner that exits with undelivered results,
    # or by a reaper or its watch when a supervisor the test killed is gone) must not outlive
    # the test: let the test's reapers and watches finish first (they may start one), then stop it.
    from fakes.spawning import processes_of_state_dir
    from kimi_acp.deliverer import stop_deliverer

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stop_deliverer(state)
        if not any("kimi_acp.deliverer" not in argv for _pid, argv in processes_of_state_dir(state)):
            break
        time.sleep(0.05)
    stop_deliverer(state)


def _find_claude() -> str | None:
    if _CLAUDE_ENV and Path(_CLAUDE_ENV).exists():
        return _CLAUDE_ENV
    local = REPO / ".tools" / "claude-code" / "node_modules" / ".bin" / "claude"
    if local.exists():
        return str(local)
    return shutil.which("claude")


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """Path of the real Claude Code CLI. The test command installs it; missing is a failure, not a skip."""
    path = _find_claude()
    if path is None:
        pytest.fail("Claude Code CLI not found: run ./scripts/test (it installs it) or set KIMI_ACP_CLAUDE")
    return path


@pytest.fixture
def kimi_key() -> str:
    return TEST_KEY
