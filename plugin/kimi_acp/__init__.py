"""kimi-acp: run OpenClaw's ACP spawns of Claude Code on Kimi, and report results back.

A spawn request comes in, a backend is chosen, a clean environment is built,
Claude Code runs under supervision, and its result goes back to the session
that asked — durably.
"""

__version__ = "0.1.0"

PROJECT = "kimi_acp"


def __getattr__(name: str):  # lazy: `from kimi_acp import hookimpl` without importing pluggy at start-up
    if name == "hookimpl":
        from .hookspecs import hookimpl

        return hookimpl
    raise AttributeError(name)
