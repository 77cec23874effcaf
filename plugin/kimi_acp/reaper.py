"""The reaper: a tiny parent for each harness process, so that nothing of a run outlives
its supervisor, whatever kills the supervisor — and so that a run whose supervisor dies still
ends in a true record, with nothing else running on the happy path.

The supervisor starts ``python -I -S -c <BOOT> <owner> <program> <argv...>`` (:data:`BOOT`
imports this module from its cached bytecode; stdlib only, no site-packages: about ten
milliseconds) in a new session. ``<owner>`` is the supervisor's pid, or
``<pid>,o=<fd>,r=<fd>,id=<run id>`` (see :func:`parse_owner`): ``o`` a pipe holding the
command to start if the supervisor dies (``{"argv", "env", "lock"}`` as JSON: the deliverer),
``r`` the read end of the supervisor's *release* pipe, ``id`` the run id the harness gets as
``KIMI_ACP_RUN_ID`` (the reaper's own environment does not carry it). The reaper

- marks itself a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): every descendant of the
  harness that is orphaned — a daemon that ``setsid()``s, double-forks and clears its
  environment included — is re-parented to the reaper instead of init, so the run's
  processes are always exactly the reaper's descendants;
- asks the kernel for ``SIGUSR2`` when its parent dies (``PR_SET_PDEATHSIG``), so a
  ``kill -9`` of the supervisor (``kimi-acp spawn``, the ``--no-wait`` worker,
  ``kimi-acp acp``) is noticed at once, without any other process running;
- starts the harness (``posix_spawnp``, same process group, its own stdin/stdout/stderr
  are the pipes the supervisor reads) and waits;
- when the harness exits, when ``SIGUSR2`` arrives (the supervisor's "kill everything now",
  or the death of the supervisor), SIGKILLs every descendant, reaps them, and exits with the
  harness's own status (re-raising the signal that killed it, so the supervisor sees the
  same return code as without the reaper);
- when it was the *death of the supervisor*, first starts the handed-over command (unless a
  process holds its ``lock``): the deliverer, which records the run ``lost`` and reports it;
- otherwise, before it exits, leaves a *watch*: a fork in its own session, holding only the
  two pipes, that waits on the release pipe. The supervisor writes one byte to it once the
  run's result is recorded and delivered (or handed to the deliverer), and the watch exits;
  if the supervisor dies first, the pipe reaches EOF without that byte, and the watch starts
  the deliverer. So a ``kill -9`` between Claude Code's exit and the delivery of its result
  is finished too. On the happy path the watch lives for the milliseconds of that delivery.

SIGTERM, SIGINT and SIGHUP are for the harness (the supervisor signals the whole group);
the reaper itself does not act on them.

What it does not cover: a process that is not a descendant (started by something else
and handed work), a descendant that is deliberately moved out with root's powers
(``ptrace``, another cgroup, a new PID namespace), and SIGKILL of the reaper itself while
the supervisor is also gone (the harness's group is still found by its pgid and
``KIMI_ACP_RUN_ID`` by crash recovery). ``PR_SET_PDEATHSIG`` follows the parent *thread*:
the supervisor must start processes from the thread that lives as long as it does (the
event loop thread, as anyio does).
"""

from __future__ import annotations

import os
import _signal as signal  # the C module: `signal` would import enum (~4 ms at every run)
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
#: "Kill the whole run now": sent by the supervisor, and by the kernel when it dies.
KILL_ALL = signal.SIGUSR2
#: Exit status when the harness could not be started at all.
EXIT_CANNOT_START = 127

#: The ``-c`` program that runs :func:`main` (``{path}``: the directory holding ``kimi_acp``).
BOOT = "import sys; sys.path[:0] = [{path!r}]; from kimi_acp.reaper import main; main(sys.argv[1:])"

_WAIT_FOR = {signal.SIGCHLD, KILL_ALL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _prctl(option: int, value: int) -> bool:
    """``prctl(option, value)`` through ``_ctypes`` alone (``import ctypes`` costs ~4 ms more)."""
    try:
        import _ctypes

        class c_int(_ctypes._SimpleCData):  # noqa: N801 - as ctypes names it
            _type_ = "i"

        class Func(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = c_int

        class Libc:
            _handle = _ctypes.dlopen(None, os.RTLD_NOW)

        return Func(("prctl", Libc()))(option, value, 0, 0, 0) == 0
    except (ImportError, OSError, AttributeError, TypeError):
        return False


def _parents() -> dict[int, int]:
    """pid -> ppid of every live process (zombies excluded)."""
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 1 and fields[0] not in (b"Z", b"X"):
            out[int(name)] = int(fields[1])
    return out


def descendants(root: int) -> list[int]:
    """Live descendants of ``root`` (by parent links)."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _reap_all() -> dict[int, int]:
    """Reap every exited child without blocking; pid -> wait status."""
    done: dict[int, int] = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done[pid] = status


def _has_children() -> bool:
    """As a subreaper, every live descendant has a live ancestor among our children (orphans are
    re-parented to us), so no child at all means nothing is left — no /proc scan needed."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def kill_all(harness: int | None) -> dict[int, int]:
    """SIGKILL every descendant until none is left; returns the wait statuses reaped."""
    me = os.getpid()
    reaped: dict[int, int] = _reap_all()
    if not _has_children():
        return reaped
    for _ in range(200):
        victims = descendants(me)
        if not victims:
            break
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        signal.sigtimedwait({signal.SIGCHLD}, 0.01)
        reaped.update(_reap_all())
    reaped.update(_reap_all())
    # Descendants are dead; wait for the last children to become reapable.
    for _ in range(100):
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            signal.sigtimedwait({signal.SIGCHLD}, 0.01)
            continue
        reaped[pid] = status
    return reaped


def _exit_like(status: int | None) -> None:
    if status is None:
        os._exit(EXIT_CANNOT_START)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # not reached for a fatal signal
    os._exit(os.WEXITSTATUS(status))


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def start_orphan_command(fd: int | None) -> bool:
    """The supervisor is dead: start the command it handed over on ``fd`` (the deliverer), in
    its own session, unless a process already holds its lock. Never raises."""
    if fd is None:
        return False
    try:
        import json

        spec = json.loads(_read_all(fd))
        os.close(fd)
        lock = spec.get("lock")
        if lock:
            import fcntl

            held = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # one runs: it notices the dead supervisor by itself
            finally:
                os.close(held)
        argv = [str(a) for a in spec["argv"]]
        null = [(os.POSIX_SPAWN_OPEN, fd_, os.devnull, os.O_RDWR, 0) for fd_ in (0, 1, 2)]
        # setsigmask=(): not the reaper's blocked signals (SIGTERM must stop a deliverer).
        os.posix_spawn(argv[0], argv, {str(k): str(v) for k, v in spec["env"].items()}, setsid=True, file_actions=null,
                       setsigmask=())
        return True
    except Exception:  # noqa: BLE001 - the reaper's own job (killing the run) is done; the next command finishes it
        return False


RELEASED = b"x"
"""What the supervisor writes to the release pipe: the run is recorded and delivered."""


def parse_owner(text: str) -> tuple[int, int | None, int | None, str | None]:
    """``"<pid>[,o=<fd>][,r=<fd>][,id=<run id>]"`` -> (supervisor pid, orphan fd, release fd, run id)."""
    pid, *options = text.split(",")
    found = dict(o.partition("=")[::2] for o in options)
    orphan = int(found["o"]) if found.get("o") else None
    release = int(found["r"]) if found.get("r") else None
    return int(pid), orphan, release, found.get("id") or None


def _watch(orphan_fd: int | None, release_fd: int) -> None:
    """Leave a watch (a fork in its own session) on the release pipe: it exits when the
    supervisor releases the run, and starts the deliverer if the supervisor dies first.
    Returns once the fork has left this process group (the supervisor kills the group)."""
    ready_r, ready_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(ready_r)
        os.close(ready_w)
        return
    if pid == 0:  # the watch
        try:
            os.setsid()
            os.close(ready_r)
            os.close(ready_w)  # "out of the group": the reaper may exit now
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _WAIT_FOR)
            try:
                said = os.read(release_fd, 1)
            except OSError:
                said = b""
            if said != RELEASED:
                start_orphan_command(orphan_fd)
        finally:
            os._exit(0)
    os.close(ready_w)
    try:
        os.read(ready_r, 1)  # EOF once the watch has called setsid()
    except OSError:
        pass
    os.close(ready_r)


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        sys.stderr.write("usage: reaper.py SUPERVISOR_PID[,o=FD][,r=FD][,id=RUN_ID] PROGRAM ARGV0 [ARGS...]\n")
        os._exit(2)
    supervisor, orphan_fd, release_fd, run_id = parse_owner(argv[0])
    program, child_argv = argv[1], argv[2:]
    for fd in (orphan_fd, release_fd):
        if fd is not None:
            os.set_inheritable(fd, False)  # the harness never sees them
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAIT_FOR)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, KILL_ALL)
    if os.getppid() != supervisor:  # the supervisor died before PDEATHSIG was armed
        start_orphan_command(orphan_fd)
        os._exit(EXIT_CANNOT_START)
    env = os.environ if run_id is None else {**os.environ, "KIMI_ACP_RUN_ID": run_id}
    try:
        harness = os.posix_spawnp(program, child_argv, env, setsigmask=())
    except OSError as exc:
        sys.stderr.write(f"kimi-acp: cannot start the harness {program!r}: {exc}\n")
        sys.stderr.flush()
        os._exit(EXIT_CANNOT_START)
    # The pipes belong to the harness: let them reach EOF when it (and what it started) is done.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    status: int | None = None
    while status is None:
        info = signal.sigtimedwait(_WAIT_FOR, 1.0)
        if info is None:
            if os.getppid() != supervisor:  # belt and braces: the parent-death signal was missed
                break
            continue
        if info.si_signo == KILL_ALL:
            break
        if info.si_signo == signal.SIGCHLD:
            status = _reap_all().get(harness, None)
        # SIGTERM / SIGINT / SIGHUP are the harness's business (it is in the same group).
    reaped = kill_all(harness)
    if status is None:
        status = reaped.get(harness)
    if os.getppid() != supervisor:  # the supervisor died: its run must still end in a true record
        start_orphan_command(orphan_fd)
    elif release_fd is not None:
        _watch(orphan_fd, release_fd)
    _exit_like(status)


if __name__ == "__main__":
    main(sys.argv[1:])
