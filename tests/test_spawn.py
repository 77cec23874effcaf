"""The Spawner with fake harnesses (real tiny programs, no mocks): limits, timeouts,
cancel, the queue, bad output, the task on stdin, refusals and the hooks.

Every test that ends a run asserts, by scanning /proc, that nothing of the run
(its process group, grandchildren, and anything carrying its KIMI_ACP_RUN_ID) lives on.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from fakes.spawning import (
    CONTEXT,
    FakeHarness,
    StartedProbe,
    assert_no_orphans,
    fake_argv,
    fake_line,
    make_pm,
    transcript_objects,
    wait_until,
    write_config,
)
from kimi_acp.hookspecs import hookimpl
from kimi_acp.spawn import SpawnRequest, Spawner

pytestmark = pytest.mark.asyncio

KEY = "sk-kimi-spawntests0000000000000000000000beef"
GRACE = 0.5


@pytest.fixture(autouse=True)
def kimi_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_API_KEY", KEY)


def spawner(*plugins: Any) -> Spawner:
    return Spawner(environ=dict(os.environ), pm=make_pm(*plugins))


def acp(task: str = "do the thing", **kw: Any) -> dict[str, Any]:
    return {"task": task, "runtime": "acp", **kw}


async def running_record(sp: Spawner, run_id: str, timeout: float = 10.0) -> Any:
    def check() -> Any:
        rec = sp.store.get_run(run_id)
        return rec if rec.status == "running" and rec.pgid else None

    return await wait_until(check, timeout, f"run {run_id} to be running")


async def grandchild_pids(sp: Spawner, run_id: str) -> list[int]:
    path = sp.store.transcript_path(run_id)
    line = await wait_until(lambda: fake_line(path, "grandchildren"), 10, "the fake's grandchildren line")
    pids = [*line["grandchildren"], *line["escaped"]]
    assert pids, line
    return pids


# --------------------------------------------------------------------------- the happy path


async def test_ok_run_answers_at_once_then_reports(tmp_path: Path) -> None:
    write_config(tmp_path)
    fake = FakeHarness(fake_argv("ok", "--text", "fake says hi"))
    async with spawner(fake) as sp:
        answer = await sp.spawn(acp(label="greeting"), CONTEXT)
        assert answer["status"] == "accepted", answer
        assert answer["childSessionKey"].startswith("agent:claude:acp:")
        assert answer["backend"] == "kimi" and answer["model"] == "kimi-for-coding"
        assert "agent 'coder'" in answer["reason"]
        result = await sp.wait(answer["runId"], timeout=10)
        rec = sp.store.get_run(answer["runId"])
    assert result.status == "ok" and result.result == "fake says hi" and result.error is None
    assert result.exitCode == 0 and result.sessionId == "11111111-2222-3333-4444-555555555555"
    assert result.usage["input_tokens"] == 10 and result.usage["output_tokens"] == 5
    assert rec.status == "ok" and rec.result_text == "fake says hi" and rec.label == "greeting"
    assert rec.started_at and rec.ended_at and rec.ended_at >= rec.started_at
    # The harness hook got the routed request (the model filled in by routing).
    assert fake.requests[0].model == "kimi-for-coding"
    assert_no_orphans(answer["runId"], rec.pgid)


async def test_cleanup_delete_keeps_the_result_but_not_the_transcript(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("ok", "--text", "gone after"))) as sp:
        kept = await sp.spawn(acp(), CONTEXT)
        dropped = await sp.spawn(acp(cleanup="delete"), CONTEXT)
        r_kept = await sp.wait(kept["runId"], timeout=10)
        r_dropped = await sp.wait(dropped["runId"], timeout=10)
        assert sp.store.transcript_path(kept["runId"]).exists()
        assert not sp.store.transcript_path(dropped["runId"]).exists()
        assert sp.store.get_run(dropped["runId"]).result_text == "gone after"
    assert r_kept.transcript and r_dropped.transcript is None and r_dropped.status == "ok"


# --------------------------------------------------------------------------- ending runs


@pytest.mark.parametrize("mode", ["sleep", "trap-term"])
async def test_timeout_kills_the_whole_run(tmp_path: Path, mode: str) -> None:
    write_config(tmp_path, limits={"graceSeconds": GRACE})
    fake = FakeHarness(fake_argv(mode, "--seconds", "60", "--grandchild", "--setsid-grandchild"))
    async with spawner(fake) as sp:
        t0 = time.monotonic()
        answer = await sp.spawn(acp(runTimeoutSeconds=1), CONTEXT)
        assert answer["status"] == "accepted" and answer["runTimeoutSeconds"] == 1
        kids = await grandchild_pids(sp, answer["runId"])
        result = await sp.wait(answer["runId"], timeout=10)
        elapsed = time.monotonic() - t0
        rec = sp.store.get_run(answer["runId"])
    assert result.status == "timeout", result
    assert "time limit of 1 s" in (result.error or "")
    assert 1.0 <= elapsed <= 1.0 + GRACE + 1.0, elapsed
    if mode == "trap-term":  # SIGTERM ignored: only the SIGKILL after the grace ended it
        assert rec.exit_code == -9 and elapsed >= 1.0 + GRACE - 0.05
    assert rec.status == "timeout"
    assert_no_orphans(answer["runId"], rec.pgid, kids)


async def test_cancel_kills_the_whole_run(tmp_path: Path) -> None:
    write_config(tmp_path)
    fake = FakeHarness(fake_argv("trap-term", "--seconds", "60", "--grandchild", "--setsid-grandchild"))
    async with spawner(fake) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        rec = await running_record(sp, answer["runId"])
        kids = await grandchild_pids(sp, answer["runId"])
        assert all(Path(f"/proc/{p}").exists() for p in kids)  # the control: they were alive
        t0 = time.monotonic()
        assert await sp.cancel(answer["runId"]) is True
        result = await sp.wait(answer["runId"], timeout=10)
        elapsed = time.monotonic() - t0
        rec = sp.store.get_run(answer["runId"])
        assert await sp.cancel(answer["runId"]) is False  # already over
    assert result.status == "cancelled" and rec.status == "cancelled"
    assert rec.cancel_requested
    assert elapsed < GRACE + 2.0
    assert_no_orphans(answer["runId"], rec.pgid, kids)


async def test_cancel_of_a_queued_run_never_starts_it(tmp_path: Path) -> None:
    write_config(tmp_path, limits={"maxConcurrent": 1})
    fake = FakeHarness(fake_argv("sleep", "--seconds", "60"))
    async with spawner(fake) as sp:
        first = await sp.spawn(acp("first"), CONTEXT)
        second = await sp.spawn(acp("second"), CONTEXT)
        await running_record(sp, first["runId"])
        assert sp.store.get_run(second["runId"]).status == "queued"
        assert await sp.cancel(second["runId"])
        result = await sp.wait(second["runId"], timeout=5)
        assert result.status == "cancelled"
        rec2 = sp.store.get_run(second["runId"])
        assert rec2.pid is None and rec2.started_at is None
        assert await sp.cancel(first["runId"])
        rec1 = sp.store.get_run(first["runId"])
        assert (await sp.wait(first["runId"], timeout=10)).status == "cancelled"
    assert_no_orphans(first["runId"], rec1.pgid)


async def test_closing_the_spawner_kills_active_runs(tmp_path: Path) -> None:
    write_config(tmp_path)
    fake = FakeHarness(fake_argv("trap-term", "--seconds", "60", "--grandchild"))
    async with spawner(fake) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        await running_record(sp, answer["runId"])
        kids = await grandchild_pids(sp, answer["runId"])
    from kimi_acp.store import Store

    with Store() as fresh:
        rec = fresh.get_run(answer["runId"])
    assert rec.status == "cancelled", rec
    assert_no_orphans(answer["runId"], rec.pgid, kids)


# --------------------------------------------------------------------------- the queue


@pytest.mark.parametrize(
    "limits,backend_cap",
    [({"maxConcurrent": 1}, None), ({"perBackend": {"kimi": 1}}, None), ({}, 1)],
    ids=["global-cap", "per-backend-cap", "backend-maxConcurrent"],
)
async def test_queue_fifo_behind_caps(tmp_path: Path, limits: dict[str, Any], backend_cap: int | None) -> None:
    extra = {"backends": {"kimi": {"baseUrl": "http://127.0.0.1:9/coding", "maxConcurrent": backend_cap}}} if backend_cap else None
    write_config(tmp_path, limits=limits, extra=extra)
    fake = FakeHarness(fake_argv("sleep", "--seconds", "0.4"))
    async with spawner(fake) as sp:
        ids = [(await sp.spawn(acp(f"task {i}"), CONTEXT))["runId"] for i in range(3)]
        await running_record(sp, ids[0])
        await anyio.sleep(0.25)  # long enough for an uncapped run to start
        statuses = [sp.store.get_run(i).status for i in ids]
        assert statuses == ["running", "queued", "queued"], statuses
        results = [await sp.wait(i, timeout=15) for i in ids]
        recs = [sp.store.get_run(i) for i in ids]
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    starts = [r.started_at for r in recs]
    assert starts == sorted(starts), "runs did not start in FIFO order"
    for before, after in zip(recs, recs[1:]):  # a cap of 1: no overlap
        assert after.started_at >= before.ended_at - 0.05, (before, after)
    for r in recs:
        assert_no_orphans(r.run_id, r.pgid)


# --------------------------------------------------------------------------- bad harnesses


async def test_nonzero_exit_with_error_result(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("exit-nonzero", "--code", "7"))) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=10)
        rec = sp.store.get_run(answer["runId"])
    assert result.status == "error" and result.exitCode == 7
    assert "something broke" in (result.error or "")
    assert rec.status == "error" and rec.exit_code == 7 and rec.error == result.error


async def test_nonzero_exit_without_result_says_so(tmp_path: Path) -> None:
    write_config(tmp_path)
    crash = "import sys; sys.stderr.write('harness crashed: boom\\n'); sys.exit(3)"
    async with spawner(FakeHarness([sys.executable, "-I", "-S", "-c", crash])) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=10)
    assert result.status == "error" and result.exitCode == 3
    assert "exited with code 3" in (result.error or "")
    assert "harness crashed: boom" in (result.error or "")


async def test_only_garbage_output_is_an_error_naming_unparseable_output(tmp_path: Path) -> None:
    write_config(tmp_path)
    garbage = "print('this is not json'); print('{\"type\": \"assis'); print('still not json')"
    async with spawner(FakeHarness([sys.executable, "-I", "-S", "-c", garbage])) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=10)
    assert result.status == "error"
    assert "unparseable" in (result.error or "")
    assert "this is not json" in (result.error or "")


async def test_garbage_between_valid_lines_is_tolerated(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("garbage"))) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=10)
    assert result.status == "ok" and result.result == "after garbage"
    assert "this is not json" in Path(result.transcript or "").read_text()


async def test_non_utf8_output_does_not_crash(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("non-utf8"))) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=10)
        again = await sp.spawn(acp(), CONTEXT)  # the spawner is still alive and well
        assert (await sp.wait(again["runId"], timeout=10)).status == "ok"
    assert result.status == "ok" and result.result == "after bytes"
    text = Path(result.transcript or "").read_text(encoding="utf-8")
    assert "bad \ufffd" in text


async def test_unstartable_harness_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """A harness argv that cannot be executed (a plugin's typo, a binary deleted after it was
    found) must fail that run with a clear error, and must not take the spawner down."""
    write_config(tmp_path)
    missing = str(tmp_path / "gone" / "harness")
    fake = FakeHarness(lambda req: [missing] if req.task == "broken" else fake_argv("ok"))
    async with spawner(fake) as sp:
        answer = await sp.spawn(acp("broken"), CONTEXT)
        assert answer["status"] == "accepted"
        result = await sp.wait(answer["runId"], timeout=10)
        assert result.status == "error", result
        assert missing in (result.error or "")
        assert sp.store.get_run(answer["runId"]).status == "error"
        after = await sp.spawn(acp("fine"), CONTEXT)
        assert (await sp.wait(after["runId"], timeout=10)).status == "ok"


# --------------------------------------------------------------------------- the task travels on stdin


async def test_big_task_goes_on_stdin_never_in_argv(tmp_path: Path) -> None:
    write_config(tmp_path)
    marker = "TASKMARKER-7e1d"
    task = marker + ("0123456789abcdef" * 65536)  # ~1 MB, above what fits in one argv string
    probe = StartedProbe()
    async with spawner(FakeHarness(fake_argv("echo-stdin")), probe) as sp:
        answer = await sp.spawn(acp(task), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=20)
    assert result.status == "ok", result
    cmdline = probe.cmdline[answer["runId"]]
    assert cmdline, "the probe did not read the harness's argv"
    assert marker.encode() not in cmdline and len(cmdline) < 4096
    echoed = fake_line(result.transcript or "", "stdin_bytes")
    assert echoed is not None
    assert echoed["stdin_bytes"] == len(task.encode())
    assert echoed["sha256"] == hashlib.sha256(task.encode()).hexdigest()


# --------------------------------------------------------------------------- refusals (recorded)


def assert_refused(sp: Spawner, answer: dict[str, Any], code: str, *needles: str, status: str = "error") -> None:
    assert answer["status"] == status, answer
    assert answer["errorCode"] == code, answer
    for needle in needles:
        assert needle in answer["error"], (needle, answer["error"])
    assert answer["childSessionKey"].startswith("agent:")
    rec = sp.store.get_run(answer["runId"])  # every refusal is on record
    assert rec.status == "error" and rec.error and rec.ended_at


async def test_missing_binary_is_an_error_with_an_install_hint(tmp_path: Path) -> None:
    write_config(tmp_path, harness={"command": str(tmp_path / "nowhere" / "claude")})
    async with Spawner(environ=dict(os.environ), pm=make_pm()) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        assert_refused(sp, answer, "spawn_failed", "does not exist", "npm install", "KIMI_ACP_CLAUDE")


async def test_unknown_requester_agent_lists_known_agents(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    data = json.loads(path.read_text().split("\n", 1)[1])
    data["agents"] = {"list": [{"id": "coder"}, {"id": "writer"}]}  # OpenClaw's own agents
    path.write_text(json.dumps(data))
    async with spawner(FakeHarness(fake_argv("ok"))) as sp:
        answer = await sp.spawn(acp(), {"requesterAgentId": "stranger"})
        assert_refused(sp, answer, "agent_forbidden", "unknown agent 'stranger'", "coder", "main", "writer")


async def test_an_agent_without_a_routing_rule_gets_the_default(tmp_path: Path) -> None:
    """kimi-acp's agents section routes; it does not say which agents exist (OpenClaw does)."""
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("ok"))) as sp:
        answer = await sp.spawn(acp(), {"requesterAgentId": "writer"})
        assert answer["status"] == "accepted", answer
        assert answer["backend"] == "passthrough"
        await sp.wait(answer["runId"])


async def test_unknown_model_ref_lists_known_refs(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("ok"))) as sp:
        answer = await sp.spawn(acp(model="nope/zzz"), CONTEXT)
        assert_refused(sp, answer, "spawn_failed", "unknown model 'nope/zzz'", "kimi/kimi-k2.5")


async def test_missing_key_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIMI_API_KEY")
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("ok"))) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        assert_refused(sp, answer, "spawn_failed", "KIMI_API_KEY")


async def test_bad_cwd_is_refused(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("ok"))) as sp:
        answer = await sp.spawn(acp(cwd=str(tmp_path / "no-such-dir")), CONTEXT)
        assert_refused(sp, answer, "cwd_resolution_failed", "no-such-dir")


async def test_non_acp_runtime_is_ignored(tmp_path: Path) -> None:
    write_config(tmp_path)
    fake = FakeHarness(fake_argv("ok"))
    async with spawner(fake) as sp:
        answer = await sp.spawn({"task": "x", "runtime": "subagent"}, CONTEXT)
        default = await sp.spawn({"task": "x"}, CONTEXT)  # OpenClaw's default runtime is subagent
        runs = sp.store.list_runs(include_finished=True)
    assert answer["status"] == "ignored" and "runtime='acp'" in answer["reason"]
    assert default["status"] == "ignored"
    assert fake.requests == [] and runs == []


@pytest.mark.parametrize(
    "request_,needle",
    [({"runtime": "acp"}, "task"), ({"task": "", "runtime": "acp"}, "task"), ({"task": "x", "runtime": "acp", "mode": "forever"}, "mode")],
    ids=["no-task", "empty-task", "bad-mode"],
)
async def test_invalid_request_gets_the_error_shape(tmp_path: Path, request_: dict[str, Any], needle: str) -> None:
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("ok"))) as sp:
        answer = await sp.spawn(request_, CONTEXT)
    assert answer["status"] == "error" and answer["errorCode"] == "spawn_failed"
    assert answer["error"].startswith("invalid spawn request:") and needle in answer["error"]


# --------------------------------------------------------------------------- hooks


class Blocker:
    @hookimpl
    def kimi_acp_before_spawn(self, request: Any, context: Any) -> Any:
        return "no spawns on Sundays" if "sunday" in request.task else None


class Rewriter:
    @hookimpl
    def kimi_acp_before_spawn(self, request: Any, context: Any) -> Any:
        return request.model_copy(update={"task": "REWRITTEN: " + request.task, "env": {"REWRITTEN_BY": "plugin"}})


class EnvPlugin:
    @hookimpl
    def kimi_acp_spawn_env(self, request: Any, backend: Any) -> dict[str, Any]:
        return {"KIMI_ACP_TEST_PLUGIN_VAR": f"from-plugin-for-{backend.name}", "DROP_ME": None}


async def test_before_spawn_string_blocks(tmp_path: Path) -> None:
    write_config(tmp_path)
    fake = FakeHarness(fake_argv("ok"))
    async with spawner(fake, Blocker()) as sp:
        answer = await sp.spawn(acp("deploy on sunday"), CONTEXT)
        assert_refused(sp, answer, "runtime_policy", "no spawns on Sundays", status="forbidden")
        assert fake.requests == []
        allowed = await sp.spawn(acp("deploy on monday"), CONTEXT)
        assert allowed["status"] == "accepted"
        assert (await sp.wait(allowed["runId"], timeout=10)).status == "ok"


async def test_before_spawn_rewrite_is_honoured(tmp_path: Path) -> None:
    write_config(tmp_path)
    probe = StartedProbe()
    fake = FakeHarness(fake_argv("echo-stdin"))
    async with spawner(fake, Rewriter(), probe) as sp:
        answer = await sp.spawn(acp("original task"), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=10)
    assert result.status == "ok"
    wanted = "REWRITTEN: original task".encode()
    echoed = fake_line(result.transcript or "", "sha256")
    assert echoed is not None and echoed["sha256"] == hashlib.sha256(wanted).hexdigest()
    assert fake.requests[0].task == "REWRITTEN: original task"
    assert probe.environ[answer["runId"]].get("REWRITTEN_BY") == "plugin"


async def test_spawn_env_plugin_reaches_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROP_ME", "inherited")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "sk-ant-decoy-should-be-scrubbed-0000")
    write_config(tmp_path)
    probe = StartedProbe()
    async with spawner(FakeHarness(fake_argv("echo-stdin")), EnvPlugin(), probe) as sp:
        answer = await sp.spawn(acp(env={"FROM_REQUEST": "yes"}), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=10)
    assert result.status == "ok"
    env = probe.environ[answer["runId"]]
    assert env.get("KIMI_ACP_TEST_PLUGIN_VAR") == "from-plugin-for-kimi"
    assert env.get("FROM_REQUEST") == "yes"
    assert "DROP_ME" not in env  # a None value removes an inherited variable
    # The run id is the harness's (its reaper, whose environ the probe reads, hands it over)
    assert "KIMI_ACP_RUN_ID" not in env
    init = next(o for o in transcript_objects(result.transcript or "") if o.get("subtype") == "init")
    assert init["run_id"] == answer["runId"]
    assert env.get("ANTHROPIC_API_KEY") == KEY and "ANTHROPIC_AUTH_TOKEN" not in env
    assert env.get("ANTHROPIC_BASE_URL") == "http://127.0.0.1:9/coding"
    assert "KIMI_API_KEY" not in env  # the secret travels only as ANTHROPIC_API_KEY


async def test_run_finished_hook_sees_the_committed_result(tmp_path: Path) -> None:
    write_config(tmp_path)
    seen: list[tuple[str, str]] = []

    class Finished:
        def __init__(self) -> None:
            self.sp: Spawner | None = None

        @hookimpl
        def kimi_acp_run_finished(self, run: Any, result: Any) -> None:
            assert self.sp is not None
            stored = self.sp.store.get_run(run.run_id)  # committed before anyone is told
            seen.append((result.status, stored.status))

    fin = Finished()
    async with spawner(FakeHarness(fake_argv("ok")), fin) as sp:
        fin.sp = sp
        answer = await sp.spawn(acp(), CONTEXT)
        await sp.wait(answer["runId"], timeout=10)
        quiet = await sp.spawn(acp(expectsCompletionMessage=False), CONTEXT)
        await sp.wait(quiet["runId"], timeout=10)
    assert seen == [("ok", "ok")]


async def test_spawn_request_model_roundtrip() -> None:
    req = SpawnRequest.model_validate({"task": "t", "runtime": "acp", "unknownKey": 1, "env": {"A": "b"}})
    assert req.env == {"A": "b"} and req.mode == "run" and req.expectsCompletionMessage is True


async def test_transcript_holds_every_line(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with spawner(FakeHarness(fake_argv("ok", "--text", "line check"))) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=10)
    types = [o.get("type") for o in transcript_objects(result.transcript or "")]
    assert types == ["system", "assistant", "result"]
    assert result.transcript == str(Path(os.environ["KIMI_ACP_STATE_DIR"]) / "transcripts" / f"{answer['runId']}.jsonl")


async def test_before_spawn_rewrite_of_limits_and_label_is_honoured(tmp_path: Path) -> None:
    """Everything a rewrite changes counts: the time limit, the label and the target agent
    are taken from the rewritten request, and the record shows what actually ran."""

    class Tighten:
        @hookimpl
        def kimi_acp_before_spawn(self, request: Any, context: Any) -> Any:
            return request.model_copy(
                update={"runTimeoutSeconds": 1, "label": "tightened", "agentId": "claude-kimi", "task": "tight: " + request.task}
            )

    write_config(tmp_path, limits={"graceSeconds": GRACE})
    async with spawner(FakeHarness(fake_argv("sleep", "--seconds", "30")), Tighten()) as sp:
        t0 = time.monotonic()
        answer = await sp.spawn(acp("slow job", runTimeoutSeconds=600), CONTEXT)
        assert answer["status"] == "accepted"
        assert answer["runTimeoutSeconds"] == 1
        assert answer["childSessionKey"].startswith("agent:claude-kimi:acp:")
        result = await sp.wait(answer["runId"], timeout=15)
        rec = sp.store.get_run(answer["runId"])
    assert result.status == "timeout" and time.monotonic() - t0 < 1 + GRACE + 1.5
    assert rec.label == "tightened" and rec.task == "tight: slow job" and rec.agent_id == "claude-kimi"
    assert_no_orphans(answer["runId"], rec.pgid)


async def test_leaving_the_spawner_right_after_a_spawn_cancels_cleanly(tmp_path: Path) -> None:
    """A run accepted just before the host closes the spawner is recorded cancelled; closing
    raises nothing (the run never got to start)."""
    write_config(tmp_path)
    fake = FakeHarness(fake_argv("sleep", "--seconds", "30"))
    async with spawner(fake) as sp:
        answer = await sp.spawn(acp(), CONTEXT)
        assert answer["status"] == "accepted"
    from kimi_acp.store import Store

    with Store() as store:
        rec = store.get_run(answer["runId"])
    assert rec.status == "cancelled", rec
    assert rec.pid is None


@pytest.mark.parametrize(
    "backend,key_var,words",
    [("kimi", "KIMI_API_KEY", ["Kimi refused the API key (401)", "KIMI_API_KEY"]),
     ("other", "OTHER_BACKEND_KEY", ["other refused the API key (401)", "OTHER_BACKEND_KEY"])],
)
async def test_a_refused_key_stops_the_run_at_once_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, key_var: str, words: list[str]
) -> None:
    monkeypatch.setenv(key_var, KEY)
    write_config(
        tmp_path,
        agents={"coder": {"backend": backend}},
        extra={"backends": {"kimi": {"baseUrl": "http://127.0.0.1:9/coding"},
                            "other": {"baseUrl": "http://127.0.0.1:9/other", "apiKeyEnv": "OTHER_BACKEND_KEY"}}},
    )
    async with spawner(FakeHarness(fake_argv("fatal-401", "--seconds", "60", "--grandchild"))) as sp:
        t0 = time.monotonic()
        answer = await sp.spawn(acp(), CONTEXT)
        result = await sp.wait(answer["runId"], timeout=10)
        elapsed = time.monotonic() - t0
        rec = sp.store.get_run(answer["runId"])
    assert result.status == "error" and elapsed < GRACE + 2.5
    for word in words:
        assert word in (result.error or ""), result.error
    if backend != "kimi":
        assert "Kimi" not in (result.error or "") and "KIMI_API_KEY" not in (result.error or "")
    assert_no_orphans(answer["runId"], rec.pgid)


async def test_a_failing_observer_plugin_fails_its_run_not_the_spawner(tmp_path: Path) -> None:
    """A kimi_acp_run_event plugin that raises ends that run as an error that names the
    exception; the spawner, and the runs beside it, carry on."""

    class Broken:
        @hookimpl
        def kimi_acp_run_event(self, run: Any, event: Any) -> None:
            if run.label == "doomed" and getattr(event, "type", None) == "result":
                raise ValueError("observer exploded")

    write_config(tmp_path)
    fake = FakeHarness(lambda req: fake_argv("sleep", "--seconds", "0.5") if req.label == "doomed" else fake_argv("sleep", "--seconds", "1"))
    async with spawner(fake, Broken()) as sp:
        bystander = await sp.spawn(acp(label="bystander"), CONTEXT)
        doomed = await sp.spawn(acp(label="doomed"), CONTEXT)
        bad = await sp.wait(doomed["runId"], timeout=10)
        good = await sp.wait(bystander["runId"], timeout=10)
        rec = sp.store.get_run(doomed["runId"])
    assert bad.status == "error" and "observer exploded" in (bad.error or "")
    assert rec.status == "error"
    assert good.status == "ok"
    assert_no_orphans(doomed["runId"], rec.pgid)
