"""The error tree. Every message says what went wrong and how to fix it."""

from __future__ import annotations


class KimiAcpError(Exception):
    """Base of every error kimi-acp raises on purpose.

    ``exit_code`` is what the CLI exits with when the error reaches it.
    """

    exit_code = 1


class ConfigError(KimiAcpError):
    """Raised when ``openclaw.json`` cannot be read, parsed or validated.

    The message names the file, and the JSON path or line and column.
    """

    exit_code = 2


class UnknownNameError(ConfigError):
    """Raised when an agent, backend or model ref is not known; lists the known ones."""


class MissingKeyError(KimiAcpError):
    """Raised when a backend's API key is not set; names the variable to set."""

    exit_code = 3


class HarnessNotFoundError(KimiAcpError):
    """Raised when the ``claude`` binary cannot be found; says where it looked and how to install it."""

    exit_code = 4


class SpawnBlocked(KimiAcpError):
    """Raised when a ``kimi_acp_before_spawn`` hook blocks a spawn; carries the hook's reason."""

    exit_code = 5


class RunNotFoundError(KimiAcpError):
    """Raised when a run id is not in the store."""

    exit_code = 6


class HarnessConfigError(KimiAcpError):
    """Raised when the harness settings cannot work on this machine (e.g. approve-all as root
    without ``allowRootBypass``); says which setting to change."""

    exit_code = 2


class StateDirError(KimiAcpError):
    """Raised when the state dir (``$KIMI_ACP_STATE_DIR``, default ``~/.openclaw/kimi-acp``) or
    its database cannot be used: a file or a dangling symlink in its place, read-only, a
    corrupt ``runs.sqlite3``. Names the path and the fix."""

    exit_code = 2
