"""The exit codes of every ``kimi-acp`` command: one table, shown in ``--help`` and the README
(a test checks that both agree with it)."""

from __future__ import annotations

OK = 0
FAILED = 1
USAGE = 2
MISSING_KEY = 3
NO_CLAUDE = 4
BLOCKED = 5
UNKNOWN_RUN = 6
STILL_RUNNING = 7
RATE_LIMITED = 75
TIMEOUT = 124
HANGUP = 129
CANCELLED = 130
TERMINATED = 143

TABLE: tuple[tuple[int, str], ...] = (
    (OK, "ok: the run finished ok, every check passed"),
    (FAILED, "a run failed or was lost, or a doctor check failed"),
    (USAGE, "bad usage or config, or a refused spawn (unknown agent or model, bad request)"),
    (MISSING_KEY, "the backend's API key is not set"),
    (NO_CLAUDE, "Claude Code not found"),
    (BLOCKED, "a plugin blocked the spawn"),
    (UNKNOWN_RUN, "no run with that id"),
    (STILL_RUNNING, "wait --timeout reached: the run is still going"),
    (RATE_LIMITED, "the run was rate limited (429): try again later"),
    (TIMEOUT, "the run reached its timeout"),
    (HANGUP, "SIGHUP: a foreground spawn cancelled its run (whole process group), recorded and reported it, then exited"),
    (CANCELLED, "the run was cancelled, or Ctrl-C (SIGINT: as for SIGHUP)"),
    (TERMINATED, "SIGTERM (systemd, docker stop, a parent's kill): as for SIGHUP"),
)

BY_STATUS = {"ok": OK, "error": FAILED, "lost": FAILED, "rate_limited": RATE_LIMITED, "timeout": TIMEOUT, "cancelled": CANCELLED}
"""A finished run's status -> the exit code of ``spawn``, ``wait`` and ``show``."""

BY_REFUSAL = {"missing_key": MISSING_KEY, "harness_not_found": NO_CLAUDE, "spawn_blocked": BLOCKED}
"""A refused spawn's ``errorCode`` -> exit code (any other refusal: :data:`USAGE`)."""


def help_text() -> str:
    """The table as ``--help`` shows it."""
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in TABLE)


def markdown() -> str:
    """The table as the README has it."""
    rows = "\n".join(f"| {code} | {text} |" for code, text in TABLE)
    return "| code | meaning |\n|---:|---|\n" + rows
