"""Run harness processes under supervision, so that no orphan ever survives.

The supervisor knows nothing about Claude Code or configuration: it gets an argv,
a complete environment and the task bytes for stdin (a :class:`ProcessSpec`), and
gives back a :class:`ProcessOutcome`. Along the way it

- queues runs FIFO behind two limits: a per-backend cap (taken first, so runs that
  wait for a busy backend hold no global slot) and a global cap;
- starts each run in its own session and process group (``start_new_session``, so
  ``pgid == pid``) with ``KIMI_ACP_RUN_ID=<run_id>`` added to its environment, under a
  :mod:`~kimi_acp.reaper` (on Linux): a tiny parent that is the run's child subreaper and
  kills every descendant when the harness exits or the supervisor dies (even by SIGKILL);
- writes the task to stdin in a task (a child that never reads cannot deadlock us)
  and reads stdout and stderr concurrently, handing each stdout line to a callback;
- ends a run on its timeout, on :meth:`Supervisor.cancel`, when the line callback
  returns a stop reason, or when the caller's own scope is cancelled: SIGTERM to the
  process group, a shielded wait of ``grace`` seconds, SIGKILL to the group, reap;
- after a normal exit, SIGKILLs whatever is left in the group (background
  grandchildren) and, optionally, every process that still carries the run's
  ``KIMI_ACP_RUN_ID`` (grandchildren that called ``setsid()`` and left the group).

Everything runs on the event loop (no thread per run), so hundreds of concurrent
runs are cheap. Methods are not thread-safe: call them from the event loop thread.
"""

from __future__ import annotations

import errno
import fcntl
import inspect
import math
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE
from typing import Any, Literal

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

__all__ = [
    "ProcessSlots",
    "RUN_ID_ENV",
    "Launch",
    "LineCallback",
    "ProcessOutcome",
    "ProcessSpec",
    "Release",
    "Supervisor",
    "alive_in_group",
    "kill_process_group",
    "kill_run_processes",
    "launch_argv",
    "orphan_payload",
    "orphan_pipe",
    "reaper_enabled",
]

#: The variable every supervised child gets; :func:`kill_run_processes` finds
#: escaped descendants by it.
RUN_ID_ENV = "KIMI_ACP_RUN_ID"

#: The ``-c`` program that starts a reaper (stdlib only, run with ``python -I -S``).
REAPER = __import__("kimi_acp.reaper", fromlist=["BOOT"]).BOOT.format(path=str(Path(__file__).resolve().parents[1]))
#: Sent to a reaper: "kill every process of the run now" (see :mod:`kimi_acp.reaper`).
REAPER_KILL_ALL = signal.SIGUSR2

_STDERR_TAIL = 8 * 1024
_CHUNK = 65536

LineCallback = Callable[[str], "str | None | Awaitable[str | None]"]
"""Gets each stdout line (UTF-8 decoded with ``errors="replace"``, newline removed).

Returning a non-empty string stops the run at once: the process group is killed
and the string becomes :attr:`ProcessOutcome.killed_reason`. ``None`` or ``""``
means carry on. May be a coroutine function.
"""


@dataclass
class ProcessSpec:
    """What to run. ``env`` is the COMPLETE environment of the child (it replaces
    ``os.environ``, so start from a copy); the supervisor adds ``KIMI_ACP_RUN_ID``."""

    run_id: str
    argv: list[str]
    env: dict[str, str]
    #: The task: written to stdin, then stdin is closed.
    stdin: bytes
    cwd: str | None = None
    #: Wall-clock limit in seconds, counted from the start of running (not queue time).
    timeout: float | None = None
    #: Key of the per-backend cap.
    backend: str = "default"
    #: A process already started for this spec (with ``start_new_session=True``, stdin a pipe
    #: not yet written, started by :class:`Launch` for this run id) to adopt instead of starting one.
    #: ``kimi-acp spawn`` starts Claude Code this way while the rest of kimi-acp imports.
    process: Process | None = field(default=None, repr=False, compare=False)
    #: The cross-process slot (:class:`ProcessSlots`) the adopted process already holds.
    slot_fd: int | None = field(default=None, repr=False, compare=False)
    #: The adopted process's release pipe (:class:`Launch`), if it was started with one.
    release: Release | None = field(default=None, repr=False, compare=False)


@dataclass
class ProcessOutcome:
    """How a run ended."""

    #: ``returncode`` of the child (negative = killed by that signal); ``None``
    #: when no process was ever started (cancelled while queued).
    exit_code: int | None
    timed_out: bool
    cancelled: bool
    #: Why the supervisor killed the run: the line callback's stop reason,
    #: ``"timeout: ..."``, ``"cancelled"``; ``None`` when the child exited by itself.
    killed_reason: str | None
    pid: int | None
    pgid: int | None
    #: ``time.time()`` when the process was started; ``None`` if it never was.
    started_at: float | None
    ended_at: float
    #: The last ~8 KB of stderr, decoded as UTF-8 with ``errors="replace"``.
    stderr_tail: str
    stdout_lines: int
    #: The run's reaper was killed by a signal from outside while the harness still ran
    #: (the supervisor then killed what was left): not the harness's own death.
    reaper_killed: bool = False
    #: Stdout lines longer than the limit, by their size in bytes (each was dropped whole).
    lines_cut: list[int] = field(default_factory=list)
    #: With ``run(..., hold=True)``: call it once the run's result is recorded and delivered
    #: (the run's watch then exits; see :mod:`.reaper`). Otherwise already done.
    release: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, ``None`` if the process never started."""
        return None if self.started_at is None else self.ended_at - self.started_at


# --------------------------------------------------------------------------- #
# Process-group helpers (also used by crash recovery and by tests)
# --------------------------------------------------------------------------- #


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


def is_reaper(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
    except OSError:
        return False
    return len(parts) > 4 and parts[3] == b"-c" and parts[4] == REAPER.encode()


def _check_pgid(pgid: int) -> None:
    if pgid <= 1:
        raise ValueError(f"refusing to signal process group {pgid}")


def kill_process_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to every process in group ``pgid``.

    Returns ``True`` if the signal was sent, ``False`` if the group is gone (or
    not ours to signal). Refuses ``pgid <= 1`` and the caller's own group.
    """
    _check_pgid(pgid)
    if pgid == os.getpgrp():
        return False
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stat(pid: int | str) -> tuple[bytes, int] | None:
    """(state, pgrp) of a process from ``/proc/<pid>/stat``, ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return fields[0], int(fields[2])
    except (IndexError, ValueError):
        return None


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def alive_in_group(pgid: int) -> list[int]:
    """Pids of the live processes (zombies excluded) whose process group is ``pgid``."""
    alive = []
    for pid in _pids():
        st = _stat(pid)
        if st is not None and st[1] == pgid and st[0] not in (b"Z", b"X"):
            alive.append(pid)
    return alive


def _pids_with_run_ids(run_ids: set[str]) -> list[int]:
    """Live pids (not ours) whose environment holds ``KIMI_ACP_RUN_ID=<one of run_ids>``."""
    wanted = {f"{RUN_ID_ENV}={rid}".encode() for rid in run_ids}
    me = os.getpid()
    found = []
    for pid in _pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:  # gone, or not ours to read
            continue
        if environ and not wanted.isdisjoint(environ.split(b"\0")):
            found.append(pid)
    return found


def _kill_pids(pids: list[int]) -> int:
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        killed += 1
    return killed


def kill_run_processes(run_id: str, pgid: int | None) -> int:
    """SIGKILL everything that belongs to a run, for crash recovery.

    That is the process group ``pgid`` (if given) and every process whose
    ``/proc/<pid>/environ`` contains ``KIMI_ACP_RUN_ID=<run_id>`` — which also
    finds descendants that left the group with ``setsid()``. Skips this process,
    tolerates processes that vanish or cannot be read. Returns how many processes
    were killed. Blocking (scans ``/proc``): from async code use a worker thread.
    """
    if not run_id:
        raise ValueError("run_id must not be empty")
    victims: set[int] = set()
    if pgid is not None:
        _check_pgid(pgid)
        if pgid != os.getpgrp() and is_reaper(pgid):
            # The run's reaper knows every descendant, escaped ones included: let it kill them.
            try:
                os.kill(pgid, REAPER_KILL_ALL)
                _wait_dead({pgid}, timeout=3.0)
            except (ProcessLookupError, PermissionError):
                pass
        if pgid != os.getpgrp():
            victims.update(alive_in_group(pgid))
    victims.update(_pids_with_run_ids({run_id}))
    victims.discard(os.getpid())
    killed = _kill_pids(sorted(victims))
    if pgid is not None:
        kill_process_group(pgid)
    _wait_dead(victims)
    return killed


def _wait_dead(pids: set[int], timeout: float = 2.0) -> None:
    """Signals are delivered asynchronously: wait (briefly) until the victims are really gone."""
    deadline = time.monotonic() + timeout
    left = set(pids)
    while left and time.monotonic() < deadline:
        left = {p for p in left if _stat(p) is not None and _stat(p)[0] != b"Z"}  # type: ignore[index]
        if left:
            time.sleep(0.005)


def _sweep_run_ids(run_ids: set[str]) -> int:
    return _kill_pids(_pids_with_run_ids(run_ids))


# --------------------------------------------------------------------------- #
# The supervisor
# --------------------------------------------------------------------------- #


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _group_gone(pgid: int, timeout: float = 2.0) -> bool:
    """Wait until nothing alive is left in a group that was sent SIGKILL (signals are
    delivered asynchronously: ``killpg`` returns before its victims are dead).
    ``False`` if something is still there after ``timeout`` (stuck in the kernel)."""
    deadline = anyio.current_time() + timeout
    delay = 0.002
    while True:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return True  # no member at all, zombies included
        if not alive_in_group(pgid):  # only zombies left, waiting for their reaper
            return True
        if anyio.current_time() >= deadline:
            return False
        kill_process_group(pgid)
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.05)


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


class _Run:
    """Book-keeping for one queued or running run."""

    __slots__ = (
        "spec",
        "state",
        "token",
        "queue_scope",
        "wake",
        "exited",
        "stop_reason",
        "cancel_requested",
        "slot_fd",
        "release",
    )

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.state: Literal["queued", "running"] = "queued"
        self.token = object()  # borrower identity for the capacity limiters
        self.queue_scope = anyio.CancelScope()
        self.wake = anyio.Event()  # set on exit, on stop request
        self.exited = False
        self.stop_reason: str | None = None
        self.cancel_requested = False
        self.slot_fd: int | None = None  # the cross-process slot (ProcessSlots), while held
        self.release: Release = Release()  # the run's release pipe (see Launch)

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.wake.set()


class _IO:
    """Per-run stream state."""

    __slots__ = ("stdout_done", "stderr_done", "progress", "busy", "lines", "tail", "error", "lines_cut")

    def __init__(self) -> None:
        self.lines_cut: list[int] = []
        self.stdout_done = anyio.Event()
        self.stderr_done = anyio.Event()
        self.progress = 0  # bytes read and lines delivered: tells a slow drain from a stuck one
        self.busy = False  # the line callback is running
        self.lines = 0
        self.tail = bytearray()
        self.error: BaseException | None = None


class Supervisor:
    """Runs processes with limits, a FIFO queue, timeouts, cancel and group kill.

    ``max_concurrent`` is the global cap; ``backend_caps`` maps a backend key to
    its cap (``default_backend_cap`` for keys not listed). ``grace`` is how long a
    process group gets between SIGTERM and SIGKILL. Stdout lines longer than
    ``max_line_bytes`` are truncated to that length. ``drain_timeout`` bounds how
    long the pipes may stay silent without EOF after the child is gone (a
    descendant that escaped the group may hold them open). ``sweep_escaped``
    kills, after every run, any process that still carries the run's
    ``KIMI_ACP_RUN_ID`` (one ``/proc`` scan, in a worker thread, shared by runs
    that end together). ``reaper`` (default: on Linux unless ``KIMI_ACP_NO_REAPER``)
    starts each process under :mod:`kimi_acp.reaper`, so nothing of a run survives the
    run's end or the death of this process, whatever signal ends it. ``orphan_command``
    (``{"argv", "env", "lock"}``) is what each reaper starts if this process dies (the
    deliverer: it records the runs ``lost`` and reports them); nothing runs for it otherwise.
    """

    def __init__(
        self,
        *,
        max_concurrent: int = 8,
        backend_caps: Mapping[str, int] | None = None,
        default_backend_cap: int = 2,
        grace: float = 3.0,
        max_line_bytes: int = 8 * 1024 * 1024,
        drain_timeout: float = 2.0,
        sweep_escaped: bool = True,
        slots: ProcessSlots | None = None,
        reaper: bool | None = None,
        orphan_command: Mapping[str, Any] | None = None,
    ) -> None:
        if max_concurrent < 1 or default_backend_cap < 1:
            raise ValueError("max_concurrent and default_backend_cap must be at least 1")
        if any(cap < 1 for cap in (backend_caps or {}).values()):
            raise ValueError("every backend cap must be at least 1")
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self._max_concurrent = max_concurrent
        self._backend_caps = dict(backend_caps or {})
        self._default_backend_cap = default_backend_cap
        self._grace = grace
        self._max_line = max_line_bytes
        self._drain_timeout = drain_timeout
        self._sweep_escaped = sweep_escaped
        self._slots = slots
        self._reaper = reaper_enabled() if reaper is None else reaper
        self._orphan = orphan_payload(orphan_command)
        # Limiters are created lazily: they must be made inside the event loop.
        self._global: anyio.CapacityLimiter | None = None
        self._backends: dict[str, anyio.CapacityLimiter] = {}
        self._runs: dict[str, _Run] = {}
        self._idle: anyio.Event | None = None
        self._closed = False
        self._sweep_lock: anyio.Lock | None = None
        self._sweep_pending: set[str] = set()

    # ---------------------------------------------------------------- queries

    def status(self, run_id: str) -> Literal["queued", "running"] | None:
        """``"queued"``, ``"running"``, or ``None`` when the run is not (or no longer) here."""
        run = self._runs.get(run_id)
        return None if run is None else run.state

    @property
    def running(self) -> int:
        """Number of runs holding their slots (starting, running or being torn down)."""
        return sum(1 for r in self._runs.values() if r.state == "running")

    @property
    def queued(self) -> int:
        """Number of runs waiting for a slot."""
        return sum(1 for r in self._runs.values() if r.state == "queued")

    # ---------------------------------------------------------------- control

    def cancel(self, run_id: str) -> bool:
        """Cancel a run. A queued run never starts (its outcome has ``cancelled`` and
        no pid); a running one has its process group terminated. Returns ``False``
        if the run is unknown (never submitted, or already finished)."""
        run = self._runs.get(run_id)
        if run is None:
            return False
        run.cancel_requested = True
        if run.state == "queued":
            run.queue_scope.cancel()
        else:
            run.request_stop("cancelled")
        return True

    async def aclose(self) -> None:
        """Refuse new runs, cancel every queued and running run, and wait until each
        process group is killed and reaped."""
        self._closed = True
        if not self._runs:
            return
        if self._idle is None:
            self._idle = anyio.Event()
        for run_id in list(self._runs):
            self.cancel(run_id)
        await self._idle.wait()

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---------------------------------------------------------------- run

    async def run(
        self,
        spec: ProcessSpec,
        *,
        on_line: LineCallback | None = None,
        on_started: Callable[[int, int], Any] | None = None,
        on_queued: Callable[[], Any] | None = None,
        on_line_cut: Callable[[int], Any] | None = None,
        hold: bool = False,
    ) -> ProcessOutcome:
        """Queue, run and reap one process; return how it ended.

        ``hold``: the run's watch (see :mod:`.reaper`) stays until the caller calls the
        outcome's ``release`` (once the result is recorded and delivered); by default it is
        released as the process is reaped.

        ``on_queued()`` is called once if the run has to wait for a slot;
        ``on_started(pid, pgid)`` once the process exists; ``on_line(line)`` for
        each stdout line (see :data:`LineCallback`); ``on_line_cut(size)`` instead of
        ``on_line`` for a line longer than ``max_line_bytes`` (``size``: its length in
        bytes; the line is dropped whole, and listed in :attr:`ProcessOutcome.lines_cut`).
        Each may be async.

        If the caller's scope is cancelled, the process group is killed and reaped
        and the cancellation propagates. If a callback raises, the group is killed
        and reaped and the exception propagates. Raises ``OSError`` if the process
        cannot be started (missing program, bad cwd), ``ValueError`` if the run id
        is already queued or running, ``RuntimeError`` after :meth:`aclose`.
        """
        if self._closed or spec.run_id in self._runs:
            await self._discard(spec)
            if spec.slot_fd is not None and self._slots is not None:
                self._slots.release(spec.slot_fd)
                spec.slot_fd = None
            if self._closed:
                raise RuntimeError("the supervisor is closed; create a new one to run more processes")
            raise ValueError(f"run {spec.run_id!r} is already queued or running")
        run = _Run(spec)
        run.slot_fd, spec.slot_fd = spec.slot_fd, None  # the run owns (and releases) it from here
        self._runs[spec.run_id] = run
        try:
            try:
                limiters = await self._acquire(run, on_queued)
            except BaseException:
                await self._discard(spec)
                raise
            if limiters is None:
                await self._discard(spec)
                return ProcessOutcome(
                    exit_code=None,
                    timed_out=False,
                    cancelled=True,
                    killed_reason="cancelled",
                    pid=None,
                    pgid=None,
                    started_at=None,
                    ended_at=time.time(),
                    stderr_tail="",
                    stdout_lines=0,
                )
            try:
                run.state = "running"
                outcome = await self._execute(run, on_line, on_started, on_line_cut)
                if hold:
                    outcome.release, run.release = run.release, Release()
                return outcome
            finally:
                run.release()  # not held (or not returned): nothing is left to watch
                self._release_slot(run)
                for limiter in reversed(limiters):
                    limiter.release_on_behalf_of(run.token)
        finally:
            del self._runs[spec.run_id]
            if not self._runs and self._idle is not None:
                self._idle.set()
                self._idle = None

    @staticmethod
    async def _discard(spec: ProcessSpec) -> None:
        """An adopted process whose run never started: kill its group and reap it."""
        if spec.release is not None:
            spec.release()
        if spec.process is not None:
            with anyio.CancelScope(shield=True):
                kill_process_group(spec.process.pid)
                await spec.process.aclose()

    def _release_slot(self, run: _Run) -> None:
        if run.slot_fd is not None and self._slots is not None:
            fd, run.slot_fd = run.slot_fd, None
            self._slots.release(fd)

    def _backend_limiter(self, backend: str) -> anyio.CapacityLimiter:
        limiter = self._backends.get(backend)
        if limiter is None:
            cap = self._backend_caps.get(backend, self._default_backend_cap)
            limiter = self._backends[backend] = anyio.CapacityLimiter(cap)
        return limiter

    async def _acquire(
        self, run: _Run, on_queued: Callable[[], Any] | None
    ) -> list[anyio.CapacityLimiter] | None:
        """Take the backend slot, then the global slot, FIFO. ``None`` if cancelled
        while waiting (nothing held then)."""
        if self._global is None:
            self._global = anyio.CapacityLimiter(self._max_concurrent)
        held: list[anyio.CapacityLimiter] = []
        notified = False
        try:
            with run.queue_scope:
                for limiter in (self._backend_limiter(run.spec.backend), self._global):
                    try:
                        limiter.acquire_on_behalf_of_nowait(run.token)
                    except anyio.WouldBlock:
                        if not notified and on_queued is not None:
                            notified = True
                            await _call(on_queued)
                        await limiter.acquire_on_behalf_of(run.token)
                    held.append(limiter)
                    if limiter is not self._global and self._slots is not None and run.slot_fd is None:
                        # Other kimi-acp processes on this state dir count against the backend too.
                        run.slot_fd = self._slots.try_acquire(run.spec.backend)
                        if run.slot_fd is None:
                            if not notified and on_queued is not None:
                                notified = True
                                await _call(on_queued)
                            run.slot_fd = await self._slots.acquire(run.spec.backend)
        except BaseException:
            self._release_slot(run)
            for limiter in reversed(held):
                limiter.release_on_behalf_of(run.token)
            raise
        if run.cancel_requested:
            self._release_slot(run)
            for limiter in reversed(held):
                limiter.release_on_behalf_of(run.token)
            return None
        return held

    async def _execute(
        self,
        run: _Run,
        on_line: LineCallback | None,
        on_started: Callable[[int, int], Any] | None,
        on_line_cut: Callable[[int], Any] | None = None,
    ) -> ProcessOutcome:
        spec = run.spec
        # Shielded: a cancellation landing mid-spawn must not lose the handle of a
        # process that already exists.
        with anyio.CancelScope(shield=True):
            process = spec.process
            if process is None:
                launch = Launch.make(spec.argv, spec.env, spec.cwd, run_id=spec.run_id, orphan=self._orphan, reaper=self._reaper)
                run.release = launch.release
                try:
                    process = await anyio.open_process(
                        launch.argv,
                        stdin=PIPE,
                        stdout=PIPE,
                        stderr=PIPE,
                        env=launch.env,
                        cwd=spec.cwd,
                        start_new_session=True,
                        pass_fds=launch.pass_fds,
                    )
                finally:
                    launch.started()
            else:
                run.release, spec.release = spec.release or Release(), None
        started_at = time.time()
        deadline = math.inf if spec.timeout is None else anyio.current_time() + spec.timeout
        pid = pgid = process.pid  # setsid() made the child a group leader
        io = _IO()
        timed_out = False
        reaper_killed = False
        killed_reason: str | None = None
        try:
            async with anyio.create_task_group() as tg:
                assert process.stdin is not None
                assert process.stdout is not None
                assert process.stderr is not None
                tg.start_soon(self._feed_stdin, process.stdin, spec.stdin)
                tg.start_soon(self._pump_stdout, process.stdout, run, on_line, io, on_line_cut)
                tg.start_soon(self._pump_stderr, process.stderr, io)
                tg.start_soon(self._watch_exit, process, run)
                try:
                    if on_started is not None:
                        try:
                            await _call(on_started, pid, pgid)
                        except Exception as exc:  # re-raised below, after the teardown
                            io.error = exc
                            run.request_stop(f"on_started failed: {exc!r}")
                    with anyio.CancelScope(deadline=deadline) as limit:
                        await run.wake.wait()
                    if not run.exited:
                        if limit.cancelled_caught:
                            timed_out = True
                            killed_reason = f"timeout: still running after {spec.timeout:g} s"
                        else:
                            killed_reason = run.stop_reason
                finally:
                    # Runs on every path: exit, stop, timeout, caller cancellation, error.
                    with anyio.CancelScope(shield=True):
                        if run.exited:
                            # A reaper ends only after every process of the run is gone; one that died of
                            # a signal with the group still alive was killed from outside.
                            if (self._reaper or spec.process is not None) and (process.returncode or 0) < 0 \
                                    and alive_in_group(pgid):
                                reaper_killed = True
                            kill_process_group(pgid)  # background leftovers
                        else:
                            await self._terminate(process, pgid)
                        await _group_gone(pgid)
                        if self._sweep_escaped:
                            await self._sweep(spec.run_id)
                        await self._drain(io)
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await process.aclose()
        if io.error is not None:
            raise io.error
        cancelled = killed_reason is not None and run.cancel_requested and not timed_out
        return ProcessOutcome(
            exit_code=process.returncode,
            timed_out=timed_out,
            cancelled=cancelled,
            killed_reason=killed_reason,
            pid=pid,
            pgid=pgid,
            started_at=started_at,
            ended_at=time.time(),
            stderr_tail=bytes(io.tail[-_STDERR_TAIL:]).decode("utf-8", errors="replace"),
            stdout_lines=io.lines,
            reaper_killed=reaper_killed,
            lines_cut=list(io.lines_cut),
        )

    async def _terminate(self, process: Process, pgid: int) -> None:
        """SIGTERM the group, give the leader ``grace`` seconds, SIGKILL the group, reap.
        Call inside a shielded scope."""
        kill_process_group(pgid, signal.SIGTERM)
        with anyio.move_on_after(self._grace):
            await process.wait()
        if process.returncode is None and is_reaper(process.pid):
            # The reaper SIGKILLs every descendant (escaped ones too), then exits like the harness.
            try:
                os.kill(process.pid, REAPER_KILL_ALL)
            except ProcessLookupError:
                pass
            with anyio.move_on_after(3.0):
                await process.wait()
        kill_process_group(pgid, signal.SIGKILL)
        await process.wait()

    async def sweep(self, run_id: str) -> None:
        """Kill what is left carrying ``run_id`` (public form of the post-run sweep, for callers
        that built the supervisor with ``sweep_escaped=False`` to run it off their hot path)."""
        await self._sweep(run_id)

    async def _sweep(self, run_id: str) -> None:
        """Kill processes that still carry ``run_id`` in their environment. Runs that
        end together share one ``/proc`` scan."""
        if self._sweep_lock is None:
            self._sweep_lock = anyio.Lock()
        self._sweep_pending.add(run_id)
        async with self._sweep_lock:
            if run_id not in self._sweep_pending:
                return  # a scan that started after we were added covered us
            run_ids, self._sweep_pending = self._sweep_pending, set()
            await anyio.to_thread.run_sync(_sweep_run_ids, run_ids)

    async def _drain(self, io: _IO) -> None:
        """Wait for EOF on both pipes while data keeps coming (or the line callback
        is busy); give up after ``drain_timeout`` seconds without progress (or 15
        times that in all): an escaped descendant may hold a pipe open."""
        give_up = anyio.current_time() + 15 * self._drain_timeout
        while not (io.stdout_done.is_set() and io.stderr_done.is_set()):
            seen = io.progress
            with anyio.move_on_after(self._drain_timeout):
                await io.stdout_done.wait()
                await io.stderr_done.wait()
            if (io.progress == seen and not io.busy) or anyio.current_time() >= give_up:
                return

    @staticmethod
    async def _watch_exit(process: Process, run: _Run) -> None:
        await process.wait()
        run.exited = True
        run.wake.set()

    @staticmethod
    async def _feed_stdin(stream: ByteSendStream, data: bytes) -> None:
        try:
            if data:
                await stream.send(data)
            await stream.aclose()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the child closed stdin or exited without reading it all

    async def _pump_stdout(
        self,
        stream: ByteReceiveStream,
        run: _Run,
        on_line: LineCallback | None,
        io: _IO,
        on_line_cut: Callable[[int], Any] | None = None,
    ) -> None:
        limit = self._max_line
        buf = bytearray()
        cut = 0  # > 0: the current line passed the limit (its size so far); it is dropped whole

        async def emit() -> None:
            nonlocal cut
            size, cut = cut, 0
            io.lines += 1
            if size:  # a cut line is never handed on (half a JSON line is garbage): say so instead
                buf.clear()
                io.lines_cut.append(size)
                callback, arg = on_line_cut, size
            else:
                line = buf.decode("utf-8", errors="replace")
                buf.clear()
                callback, arg = on_line, line  # type: ignore[assignment]
            if callback is None or io.error is not None:
                return
            io.busy = True
            try:
                reason = await _call(callback, arg)
            except Exception as exc:  # re-raised by run() after the teardown
                io.error = exc
                run.request_stop(f"line callback failed: {exc!r}")
                return
            finally:
                io.busy = False
                io.progress += 1
            if reason and not size:
                run.request_stop(str(reason))

        try:
            while True:
                try:
                    chunk = await stream.receive(_CHUNK)
                except anyio.EndOfStream:
                    break
                io.progress += len(chunk)
                start = 0
                while True:
                    nl = chunk.find(b"\n", start)
                    end = len(chunk) if nl < 0 else nl
                    if cut:
                        cut += end - start
                    elif end - start > limit - len(buf):
                        cut = len(buf) + end - start
                        buf.clear()
                    else:
                        buf += chunk[start:end]
                    if nl < 0:
                        break
                    await emit()
                    start = nl + 1
            if buf or cut:
                await emit()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            io.stdout_done.set()

    @staticmethod
    async def _pump_stderr(stream: ByteReceiveStream, io: _IO) -> None:
        try:
            while True:
                try:
                    chunk = await stream.receive(_CHUNK)
                except anyio.EndOfStream:
                    break
                io.progress += len(chunk)
                io.tail += chunk
                if len(io.tail) > 2 * _STDERR_TAIL:
                    del io.tail[:-_STDERR_TAIL]
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            io.stderr_done.set()
