"""Faults end in a true record and a clear message: a full disk, a broken state dir, bad
limits, a failing worker — and the smaller rough edges (blank or non-UTF-8 tasks, unknown
targets, an unset ${VAR} key, huge tasks and transcripts, a dead backend, a hung gateway).
The CLI runs as a real process; a full disk is a real (small) tmpfs where one can be mounted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes.spawning import (
    CONTEXT,
    HOOKS_TOKEN,
    KIMI_ACP,
    REQUESTER,
    FakeHarness,
    fake_argv,
    make_pm,
    wrapper_script,
    write_config,
)
from kimi_acp.errors import ConfigError, MissingKeyError
from kimi_acp.hookspecs import hookimpl
from kimi_acp.store import RunRecord, Store

KEY = "sk-kimi-faults000000000000000000000000000f417"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_API_KEY", KEY)


def cli(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([KIMI_ACP, *args], input=stdin if stdin is not None else b"", capture_output=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    err = done.stderr.decode()
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    # one line saying what failed, then (the CLI's contract) at most one `hint:` line with the fix
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), err
    text = " ".join(lines)
    for needle in needles:
        assert needle in text, text
    return text


def _mount_tmpfs(path: Path, *options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("mode=700", *options)), "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --------------------------------------------------------------------------- the state dir


@pytest.mark.parametrize("kind", ["file", "dangling-symlink", "corrupt-db", "file-above"])
def test_state_dir_problems_are_one_line_errors(tmp_path: Path, kind: str) -> None:
    state = tmp_path / "broken-state"
    if kind == "file":
        state.write_text("not a dir")
        needles = [str(state), "is a file", "KIMI_ACP_STATE_DIR"]
    elif kind == "dangling-symlink":
        state.symlink_to(tmp_path / "gone")
        needles = [str(state), "does not exist", str(tmp_path / "gone")]
    elif kind == "file-above":
        (tmp_path / "blocker").write_text("x")
        state = tmp_path / "blocker" / "state"
        needles = [str(tmp_path / "blocker"), "is a file"]
    else:
        state.mkdir()
        (state / "runs.sqlite3").write_bytes(b"this is not an sqlite database at all" * 100)
        needles = [str(state / "runs.sqlite3"), "not a kimi-acp database", "mv "]
    for args in (["ps"], ["spawn", "hello", "--agent", "coder"]):
        done = cli(*args, env={"KIMI_ACP_STATE_DIR": str(state), "KIMI_ACP_NO_PRESTART": "1"})
        assert done.returncode == 2, done.stderr.decode()
        one_line_error(done, *needles)


def test_read_only_state_dir_is_a_one_line_error(tmp_path: Path) -> None:
    state = tmp_path / "ro-state"
    if not _mount_tmpfs(state, "size=1m", "ro"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        done = cli("ps", env={"KIMI_ACP_STATE_DIR": str(state)})
        assert done.returncode == 2
        one_line_error(done, str(state), "not writable")
    finally:
        _umount(state)


# --------------------------------------------------------------------------- config limits and the worker


@pytest.mark.parametrize("cap", [0, -1])
def test_per_backend_cap_below_1_is_refused_by_validation(tmp_path: Path, cap: int) -> None:
    write_config(tmp_path, limits={"perBackend": {"kimi": cap}})
    done = cli("spawn", "hello", "--agent", "coder")
    assert done.returncode == 2
    one_line_error(done, "limits.perBackend.kimi", "greater than or equal to 1")


@pytest.mark.parametrize(("limits", "where"), [
    ({"maxConcurrent": "8"}, "limits.maxConcurrent"),
    ({"graceSeconds": True}, "limits.graceSeconds"),
    ({"perBackend": {"kimi": "2"}}, "limits.perBackend.kimi"),
])
def test_our_section_does_not_coerce_types(tmp_path: Path, limits: dict, where: str) -> None:
    from kimi_acp.config import load_config

    write_config(tmp_path, limits=limits)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_config()


def test_the_workers_error_reaches_the_user(tmp_path: Path) -> None:
    write_config(tmp_path, limits={"perBackend": {"kimi": 0}})
    done = cli("spawn", "hello", "--agent", "coder", "--no-wait")
    assert done.returncode == 1
    line = one_line_error(done, "background worker exited", "limits.perBackend.kimi")
    assert "exited (2)" in line


# --------------------------------------------------------------------------- a disk that fills


def test_a_full_disk_keeps_the_finished_result_and_says_what_failed(tmp_path: Path) -> None:
    state = tmp_path / "state"  # where conftest points KIMI_ACP_STATE_DIR
    if not _mount_tmpfs(state, "size=3m"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        wrapper = wrapper_script(tmp_path, "big-output", "--mb", "8")  # more than the disk holds
        write_config(tmp_path, harness={"command": str(wrapper)})
        done = cli("spawn", "fill the disk", "--agent", "coder", "--json", timeout=120)
        err = done.stderr.decode()
        assert "Traceback" not in err and "ExceptionGroup" not in err, err
        assert done.returncode == 0, err
        out = json.loads(done.stdout)
        assert out["status"] == "ok" and out["result"] == "big"
        assert "No space left on device" in out["error"] and "transcript" in out["error"]
        assert "cannot start the harness" not in out["error"]
        with Store() as store:
            rec = store.get_run(out["runId"])
            assert (rec.status, rec.result_text) == ("ok", "big")  # in the database
            assert "No space left on device" in (rec.error or "")
    finally:
        from kimi_acp.deliverer import stop_deliverer

        stop_deliverer(state)
        _umount(state)


# --------------------------------------------------------------------------- tasks


def test_a_whitespace_only_task_is_refused(tmp_path: Path) -> None:
    write_config(tmp_path)
    done = cli("spawn", " \n\t ", "--agent", "coder")
    assert done.returncode == 2
    one_line_error(done, "task", "empty")


@pytest.mark.parametrize("source", ["stdin", "argv"])
def test_a_task_that_is_not_utf8_is_a_clear_error(tmp_path: Path, source: str) -> None:
    write_config(tmp_path)
    bad = b"fix caf\xe9 \xff bug"
    if source == "stdin":
        done = cli("spawn", "-", "--agent", "coder", stdin=bad)
    else:
        done = subprocess.run([os.fsencode(KIMI_ACP), b"spawn", bad, b"--agent", b"coder"], capture_output=True,
                              env=dict(os.environ), timeout=60)
    assert done.returncode == 2
    line = one_line_error(done, "not valid UTF-8", "0xe9")
    assert "pydantic" not in line and "Value error" not in line


def test_an_oversized_task_is_refused(tmp_path: Path) -> None:
    import anyio

    from kimi_acp.spawn import MAX_TASK_BYTES, Spawner

    write_config(tmp_path)

    async def go() -> dict:
        async with Spawner(pm=make_pm(FakeHarness(fake_argv("ok")))) as sp:
            return await sp.spawn({"task": "x" * (MAX_TASK_BYTES + 1), "runtime": "acp"}, CONTEXT)

    answer = anyio.run(go)
    assert answer["status"] == "error" and f"more than the {MAX_TASK_BYTES} allowed" in answer["error"]


def test_an_unknown_target_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "harness-ran"
    harness = tmp_path / "marking-harness"
    harness.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    harness.chmod(0o755)
    write_config(tmp_path, harness={"command": str(harness)})
    done = cli("spawn", "hello", "--agent", "coder", "--target", "ghost")
    assert done.returncode == 2
    one_line_error(done, "unknown target ACP agent 'ghost'", "claude")
    assert not marker.exists(), "Claude Code was started for an unknown target"


# --------------------------------------------------------------------------- keys


def test_an_unset_var_in_a_backends_api_key_does_not_fall_back(tmp_path: Path) -> None:
    from kimi_acp.config import load_config

    path = write_config(tmp_path)
    data = json.loads(path.read_text().split("\n", 1)[1])
    data["plugins"]["entries"]["kimi-acp"]["config"]["backends"]["kimi"]["apiKey"] = "${MY_TEAM_KIMI_KEY}"
    path.write_text(json.dumps(data))
    cfg = load_config()
    with pytest.raises(MissingKeyError, match="MY_TEAM_KIMI_KEY is not set"):
        cfg.backend("kimi").resolve_key(dict(os.environ))  # KIMI_API_KEY is set, and must not be used


# --------------------------------------------------------------------------- transcripts, timeouts, the gateway


@pytest.mark.asyncio
async def test_the_transcript_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kimi_acp import spawn as spawn_mod
    from kimi_acp.spawn import Spawner

    monkeypatch.setattr(spawn_mod, "MAX_TRANSCRIPT_BYTES", 64 * 1024)
    write_config(tmp_path)
    async with Spawner(pm=make_pm(FakeHarness(fake_argv("big-output", "--mb", "2")))) as sp:
        answer = await sp.spawn({"task": "lots of output", "runtime": "acp"}, CONTEXT)
        result = await sp.wait(answer["runId"], timeout=60)
        path = sp.store.transcript_path(answer["runId"])
    assert result.status == "ok" and result.result == "big"
    assert path.stat().st_size < 70 * 1024
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["subtype"] == "transcript_truncated"


@pytest.mark.asyncio
async def test_the_transcript_cap_is_in_bytes_and_configurable(tmp_path: Path) -> None:
    """``limits.transcriptMaxMB``; the cap holds in bytes (UTF-8), the marker line included."""
    from kimi_acp.spawn import Spawner

    write_config(tmp_path, limits={"transcriptMaxMB": 1})
    async with Spawner(pm=make_pm(FakeHarness(fake_argv("big-output", "--mb", "3")))) as sp:
        answer = await sp.spawn({"task": "lots of output", "runtime": "acp"}, CONTEXT)
        result = await sp.wait(answer["runId"], timeout=60)
        path = sp.store.transcript_path(answer["runId"])
    assert result.status == "ok"
    assert 2**20 - 64 * 1024 < path.stat().st_size <= 2**20
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["subtype"] == "transcript_truncated" and "transcriptMaxMB" in last["message"]


class EventRecorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def kimi_acp_run_event(self, run: Any, event: Any) -> None:
        if isinstance(event, dict):
            self.events.append(event)


@pytest.mark.asyncio
async def test_a_stream_line_over_8_mb_is_said_not_lost_silently(tmp_path: Path) -> None:
    """One huge message or tool input (a line over the 8 MB cut) is dropped whole, and said:
    in the transcript, in the run's record, and as a ``line_cut`` run event for the doors."""
    from kimi_acp.spawn import Spawner

    write_config(tmp_path)
    recorder = EventRecorder()
    async with Spawner(pm=make_pm(FakeHarness(fake_argv("long-line", "--mb", "9")), recorder)) as sp:
        answer = await sp.spawn({"task": "say a lot", "runtime": "acp"}, CONTEXT)
        result = await sp.wait(answer["runId"], timeout=60)
        rec = sp.store.get_run(answer["runId"])
        path = sp.store.transcript_path(answer["runId"])
    size = 9 * 2**20
    cut = [e for e in recorder.events if e.get("subtype") == "line_cut"]
    assert cut == [{"type": "kimi-acp", "subtype": "line_cut", "bytes": size, "message": cut[0]["message"]}]
    assert "9.0 MB" in cut[0]["message"] and "dropped" in cut[0]["message"] and "\n" not in cut[0]["message"]
    assert result.status == "ok" and result.result == "long"  # the lines around it went on
    assert cut[0]["message"] in (rec.error or "") and cut[0]["message"] in (result.error or "")
    marker = [json.loads(x) for x in path.read_text().splitlines() if "line_cut" in x]
    assert marker == cut
    assert path.stat().st_size < 64 * 1024  # the cut line itself is not in it


@pytest.mark.asyncio
async def test_a_timeout_says_the_backend_never_answered(tmp_path: Path) -> None:
    from kimi_acp.spawn import Spawner

    write_config(tmp_path)
    async with Spawner(pm=make_pm(FakeHarness(fake_argv("retrying", "--seconds", "60")))) as sp:
        answer = await sp.spawn({"task": "talk to a dead backend", "runtime": "acp", "runTimeoutSeconds": 1}, CONTEXT)
        result = await sp.wait(answer["runId"], timeout=60)
    assert result.status == "timeout"
    assert "exceeded its time limit" in (result.error or "")
    assert "retried the API 2 times" in (result.error or "") and "Connection error." in (result.error or "")


@pytest.mark.asyncio
async def test_a_hung_gateway_leaves_a_readable_last_error() -> None:
    from kimi_acp.report import GatewayReporter
    from kimi_acp.settings import KimiAcpSettings

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("", request=request)

    settings = KimiAcpSettings.model_validate({"report": {"gateway": {"url": "http://127.0.0.1:18789"}}})
    reporter = GatewayReporter(settings, {"OPENCLAW_HOOKS_TOKEN": HOOKS_TOKEN}, transport=httpx.MockTransport(hang))
    try:
        err = await reporter.deliver({"url": "http://127.0.0.1:18789/hooks/agent", "body": {"sessionKey": REQUESTER}})
    finally:
        await reporter.aclose()
    assert err is not None and err != "ReadTimeout: "
    assert "did not answer within 10 s" in err and "127.0.0.1:18789" in err


def test_undelivered_items_expire_with_a_recorded_reason(tmp_path: Path) -> None:
    with Store() as store:
        rid = f"exp-{uuid.uuid4()}"
        store.create_run(RunRecord(run_id=rid, child_session_key="agent:claude:acp:x", status="running", task="t"))
        store.finish_run(rid, status="ok", outbox=[("openclaw-gateway", {"url": "http://127.0.0.1:9/hooks/agent", "body": {}})])
        (item,) = store.outbox_pending(rid)
        store.outbox_mark_failed(item.id, "ConnectError: refused", time.time() + 1)
        assert store.outbox_expire(time.time() - 3600, "expired after 168 h undelivered") == []  # not old enough
        (expired,) = store.outbox_expire(time.time() + 1, "expired after 168 h undelivered")
        assert store.outbox_pending(rid) == [] and store.outbox_due(time.time() + 10_000) == []
        row = store._query("SELECT * FROM outbox WHERE id = ?", (item.id,))[0]
        assert row["expired_at"] is not None and row["delivered_at"] is None
        assert "expired after 168 h" in row["last_error"] and "ConnectError: refused" in row["last_error"]


def test_an_item_claimed_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Store() as store:
        rid = f"claim-{uuid.uuid4()}"
        store.create_run(RunRecord(run_id=rid, child_session_key="agent:claude:acp:x", status="running", task="t"))
        store.finish_run(rid, status="ok", outbox=[("openclaw-gateway", {"url": "http://127.0.0.1:9/hooks/agent", "body": {}})])
        (item,) = store.outbox_pending(rid)
        # A process that died mid-delivery holds a 60 s lease on it.
        store._conn.execute("UPDATE outbox SET next_attempt_at = ?, claimed_by = ? WHERE id = ?",
                            (time.time() + 60, f"{dead.pid}:1", item.id))
        (due,) = store.outbox_due()
        assert due.id == item.id and due.claimed_by == f"{dead.pid}:1"
        assert store.outbox_claim(item.id, steal_from=due.claimed_by)
        assert not store.outbox_claim(item.id, steal_from=due.claimed_by)  # ours now, and we live
        assert store.outbox_due() == []
