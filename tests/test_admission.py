"""Quota-aware admission: a spawn on a backend whose plan quota is used up waits in the queue
with its reason (``kimi-acp ps``, ``/acp status``) and starts when the window resets; a 429's
retry-after pauses the backend's other queued spawns; the quota endpoint is asked at most every
``limits.quotaCheckSeconds`` per backend, only at the backend's own base URL (the loopback stub).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from fakes import fake_argv
from fakes.spawning import CONTEXT, FakeHarness, make_pm, wait_until, wait_until_sync, write_config
from kimi_acp.admission import Admission, Hold, hold_now, span
from kimi_acp.config import load_config
from kimi_acp.quota import quota_windows, usages_payload
from kimi_acp.spawn import Spawner
from kimi_acp.stub.server import StubServer

REPO = Path(__file__).resolve().parents[1]
KIMI_ACP = str(REPO / ".venv" / "bin" / "kimi-acp")
TEST_KEY = "sk-kimi-test0000000000000000000000000000abcd"


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _usages(stub: StubServer) -> int:
    return sum(1 for r in stub.requests if r.route.endswith("/v1/usages"))


# --------------------------------------------------------------------------- words


def test_a_hold_says_why_and_for_how_long() -> None:
    now = 1_000_000.0
    assert Hold("kimi", "quota", now + 42 * 60, "5h").describe(now) == "Kimi quota: 5-hour window resets in 42 min"
    assert Hold("kimi", "quota", now + 3 * 86400, "weekly").describe(now) == "Kimi quota: weekly window resets in 3 days"
    assert Hold("kimi", "rate-limit", now + 12, "429").describe(now) == "Kimi rate limit: the API answered 429, trying again in 12 s"
    assert [span(s) for s in (5, 89, 600, 5400, 7260)] == ["5 s", "89 s", "10 min", "1 h 30 min", "2 h 1 min"]


# --------------------------------------------------------------------------- the cache


@pytest.mark.asyncio
async def test_the_quota_is_read_at_most_every_n_seconds_and_again_after_a_reset(clean_env: Path, no_proxy: None) -> None:
    clock = [1_800_000_000.0]
    with StubServer(key=TEST_KEY) as stub:
        write_config(clean_env, base_url=stub.base_url)
        cfg = load_config(environ={**os.environ, "KIMI_API_KEY": TEST_KEY})
        gate = Admission(clean_env / "state", fetch=lambda b: quota_windows(cfg, b, environ={"KIMI_API_KEY": TEST_KEY}, timeout=5),
                         ttl=60, clock=lambda: clock[0])
        assert await gate.check("kimi") is None and _usages(stub) == 1
        for _ in range(5):  # a burst of spawns: one read
            assert await gate.check("kimi") is None
        assert _usages(stub) == 1
        clock[0] += 61  # stale: read again, and the 5-hour window is used up now
        stub.usages = usages_payload(five_hour_used=100, five_hour_reset=clock[0] + 600, now=clock[0])
        held = await gate.check("kimi")
        assert held is not None and held.kind == "quota" and _usages(stub) == 2
        assert held.describe(clock[0]) == "Kimi quota: 5-hour window resets in 10 min"
        clock[0] += 300
        assert await gate.check("kimi") == held and _usages(stub) == 3  # stale again (60 s): still used up
        assert hold_now(clean_env / "state", "kimi", clock[0]) == held  # what ps and /acp status read, no network
        clock[0] += 301  # the window's reset time has passed: read at once, and it has room again
        stub.usages = usages_payload(five_hour_used=0, now=clock[0])
        assert await gate.check("kimi") is None and _usages(stub) == 4
        stub.usages = {"not": "a known shape"}  # an answer kimi-acp cannot read: no hold, and not asked again at once
        clock[0] += 61
        assert await gate.check("kimi") is None and await gate.check("kimi") is None and _usages(stub) == 5
        assert "quota answer" in json.loads((clean_env / "state" / "admission" / "kimi.quota.json").read_text())["error"]
        # a backend without a quota endpoint is never asked; quotaCheckSeconds 0: nothing is
        anthropic = Admission(clean_env / "state", fetch=lambda b: quota_windows(cfg, b, environ={"ANTHROPIC_API_KEY": "sk-ant-" + "x" * 20}),
                              clock=lambda: clock[0])
        assert await anthropic.check("anthropic") is None and await anthropic.check("anthropic") is None
        assert anthropic.reads == 1 and "anthropic" in anthropic._no_quota
        off = Admission(clean_env / "state", fetch=lambda b: quota_windows(cfg, b, environ={"KIMI_API_KEY": TEST_KEY}), ttl=0,
                        clock=lambda: clock[0] + 10_000)
        assert await off.check("kimi") is None and off.reads == 0 and _usages(stub) == 5
    assert stub.requests and all((r.headers.get("host") or "").startswith("127.0.0.1:") for r in stub.requests)  # loopback only
    mode = (clean_env / "state" / "admission").stat().st_mode & 0o777
    assert mode == 0o700 and all((p.stat().st_mode & 0o777) == 0o600 for p in (clean_env / "state" / "admission").iterdir())


# --------------------------------------------------------------------------- held backends, without Claude Code


@pytest.mark.asyncio
async def test_a_fail_fast_spawn_on_a_held_backend_fails_at_once_and_nothing_starts_early(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_API_KEY", TEST_KEY)
    write_config(clean_env, limits={"quotaCheckSeconds": 0})
    Admission(clean_env / "state").pause("kimi", 30)
    from kimi_acp.prestart import prestart

    assert prestart({"task": "x", "runtime": "acp", "env": {}}, CONTEXT, config_path=None, pm=make_pm()) is None
    async with Spawner(environ=dict(os.environ), pm=make_pm(FakeHarness(fake_argv("ok")))) as sp:
        answer = await sp.spawn({"task": "x", "runtime": "acp", "failFast": True}, CONTEXT)
        result = await sp.wait(answer["runId"], timeout=5)
    assert result.status == "rate_limited" and result.error.startswith("Kimi rate limit: the API answered 429, trying again in")
    assert "not started (fail-fast" in result.error and result.exitCode is None


# --------------------------------------------------------------------------- the real thing


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_a_429s_retry_after_pauses_the_backends_other_queued_spawns(clean_env: Path, claude_bin: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a quota endpoint (a backend kimi-acp knows none for), from the 429 alone: the
    first run's Claude Code is told ``retry-after: 3``; a run spawned meanwhile waits, with its
    reason, until the pause ends."""
    home = clean_env / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GLM_KEY", TEST_KEY)
    with StubServer(key=TEST_KEY) as stub:
        stub.retry_after = 3
        write_config(clean_env, harness={"command": claude_bin}, agents={"coder": {"backend": "glm"}},
                     extra={"backends": {"glm": {"baseUrl": stub.base_url, "apiKeyEnv": "GLM_KEY", "model": "glm-5"}}})
        async with Spawner(environ=dict(os.environ), pm=make_pm()) as sp:
            first = await sp.spawn({"task": "[[stub:busy:1]] first", "runtime": "acp"}, CONTEXT)
            pause = clean_env / "state" / "admission" / "glm.pause.json"
            await wait_until(pause.exists, 60, "the 429's pause")
            until = json.loads(pause.read_text())["until"]
            second = await sp.spawn({"task": "second", "runtime": "acp"}, CONTEXT)
            rec = sp.store.get_run(second["runId"])
            await anyio.sleep(0.3)
            assert sp.store.get_run(second["runId"]).status == "queued"  # the backend cap (2) has room: the pause holds it
            shown = _ps(clean_env)
            waiting = next(r["waiting"] for r in shown if r["runId"] == second["runId"])
            assert waiting.startswith("Glm rate limit: the API answered 429, trying again in"), waiting
            results = [await sp.wait(first["runId"], timeout=60), await sp.wait(second["runId"], timeout=60)]
            rec = sp.store.get_run(second["runId"])
    assert [r.status for r in results] == ["ok", "ok"], results
    assert rec.started_at >= until - 0.05, (rec.started_at, until)
    assert _usages(stub) == 0  # no quota endpoint for this backend: nothing asked


def _ps(clean_env: Path) -> list[dict[str, Any]]:
    done = subprocess.run([KIMI_ACP, "ps", "--json"], capture_output=True, text=True, env=dict(os.environ), timeout=30, check=True)
    return json.loads(done.stdout)


@pytest.mark.e2e
@pytest.mark.openclaw
def test_a_turn_waits_for_the_quota_with_its_reason_and_starts_when_it_resets(tmp_path: Path, claude_bin: str) -> None:
    """The OpenClaw door (the extension's runtime, driven from Node, and the warm process): a
    turn on a backend whose 5-hour window is used up waits with its reason in ``/acp status``
    and ``kimi-acp ps --json``, sends nothing to the model, and runs once the window resets."""
    from test_openclaw_backend import Driver

    with StubServer(key=TEST_KEY) as stub:
        d = Driver(tmp_path, claude_bin, stub)
        try:
            d("start")
            handle = d.ensure("agent:kimi-acp:acp:quota")
            until = stub.exhaust_quota(4)
            turn = d("turn", handle=handle, text="hello after the reset", background=True)

            def queued() -> dict[str, Any] | None:  # queued at once; its reason once the quota is read
                runs = _ps_in(d)
                return runs[0] if runs and (runs[0]["waiting"] or "").startswith("Kimi quota") else None

            run = wait_until_sync(queued, 30, "the turn's run to wait")
            assert run["status"] == "queued" and run["waiting"].startswith("Kimi quota: 5-hour window resets in"), run
            status = d("status", handle=handle)
            assert status["details"]["status"] == "queued" and status["details"]["waiting"].startswith("Kimi quota: 5-hour window resets in")
            assert "waiting: Kimi quota" in status["summary"]
            assert not stub.messages_requests()  # nothing went to the model while the window was used up
            out = d("await", turnId=turn["turnId"])
            assert out["result"] == {"status": "completed", "stopReason": "end_turn"}, out
            (rec,) = d.runs()
            assert rec["status"] == "ok" and rec["started_at"] >= until, (rec["started_at"], until)
            assert 2 <= _usages(stub) <= 4  # read when held, again after the reset (at most a few times)
            assert "backendHold" not in d("status", handle=handle)["details"]
            Admission(d.state).pause("kimi", 30)  # another run just got a 429: the next turn would wait
            idle = d("status", handle=handle)
            assert idle["details"]["backendHold"].startswith("Kimi rate limit: the API answered 429, trying again in")
            assert "the next turn waits: Kimi rate limit" in idle["summary"]
        finally:
            d.close()


def _ps_in(d: Any) -> list[dict[str, Any]]:
    done = subprocess.run([KIMI_ACP, "ps", "--json"], capture_output=True, text=True, env=d.env, timeout=30, check=True)
    return json.loads(done.stdout)
