"""Starting Claude Code early, for ``kimi-acp spawn``.

Claude Code needs a few hundred milliseconds to boot before it reads its task from stdin;
kimi-acp needs about as long to import pydantic, the spawner and the store. Run one after
the other, a one-shot ``kimi-acp spawn`` costs both. So the CLI first takes the fast path
(the cached config, routing, the child env and argv: no pydantic), starts Claude Code with
its stdin still open, and only then imports the rest. The :class:`~kimi_acp.spawn.Spawner`
adopts the process when the run it prepares is exactly the one started (same argv, env and
cwd; same run id), and the task is written to stdin as usual. If anything differs, or a
hook could change the request, nothing is started early: the normal path runs.

An early process never outlives its owner: if the CLI dies before writing the task, the
process reads EOF with no task and exits.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE
from typing import Any

# Hooks that see the SpawnRequest before the harness starts: with a third-party
# implementation of any of them, the run is not started early.
_REQUEST_HOOKS = ("kimi_acp_before_spawn", "kimi_acp_spawn_env", "kimi_acp_harness_command")


@dataclass
class Prestarted:
    run_id: str
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    process: Any
    slot_fd: int | None
    slots: Any = field(repr=False, default=None)
    adopted: bool = False
    release: Any = field(repr=False, default=None)  # its release pipe (supervisor.Launch)

    def matches(self, spec: Any) -> bool:
        return (
            not self.adopted
            and spec.run_id == self.run_id
            and list(spec.argv) == self.argv
            and spec.env == self.env
            and spec.cwd == self.cwd
        )

    def adopt(self) -> tuple[Any, int | None, Any]:
        self.adopted = True
        return self.process, self.slot_fd, self.release

    async def discard(self) -> None:
        """Kill and reap the early process (if nobody adopted it) and free its slot."""
        if self.adopted:
            return
        import anyio

        from .supervisor import kill_process_group

        self.adopted = True
        if self.release is not None:
            self.release()
        with anyio.CancelScope(shield=True):
            kill_process_group(self.process.pid)
            await self.process.aclose()
        if self.slot_fd is not None and self.slots is not None:
            self.slots.release(self.slot_fd)
        _forget_override(self.run_id)


def _forget_override(run_id: str) -> None:
    from .harness.override import remove_override
    from .sessions import state_dir

    remove_override(state_dir(), run_id)


async def prestart(request: dict[str, Any], context: dict[str, Any], *, config_path: str | None, pm: Any) -> Prestarted | None:
    """Start the harness of a CLI spawn early, or return ``None`` to take the normal path."""
    if os.environ.get("KIMI_ACP_NO_PRESTART"):
        return None
    for name in _REQUEST_HOOKS:
        if getattr(pm.hook, name).get_hookimpls():
            return None
    try:
        return await _prestart(request, context, config_path=config_path, pm=pm)
    except Exception:  # noqa: BLE001 - any doubt: the normal path runs and reports the problem properly
        return None


async def _prestart(request: dict[str, Any], context: dict[str, Any], *, config_path: str | None, pm: Any) -> Prestarted | None:
    import anyio

    from .config import load_config
    from .default_plugins.claude_code import ClaudeCodeHarness
    from .environment import build_child_env
    from .harness.command import build_argv, permission_args
    from .routing import check_agent, default_target, resolve
    from .supervisor import Launch, ProcessSlots, orphan_payload

    environ = dict(os.environ)
    cfg = load_config(config_path, environ=environ)
    settings = cfg.settings
    agent = context.get("requesterAgentId")
    session = context.get("requesterSessionKey")
    if agent:
        check_agent(cfg, agent)
    from .targets import check_target

    check_target(cfg, request.get("agentId") or default_target(cfg))  # an unknown target starts nothing
    stored = None
    if session:
        from .sessions import SessionModels

        with SessionModels() as table:
            stored = table.get(session)
    route = resolve(
        cfg,
        model=request.get("model"),
        requester_agent=agent,
        target=request.get("agentId") or default_target(cfg),
        session_key=session,
        stored_session_model=stored,
    )
    key = None if route.backend.passthrough else route.backend.resolve_key(environ)
    harness = settings.harness
    _, perm_env = permission_args(harness.permissionMode, allow_root_bypass=harness.allowRootBypass)
    target = request.get("agentId") or default_target(cfg)
    child = build_child_env(environ, route.backend, key=key, model=route.model, request_env=request.get("env") or {},
                            plugin_env=[perm_env or None], secret_names=cfg.secret_names(), secret_values=cfg.secret_values(),
                            pass_names=cfg.pass_env(backend=route.name, requester=agent, target=target))
    argv, _ = build_argv(
        ClaudeCodeHarness(harness).claude(),
        model=route.model,
        resume=request.get("resumeSessionId"),
        permission=harness.permissionMode,
        allow_root_bypass=harness.allowRootBypass,
        extra_args=harness.args,
        thinking=request.get("thinking"),
    )
    cwd = request.get("cwd")
    if cwd and not os.path.isdir(cwd):
        return None
    from .sessions import state_dir

    caps = cfg.backend_caps()
    slots = ProcessSlots(Path(state_dir()) / "slots", caps, settings.limits.backendMaxConcurrent)
    slot_fd = slots.try_acquire(route.name)
    if slot_fd is None:  # the backend is busy in another process: queue the normal way
        return None
    run_id = str(uuid.uuid4())
    if not route.backend.passthrough:  # the same --settings override as the Spawner's (harness/override.py)
        from .harness.override import apply_override

        try:
            argv = apply_override(argv, child.env, child.set, state_dir(), run_id)
        except BaseException:
            slots.release(slot_fd)
            raise
    launch = None
    try:
        from .deliverer import deliverer_command, disabled

        orphan = None
        if not disabled(environ):  # what the reaper starts if this process dies, as the Spawner's would
            orphan = orphan_payload(deliverer_command(
                state_dir(), environ=environ, config_path=config_path or (cfg.path if cfg.exists else None)))
        launch = Launch.make(argv, child.env, cwd, run_id=run_id, orphan=orphan)
        process = await anyio.open_process(
            launch.argv, stdin=PIPE, stdout=PIPE, stderr=PIPE, env=launch.env, cwd=cwd,
            start_new_session=True, pass_fds=launch.pass_fds,
        )
    except BaseException:
        if launch is not None:
            launch.release()
        slots.release(slot_fd)
        _forget_override(run_id)
        raise
    finally:
        if launch is not None:
            launch.started()
    return Prestarted(run_id=run_id, argv=argv, env=child.env, cwd=cwd, process=process, slot_fd=slot_fd, slots=slots,
                      release=launch.release)

