"""The built-in harness: Claude Code in print mode, stream-json in and out, the task on stdin.

Registered by the :class:`~kimi_acp.spawn.Spawner` with the config's ``harness``
settings; it answers ``kimi_acp_harness_command`` last, so a third-party plugin
can supply another harness command.
"""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl


class ClaudeCodeHarness:
    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._claude: str | None = None

    def claude(self) -> str:
        from ..harness.command import find_claude

        if self._claude is None:
            self._claude = find_claude(self.settings.command)
        return self._claude

    @hookimpl(trylast=True)
    def kimi_acp_spawn_env(self, request: Any, backend: Any) -> dict[str, str] | None:
        from ..harness.command import effort_for, permission_args

        _, env = permission_args(self.mode(request), allow_root_bypass=self.settings.allowRootBypass)
        _, effort_env = effort_for(request.thinking, _efforts(request, backend))
        return {**env, **effort_env} or None

    def mode(self, request: Any) -> str:
        """The run's permission mode: the request's (a session's /acp set-mode, an agent's
        default), else harness.permissionMode."""
        return getattr(request, "permissionMode", None) or self.settings.permissionMode

    @hookimpl(trylast=True)
    def kimi_acp_harness_command(self, request: Any, backend: Any) -> list[str]:
        from ..harness.command import build_argv

        argv, _ = build_argv(
            self.claude(),
            model=request.model,
            resume=request.resumeSessionId,
            permission=self.mode(request),
            allow_root_bypass=self.settings.allowRootBypass,
            extra_args=self.settings.args,
            thinking=request.thinking,
            efforts=_efforts(request, backend),
            live=getattr(request, "liveInput", False),
            ask=getattr(request, "askPermissions", False),
        )
        return argv


def _efforts(request: Any, backend: Any) -> tuple[str, ...] | None:
    """The effort values the run's model accepts (K3: low, high, max), or None when unknown."""
    info = backend.model_info(request.model) if backend is not None and not backend.passthrough else None
    return info.efforts if info is not None else None
