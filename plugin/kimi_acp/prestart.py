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
    from .mcp import remove_config
    from .sessions import state_dir

    remove_override(state_dir(), run_id)
    remove_config(state_dir(), run_id)


def prestart(request: dict[str, Any], context: dict[str, Any], *, config_path: str | None, pm: Any) -> Prestarted | None:
    """Start the harness of a CLI spawn early, or return ``None`` to take the normal path.

    Synchronous, and called before the event loop and the rest of kimi-acp are imported: the
    process is started with :class:`subprocess.Popen` and handed to the supervisor as a
    :class:`PopenProcess` (the anyio ``Process`` interface)."""
    if os.environ.get("KIMI_ACP_NO_PRESTART"):
        return None
    for name in _REQUEST_HOOKS:
        if getattr(pm.hook, name).get_hookimpls():
            return None
    try:
        return _prestart(request, context, config_path=config_path, pm=pm)
    except Exception:  # noqa: BLE001 - any doubt: the normal path runs and reports the problem properly
        return None


def _prestart(request: dict[str, Any], context: dict[str, Any], *, config_path: str | None, pm: Any) -> Prestarted | None:
    import subprocess

    from .config import load_config
    from .default_plugins.claude_code import ClaudeCodeHarness
    from .environment import build_child_env
    from .harness.command import build_argv, permission_args
    from .routing import check_agent, default_target, resolve
    from .launch import Launch, ProcessSlots, orphan_payload

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

    # Quota-aware admission (kimi_acp.admission): a backend known to be held takes the normal path
    # (its run waits in the queue). Otherwise the supervisor's gate reads a stale quota while this
    # Claude Code boots: it sends nothing before its task is written, which the gate decides.
    from .admission import hold_now

    if hold_now(state_dir(), route.name) is not None:
        return None
    caps = cfg.backend_caps()
    slots = ProcessSlots(Path(state_dir()) / "slots", caps, settings.limits.backendMaxConcurrent)
    slot_fd = slots.try_acquire(route.name)
    if slot_fd is None:  # the backend is busy in another process: queue the normal way
        return None
    run_id = str(uuid.uuid4())
    from .mcp import apply as apply_mcp
    from .mcp import configured, key_blanks

    servers = list(configured(settings, requester=agent, target=target).values())
    if servers:  # the same --mcp-config file as the Spawner's (kimi_acp.mcp)
        try:
            argv = apply_mcp(argv, servers, state_dir(), run_id, blank=key_blanks(child.env, key))
        except BaseException:
            slots.release(slot_fd)
            raise
    if not route.backend.passthrough:  # the same --settings override as the Spawner's (harness/override.py)
        from .harness.override import apply_override

        try:
            argv = apply_override(argv, child.env, child.set, state_dir(), run_id)
        except BaseException:
            slots.release(slot_fd)
            _forget_override(run_id)
            raise
    launch = None
    try:
        from .deliverer import deliverer_command, disabled

        orphan = None
        if not disabled(environ):  # what the reaper starts if this process dies, as the Spawner's would
            orphan = orphan_payload(deliverer_command(
                state_dir(), environ=environ, config_path=config_path or (cfg.path if cfg.exists else None)))
        launch = Launch.make(argv, child.env, cwd, run_id=run_id, orphan=orphan)
        process = PopenProcess(subprocess.Popen(
            launch.argv, stdin=PIPE, stdout=PIPE, stderr=PIPE, env=launch.env, cwd=cwd,
            start_new_session=True, pass_fds=launch.pass_fds, close_fds=True,
        ))
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



# --------------------------------------------------------------------------- a Popen for the supervisor


class _ReadFd:
    """A pipe's read end as an anyio byte receive stream (non-blocking reads, woken by the loop)."""

    def __init__(self, f: Any) -> None:
        self._file = f
        self._fd: int | None = f.fileno()
        os.set_blocking(self._fd, False)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        import anyio

        while True:
            if self._fd is None:
                raise anyio.ClosedResourceError
            try:
                data = os.read(self._fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)
                continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def aclose(self) -> None:
        if self._fd is not None:
            import anyio

            anyio.notify_closing(self._fd)
            self._fd = None
            self._file.close()


class _WriteFd:
    """A pipe's write end as an anyio byte send stream."""

    def __init__(self, f: Any) -> None:
        self._file = f
        self._fd: int | None = f.fileno()
        os.set_blocking(self._fd, False)

    async def send(self, item: bytes) -> None:
        import anyio

        view = memoryview(item)
        while view:
            if self._fd is None:
                raise anyio.ClosedResourceError
            try:
                view = view[os.write(self._fd, view):]
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        if self._fd is not None:
            import anyio

            anyio.notify_closing(self._fd)
            self._fd = None
            try:
                self._file.close()
            except BrokenPipeError:
                pass


class PopenProcess:
    """A :class:`subprocess.Popen` with the part of anyio's ``Process`` interface the
    supervisor uses (``pid``, ``returncode``, ``wait``, ``kill``, ``terminate``,
    ``send_signal``, the three streams, ``aclose``), so a process started before the event
    loop can be adopted. Its exit is awaited on a pidfd (Linux), else polled."""

    def __init__(self, popen: Any) -> None:
        self._popen = popen
        self.stdin = _WriteFd(popen.stdin)
        self.stdout = _ReadFd(popen.stdout)
        self.stderr = _ReadFd(popen.stderr)
        self._waiter: Any = None  # the anyio.Event of the task watching the pidfd
        try:
            self._pidfd: int | None = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            self._pidfd = None

    @property
    def pid(self) -> int:
        return int(self._popen.pid)

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    async def wait(self) -> int:
        """The exit status, once the process has exited. Several tasks may wait at once: one
        watches the pidfd, the others wait for it."""
        import anyio

        while self._popen.poll() is None:
            if self._waiter is not None:
                await self._waiter.wait()
                continue
            self._waiter = done = anyio.Event()
            try:
                while self._popen.poll() is None:
                    if self._pidfd is not None:
                        await anyio.wait_readable(self._pidfd)
                    else:
                        await anyio.sleep(0.01)
            finally:
                self._waiter = None
                done.set()
        return int(self._popen.returncode)

    def send_signal(self, sig: int) -> None:
        self._popen.send_signal(sig)

    def terminate(self) -> None:
        self._popen.terminate()

    def kill(self) -> None:
        self._popen.kill()

    async def aclose(self) -> None:
        import anyio

        with anyio.CancelScope(shield=True):
            for stream in (self.stdin, self.stdout, self.stderr):
                await stream.aclose()
            await self.wait()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
