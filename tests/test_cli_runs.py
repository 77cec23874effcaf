"""``kimi-acp spawn --no-wait / wait / ps / logs / kill`` as real subprocesses, with a fake
harness behind ``harness.command`` (a wrapper script that ignores Claude Code's flags)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.spawning import (
    HOOKS_TOKEN,
    KIMI_ACP,
    REQUESTER,
    TERMINAL,
    assert_no_orphans,
    fake_line,
    is_alive,
    wait_until_sync,
    wrapper_script,
    write_config,
)
from kimi_acp.store import Store
from kimi_acp.stub.gateway import GatewayStub

KEY = "sk-kimi-clirunstests0000000000000000000000f00d"


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    monkeypatch.setenv("OPENCLAW_HOOKS_TOKEN", HOOKS_TOKEN)


@pytest.fixture
def gateway() -> Iterator[GatewayStub]:
    with GatewayStub(token=HOOKS_TOKEN) as gw:
        yield gw


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [KIMI_ACP, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ), stdin=subprocess.DEVNULL
    )
    assert KEY not in done.stdout and KEY not in done.stderr, "the API key leaked into CLI output"
    return done


def record(run_id: str) -> Any:
    with Store() as store:
        return store.get_run(run_id)


def wait_worker_gone(pid: int | None, timeout: float = 10) -> None:
    assert pid
    wait_until_sync(lambda: not is_alive(pid), timeout, f"the background worker {pid} to exit")


def test_no_wait_then_wait_ps_logs(tmp_path: Path, gateway: GatewayStub) -> None:
    harness = wrapper_script(tmp_path, "sleep", "--seconds", "1.5")
    write_config(tmp_path, harness={"command": str(harness)}, gateway_url=gateway.url)

    t0 = time.monotonic()
    spawned = cli("spawn", "a background job", "--agent", "coder", "--session", REQUESTER, "--no-wait", "--label", "bg", "--json")
    elapsed = time.monotonic() - t0
    assert spawned.returncode == 0, spawned.stderr
    answer = json.loads(spawned.stdout)
    run_id = answer["runId"]
    assert answer["status"] in ("queued", "running") and answer["backend"] == "kimi"
    assert answer["delivery"]["state"] == "waiting"  # a gateway and a requester session: it will be reported
    assert answer["childSessionKey"].startswith("agent:claude:acp:")
    assert record(run_id).status not in TERMINAL, "spawn --no-wait waited for the run"
    assert elapsed < 10

    waited = cli("wait", run_id[:8], timeout=30)  # a unique prefix is enough
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.strip() == "slept"
    assert f"run {run_id} ok" in waited.stderr

    as_json = cli("wait", run_id, "--json")
    out = json.loads(as_json.stdout)
    assert out["status"] == "ok" and out["runId"] == run_id and out["result"] == "slept"

    listed = cli("ps", "--all", "--json")
    assert listed.returncode == 0
    rows = {r["runId"]: r for r in json.loads(listed.stdout)}
    assert rows[run_id]["status"] == "ok" and rows[run_id]["label"] == "bg" and rows[run_id]["backend"] == "kimi"
    assert "owner_start" not in rows[run_id]
    assert set(rows[run_id]) == set(out)  # one run shape from ps and wait
    active = json.loads(cli("ps", "--json").stdout)
    assert run_id not in {r["runId"] for r in active}
    table = cli("ps", "--all")
    assert run_id[:8] in table.stdout and "bg" in table.stdout

    logs = cli("logs", run_id, "--raw")
    assert logs.returncode == 0
    types = [json.loads(line)["type"] for line in logs.stdout.splitlines() if line.startswith("{")]
    assert types == ["system", "result"]

    rec = record(run_id)
    wait_worker_gone(rec.owner_pid)
    # The worker delivered the completion event before it left.
    assert [d.body["idempotencyKey"] for d in gateway.deliveries] == [f"kimi-acp:{run_id}"]
    assert_no_orphans(run_id, rec.pgid)


def test_kill_a_background_run(tmp_path: Path) -> None:
    harness = wrapper_script(tmp_path, "sleep", "--seconds", "120", "--grandchild", "--setsid-grandchild")
    write_config(tmp_path, harness={"command": str(harness)})
    spawned = cli("spawn", "sleep for a long time", "--agent", "coder", "--no-wait", "--json")
    assert spawned.returncode == 0, spawned.stderr
    run_id = json.loads(spawned.stdout)["runId"]

    with Store() as store:
        path = store.transcript_path(run_id)
    kids = wait_until_sync(lambda: fake_line(path, "grandchildren"), 15, "the run's grandchildren")
    rec = record(run_id)
    assert rec.status == "running" and rec.pgid
    grandchildren = kids["grandchildren"] + kids["escaped"]
    assert all(is_alive(p) for p in grandchildren)  # the control

    t0 = time.monotonic()
    killed = cli("kill", run_id)
    assert killed.returncode == 0, killed.stderr
    assert killed.stdout.strip() == f"run {run_id} cancelled"
    assert time.monotonic() - t0 < 12
    rec = record(run_id)
    assert rec.status == "cancelled" and rec.cancel_requested
    assert_no_orphans(run_id, rec.pgid, grandchildren)
    wait_worker_gone(rec.owner_pid)

    again = cli("kill", run_id)
    assert again.returncode == 0 and "already cancelled" in again.stdout
    waited = cli("wait", run_id)
    assert waited.returncode == 130  # the exit code of a cancelled run


def test_wait_timeout_and_unknown_run(tmp_path: Path) -> None:
    harness = wrapper_script(tmp_path, "sleep", "--seconds", "30")
    write_config(tmp_path, harness={"command": str(harness)})
    spawned = cli("spawn", "slow", "--agent", "coder", "--no-wait", "--json")
    run_id = json.loads(spawned.stdout)["runId"]
    try:
        waited = cli("wait", run_id, "--timeout", "0.5")
        assert waited.returncode == 7  # still running: not 124, which is a run that timed out
        assert "still running" in waited.stderr or "still queued" in waited.stderr
        unknown = cli("wait", "does-not-exist")
        assert unknown.returncode == 6
        assert "no run 'does-not-exist'" in unknown.stderr and run_id in unknown.stderr
    finally:
        assert cli("kill", run_id).returncode == 0
    rec = record(run_id)
    assert rec.status == "cancelled"
    assert_no_orphans(run_id, rec.pgid)
    wait_worker_gone(rec.owner_pid)


def test_refused_spawn_exit_code_and_json(tmp_path: Path) -> None:
    write_config(tmp_path, harness={"command": str(wrapper_script(tmp_path, "ok"))})
    refused = cli("spawn", "x", "--model", "nope/nothing", "--json")
    assert refused.returncode == 2
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "spawn_failed" and "unknown model 'nope/nothing'" in error["message"]
    assert record(error["runId"]).status == "error"
    waited = cli("wait", error["runId"])
    assert waited.returncode == 2, "a refused run exits 2 from wait too, as from spawn"
    refused_bg = cli("spawn", "x", "--model", "nope/nothing", "--no-wait", "--json")
    assert refused_bg.returncode == 2 and json.loads(refused_bg.stdout)["error"]["code"] == "spawn_failed"
    text = cli("spawn", "x", "--model", "nope/nothing")
    assert text.returncode == 2 and text.stdout == ""
    assert text.stderr.startswith("kimi-acp spawn: error: unknown model 'nope/nothing'")


def test_spawn_fake_in_foreground_json(tmp_path: Path) -> None:
    write_config(tmp_path, harness={"command": str(wrapper_script(tmp_path, "ok", "--text", "foreground fake"))})
    done = cli("spawn", "-", "--agent", "coder", "--json", "--env", "EXTRA=1")
    # the task came from stdin ('-'), which was empty: an empty task is refused
    assert done.returncode == 2 and "task" in json.loads(done.stdout)["error"]["message"]
    done = cli("spawn", "do it", "--agent", "coder", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "ok" and out["result"] == "foreground fake" and out["error"] is None
