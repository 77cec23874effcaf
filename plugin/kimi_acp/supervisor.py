"""Run harness processes under supervision, so that no orphan ever survives.

The supervisor knows nothing about Claude Code or configuration: it gets an argv,
a complete environment and the task bytes for stdin (a :class:`ProcessSpec`), and
gives back a :class:`ProcessOutcome`. Along the way it

- queues runs FIFO behind two limits: a per-backend cap (taken first, so runs that
  wait for a busy backend hold no global slot) and a global cap; with a ``gate``
  (:class:`~kimi_acp.admission.Admission`), a run that holds its backend slot also waits
  while its backend is held (a used-up quota, a 429's retry-after) before it takes a
  global slot, so a held backend never blocks the others;
- starts each run in its own session and process group (``start_new_session``, so
  ``pgid == pid``) with ``KIMI_ACP_RUN_ID=<run_id>`` added to its environment, under a
  :mod:`~kimi_acp.reaper` (on Linux): a tiny parent that is the run's child subreaper and
  kills every descendant when the harness exits or the supervisor dies (even by SIGKILL);
- writes the task to stdin in a task (a child that never reads cannot deadlock us)
  and reads stdout and stderr concurrently, handing each stdout line to a callback; a run
  started with ``keep_stdin`` takes more input while it runs (:meth:`Supervisor.write_stdin`,
  in order) until :meth:`Supervisor.close_stdin`;
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

import inspect
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
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

# The event-loop-free part (prestart uses it before anyio is imported), re-exported here.
from .launch import (  # noqa: E402
    REAPER,
    REAPER_KILL_ALL,
    RUN_ID_ENV,
    Launch,
    ProcessSlots,
    Release,
    _resolve_program,
    launch_argv,
    orphan_payload,
    orphan_pipe,
    reaper_enabled,
)

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
    #: The task: written to stdin, then stdin is closed (unless ``keep_stdin``).
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
    #: Keep stdin open after ``stdin``: more input comes with :meth:`Supervisor.write_stdin`
    #: (a harness that reads while it works), until :meth:`Supervisor.close_stdin`.
    keep_stdin: bool = False


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


def process_tree(run_id: str, pgid: int | None = None) -> list[dict[str, Any]]:
    """The live processes of a run (its process group, and whatever carries its run id), as
    ``{"pid", "ppid", "command"}``, for status displays (``/acp status``)."""
    pids = set(_pids_with_run_ids({run_id}))
    if pgid:
        pids |= set(alive_in_group(pgid))
    out = []
    for pid in sorted(pids):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if not fields or fields[0] in (b"Z", b"X"):
            continue
        command = data[data.find(b"(") + 1 : data.rfind(b")")].decode(errors="replace")
        out.append({"pid": pid, "ppid": int(fields[1]), "command": command})
    return out


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
        "stdin_send",
        "stdin_receive",
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
        # More stdin, in order, for a run with keep_stdin (see Supervisor.write_stdin); written
        # by the run's one stdin task, so a write never blocks the caller.
        self.stdin_send, self.stdin_receive = anyio.create_memory_object_stream[bytes](math.inf)
        if not spec.keep_stdin:
            self.stdin_send.close()

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
    ``gate`` holds a backend's queued runs while it says so (see the module docstring).
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
        gate: Any = None,
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
        # Admission (kimi_acp.admission.Admission): async wait(backend, on_hold), held(backend).
        self._gate = gate
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

    def write_stdin(self, run_id: str, data: bytes) -> bool:
        """Queue ``data`` for a run's stdin (a run with ``keep_stdin``, queued or running),
        after everything queued before it. ``False`` when the run is unknown or its stdin is
        closed (it never takes more input then)."""
        run = self._runs.get(run_id)
        if run is None:
            return False
        try:
            run.stdin_send.send_nowait(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    def close_stdin(self, run_id: str) -> None:
        """No more input for the run: its stdin is closed once what was queued is written."""
        run = self._runs.get(run_id)
        if run is not None:
            run.stdin_send.close()

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
        on_hold: Callable[[Any], Any] | None = None,
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
        ``on_hold(hold)`` when the run starts waiting for the ``gate`` (or the hold changes),
        ``on_hold(None)`` when that wait ends. Each may be async.

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
                limiters = await self._acquire(run, on_queued, on_hold)
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
            run.stdin_send.close()
            run.stdin_receive.close()
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
        self, run: _Run, on_queued: Callable[[], Any] | None, on_hold: Callable[[Any], Any] | None = None
    ) -> list[anyio.CapacityLimiter] | None:
        """Take the backend slot, then (once the gate lets the backend go) the global slot,
        FIFO. ``None`` if cancelled while waiting (nothing held then)."""
        if self._global is None:
            self._global = anyio.CapacityLimiter(self._max_concurrent)
        held: list[anyio.CapacityLimiter] = []
        notified = False

        async def queued() -> None:
            nonlocal notified
            if not notified and on_queued is not None:
                notified = True
                await _call(on_queued)

        backend = run.spec.backend
        try:
            with run.queue_scope:
                limiter = self._backend_limiter(backend)
                try:
                    limiter.acquire_on_behalf_of_nowait(run.token)
                except anyio.WouldBlock:
                    await queued()
                    await limiter.acquire_on_behalf_of(run.token)
                held.append(limiter)
                if self._slots is not None and run.slot_fd is None:
                    # Other kimi-acp processes on this state dir count against the backend too.
                    run.slot_fd = self._slots.try_acquire(backend)
                    if run.slot_fd is None:
                        await queued()
                        run.slot_fd = await self._slots.acquire(backend)
                while True:
                    if self._gate is not None:
                        await self._gate.wait(backend, on_hold)
                    try:
                        self._global.acquire_on_behalf_of_nowait(run.token)
                    except anyio.WouldBlock:
                        await queued()
                        await self._global.acquire_on_behalf_of(run.token)
                    if self._gate is None or self._gate.held(backend) is None:
                        held.append(self._global)
                        break
                    # held while it waited for the global slot (a 429 elsewhere): let others go
                    self._global.release_on_behalf_of(run.token)
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
                tg.start_soon(self._feed_stdin, process.stdin, spec.stdin, run.stdin_receive)
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
    async def _feed_stdin(stream: ByteSendStream, data: bytes, more: Any) -> None:
        """The task, then (``keep_stdin``) each later write in order, then EOF."""
        try:
            if data:
                await stream.send(data)
            async for chunk in more:  # ends at once unless the run keeps stdin open
                await stream.send(chunk)
            await stream.aclose()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the child closed stdin or exited without reading it all
        finally:
            more.close()

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
