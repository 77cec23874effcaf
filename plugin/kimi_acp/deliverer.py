"""The deliverer: one detached process per state dir that finishes what supervisors leave.

A supervisor (``kimi-acp spawn``, the ``--no-wait`` worker, ``kimi-acp acp``, any embedding
of the :class:`~kimi_acp.spawn.Spawner`) commits each result with its outbox rows and
delivers them itself while it lives. On the happy path nothing else runs. The deliverer is
started only when something must be finished after its owner is gone:

- by a supervisor that exits with undelivered results (the gateway is down, say);
- by a run's :mod:`~kimi_acp.reaper` when the supervisor dies (the kernel tells the reaper
  first): it starts the command it was handed at launch (:func:`deliverer_command`);
- by ``kimi-acp ps``, ``outbox``, ``show``, ``wait`` and the warm ``kimi-acp acp`` process at
  start (:func:`start_if_needed`), whenever results wait with no living owner (a killed
  deliverer, a reboot).

Once running it

- **retries** every undelivered outbox item whose supervisor is gone (gateway down, 5xx,
  timeout, a ``lost`` notice; a live supervisor retries its own) with backoff (1, 2, 4 … 300 s)
  until it is delivered or expires
  (:data:`~kimi_acp.report.DELIVERY_EXPIRY`, recorded on the item with its last error);
- **notices dead supervisors** within :data:`POLL` seconds (their runs' owner pid is gone),
  marks their runs ``lost``, has their processes killed and queues the ``lost`` report
  (the run's reaper has already killed its processes by then);
- exits when there is nothing left to watch (no queued or running run, nothing to deliver)
  for :data:`IDLE_EXIT` seconds.

Single instance: it holds an exclusive ``flock`` on ``<state dir>/deliverer.lock`` (the
kernel drops it when the process dies), so :func:`ensure_deliverer` starts one only when
none runs. Its log is ``<state dir>/deliverer.log``. ``KIMI_ACP_NO_DELIVERER=1`` turns it off
(for a host that delivers itself). Delivery is at least once; the gateway deduplicates by
``idempotencyKey``.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOCK_NAME = "deliverer.lock"
LOG_NAME = "deliverer.log"
#: Seconds between checks for dead supervisors while runs are active.
POLL = 0.25
#: Longest sleep while deliveries are pending.
RECHECK = 2.0
#: Seconds with nothing to watch before the deliverer exits.
IDLE_EXIT = 3.0


def disabled(environ: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if environ is None else environ).get("KIMI_ACP_NO_DELIVERER"))


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def running_pid(state_dir: Path | str) -> int | None:
    """The pid of the deliverer of ``state_dir`` if one runs (it holds the lock), else ``None``."""
    path = Path(state_dir) / LOCK_NAME
    if not path.exists():
        return None
    fd = _try_lock(path)
    if fd is not None:
        os.close(fd)  # nobody held it
        return None
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def deliverer_command(state_dir: Path | str, *, environ: Mapping[str, str] | None = None,
                      config_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """How to start the deliverer of ``state_dir``: ``{"argv", "env", "lock"}``. The env is
    ``environ`` (the gateway token is read from it, as the supervisor would). Handed to each
    run's reaper at launch, which starts it if the supervisor dies (see :mod:`.reaper`)."""
    env = dict(os.environ if environ is None else environ)
    state = Path(state_dir)
    argv = [sys.executable, "-m", "kimi_acp.deliverer", "--state-dir", str(state)]
    if config_path:
        argv += ["--config", str(config_path)]
    env["KIMI_ACP_STATE_DIR"] = str(state)
    return {"argv": argv, "env": env, "lock": str(state / LOCK_NAME)}


def ensure_deliverer(state_dir: Path | str, *, environ: Mapping[str, str] | None = None,
                     config_path: str | os.PathLike[str] | None = None) -> bool:
    """Start the deliverer of ``state_dir`` unless one runs. Returns whether one was started.

    Cheap when one runs (an ``open`` and a failed ``flock``). The new process runs in a new
    session, so neither a terminal's Ctrl-C nor the death of the caller reaches it."""
    if disabled(os.environ if environ is None else environ):
        return False
    command = deliverer_command(state_dir, environ=environ, config_path=config_path)
    try:
        fd = _try_lock(Path(command["lock"]))
    except OSError:
        return False  # the state dir's own error is reported by the store
    if fd is None:
        return False
    os.close(fd)  # free: a new deliverer takes it (if two callers race, one of theirs wins)
    proc = subprocess.Popen(command["argv"], env=command["env"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, cwd="/")
    # Reap it when it exits (no zombie in a long-lived host, no warning about a live Popen).
    threading.Thread(target=proc.wait, name="kimi-acp-deliverer-reaper", daemon=True).start()
    return True


def needed(store: Any) -> bool:
    """Is there something only a deliverer would finish: an undelivered result (or a queued or
    running run) whose owning process is gone? One query and a ``/proc`` read per owner."""
    from .store import _owner_alive

    rows = store._query(
        "SELECT DISTINCT r.owner_pid, r.owner_start FROM outbox o LEFT JOIN runs r ON r.run_id = o.run_id "
        "WHERE o.delivered_at IS NULL AND o.expired_at IS NULL "
        "UNION SELECT owner_pid, owner_start FROM runs WHERE status IN ('queued', 'running')"
    )
    return any(not _owner_alive(row[0], row[1]) for row in rows)


def start_if_needed(state_dir: Path | str | None = None, *, store: Any = None, environ: Mapping[str, str] | None = None,
                    config_path: str | os.PathLike[str] | None = None) -> bool:
    """Start the deliverer when results (or runs) wait with no living owner and none runs.
    Returns whether one was started. For ``ps``, ``outbox``, ``show``, ``wait`` and the warm
    ``kimi-acp acp`` process at start (a killed deliverer, a reboot); cheap when nothing waits.

    ``store`` (an open :class:`~kimi_acp.store.Store`) or ``state_dir`` (default: the usual
    one); never raises for a state dir that cannot be read (the caller reports that)."""
    if disabled(os.environ if environ is None else environ):
        return False
    own = None
    try:
        if store is None:
            from .store import Store

            store = own = Store(Path(state_dir) if state_dir is not None else None)
        if not needed(store):
            return False
        return ensure_deliverer(store.state_dir, environ=environ, config_path=config_path)
    except Exception:  # noqa: BLE001 - best effort: the command's own work reports a broken state dir
        return False
    finally:
        if own is not None:
            own.close()


def stop_deliverer(state_dir: Path | str, timeout: float = 5.0) -> bool:
    """SIGTERM the deliverer of ``state_dir`` and wait until it is gone (SIGKILL after
    ``timeout``). ``False`` if none ran."""
    pid = running_pid(state_dir)
    if pid is None:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and running_pid(state_dir) == pid:
            time.sleep(0.02)
        if running_pid(state_dir) != pid:
            return True
    return True


class _Log:
    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._f = os.fdopen(fd, "a", encoding="utf-8", errors="replace")

    def __call__(self, msg: str) -> None:
        from .redact import redact

        self._f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {redact(msg)}\n")
        self._f.flush()


async def serve(state_dir: Path, config_path: str | None, lock_fd: int, log: Any, *, idle_exit: float = IDLE_EXIT) -> None:
    import anyio

    from .errors import KimiAcpError
    from .report import DELIVERY_EXPIRY, GatewayReporter, flush_outbox
    from .spawn import recover_runs
    from .store import Store

    settings: Any = None
    try:
        from .config import load_config

        settings = load_config(config_path).settings
    except KimiAcpError as exc:
        log(f"cannot read the config ({exc}); lost runs are still marked, results delivered with the default token variable")
    if settings is None:
        from .settings import KimiAcpSettings

        settings = KimiAcpSettings()
    reporter = GatewayReporter(settings, os.environ)
    store = Store(state_dir)
    idle_since: float | None = None
    try:
        while True:
            lost = await anyio.to_thread.run_sync(recover_runs, store, settings)
            for rec in lost:
                log(f"run {rec.run_id} lost: {rec.error}")
            delivered, failed = await flush_outbox(store, reporter, only=lambda item: _orphaned(store, item))
            if delivered or failed:
                log(f"delivered {delivered}, failed {failed}")
            for item in store.outbox_expire(time.time() - DELIVERY_EXPIRY, f"expired after {DELIVERY_EXPIRY / 3600:g} h undelivered"):
                log(f"gave up delivering the result of run {item.run_id}: {item.last_error}")
            pending = store.outbox_pending()
            active = store.list_runs(limit=1)
            if not pending and not active:
                now = time.monotonic()
                idle_since = idle_since or now
                if now - idle_since >= idle_exit:
                    # Let go of the lock, then look once more: a Spawner that found the lock held
                    # just before we let go did not start a deliverer, and relies on this one.
                    os.close(lock_fd)
                    if not store.outbox_pending() and not store.list_runs(limit=1):
                        return
                    fd = _try_lock(state_dir / LOCK_NAME)
                    if fd is None:
                        return  # another one took over
                    lock_fd = fd
                    _write_pid(lock_fd)
                    idle_since = None
                await anyio.sleep(POLL)
                continue
            idle_since = None
            delay = POLL
            if not active:  # only deliveries to wait for: sleep until the next one is due
                # (at most RECHECK: an item claimed by a process that stops is handed back early)
                nxt = min(item.next_attempt_at for item in pending)
                delay = min(max(POLL, nxt - time.time()), RECHECK)
            await anyio.sleep(delay)
    finally:
        await reporter.aclose()
        store.close()


def _orphaned(store: Any, item: Any) -> bool:
    """An item is ours to deliver once the process that ran its run is gone (a live supervisor
    delivers its own results, with its own retries, for as long as it lives)."""
    from .errors import RunNotFoundError
    from .store import _owner_alive

    try:
        rec = store.get_run(item.run_id)
    except RunNotFoundError:
        return True
    return not _owner_alive(rec.owner_pid, rec.owner_start)


def _write_pid(fd: int) -> None:
    from .store import current_owner

    pid, start = current_owner()
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid} {start}\n".encode(), 0)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m kimi_acp.deliverer")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--config")
    p.add_argument("--idle-exit", type=float, default=IDLE_EXIT)
    args = p.parse_args(argv)
    try:
        os.chdir("/")  # started by a reaper in a run's cwd: hold no directory of anyone's
    except OSError:
        pass
    try:
        os.nice(5)  # delivery is never urgent next to a running harness (and our imports compete with its boot)
    except OSError:
        pass
    state = Path(args.state_dir)
    try:
        lock_fd = _try_lock(state / LOCK_NAME)
    except OSError:
        return 1
    if lock_fd is None:
        return 0  # one runs already
    _write_pid(lock_fd)
    log = _Log(state / LOG_NAME)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    import anyio

    try:
        anyio.run(lambda: serve(state, args.config, lock_fd, log, idle_exit=args.idle_exit))
    except Exception as exc:  # noqa: BLE001 - the log is the only place anyone would see it
        from .redact import redact

        log(f"stopped by an error: {type(exc).__name__}: {redact(str(exc))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
