"""The durable run registry: runs, their transcripts, and the result outbox.

One SQLite file (WAL, ``busy_timeout`` 5 s) in the state dir, shared by every kimi-acp process
(gateway plugin, CLI, ACP agent); each :class:`Store` holds one connection guarded by a lock.

Why it looks like this:

* **A result is committed before anyone is told.** :meth:`Store.finish_run` writes the result
  and its outbox rows (one per party to tell) in one transaction; reporters deliver from the
  outbox and mark rows delivered, failed rows are retried later.
* **Runs outlive nothing silently.** Each run records its supervising process (pid plus the
  process start time from ``/proc``, so a recycled pid does not count); :meth:`Store.recover`
  marks runs of a dead supervisor ``lost`` and has their processes killed.
* **No secrets at rest.** Every text written (fields, outbox payloads, transcript lines) goes
  through a :class:`~kimi_acp.redact.Redactor`; the dir is 0700 and the files 0600 because
  tasks and transcripts may be private.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any, Literal

from .errors import RunNotFoundError
from .redact import Redactor, redact

RunStatus = Literal["queued", "running", "ok", "error", "timeout", "cancelled", "lost", "rate_limited"]
ACTIVE: frozenset[str] = frozenset({"queued", "running"})
TERMINAL: frozenset[str] = frozenset({"ok", "error", "timeout", "cancelled", "lost", "rate_limited"})

DB_NAME = "runs.sqlite3"
#: A file of :data:`RESERVE_BYTES` kept in the state dir and given back to the disk when it is
#: full, so that a finished run can still be recorded (see :meth:`Store.finish_run`).
RESERVE_NAME = "disk-reserve"
RESERVE_BYTES = 512 * 1024
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")


def default_state_dir() -> Path:
    """``$KIMI_ACP_STATE_DIR``, else ``~/.openclaw/kimi-acp`` (next to OpenClaw's own state)."""
    from .sessions import state_dir

    return state_dir()


# --------------------------------------------------------------------------- processes


def process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` (field 22 of ``/proc/<pid>/stat``, clock ticks since boot).

    None when the process is gone or a zombie: an exited supervisor is dead even before it
    is reaped. Together with the pid it names one process, even after pid reuse.
    """
    try:
        raw = Path(f"/proc/{int(pid)}/stat").read_text()
        # comm (field 2) may contain spaces and parentheses: split after its closing one.
        rest = raw[raw.rindex(")") + 2 :].split()
    except (OSError, ValueError):
        return None
    if len(rest) < 20 or rest[0] in ("Z", "X"):
        return None
    return rest[19]  # rest[0] is field 3 (state), so field 22 is rest[19]


def current_owner() -> tuple[int, str]:
    """(pid, start time) of this process, the identity recorded as a run's owner."""
    pid = os.getpid()
    return pid, process_start_time(pid) or ""


def _owner_alive(pid: int | None, start: str | None) -> bool:
    if pid is None:
        return False
    if not Path("/proc/self/stat").exists():  # no procfs: fall back to "does the pid exist"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    now = process_start_time(pid)
    return now is not None and (not start or now == start)


# --------------------------------------------------------------------------- records


@dataclass
class RunRecord:
    """One supervised harness run, as stored. Times are float epoch seconds."""

    run_id: str
    child_session_key: str
    status: RunStatus
    task: str
    label: str | None = None
    agent_id: str | None = None  # the target ACP agent (harness alias)
    requester_agent_id: str | None = None
    requester_session_key: str | None = None
    backend: str | None = None  # the backend's name only, never its key
    model: str | None = None
    reason: str | None = None  # why this backend (the routing rule)
    cwd: str | None = None
    mode: str | None = None
    run_timeout_seconds: float | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    pgid: int | None = None
    owner_pid: int | None = None
    owner_start: str | None = None
    exit_code: int | None = None
    result_text: str | None = None
    error: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = None  # what the run cost, priced by cost_source (see pricing.py)
    duration_ms: int | None = None
    claude_session_id: str | None = None
    num_turns: int | None = None
    cancel_requested: bool = False
    expects_completion: bool = True
    claude_code_version: str | None = None  # from the run's system/init event
    cost_source: str | None = None  # who priced cost_usd: kimi-acp (the model's cost) or claude-code

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for ``--json`` output and reports)."""
        return asdict(self)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass
class OutboxItem:
    """One message to deliver (``target`` says to whom/how; ``payload`` is the reporter's)."""

    id: int
    run_id: str
    target: str
    payload: dict[str, Any]
    created_at: float
    attempts: int
    next_attempt_at: float
    delivered_at: float | None
    last_error: str | None
    #: ``"pid:start"`` of the process delivering it right now (its lease); ``None`` when unclaimed.
    claimed_by: str | None = None
    #: When delivery was given up (see :meth:`Store.outbox_expire`); ``None`` while it is retried.
    expired_at: float | None = None


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RunRecord))
_REAL = {"run_timeout_seconds", "created_at", "started_at", "ended_at", "cost_usd"}
_INT = {"pid", "pgid", "owner_pid", "exit_code", "duration_ms", "num_turns"}
_BOOL = {"cancel_requested", "expects_completion"}
_JSON = {"usage"}


def _sql_type(name: str) -> str:
    if name in _REAL:
        return "REAL"
    if name in _INT or name in _BOOL:
        return "INTEGER"
    return "TEXT"


_RUNS_DDL = (
    "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, "
    + ", ".join(f"{n} {_sql_type(n)}" for n in _FIELD_NAMES if n != "run_id")
    + ")"
)
_OUTBOX_DDL = """CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    delivered_at REAL,
    last_error TEXT,
    claimed_by TEXT,
    expired_at REAL
)"""
_OUTBOX_ADDED = {"claimed_by": "TEXT", "expired_at": "REAL"}  # columns newer than the first outbox


def _record_from_row(row: sqlite3.Row) -> RunRecord:
    values: dict[str, Any] = {}
    for name in _FIELD_NAMES:
        value = row[name]
        if name in _BOOL:
            value = bool(value)
        elif name in _JSON:
            value = json.loads(value) if value else {}
        values[name] = value
    return RunRecord(**values)


def _outbox_from_row(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"], run_id=row["run_id"], target=row["target"], payload=json.loads(row["payload"]),
        created_at=row["created_at"], attempts=row["attempts"], next_attempt_at=row["next_attempt_at"],
        delivered_at=row["delivered_at"], last_error=row["last_error"],
        claimed_by=row["claimed_by"], expired_at=row["expired_at"],
    )


def _owner_token() -> str:
    pid, start = current_owner()
    return f"{pid}:{start}"


def _token_alive(token: str | None) -> bool:
    if not token:
        return False
    pid, _, start = token.partition(":")
    try:
        return _owner_alive(int(pid), start or None)
    except ValueError:
        return False


# --------------------------------------------------------------------------- files


def _private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700. An existing dir is left as is: it may be shared."""
    from .sessions import ensure_state_dir

    ensure_state_dir(path)


def _private_file(path: Path) -> None:
    """Create ``path`` if needed and make it 0600 (before anything is written to it)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- state dir problems


def check_state_dir(path: Path) -> None:
    """One-line errors (naming the path and the fix) for a state dir that cannot work."""
    from .errors import StateDirError

    fix = "or set KIMI_ACP_STATE_DIR to another directory"
    if path.is_symlink() and not path.exists():
        target = os.readlink(path)
        raise StateDirError(f"state dir {path} is a symlink to {target}, which does not exist; "
                            f"fix: create it (mkdir -m 700 {target}), remove the link, {fix}")
    if path.exists() and not path.is_dir():
        raise StateDirError(f"state dir {path} is a file, not a directory; fix: move it away, {fix}")
    for parent in path.parents:  # a file in the way further up
        if parent.exists():
            if not parent.is_dir():
                raise StateDirError(f"state dir {path} cannot be created: {parent} is a file; fix: move it away, {fix}")
            break


def _state_dir_error(path: Path, exc: OSError) -> Exception:
    from .errors import StateDirError

    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StateDirError(f"state dir {path} is not writable ({exc.strerror}); fix: make it writable "
                             "(chmod u+w, or remount read-write), or set KIMI_ACP_STATE_DIR to a writable directory")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StateDirError(f"state dir {path}: {exc.strerror}; fix: free some space there, or set KIMI_ACP_STATE_DIR elsewhere")
    return StateDirError(f"state dir {path} cannot be used: {exc.strerror or exc} ({getattr(exc, 'filename', None) or path}); "
                         "fix: fix it, or set KIMI_ACP_STATE_DIR to another directory")


def _no_space(path: Path) -> bool:
    """Is the file system of ``path`` (nearly) out of space for us?"""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def is_disk_full(exc: BaseException, path: Path | None = None) -> bool:
    """A full disk (or quota), as SQLite or the OS reports it. SQLite says "disk I/O error"
    when it cannot grow its shared-memory file: with ``path``, that counts when the file
    system of ``path`` has no space left."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
            return True
        return path is not None and "disk I/O" in str(exc) and _no_space(path)
    return False


def state_fault(path: Path, exc: BaseException) -> Exception:
    """A :class:`~kimi_acp.errors.StateDirError` (one line naming the path, with ``fix:``) for
    any fault of the state dir or its database; other errors are returned as they are."""
    from .errors import StateDirError

    if isinstance(exc, StateDirError):
        return exc
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and any(
                w in text for w in ("readonly", "read-only", "disk is full", "disk I/O", "not a database", "malformed")):
            return _database_error(path / DB_NAME, exc)
        if "locked" in text or "busy" in text:
            return StateDirError(f"{path / DB_NAME} is busy ({text}): another kimi-acp process held it too long; "
                                 "fix: try again")
        return StateDirError(f"{path / DB_NAME}: {text}; fix: check the state dir (kimi-acp doctor), "
                             "or set KIMI_ACP_STATE_DIR elsewhere")
    if isinstance(exc, OSError):
        return _state_dir_error(path, exc)
    return exc


def _database_error(db: Path, exc: sqlite3.DatabaseError) -> Exception:
    from .errors import StateDirError

    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return StateDirError(f"{db} is read-only ({text}); fix: make it and its directory writable, "
                             "or set KIMI_ACP_STATE_DIR to a writable directory")
    if "disk is full" in text or ("disk I/O" in text and _no_space(db.parent)):
        return StateDirError(f"{db}: the disk is full ({text}); fix: free some space there, or set KIMI_ACP_STATE_DIR elsewhere")
    if "disk I/O" in text:
        return StateDirError(f"{db}: {text}; fix: check the disk (dmesg), or set KIMI_ACP_STATE_DIR elsewhere")
    return StateDirError(f"{db} is not a kimi-acp database ({text}); fix: move it away "
                         f"(mv {db} {db}.broken) and a new one is made, losing the run history")


# --------------------------------------------------------------------------- the store


class Store:
    """The run registry of one state dir. Safe to share between threads; several processes
    may open the same dir at once (SQLite WAL; writers wait up to 5 s for each other)."""

    def __init__(self, state_dir: Path | None = None, redactor: Redactor | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.db_path = self.state_dir / DB_NAME
        self.transcripts_dir = self.state_dir / "transcripts"
        self._redact: Callable[[str], str] = redactor if redactor is not None else redact
        self._lock = threading.RLock()
        self._transcripts: dict[str, IO[str]] = {}
        self._transcript_lock = threading.Lock()
        check_state_dir(self.state_dir)
        try:
            _private_dir(self.state_dir)
            _private_file(self.db_path)  # SQLite gives -wal and -shm the db file's mode
        except OSError as exc:
            raise _state_dir_error(self.state_dir, exc) from None
        self._conn = sqlite3.connect(
            str(self.db_path), timeout=5.0, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 5000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across a crash of the process (kill -9); FULL would add an fsync per commit
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise _database_error(self.db_path, exc) from None
        self.keep_reserve()

    # -- the disk reserve

    @property
    def reserve_path(self) -> Path:
        return self.state_dir / RESERVE_NAME

    def keep_reserve(self) -> bool:
        """Make sure the disk reserve exists (a stat when it does). Never raises: on a full disk
        there is none, and the next store that opens tries again."""
        path = self.reserve_path
        try:
            if path.stat().st_size >= RESERVE_BYTES:
                return True
        except OSError:
            pass
        tmp = path.with_name(f".{RESERVE_NAME}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                try:
                    os.posix_fallocate(fd, 0, RESERVE_BYTES)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    os.write(fd, b"\0" * RESERVE_BYTES)  # no fallocate on this file system
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            return True
        except OSError:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            return False

    def release_reserve(self) -> bool:
        """Give the disk reserve back (the disk is full and a result must be recorded)."""
        try:
            self.reserve_path.unlink()
            return True
        except OSError:
            return False

    # -- plumbing

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: take the write lock up front, so two
        processes never deadlock upgrading read locks); rolled back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute(_RUNS_DDL)
            have = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
            for name in _FIELD_NAMES:  # a db from an older kimi-acp gains the new columns
                if name not in have:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {name} {_sql_type(name)}")
            db.execute("CREATE INDEX IF NOT EXISTS runs_status ON runs(status)")
            db.execute("CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at)")
            db.execute(_OUTBOX_DDL)
            have = {row["name"] for row in db.execute("PRAGMA table_info(outbox)")}
            for name, kind in _OUTBOX_ADDED.items():
                if name not in have:
                    db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {kind}")
            db.execute("CREATE INDEX IF NOT EXISTS outbox_due ON outbox(delivered_at, next_attempt_at)")

    def _clean(self, value: Any) -> Any:
        """Redact every string inside ``value`` (before JSON encoding, so escaping cannot hide a key)."""
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean(v) for v in value]
        return value

    def _column_value(self, name: str, value: Any) -> Any:
        if name in _BOOL:
            return int(bool(value))
        if name in _JSON:
            return json.dumps(self._clean(value or {}))
        if isinstance(value, str) and name != "run_id":
            return self._redact(value)
        return value

    def _check_status(self, status: str, allowed: Iterable[str] = ACTIVE | TERMINAL) -> None:
        if status not in allowed:
            raise ValueError(f"invalid run status {status!r}; expected one of: {', '.join(sorted(allowed))}")

    def _not_found(self, run_id: str) -> RunNotFoundError:
        recent = [r["run_id"] for r in self._query("SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 5")]
        known = f"the most recent are: {', '.join(recent)}" if recent else "there are no runs yet"
        return RunNotFoundError(f"no run {run_id!r} in {self.db_path}; {known}")

    # -- runs

    def create_run(self, rec: RunRecord) -> None:
        """Insert a new run. Without an owner, the calling process becomes its owner."""
        self._check_status(rec.status)
        if rec.owner_pid is None:
            rec.owner_pid, rec.owner_start = current_owner()
        names = ", ".join(_FIELD_NAMES)
        marks = ", ".join("?" for _ in _FIELD_NAMES)
        values = [self._column_value(n, getattr(rec, n)) for n in _FIELD_NAMES]
        try:
            with self._tx() as db:
                db.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", values)
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"run {rec.run_id!r} already exists in {self.db_path}") from exc

    def update_run(self, run_id: str, **fields_: Any) -> None:
        """Set some fields of a run. Unknown field names are a ``TypeError``, like bad kwargs."""
        unknown = sorted(set(fields_) - set(_FIELD_NAMES) | ({"run_id"} & set(fields_)))
        if unknown:
            raise TypeError(f"update_run got unknown field(s) {', '.join(unknown)}; known: {', '.join(_FIELD_NAMES[1:])}")
        if "status" in fields_:
            self._check_status(fields_["status"])
        if not fields_:
            return
        sets = ", ".join(f"{n} = ?" for n in fields_)
        values = [self._column_value(n, v) for n, v in fields_.items()]
        with self._tx() as db:
            updated = db.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*values, run_id]).rowcount
        if not updated:
            raise self._not_found(run_id)

    def get_run(self, run_id: str) -> RunRecord:
        """The run, or :class:`RunNotFoundError` naming the most recent run ids."""
        rows = self._query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise self._not_found(run_id)
        return _record_from_row(rows[0])

    def list_runs(self, *, include_finished: bool = False, limit: int = 100) -> list[RunRecord]:
        """Runs, newest first; only queued and running ones unless ``include_finished``."""
        where = "" if include_finished else "WHERE status IN ('queued', 'running')"
        rows = self._query(f"SELECT * FROM runs {where} ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
        return [_record_from_row(r) for r in rows]

    def find_by_claude_session(self, claude_session_id: str) -> RunRecord | None:
        """The newest run that had this Claude Code conversation (``sessionId``), or None."""
        rows = self._query("SELECT run_id FROM runs WHERE claude_session_id = ? ORDER BY created_at DESC LIMIT 1", (claude_session_id,))
        return self.get_run(rows[0]["run_id"]) if rows else None

    def release_runs(self, run_ids: Sequence[str]) -> int:
        """Give finished runs up: no live process owns them any more, so the deliverer (which
        delivers only what no living supervisor owns) takes their undelivered results. For a
        Spawner that exits inside a process that lives on (an embedding host, a test)."""
        ids = list(run_ids)
        if not ids:
            return 0
        marks = ", ".join("?" for _ in ids)
        with self._tx() as db:
            return db.execute(
                f"UPDATE runs SET owner_pid = NULL, owner_start = NULL WHERE run_id IN ({marks}) "
                "AND status NOT IN ('queued', 'running')",
                ids,
            ).rowcount

    def finish_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        exit_code: int | None = None,
        result_text: str | None = None,
        error: str | None = None,
        usage: dict[str, Any] | None = None,
        cost_usd: float | None = None,
        cost_source: str | None = None,
        duration_ms: int | None = None,
        claude_session_id: str | None = None,
        num_turns: int | None = None,
        outbox: Sequence[tuple[str, dict[str, Any]]] = (),
        ended_at: float | None = None,
    ) -> str | None:
        """Record a run's result and queue its notifications in ONE transaction, so a result
        is on disk before anyone is told and nobody is told about a result that is not.

        On a full disk the run is still recorded with its real status: the disk reserve is
        given back and the result written again; if even that does not fit, the status, exit
        code and an error naming the disk are (without the result text and the report).
        Returns the error recorded in that last case (``None`` when all was saved); raises
        (a :class:`~kimi_acp.errors.StateDirError` for the state dir's faults) only when
        nothing could be recorded."""
        self._check_status(status, TERMINAL)
        now = time.time()
        values = {
            "status": status, "ended_at": ended_at if ended_at is not None else now, "exit_code": exit_code,
            "result_text": result_text, "error": error, "usage": usage or {}, "cost_usd": cost_usd, "cost_source": cost_source,
            "duration_ms": duration_ms, "claude_session_id": claude_session_id, "num_turns": num_turns,
        }

        def write(values: dict[str, Any], outbox: Sequence[tuple[str, dict[str, Any]]]) -> None:
            sets = ", ".join(f"{n} = ?" for n in values)
            with self._tx() as db:
                params = [self._column_value(n, v) for n, v in values.items()]
                if not db.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*params, run_id]).rowcount:
                    raise self._not_found(run_id)
                self._insert_outbox(db, run_id, outbox, now)

        self.close_transcript(run_id)
        try:
            write(values, outbox)
            return None
        except (sqlite3.Error, OSError) as exc:
            if not is_disk_full(exc, self.state_dir):
                raise state_fault(self.state_dir, exc) from None
        if self.release_reserve():
            try:
                write(values, outbox)
                return None
            except (sqlite3.Error, OSError) as exc:
                if not is_disk_full(exc, self.state_dir):
                    raise state_fault(self.state_dir, exc) from None
        why = (f"the disk of the state dir {self.state_dir} is full: only this status was saved, not the result text "
               "or its report (free some space there)")
        short = {"status": status, "ended_at": values["ended_at"], "exit_code": exit_code,
                 "error": f"{error}; {why}" if error else why}
        try:
            write(short, ())
        except (sqlite3.Error, OSError) as exc:
            raise state_fault(self.state_dir, exc) from None
        return why

    def request_cancel(self, run_id: str) -> RunRecord:
        """Flag a run for cancelling (its supervisor acts on it); a finished run is returned as is."""
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET cancel_requested = 1 WHERE run_id = ? AND status IN ('queued', 'running')", (run_id,)
            )
        return self.get_run(run_id)

    # -- outbox

    def _insert_outbox(
        self, db: sqlite3.Connection, run_id: str, items: Iterable[tuple[str, dict[str, Any]]], now: float
    ) -> None:
        for target, payload in items:
            db.execute(
                "INSERT INTO outbox (run_id, target, payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                (run_id, target, json.dumps(self._clean(payload)), now, now),
            )

    def outbox_due(self, now: float | None = None, limit: int = 50) -> list[OutboxItem]:
        """Undelivered, unexpired items whose next attempt is due, oldest due first — and
        items claimed by a process that has died since (its lease would otherwise hold them)."""
        now = time.time() if now is None else now
        rows = self._query(
            "SELECT * FROM outbox WHERE delivered_at IS NULL AND expired_at IS NULL AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        )
        held = self._query(
            "SELECT * FROM outbox WHERE delivered_at IS NULL AND expired_at IS NULL AND next_attempt_at > ? "
            "AND claimed_by IS NOT NULL ORDER BY id LIMIT ?",
            (now, limit),
        )
        orphaned = [r for r in held if not _token_alive(r["claimed_by"])]
        return [_outbox_from_row(r) for r in [*orphaned, *rows]][:limit]

    def outbox_claim(self, item_id: int, *, lease: float = 60.0, now: float | None = None,
                     steal_from: str | None = None) -> bool:
        """Reserve a due item for ``lease`` seconds; False if another process got it first.
        ``steal_from`` (the ``claimed_by`` of a dead process) takes over an item whose lease
        that process can no longer honour."""
        now = time.time() if now is None else now
        with self._tx() as db:
            return db.execute(
                "UPDATE outbox SET next_attempt_at = ?, claimed_by = ? WHERE id = ? AND delivered_at IS NULL "
                "AND expired_at IS NULL AND (next_attempt_at <= ? OR (claimed_by IS ? AND ? IS NOT NULL))",
                (now + lease, _owner_token(), item_id, now, steal_from, steal_from),
            ).rowcount == 1

    def outbox_release(self, item_id: int, error: str, next_attempt_at: float | None = None) -> None:
        """Give a claimed item back without counting a try (the delivering process is stopping)."""
        self._outbox_update(
            item_id, "claimed_by = NULL, last_error = ?, next_attempt_at = ?",
            (self._redact(error), time.time() if next_attempt_at is None else next_attempt_at),
        )

    def outbox_mark_delivered(self, item_id: int) -> None:
        """The item was delivered; ``attempts`` counts this (successful) try too."""
        self._outbox_update(item_id, "delivered_at = ?, attempts = attempts + 1, claimed_by = NULL", (time.time(),))

    def outbox_mark_failed(self, item_id: int, error: str, next_attempt_at: float) -> None:
        """A delivery try failed: count it, keep the (redacted) error, and schedule the next try."""
        self._outbox_update(
            item_id, "attempts = attempts + 1, last_error = ?, next_attempt_at = ?, claimed_by = NULL",
            (self._redact(error), next_attempt_at),
        )

    def outbox_expire(self, created_before: float, reason: str) -> list[OutboxItem]:
        """Give up on undelivered items created before ``created_before``: they stop being retried,
        keep their last error, and record ``reason``. Returns the items expired."""
        now = time.time()
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM outbox WHERE delivered_at IS NULL AND expired_at IS NULL AND created_at < ?",
                (created_before,),
            ).fetchall()
            for row in rows:
                last = row["last_error"] or "never attempted"
                db.execute(
                    "UPDATE outbox SET expired_at = ?, claimed_by = NULL, last_error = ? WHERE id = ?",
                    (now, self._redact(f"{reason} (last error: {last})"), row["id"]),
                )
        return [_outbox_from_row(r) for r in rows]

    def _outbox_update(self, item_id: int, sets: str, params: Sequence[Any]) -> None:
        with self._tx() as db:
            if not db.execute(f"UPDATE outbox SET {sets} WHERE id = ?", [*params, item_id]).rowcount:
                raise KeyError(f"no outbox item {item_id} in {self.db_path}")

    def outbox_pending(self, run_id: str | None = None) -> list[OutboxItem]:
        """Every undelivered item still being retried (due or not), optionally of one run."""
        sql = "SELECT * FROM outbox WHERE delivered_at IS NULL AND expired_at IS NULL"
        params: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " AND run_id = ?"
            params = (run_id,)
        return [_outbox_from_row(r) for r in self._query(sql + " ORDER BY id", params)]

    # -- transcripts

    def transcript_path(self, run_id: str) -> Path:
        """``<state>/transcripts/<run_id>.jsonl``; a run id that is not a safe file name is refused."""
        if not _SAFE_RUN_ID.match(run_id):
            raise ValueError(f"run id {run_id!r} cannot name a transcript file (letters, digits, . _ : @ - only)")
        return self.transcripts_dir / f"{run_id}.jsonl"

    def append_transcript(self, run_id: str, line: str) -> None:
        """Append one redacted, newline-terminated line; flushed at once so ``logs -f`` sees it.
        The file handle stays open until :meth:`close_transcript`."""
        text = self._redact(line.rstrip("\r\n")) + "\n"
        with self._transcript_lock:
            handle = self._transcripts.get(run_id)
            if handle is None or handle.closed:
                path = self.transcript_path(run_id)
                _private_dir(self.transcripts_dir)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.fchmod(fd, 0o600)
                handle = os.fdopen(fd, "a", encoding="utf-8", errors="replace")
                self._transcripts[run_id] = handle
            handle.write(text)
            handle.flush()

    def close_transcript(self, run_id: str) -> None:
        with self._transcript_lock:
            handle = self._transcripts.pop(run_id, None)
        if handle is not None:
            handle.close()

    # -- recovery

    def recover(
        self,
        *,
        kill: Callable[[RunRecord], None] | None = None,
        outbox_for: Callable[[RunRecord], Iterable[tuple[str, dict[str, Any]]]] | None = None,
    ) -> list[RunRecord]:
        """Mark queued/running runs whose supervising process is gone as ``lost``.

        For running ones ``kill(rec)`` is called first (the supervisor's killer: every process
        with ``KIMI_ACP_RUN_ID=<run_id>`` in its environ, and the pgid). ``outbox_for(rec)``
        may return notifications, queued in the same transaction as the ``lost`` status.
        Runs of a live owner are left alone. Returns the runs marked lost.
        """
        lost: list[RunRecord] = []
        for rec in self.list_runs(limit=1_000_000):
            if _owner_alive(rec.owner_pid, rec.owner_start):
                continue
            who = f"the supervising process (pid {rec.owner_pid})"
            if rec.status == "queued":
                error = f"{who} died before the run started"
            elif kill is None:
                error = f"{who} died; the run's processes were not killed (no killer given)"
            else:
                try:
                    kill(rec)
                    error = f"{who} died; the run's processes were killed"
                except Exception as exc:  # noqa: BLE001 - report it, and still mark the run lost
                    error = f"{who} died; killing the run's processes failed: {exc}"
            now = time.time()
            with self._tx() as db:
                changed = db.execute(
                    "UPDATE runs SET status = 'lost', error = ?, ended_at = ? WHERE run_id = ? "
                    "AND status IN ('queued', 'running') AND owner_pid IS ? AND owner_start IS ?",
                    (self._redact(error), now, rec.run_id, rec.owner_pid, rec.owner_start),
                ).rowcount
                if changed:
                    rec.status, rec.error, rec.ended_at = "lost", error, now
                    if outbox_for is not None:
                        self._insert_outbox(db, rec.run_id, outbox_for(rec), now)
            if changed:
                self.close_transcript(rec.run_id)
                lost.append(rec)
        return lost

    # -- lifetime

    def close(self) -> None:
        """Close every transcript handle and the database connection."""
        with self._transcript_lock:
            handles, self._transcripts = list(self._transcripts.values()), {}
        for handle in handles:
            handle.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
