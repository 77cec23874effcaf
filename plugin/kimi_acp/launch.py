"""Starting a run's process, without an event loop: the reaper's argv and pipes
(:class:`Launch`) and the per-backend slots shared by every kimi-acp process
(:class:`ProcessSlots`).

Split from :mod:`.supervisor` so that ``kimi-acp spawn`` can start Claude Code (see
:mod:`.prestart`) before it imports anyio and the rest of kimi-acp; the supervisor re-exports
all of it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The variable every supervised child gets; :func:`kimi_acp.supervisor.kill_run_processes`
#: finds escaped descendants by it.
RUN_ID_ENV = "KIMI_ACP_RUN_ID"

#: The ``-c`` program that starts a reaper (stdlib only, run with ``python -I -S``).
REAPER = __import__("kimi_acp.reaper", fromlist=["BOOT"]).BOOT.format(path=str(Path(__file__).resolve().parents[1]))
#: Sent to a reaper: "kill every process of the run now" (see :mod:`kimi_acp.reaper`).
REAPER_KILL_ALL = signal.SIGUSR2


def reaper_enabled() -> bool:
    """The reaper needs Linux's ``prctl``; ``KIMI_ACP_NO_REAPER=1`` turns it off."""
    return sys.platform.startswith("linux") and bool(sys.executable) and not os.environ.get("KIMI_ACP_NO_REAPER")


def _resolve_program(program: str, env: Mapping[str, str], cwd: str | None) -> str:
    """The file ``execvp`` would run for ``program``, or the ``OSError`` it would raise."""
    if "/" in program:
        path = program if os.path.isabs(program) or cwd is None else os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        return os.path.abspath(path)
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found


def launch_argv(argv: list[str], env: Mapping[str, str], cwd: str | None = None, *, orphan_fd: int | None = None,
                release_fd: int | None = None, run_id: str | None = None) -> list[str]:
    """The argv that starts ``argv`` under a reaper (or ``argv`` itself when the reaper is off).

    Raises ``OSError`` as starting the program would (missing, not executable), so a bad
    harness path fails at once, not as a reaper exit status. The process must be started
    with ``start_new_session=True`` from the thread that outlives it (see :mod:`.reaper`).
    ``orphan_fd`` and ``release_fd`` (passed with ``pass_fds``) and ``run_id``: see
    :class:`Launch`, which is the usual way to get them right."""
    if not reaper_enabled():
        return list(argv)
    program = _resolve_program(argv[0], env, cwd)
    owner = str(os.getpid())
    if orphan_fd is not None:
        owner += f",o={orphan_fd}"
    if release_fd is not None:
        owner += f",r={release_fd}"
    if run_id is not None:
        owner += f",id={run_id}"
    return [sys.executable, "-I", "-S", "-c", REAPER, owner, program, *argv]


class Release:
    """The supervisor's end of a run's release pipe (see :mod:`.reaper`): calling it tells the
    run's watch that the run is recorded and delivered (or handed to the deliverer), so it
    exits without starting anything. Idempotent; does nothing without a pipe."""

    __slots__ = ("fd",)

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd

    def __call__(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            from .reaper import RELEASED

            os.write(fd, RELEASED)
        except OSError:
            pass
        finally:
            os.close(fd)

    def __del__(self) -> None:
        # Never called (a holder that forgot, or died with an error): close without the byte,
        # as this process's death would. The watch starts the deliverer, which finds what is left.
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass
class Launch:
    """How to start one run's harness: under a reaper (``KIMI_ACP_RUN_ID`` handed to the reaper
    for the harness, so the reaper and its watch do not carry it), with the pipes of
    :mod:`.reaper` when there is a command to start if this process dies; or the harness
    itself, ``KIMI_ACP_RUN_ID`` in its env, when the reaper is off."""

    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...]
    release: Release

    @classmethod
    def make(cls, argv: list[str], env: Mapping[str, str], cwd: str | None, *, run_id: str,
             orphan: bytes | None = None, reaper: bool = True) -> Launch:
        if not (reaper and reaper_enabled()):
            return cls(list(argv), {**env, RUN_ID_ENV: run_id}, (), Release())
        child_env = {k: v for k, v in env.items() if k != RUN_ID_ENV}
        handed = orphan_pipe(orphan)
        release_r = release_w = None
        try:
            if handed is not None:
                release_r, release_w = os.pipe()
            launched = launch_argv(argv, child_env, cwd, orphan_fd=handed, release_fd=release_r, run_id=run_id)
        except BaseException:
            for fd in (handed, release_r, release_w):
                if fd is not None:
                    os.close(fd)
            raise
        fds = tuple(fd for fd in (handed, release_r) if fd is not None)
        return cls(launched, child_env, fds, Release(release_w))

    def started(self) -> None:
        """The process exists (or could not be started): close the ends that are the child's."""
        for fd in self.pass_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.pass_fds = ()


_F_SETPIPE_SZ = 1031


def orphan_payload(command: Mapping[str, Any] | None) -> bytes | None:
    """``command`` (``{"argv", "env", "lock"}``, e.g. :func:`kimi_acp.deliverer.deliverer_command`)
    as the bytes :func:`orphan_pipe` hands to a reaper."""
    if command is None:
        return None
    import json

    return json.dumps(dict(command)).encode()


def orphan_pipe(payload: bytes | None) -> int | None:
    """The read end of a pipe holding ``payload`` (written, write end closed): the reaper reads
    it only if its supervisor dies. ``None`` when there is nothing to hand over or it does not
    fit (then later commands start the deliverer)."""
    if not payload:
        return None
    r, w = os.pipe()
    try:
        if len(payload) > 65536:
            fcntl.fcntl(w, _F_SETPIPE_SZ, len(payload))
        os.set_blocking(w, False)
        if os.write(w, payload) != len(payload):
            raise OSError("short write")
    except OSError:
        os.close(r)
        return None
    finally:
        os.close(w)
    return r


class ProcessSlots:
    """A per-backend cap shared by every process that uses the same directory.

    Each backend has N lock files (``<dir>/<backend>/<i>.lock``); a run holds an
    exclusive ``flock`` on one of them while it runs. The kernel drops the lock when
    its holder dies, so a crashed supervisor never leaks a slot. This is what keeps
    several ``kimi-acp`` processes (one ``kimi-acp acp`` per OpenClaw ACP session,
    ``spawn --no-wait`` workers) within a plan's rate limit together.
    """

    def __init__(self, directory: Path, caps: Mapping[str, int] | None = None, default: int = 2, poll: float = 0.1) -> None:
        self.directory = Path(directory)
        self.caps = dict(caps or {})
        self.default = default
        self.poll = poll

    def cap(self, key: str) -> int:
        return max(1, self.caps.get(key, self.default))

    def _folder(self, key: str) -> Path:
        folder = self.directory / re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        if not (folder / "queue").is_dir():
            for d in (self.directory, folder, folder / "queue"):  # private, like the rest of the state dir
                if not d.is_dir():
                    d.mkdir(parents=True, exist_ok=True)
                    os.chmod(d, 0o700)
        return folder

    def try_acquire(self, key: str, *, _ticket: str | None = None) -> int | None:
        """An fd holding a free slot of ``key``, or ``None`` if all are taken — or if another
        process is already waiting for one (first come, first served across processes)."""
        folder = self._folder(key)
        if not self._first_in_line(folder, _ticket):
            return None
        for i in range(self.cap(key)):
            fd = os.open(folder / f"{i}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    @staticmethod
    def _first_in_line(folder: Path, ticket: str | None) -> bool:
        """No live waiter's ticket is older than ``ticket`` (or than now, for ``None``). A ticket
        is a file its waiter holds an exclusive flock on; a dead waiter's ticket is removed."""
        queue = folder / "queue"
        try:
            names = sorted(os.listdir(queue))
        except FileNotFoundError:
            return True
        for name in names:
            if ticket is not None and name >= ticket:
                return True
            try:
                fd = os.open(queue / name, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live waiter came first
            else:
                try:
                    os.unlink(queue / name)  # its waiter died
                except FileNotFoundError:
                    pass
            finally:
                os.close(fd)
        return True

    async def acquire(self, key: str) -> int:
        import anyio

        fd = self.try_acquire(key)
        if fd is not None:
            return fd
        folder = self._folder(key)
        ticket = f"{time.time_ns():020d}-{os.getpid()}-{id(object()):x}"
        tfd = os.open(folder / "queue" / ticket, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(tfd, fcntl.LOCK_EX)
            while True:
                fd = self.try_acquire(key, _ticket=ticket)
                if fd is not None:
                    return fd
                await anyio.sleep(self.poll)
        finally:
            try:
                os.unlink(folder / "queue" / ticket)
            except FileNotFoundError:
                pass
            os.close(tfd)

    @staticmethod
    def release(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
