"""The OpenClaw door from Node, as OpenClaw's ACP manager drives it, with the REAL Claude Code
on the stub: who asked (the child's session row, an ``/acp spawn`` command), per-session
permission modes and cwd, resume ids, a backend switch, token counts written back to the
child's row, the requester told on cancel, and failures OpenClaw's ``acp.fallbacks`` acts on.

The gateway's session rows, ``patchSessionEntry`` and ``enqueueSystemEvent`` are played by
``tests/fakes/drive_backend.mjs`` (a map and two recorders); the same paths run in a real
gateway in ``test_gateway_doors.py``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.spawning import wait_until_sync
from test_openclaw_backend import Driver

from kimi_acp.stub.server import StubServer

pytestmark = pytest.mark.openclaw

TEST_KEY = "sk-kimi-test0000000000000000000000000000abcd"
FAILOVER = re.compile(r"\b(?:unavailable|rate[-\s]?limit(?:ed|ing)?|quota|exhausted|temporar(?:y|ily)|overloaded)\b", re.I)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(key=TEST_KEY, extra_base_paths=("/alt",)) as server:
        yield server


def write(driver: Driver, section: dict[str, Any], **top: Any) -> None:
    """openclaw.json with our section and OpenClaw's own top-level keys (acp, agents...)."""
    base = {"backends": {"kimi": {"baseUrl": driver.stub.base_url},
                         "alt": {"baseUrl": driver.stub.url + "/alt", "apiKeyEnv": "KIMI_API_KEY", "model": "alt-model"}},
            "limits": {"graceSeconds": 2}}
    driver.config.write_text(json.dumps({**top, "plugins": {"entries": {"kimi-acp": {"config": {**base, **section}}}}}))


@pytest.fixture
def driver(tmp_path: Path, claude_bin: str, stub: StubServer) -> Iterator[Driver]:
    d = Driver(tmp_path, claude_bin, stub)
    # coder's spawns run on kimi; anything else on alt (never passthrough: it would leave loopback)
    write(d, {"defaultBackend": "alt", "agents": {"coder": {"backend": "kimi"}}})
    d("start")
    try:
        yield d
    finally:
        d.close()


def ensure(driver: Driver, key: str, **input: Any) -> dict[str, Any]:
    """ensureSession as OpenClaw sends it: the key's agent, and the harness it runs (claude)."""
    out = driver("ensure", input={"sessionKey": key, "agentId": key.split(":")[1], "agent": "claude",
                                  "mode": "persistent", "cwd": str(driver.work), **input})
    assert "handle" in out, out
    return out["handle"]


def transcript_init(driver: Driver, run_id: str) -> dict[str, Any]:
    path = driver.state / "transcripts" / f"{run_id}.jsonl"
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("type") == "system" and event.get("subtype") == "init":
            return event
    raise AssertionError(f"no init event in {path}")


def text_of(out: dict[str, Any]) -> str:
    return "".join(e["text"] for e in out["events"] if e["type"] == "text_delta" and e.get("stream") == "output")


# --------------------------------------------------------------------------- who asked


def test_the_childs_session_row_names_the_requester_and_routes_the_session(driver: Driver, stub: StubServer) -> None:
    """sessions_spawn: OpenClaw wrote spawnedBy/createdActor on the child's row before ensureSession."""
    child = "agent:claude:acp:row-one"
    driver("rows", rows={child: {"spawnedBy": "agent:coder:main", "createdVia": "spawn", "createdActor": {"type": "agent", "id": "coder"}}})
    handle = ensure(driver, child)
    out = driver("turn", handle=handle, text="say hi")
    assert out["result"]["status"] == "completed", out
    run = driver.runs()[-1]
    assert run["backend"] == "kimi" and run["requester_agent_id"] == "coder" and run["requester_session_key"] == "agent:coder:main"
    assert "agent 'coder' default" in run["reason"]
    assert stub.messages_requests()[-1].route == "/coding/v1/messages"
    status = driver("status", handle=handle)
    assert status["details"]["requester"] == "agent:coder:main" and status["details"]["requesterVia"] == "spawn"
    assert status["details"]["backend"].startswith("kimi") and "coder" in status["details"]["rule"]
    # the same agent's session without a row, and no note: the next rules decide (global: alt)
    other = ensure(driver, "agent:claude:acp:row-two")
    driver("turn", handle=other, text="say hi")
    assert driver.runs()[-1]["backend"] == "alt"


def test_an_acp_spawn_command_names_the_requester_of_the_session_it_opens(driver: Driver, stub: StubServer) -> None:
    # main chose Kimi for its chat with /model: the session it opens with /acp spawn follows it
    driver("rows", rows={"agent:main:main": {"providerOverride": "kimi", "modelOverride": "kimi-k2.6", "modelOverrideSource": "user"}})
    assert driver("dispatch", event={"content": "/acp spawn claude --mode persistent --thread off", "sessionKey": "agent:main:main"})["answer"] is None
    handle = ensure(driver, "agent:claude:acp:from-chat")
    status = driver("status", handle=handle)
    assert status["details"]["requester"] == "agent:main:main" and status["details"]["requesterVia"] == "acp-spawn"
    out = driver("turn", handle=handle, text="say hi")
    assert out["result"]["status"] == "completed"
    run = driver.runs()[-1]
    assert run["backend"] == "kimi" and run["model"] == "kimi-k2.6" and "OpenClaw /model" in run["reason"]
    # a note is claimed once: the next /acp spawn session of that agent has no requester
    later = ensure(driver, "agent:claude:acp:no-note")
    assert "requester" not in driver("status", handle=later)["details"]


def test_a_binding_session_belongs_to_the_bindings_agent(driver: Driver) -> None:
    handle = ensure(driver, "agent:coder:acp:binding:telegram:default:0123456789abcdef")
    details = driver("status", handle=handle)["details"]
    assert details["requester"] == "coder" and details["requesterVia"] == "binding" and details["backend"].startswith("kimi")


# --------------------------------------------------------------------------- controls


def test_set_mode_and_permissions_reach_claude_code(driver: Driver) -> None:
    handle = ensure(driver, "agent:claude:acp:modes")
    assert driver("mode", handle=handle, mode="plan") == {}
    out = driver("turn", handle=handle, text="say hi")
    assert out["result"]["status"] == "completed", (out, driver.runs()[-1])
    assert transcript_init(driver, driver.runs()[-1]["run_id"])["permissionMode"] == "plan"
    # /acp permissions: setConfigOption(permission_mode); acpx's names are accepted too
    assert driver("config", handle=handle, key="permission_mode", value="deny-all") == {}
    driver("turn", handle=handle, text="say hi again")
    assert transcript_init(driver, driver.runs()[-1]["run_id"])["permissionMode"] == "dontAsk"
    assert driver("status", handle=handle)["details"]["permissionMode"] == "dontAsk"
    bad = driver("mode", handle=handle, mode="yolo")
    assert "unknown permission mode 'yolo'" in bad["error"] and "acceptEdits" in bad["error"]
    if os.geteuid() == 0:
        root = driver("mode", handle=handle, mode="bypassPermissions")
        assert "allowRootBypass" in root["error"]


def test_an_agents_default_permission_mode_applies_to_its_runs(driver: Driver) -> None:
    write(driver, {"defaultBackend": "alt", "agents": {"coder": {"backend": "kimi", "permissionMode": "plan"}}})
    child = "agent:claude:acp:coder-plan"
    driver("rows", rows={child: {"spawnedBy": "agent:coder:main", "createdActor": {"type": "agent", "id": "coder"}}})
    handle = ensure(driver, child)
    driver("turn", handle=handle, text="say hi")
    assert transcript_init(driver, driver.runs()[-1]["run_id"])["permissionMode"] == "plan"


def test_a_new_cwd_moves_the_session_and_its_conversation(driver: Driver, stub: StubServer, tmp_path: Path) -> None:
    handle = ensure(driver, "agent:claude:acp:mover")
    driver("turn", handle=handle, text="remember the word pelican")
    first = len(stub.messages_requests()[-1].body["messages"])
    there = tmp_path / "elsewhere"
    there.mkdir()
    link = tmp_path / "link-to-elsewhere"
    link.symlink_to(there)
    # /acp cwd: OpenClaw closes the handle and ensures the session again with the new cwd
    driver("close", handle=handle, reason="runtime-handle-replaced")
    moved = ensure(driver, "agent:claude:acp:mover", cwd=str(link))
    assert moved["cwd"] == str(there)  # resolved, and reported as resolved
    driver("turn", handle=moved, text="and now?")
    run = driver.runs()[-1]
    assert run["cwd"] == str(there)
    last = stub.messages_requests()[-1].body["messages"]
    assert len(last) > first and "pelican" in json.dumps(last)  # the same conversation, from the new folder
    for bad, why in ((str(tmp_path / "nope"), "does not exist"), (str(tmp_path / "state" / "runs.sqlite3"), "is not a directory"), ("relative/dir", "not an absolute path")):
        out = driver("ensure", input={"sessionKey": "agent:claude:acp:mover", "agentId": "claude", "agent": "claude", "mode": "persistent", "cwd": bad})
        assert why in out["error"], out
    assert driver("status", handle=moved)["details"]["cwd"] == str(there)  # a refused cwd changes nothing


def test_resume_ids_are_checked(driver: Driver) -> None:
    first = ensure(driver, "agent:claude:acp:resume-a")
    driver("turn", handle=first, text="say hi")
    claude_session = driver.runs()[-1]["claude_session_id"]
    for bad, why in (("../x", "is not a session id"), ("00000000-0000-4000-8000-000000000000", "unknown resumeSessionId")):
        out = driver("ensure", input={"sessionKey": "agent:claude:acp:resume-b", "agentId": "claude", "agent": "claude", "mode": "persistent",
                                      "cwd": str(driver.work), "resumeSessionId": bad})
        assert why in out["error"], out
    resumed = ensure(driver, "agent:claude:acp:resume-c", resumeSessionId=claude_session)
    assert resumed["agentSessionId"] == claude_session


def test_switching_backend_starts_a_new_conversation_told_what_came_before(driver: Driver, stub: StubServer) -> None:
    handle = ensure(driver, "agent:claude:acp:switcher", model="kimi/kimi-k2.5", modelExplicit=True)
    driver("turn", handle=handle, text="remember the word albatross")
    assert driver("config", handle=handle, key="model", value="alt/alt-model") == {}  # /acp model
    out = driver("turn", handle=handle, text="which word?")
    req = stub.messages_requests()[-1]
    assert req.route == "/alt/v1/messages"
    sent = json.dumps(req.body["messages"])
    assert "[Earlier in this conversation, on another backend" in sent and "albatross" in sent
    assert "thinking" not in [b.get("type") for m in req.body["messages"] if isinstance(m.get("content"), list) for b in m["content"]]
    assert "[kimi-acp] this session moved from backend kimi to alt" in text_of(out)
    assert driver.runs()[-1]["claude_session_id"] != driver.runs()[-2]["claude_session_id"]


# --------------------------------------------------------------------------- what the gateway records


def test_token_counts_reach_the_childs_row_before_done(driver: Driver) -> None:
    child = "agent:claude:acp:tokens"
    driver("rows", rows={child: {"spawnedBy": "agent:coder:main", "createdActor": {"type": "agent", "id": "coder"}}})
    handle = ensure(driver, child)
    driver("turn", handle=handle, text="say hi")
    (patch,) = [p for p in driver("gateway")["patches"] if p["sessionKey"] == child]
    entry = patch["entry"]
    assert entry["inputTokens"] > 1000 and entry["outputTokens"] > 0
    assert entry["totalTokensFresh"] is True and entry["totalTokensVersion"] == 1 and entry["totalTokens"] >= entry["inputTokens"]
    assert entry["modelProvider"] == "kimi" and patch["agentId"] == "claude"


def test_a_cancelled_turn_tells_the_requester_what_it_had_produced(driver: Driver, stub: StubServer) -> None:
    child = "agent:claude:acp:cancel-me"
    driver("rows", rows={child: {"spawnedBy": "agent:coder:main", "createdActor": {"type": "agent", "id": "coder"}}})
    handle = ensure(driver, child)
    stub.set_scenario("progress-then-hang")
    turn = driver("turn", handle=handle, text="work then hang", background=True)
    wait_until_sync(lambda: len(stub.messages_requests()) >= 2, 120, "the second (hanging) request, after some output")
    assert driver("cancel", handle=handle) == {}
    out = driver("await", turnId=turn["turnId"])
    assert out["result"]["status"] == "cancelled"
    event, wake = [e for e in driver("gateway")["events"] if e["sessionKey"] == "agent:coder:main"]
    assert wake["wake"] is True and wake["intent"] == "immediate"  # and the requester is woken for it
    assert "was cancelled" in event["text"] and child in event["text"]
    assert "Progress so far: the first step is done." in event["text"]


# --------------------------------------------------------------------------- failover


def test_a_rate_limit_before_any_output_fails_fast_for_acp_fallbacks(driver: Driver, stub: StubServer) -> None:
    write(driver, {"defaultBackend": "kimi"}, acp={"backend": "kimi-acp", "fallbacks": ["acpx"]})
    handle = ensure(driver, "agent:claude:acp:busy")
    stub.set_scenario("error:429")
    started = time.monotonic()
    out = driver("turn", handle=handle, text="say hi")
    assert time.monotonic() - started < 60  # not Claude Code's ~3 minutes of retries
    result = out["result"]
    assert result["status"] == "failed" and result["error"]["code"] == "ACP_TURN_FAILED"
    assert FAILOVER.search(result["error"]["message"]), result  # what OpenClaw's isFailoverWorthyBackendError reads
    assert result["error"]["detailCode"] == "run_rate_limited" and result["error"]["retryable"] is True
    assert out["promptStarted"] is False and not [e for e in out["events"] if e["type"] in ("text_delta", "tool_call")]
    assert driver.runs()[-1]["status"] == "rate_limited"
    # the 429's retry-after (the stub's 1 s) holds the backend; a fail-fast turn in it fails at once,
    # so the next turn goes once the hold is over
    from kimi_acp.admission import hold_now

    wait_until_sync(lambda: hold_now(driver.state, "kimi") is None, 30, "the 429's pause to end")
    # a turn that streamed output has started: OpenClaw never moves it to another backend
    stub.set_scenario("text")
    ok = driver("turn", handle=handle, text="say hi")
    assert ok["promptStarted"] is True and ok["result"]["status"] == "completed", ok


def test_without_fallbacks_claude_codes_own_retries_go_on(driver: Driver, stub: StubServer) -> None:
    handle = ensure(driver, "agent:claude:acp:retries")
    stub.set_scenario("busy:1")  # one 429, then an answer: Claude Code's retry wins
    out = driver("turn", handle=handle, text="say hi")
    assert out["result"]["status"] == "completed" and text_of(out).startswith("Hello from the Kimi stub")


# --------------------------------------------------------------------------- status


def test_status_shows_the_run_its_claude_code_and_process_tree(driver: Driver, stub: StubServer) -> None:
    child = "agent:claude:acp:watch"
    driver("rows", rows={child: {"spawnedBy": "agent:coder:main", "createdActor": {"type": "agent", "id": "coder"}}})
    handle = ensure(driver, child)
    stub.set_scenario("hang")
    turn = driver("turn", handle=handle, text="hang", background=True)
    wait_until_sync(lambda: stub.messages_requests(), 60, "the hanging request")
    status = driver("status", handle=handle)
    details = status["details"]
    assert details["status"] == "running" and details["requester"] == "agent:coder:main" and "coder" in details["rule"]
    assert details["runId"] and f"run {details['runId']}" in status["summary"] and "Claude Code pid" in status["summary"]
    claude = [p for p in details["processes"] if p["command"].startswith("claude")]
    assert claude and details["pid"] == claude[0]["pid"] and f"Claude Code pid {claude[0]['pid']}" in status["summary"], details
    assert Path(f"/proc/{details['pid']}/comm").read_text().startswith("claude")
    assert driver("cancel", handle=handle) == {}
    out = driver("await", turnId=turn["turnId"])
    assert out["result"]["status"] == "cancelled"
    assert driver("status", handle=handle)["details"]["status"] == "idle"


def test_malformed_route_input_is_refused(driver: Driver) -> None:
    answer = driver("hook", event={"toolName": "sessions_spawn", "params": {"runtime": "acp", "task": "x"}}, ctx={})["answer"]
    assert answer is not None and "params" in answer  # a good spawn: routed
    from kimi_acp.commands.hook import before_tool_call
    from kimi_acp.config import load_config

    cfg = load_config(str(driver.config))
    for payload in ({"event": {"params": "x"}}, {"event": {}}, {"event": {"params": {"runtime": "acp", "task": "x"}}, "context": "x"},
                    {"event": {"params": {"runtime": "acp", "task": "x"}}, "session": []}):
        out = before_tool_call(payload, cfg=cfg)
        assert out.get("block") is True, (payload, out)
