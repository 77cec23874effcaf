"""The error tree. Every message says what went wrong and how to fix it."""

from __future__ import annotations


class KimiAcpError(Exception):
    """Base of every error kimi-acp raises on purpose.

    ``exit_code`` is what the CLI exits with when the error reaches it (see
    :mod:`kimi_acp.exitcodes`); ``code`` is the stable ``error.code`` of ``--json`` output;
    ``hint`` says how to fix it (given, or the part of the message after ``fix:``).
    """

    exit_code = 1
    code = "failed"

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        self._hint = hint

    @property
    def hint(self) -> str | None:
        return self._hint if self._hint is not None else split_hint(str(self))[1]


def split_hint(message: str) -> tuple[str, str | None]:
    """``"what failed; fix: how"`` -> ``("what failed", "how")``; no ``fix:`` -> ``(message, None)``."""
    for sep in ("; fix: ", ": fix: ", " fix: "):
        head, found, tail = message.partition(sep)
        if found:
            return head, tail
    return message, None


class UsageError(KimiAcpError):
    """Raised when a command line is wrong (a bad flag value, a busy port, an unknown scenario)."""

    exit_code = 2
    code = "usage"


class ConfigError(KimiAcpError):
    """Raised when ``openclaw.json`` cannot be read, parsed or validated.

    The message names the file, and the JSON path or line and column.
    """

    code = "config"
    exit_code = 2


class UnknownNameError(ConfigError):
    """Raised when an agent, backend or model ref is not known; lists the known ones."""

    code = "unknown_name"


class MissingKeyError(KimiAcpError):
    """Raised when a backend's API key is not set; names the variable to set."""

    code = "missing_key"
    exit_code = 3


class HarnessNotFoundError(KimiAcpError):
    """Raised when the ``claude`` binary cannot be found; says where it looked and how to install it."""

    code = "claude_not_found"
    exit_code = 4


class SpawnBlocked(KimiAcpError):
    """Raised when a ``kimi_acp_before_spawn`` hook blocks a spawn; carries the hook's reason."""

    code = "spawn_blocked"
    exit_code = 5


class RunNotFoundError(KimiAcpError):
    """Raised when a run id is not in the store."""

    code = "unknown_run"
    exit_code = 6

    @property
    def hint(self) -> str | None:
        return self._hint or "kimi-acp ps --all lists the runs (a unique prefix of an id is enough)"


class HarnessConfigError(KimiAcpError):
    """Raised when the harness settings cannot work on this machine (e.g. approve-all as root
    without ``allowRootBypass``); says which setting to change."""

    code = "harness_config"
    exit_code = 2


class StateDirError(KimiAcpError):
    """Raised when the state dir (``$KIMI_ACP_STATE_DIR``, default ``~/.openclaw/kimi-acp``) or
    its database cannot be used: a file or a dangling symlink in its place, read-only, a
    corrupt ``runs.sqlite3``. Names the path and the fix."""

    exit_code = 2
    code = "state_dir"


class RequestEnvError(KimiAcpError):
    """Raised when a spawn request's ``env`` sets a variable a request may not set (a proxy, a
    TLS switch, ``NODE_*``, ``LD_*``, ``PATH``, a variable that chooses where Claude Code's
    requests and key go); names the variable and why."""

    exit_code = 2
    code = "request_env"


class McpServerError(KimiAcpError):
    """Raised when an MCP server handed to a session or run (ACP ``session/new`` ``mcpServers``)
    cannot be used: a bad shape, a missing command or URL, a duplicate name; names the server."""

    exit_code = 2
    code = "mcp_server"
