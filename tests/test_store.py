"""The durable run registry: records, the result outbox, transcripts, file modes, recovery."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kimi_acp.errors import RunNotFoundError
from kimi_acp.redact import Redactor, mask
from kimi_acp.store import (
    TERMINAL,
    RunRecord,
    Store,
    current_owner,
    default_state_dir,
    process_start_time,
)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state: Path, kimi_key: str) -> Iterator[Store]:
    s = Store(state, Redactor([kimi_key]))
    yield s
    s.close()


def _run(run_id: str, *, status: str = "running", created_at: float | None = None, **kw: object) -> RunRecord:
    return RunRecord(
        run_id=run_id, child_session_key=f"agent:claude:acp:{run_id}", status=status, task=f"task of {run_id}",  # type: ignore[arg-type]
        created_at=created_at if created_at is not None else time.time(), **kw,  # type: ignore[arg-type]
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _dead_process() -> tuple[int, str]:
    """(pid, start time) of a real process that has exited and been reaped."""
    child = subprocess.Popen(["sleep", "60"])
    start = process_start_time(child.pid)
    assert start is not None
    child.kill()
    child.wait()
    return child.pid, start


# --------------------------------------------------------------------------- runs


def test_create_get_list_update_finish(store: Store) -> None:
    rec = _run("r1", status="queued", label="fix", agent_id="claude", requester_agent_id="main",
               requester_session_key="agent:main:main", backend="kimi", model="kimi-k2.5", reason="global default",
               cwd="/w", mode="run", run_timeout_seconds=600)
    store.create_run(rec)
    got = store.get_run("r1")
    assert got == rec
    assert got.owner_pid == os.getpid() and got.owner_start == current_owner()[1]  # the creator owns it
    assert got.expects_completion is True and got.cancel_requested is False and got.usage == {}

    store.update_run("r1", status="running", pid=123, pgid=123, started_at=1.5)
    got = store.get_run("r1")
    assert (got.status, got.pid, got.pgid, got.started_at) == ("running", 123, 123, 1.5)

    store.finish_run("r1", status="ok", exit_code=0, result_text="done", error=None,
                     usage={"input_tokens": 10, "output_tokens": 2}, cost_usd=0.01, duration_ms=900,
                     claude_session_id="cs", num_turns=2)
    got = store.get_run("r1")
    assert got.status == "ok" and got.finished and got.ended_at is not None
    assert (got.exit_code, got.result_text, got.cost_usd, got.duration_ms, got.claude_session_id, got.num_turns) == (
        0, "done", 0.01, 900, "cs", 2)
    assert got.usage == {"input_tokens": 10, "output_tokens": 2}
    assert got.to_dict()["usage"] == {"input_tokens": 10, "output_tokens": 2} and got.to_dict()["run_id"] == "r1"


def test_list_runs_newest_first_and_active_only_by_default(store: Store) -> None:
    now = time.time()
    for i, status in enumerate(["running", "queued", "running", "queued"]):
        store.create_run(_run(f"r{i}", status=status, created_at=now + i))
    store.finish_run("r2", status="error", error="x")
    assert [r.run_id for r in store.list_runs()] == ["r3", "r1", "r0"]
    assert [r.run_id for r in store.list_runs(include_finished=True)] == ["r3", "r2", "r1", "r0"]
    assert [r.run_id for r in store.list_runs(include_finished=True, limit=2)] == ["r3", "r2"]


def test_update_run_validates(store: Store) -> None:
    store.create_run(_run("r1"))
    with pytest.raises(TypeError, match="bogus"):
        store.update_run("r1", bogus=1)
    with pytest.raises(TypeError, match="run_id"):
        store.update_run("r1", run_id="r2")
    with pytest.raises(ValueError, match="invalid run status"):
        store.update_run("r1", status="done")
    with pytest.raises(RunNotFoundError):
        store.update_run("nope", pid=1)
    with pytest.raises(ValueError, match="already exists"):
        store.create_run(_run("r1"))
    with pytest.raises(ValueError, match="invalid run status"):
        store.finish_run("r1", status="running")  # type: ignore[arg-type]


def test_unknown_run_lists_the_five_most_recent(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match="no runs yet"):
        store.get_run("ghost")
    now = time.time()
    for i in range(7):
        store.create_run(_run(f"run-{i}", created_at=now + i))
    with pytest.raises(RunNotFoundError) as err:
        store.get_run("ghost")
    msg = str(err.value)
    assert "'ghost'" in msg and "run-6, run-5, run-4, run-3, run-2" in msg
    assert "run-1" not in msg and err.value.exit_code == 6


def test_request_cancel(store: Store) -> None:
    store.create_run(_run("r1"))
    assert store.request_cancel("r1").cancel_requested is True
    store.create_run(_run("r2"))
    store.finish_run("r2", status="ok")
    assert store.request_cancel("r2").cancel_requested is False  # finished: nothing to cancel
    with pytest.raises(RunNotFoundError):
        store.request_cancel("nope")


# --------------------------------------------------------------------------- the outbox


def test_finish_with_outbox_is_one_transaction(store: Store) -> None:
    store.create_run(_run("r1"))
    # The second payload cannot be encoded: the failure happens after the run row was updated
    # and the first outbox row inserted, inside the transaction.
    with pytest.raises(TypeError):
        store.finish_run("r1", status="ok", result_text="done",
                         outbox=[("gateway", {"text": "done"}), ("gateway", {"bad": object()})])
    got = store.get_run("r1")
    assert got.status == "running" and got.result_text is None and got.ended_at is None
    assert store.outbox_pending() == []

    store.finish_run("r1", status="ok", result_text="done", outbox=[("gateway", {"text": "done"}), ("log", {"n": 1})])
    assert store.get_run("r1").status == "ok"
    assert [(i.run_id, i.target, i.payload) for i in store.outbox_pending()] == [
        ("r1", "gateway", {"text": "done"}), ("r1", "log", {"n": 1})]


def test_outbox_due_failed_delivered(store: Store) -> None:
    store.create_run(_run("r1"))
    store.create_run(_run("r2"))
    store.finish_run("r1", status="ok", outbox=[("gateway", {"run": "r1"})])
    store.finish_run("r2", status="error", outbox=[("gateway", {"run": "r2"})])
    now = time.time()
    due = store.outbox_due(now)
    assert [i.payload["run"] for i in due] == ["r1", "r2"]
    first, second = due
    assert first.attempts == 0 and first.delivered_at is None and first.next_attempt_at <= now

    store.outbox_mark_failed(first.id, "connection refused", next_attempt_at=now + 30)
    assert [i.id for i in store.outbox_due(now)] == [second.id]
    assert [i.id for i in store.outbox_due(now + 31)] == [second.id, first.id]  # oldest due first
    failed = store.outbox_pending("r1")[0]
    assert (failed.attempts, failed.last_error, failed.next_attempt_at) == (1, "connection refused", now + 30)

    store.outbox_mark_delivered(second.id)
    assert store.outbox_pending("r2") == []
    assert [i.id for i in store.outbox_pending()] == [first.id]  # pending ignores next_attempt_at
    assert store.outbox_due(now + 31, limit=5)[0].id == first.id
    store.outbox_mark_delivered(first.id)
    assert store.outbox_due(now + 3600) == [] and store.outbox_pending() == []
    with pytest.raises(KeyError):
        store.outbox_mark_delivered(999)


# --------------------------------------------------------------------------- files and secrets


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_state_dir() == tmp_path / "state"  # conftest sets KIMI_ACP_STATE_DIR
    monkeypatch.delenv("KIMI_ACP_STATE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".openclaw" / "kimi-acp"
    s = Store()
    try:
        assert s.db_path == tmp_path / "home" / ".openclaw" / "kimi-acp" / "runs.sqlite3"
    finally:
        s.close()


def test_file_modes_even_with_a_permissive_umask(state: Path) -> None:
    old = os.umask(0)
    try:
        s = Store(state / "deep")
        s.create_run(_run("r1"))
        s.append_transcript("r1", '{"type":"system"}')
    finally:
        os.umask(old)
    try:
        assert _mode(state / "deep") == 0o700
        assert _mode(s.db_path) == 0o600
        assert _mode(Path(f"{s.db_path}-wal")) == 0o600
        assert _mode(s.transcripts_dir) == 0o700
        assert _mode(s.transcript_path("r1")) == 0o600
    finally:
        s.close()


def test_transcript_lines_are_redacted_and_terminated(store: Store, kimi_key: str) -> None:
    store.append_transcript("r1", f'{{"type":"user","text":"key is {kimi_key}"}}')
    store.append_transcript("r1", "second line\n")
    store.append_transcript("r1", "stray sk-kimi-zzzzzzzzzzzzzzzzzzzz9999 too")  # key-shaped, unknown
    store.close_transcript("r1")
    store.append_transcript("r1", "after reopening")
    store.close_transcript("r1")
    text = store.transcript_path("r1").read_text()
    assert kimi_key not in text and mask(kimi_key) in text
    assert "zzzzzzzzzzzzzzzzzzzz9999" not in text
    assert text.splitlines()[1:] == ["second line", "stray sk-kimi-…9999 too", "after reopening"]
    assert text.endswith("\n") and text.count("\n") == 4
    with pytest.raises(ValueError, match="cannot name a transcript"):
        store.transcript_path("../escape")


def test_no_key_is_ever_at_rest(state: Path, kimi_key: str) -> None:
    s = Store(state, Redactor([kimi_key]))
    s.create_run(RunRecord(run_id="r1", child_session_key="k", status="running", task=f"use {kimi_key}"))
    s.update_run("r1", error=f"failed with {kimi_key}")
    s.finish_run("r1", status="error", error=f"bad {kimi_key}", result_text=kimi_key,
                 usage={"note": kimi_key}, outbox=[("gateway", {"text": f"key {kimi_key}", "nested": [kimi_key]})])
    s.append_transcript("r1", kimi_key)
    item = s.outbox_pending()[0]
    s.outbox_mark_failed(item.id, f"401 for {kimi_key}", time.time())
    got = s.get_run("r1")
    assert got.task == f"use {mask(kimi_key)}" and got.usage == {"note": mask(kimi_key)}
    assert s.outbox_pending()[0].payload == {"text": f"key {mask(kimi_key)}", "nested": [mask(kimi_key)]}
    s.close()
    for path in state.rglob("*"):
        if path.is_file():
            assert kimi_key.encode() not in path.read_bytes(), path


# --------------------------------------------------------------------------- processes and recovery


def test_process_start_time() -> None:
    pid, start = current_owner()
    assert pid == os.getpid() and start and start.isdigit()
    assert process_start_time(pid) == start
    dead_pid, _ = _dead_process()
    assert process_start_time(dead_pid) is None
    # An exited but unreaped child (a zombie) counts as gone.
    child = subprocess.Popen(["sleep", "60"])
    try:
        child.kill()
        deadline = time.time() + 5
        while process_start_time(child.pid) is not None and time.time() < deadline:
            time.sleep(0.01)
        assert process_start_time(child.pid) is None
    finally:
        child.wait()


def test_recover_marks_runs_of_a_dead_owner_lost(store: Store) -> None:
    dead_pid, dead_start = _dead_process()
    me_pid, me_start = current_owner()
    store.create_run(_run("dead-running", owner_pid=dead_pid, owner_start=dead_start, pid=4242, pgid=4242))
    store.create_run(_run("dead-queued", status="queued", owner_pid=dead_pid, owner_start=dead_start))
    store.create_run(_run("recycled-pid", owner_pid=me_pid, owner_start=str(int(me_start) - 1)))  # same pid, older process
    store.create_run(_run("alive", owner_pid=me_pid, owner_start=me_start))
    store.create_run(_run("dead-but-done", owner_pid=dead_pid, owner_start=dead_start))
    store.finish_run("dead-but-done", status="ok")

    killed: list[str] = []
    lost = store.recover(kill=lambda rec: killed.append(rec.run_id),
                         outbox_for=lambda rec: [("gateway", {"run": rec.run_id, "status": rec.status})])

    assert sorted(r.run_id for r in lost) == ["dead-queued", "dead-running", "recycled-pid"]
    assert sorted(killed) == ["dead-running", "recycled-pid"]  # only running runs have processes
    running = store.get_run("dead-running")
    assert running.status == "lost" and running.ended_at is not None
    assert running.error == f"the supervising process (pid {dead_pid}) died; the run's processes were killed"
    assert store.get_run("dead-queued").error == f"the supervising process (pid {dead_pid}) died before the run started"
    assert store.get_run("alive").status == "running"
    assert store.get_run("dead-but-done").status == "ok"
    assert sorted((i.run_id, i.payload["status"]) for i in store.outbox_pending()) == [
        ("dead-queued", "lost"), ("dead-running", "lost"), ("recycled-pid", "lost")]
    assert store.recover() == []  # idempotent


def test_recover_reports_a_failing_killer(store: Store) -> None:
    dead_pid, dead_start = _dead_process()
    store.create_run(_run("r1", owner_pid=dead_pid, owner_start=dead_start))

    def killer(rec: RunRecord) -> None:
        raise PermissionError("operation not permitted")

    (lost,) = store.recover(kill=killer)
    assert lost.status == "lost" and "killing the run's processes failed: operation not permitted" in (lost.error or "")


# --------------------------------------------------------------------------- sharing


def test_two_stores_on_one_dir_see_each_other(state: Path) -> None:
    a, b = Store(state), Store(state)
    try:
        a.create_run(_run("r1"))
        assert b.get_run("r1").status == "running"
        b.request_cancel("r1")
        assert a.get_run("r1").cancel_requested is True
        b.finish_run("r1", status="cancelled", outbox=[("gateway", {"x": 1})])
        assert a.get_run("r1").status == "cancelled"
        (item,) = a.outbox_due()
        a.outbox_mark_delivered(item.id)
        assert b.outbox_pending() == []
    finally:
        a.close()
        b.close()


def test_threads_share_one_store(store: Store) -> None:
    store.create_run(_run("r1"))

    def work(n: int) -> None:
        for i in range(20):
            store.update_run("r1", num_turns=n * 100 + i)
            store.append_transcript("r1", f"{n}:{i}")
            store.get_run("r1")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = store.transcript_path("r1").read_text().splitlines()
    assert sorted(lines) == sorted(f"{n}:{i}" for n in range(4) for i in range(20))


def test_terminal_set() -> None:
    assert TERMINAL == {"ok", "error", "timeout", "cancelled", "lost", "rate_limited"}


def test_another_process_sees_and_writes(state: Path, store: Store) -> None:
    """Like a CLI `kill` next to the gateway's supervisor: a second process on the same dir."""
    import sys

    store.create_run(_run("r1"))
    script = (
        "import sys; from pathlib import Path; from kimi_acp.store import Store, RunRecord\n"
        "s = Store(Path(sys.argv[1]))\n"
        "assert s.get_run('r1').status == 'running'\n"
        "s.request_cancel('r1')\n"
        "s.create_run(RunRecord(run_id='r2', child_session_key='k', status='queued', task='t'))\n"
        "s.close()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(state)], check=True, timeout=60)
    assert store.get_run("r1").cancel_requested is True
    assert store.get_run("r2").status == "queued"
    # r2's owner (the child process) has exited: recovery finds it.
    assert [r.run_id for r in store.recover()] == ["r2"]
