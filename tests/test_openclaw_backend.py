"""kimi-acp's ACP runtime backend, driven from Node 24 exactly as OpenClaw's ACP manager
drives it (ensureSession -> setConfigOption -> startTurn -> close, cancel, getStatus, doctor),
with the extension's own JavaScript and ONE warm ``kimi-acp acp`` process, which runs the REAL
Claude Code against the local Kimi stub. (The whole path in a real gateway: test_gateway.py.)
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.spawning import is_alive, pids_carrying_run_id, wait_until_sync

from kimi_acp.store import Store
from kimi_acp.stub.openclaw_gateway import node_bin_dir
from kimi_acp.stub.server import StubServer

pytestmark = pytest.mark.openclaw

REPO = Path(__file__).resolve().parents[1]
KIMI_ACP = str(REPO / ".venv" / "bin" / "kimi-acp")
DRIVER = Path(__file__).parent / "fakes" / "drive_backend.mjs"
INDEX = (REPO / "plugin" / "kimi_acp" / "openclaw_ext" / "index.js").as_uri()
TEST_KEY = "sk-kimi-test0000000000000000000000000000abcd"
DECOY = "sk-ant-decoy-gateway-token-must-not-leak-0000"


class Driver:
    def __init__(self, tmp: Path, claude: str, stub: StubServer, *, extra_env: dict[str, str] | None = None, **section: Any) -> None:
        self.tmp, self.stub = tmp, stub
        self.state, self.work, self.home = tmp / "state", tmp / "work", tmp / "home"
        self.work.mkdir(exist_ok=True)
        self.home.mkdir(exist_ok=True)
        self.config = tmp / "openclaw.json"
        self.write_config(**section)
        self.env = {
            "PATH": f"{node_bin_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "KIMI_ACP_STATE_DIR": str(self.state),
            "OPENCLAW_CONFIG_PATH": str(self.config),
            "KIMI_API_KEY": TEST_KEY,
            "KIMI_ACP_CLAUDE": claude,
            "KIMI_ACP_BIN": KIMI_ACP,
            "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
            "ANTHROPIC_AUTH_TOKEN": DECOY,
            "OPENCLAW_STATE_DIR": str(tmp / "openclaw-state"),
            **(extra_env or {}),
        }
        self._err = open(tmp / "driver.stderr", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [str(node_bin_dir() / "node"), str(DRIVER), INDEX], env=self.env, cwd=self.work,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
        )

    def write_config(self, **section: Any) -> None:
        cfg = {"defaultBackend": "kimi", "backends": {"kimi": {"baseUrl": self.stub.base_url}}, "limits": {"graceSeconds": 2}, **section}
        self.config.write_text(json.dumps({"plugins": {"entries": {"kimi-acp": {"config": cfg}}}}))

    def __call__(self, op: str, timeout: float = 180, **kw: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps({"op": op, **kw}) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"the driver did not answer {op} within {timeout} s"
        line = self.proc.stdout.readline()
        assert line, f"the driver exited: {(self.tmp / 'driver.stderr').read_text(errors='replace')[-2000:]}"
        return json.loads(line)

    def ensure(self, key: str, **input: Any) -> dict[str, Any]:
        out = self(op="ensure", input={"sessionKey": key, "agentId": "kimi-acp", "agent": "kimi-acp", "mode": "oneshot",
                                       "cwd": str(self.work), **input})
        assert "handle" in out, out
        return out["handle"]

    def runs(self) -> list[dict[str, Any]]:
        with Store(self.state) as store:
            return [r.to_dict() for r in reversed(store.list_runs(include_finished=True))]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self("stop", timeout=60)
            except (AssertionError, BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout, self._err):
            if f is not None:
                f.close()


def _children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                        out.append(int(name))
            except OSError:
                continue
    return out


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(key=TEST_KEY) as server:
        yield server


@pytest.fixture
def driver(tmp_path: Path, claude_bin: str, stub: StubServer) -> Iterator[Driver]:
    d = Driver(tmp_path, claude_bin, stub)
    try:
        yield d
    finally:
        d.close()


def test_a_spawn_runs_through_the_backend_and_streams_back(driver: Driver, stub: StubServer) -> None:
    started = driver("start")
    assert started["registered"] == ["kimi-acp"] and started["services"] == ["kimi-acp"]
    assert started["hooks"] == ["before_tool_call", "before_dispatch", "reply_dispatch"]
    warm = started["pid"]
    caps = driver("caps")
    assert set(caps["controls"]) == {"session/set_mode", "session/set_config_option", "session/status"}
    assert caps["configOptionKeys"] == ["model", "thinking", "timeout", "permission_mode"]
    handle = driver.ensure("agent:kimi-acp:acp:one", model="kimi/kimi-k2.5", modelExplicit=True, thinking="low", thinkingExplicit=True)
    assert handle["backend"] == "kimi-acp" and handle["runtimeSessionName"] == handle["backendSessionId"]
    assert handle["appliedModel"] == {"kind": "applied", "model": "kimi/kimi-k2.5"}
    assert handle["appliedThinking"] == {"kind": "applied", "thinking": "low"}
    assert driver("config", handle=handle, key="model", value="kimi/kimi-k2.5") == {}
    out = driver("turn", handle=handle, text="say hi")
    kinds = [e["type"] for e in out["events"]]
    assert kinds[-1] == "done" and out["result"] == {"status": "completed", "stopReason": "end_turn"}
    text = "".join(e["text"] for e in out["events"] if e["type"] == "text_delta" and e["stream"] == "output")
    assert text == "Hello from the Kimi stub. You said: say hi"
    usage = [e for e in out["events"] if e["type"] == "status" and e.get("tag") == "usage_update" and "used" in e]
    assert usage and usage[0]["size"] == 262144
    (req,) = stub.messages_requests()
    assert req.headers["x-api-key"] == TEST_KEY and "authorization" not in req.headers
    assert req.body["output_config"] == {"effort": "low"}  # the spawn's thinking level (Claude Code's own default: high)
    assert DECOY not in json.dumps(req.headers) + req.raw_body.decode(errors="replace")
    status = driver("status", handle=handle)
    assert status["summary"] == "kimi-acp: idle on kimi/kimi-k2.5" and status["agentSessionId"]
    assert status["details"]["lastStatus"] == "ok" and status["details"]["mode"] == "oneshot"
    (run,) = driver.runs()
    assert run["backend"] == "kimi" and run["status"] == "ok"
    assert run["label"] == "agent:kimi-acp:acp:one"  # ps / show name OpenClaw's child session
    assert driver("close", handle=handle) == {}
    assert driver("pid")["pid"] == warm  # one process for every session of the gateway


def test_a_finished_oneshot_re_ensured_only_to_close_starts_nothing(driver: Driver, stub: StubServer) -> None:
    warm = driver("start")["pid"]
    handle = driver.ensure("agent:kimi-acp:acp:two", model="kimi/kimi-k2.5")
    assert driver("turn", handle=handle, text="say hi")["result"]["status"] == "completed"
    driver("close", handle=handle)
    wait_until_sync(lambda: not _children(warm), 30, "the run's process to be reaped")
    # OpenClaw's terminal-task-cleanup: ensure the same key again, then close it
    again = driver.ensure("agent:kimi-acp:acp:two", model="kimi/kimi-k2.5")
    assert again["runtimeSessionName"] == handle["runtimeSessionName"]
    assert _children(warm) == [] and len(driver.runs()) == 1 and len(stub.messages_requests()) == 1
    driver("close", handle=again, reason="terminal-task-cleanup")
    assert driver("pid")["pid"] == warm
    assert not list((driver.state / "acp-sessions").glob("*.json"))  # a oneshot leaves no session file


def test_cancel_kills_the_runs_process_group(driver: Driver, stub: StubServer) -> None:
    driver("start")
    stub.set_scenario("hang")
    handle = driver.ensure("agent:kimi-acp:acp:three", model="kimi/kimi-k2.5")
    out = driver("turn", handle=handle, text="hang please", cancelAfterMs=4000)
    assert out["result"]["status"] == "cancelled" and out["events"][-1] == {"type": "done", "status": "cancelled", "stopReason": "cancelled"}
    (run,) = driver.runs()
    assert run["status"] == "cancelled"
    wait_until_sync(lambda: not pids_carrying_run_id(run["run_id"]), 15, "the run's processes to be gone")


def test_clear_errors_come_back_as_error_events(driver: Driver, stub: StubServer) -> None:
    driver("start")
    stub.key = "sk-kimi-another-key-0000000000000000000000"  # Kimi refuses our key
    handle = driver.ensure("agent:kimi-acp:acp:four", model="kimi/kimi-k2.5")
    out = driver("turn", handle=handle, text="say hi")
    (error,) = [e for e in out["events"] if e["type"] == "error"]
    assert "refused the API key (401)" in error["message"] and "KIMI_API_KEY" in error["message"]
    assert TEST_KEY not in json.dumps(out)
    assert out["result"]["status"] == "failed" and out["result"]["error"]["message"] == error["message"]
    # a model ref kimi-acp does not know: the spawn fails at once, naming the known ones
    bad = driver("ensure", input={"sessionKey": "agent:kimi-acp:acp:five", "agentId": "kimi-acp", "agent": "kimi-acp",
                                  "mode": "oneshot", "cwd": str(driver.work), "model": "nope/model"})
    assert "unknown model 'nope/model'" in bad["error"] and "kimi/kimi-k2.5" in bad["error"]


def test_a_missing_claude_says_how_to_install_it(tmp_path: Path, claude_bin: str, stub: StubServer) -> None:
    d = Driver(tmp_path, claude_bin, stub, harness={"command": str(tmp_path / "no-such-claude")})
    try:
        d("start")
        doctor = d("doctor")
        assert doctor["ok"] is False and doctor["code"] == "claude_missing" and "installCommand" in doctor
        handle = d.ensure("agent:kimi-acp:acp:six", model="kimi/kimi-k2.5")
        out = d("turn", handle=handle, text="say hi")
        assert out["result"]["status"] == "failed"
        assert "no-such-claude" in out["result"]["error"]["message"]
    finally:
        d.close()


def test_doctor_reports_config_claude_and_keys(driver: Driver) -> None:
    driver("start")
    doctor = driver("doctor")
    assert doctor["ok"] is True, doctor
    assert any(line.startswith("claude: ") and "2.1.332" in line for line in doctor["details"])
    assert any("backend kimi:" in line and "sk-kimi-…abcd" in line for line in doctor["details"])
    assert TEST_KEY not in json.dumps(doctor)


def test_a_dead_warm_process_fails_its_turn_and_is_restarted(driver: Driver, stub: StubServer) -> None:
    warm = driver("start")["pid"]
    stub.set_scenario("hang")
    handle = driver.ensure("agent:kimi-acp:acp:seven", model="kimi/kimi-k2.5")
    assert driver.proc.stdin
    driver.proc.stdin.write((json.dumps({"op": "turn", "handle": handle, "text": "hang"}) + "\n").encode())
    driver.proc.stdin.flush()
    wait_until_sync(lambda: stub.messages_requests(), 60, "Claude Code's request")
    os.kill(warm, signal.SIGKILL)
    ready, _, _ = select.select([driver.proc.stdout], [], [], 60)
    assert ready and driver.proc.stdout
    out = json.loads(driver.proc.stdout.readline())
    assert out["result"]["status"] == "failed"
    assert "the kimi-acp process exited during this turn" in out["result"]["error"]["message"]
    assert out["result"]["error"]["retryable"] is True
    # restarted with backoff, without anyone asking; the next process records the run as lost
    new = wait_until_sync(lambda: (p := driver("pid")["pid"]) and p != warm and p, 30, "the restarted process")
    assert new != warm
    stub.set_scenario("text")
    handle = driver.ensure("agent:kimi-acp:acp:eight", model="kimi/kimi-k2.5")
    assert driver("turn", handle=handle, text="say hi")["result"]["status"] == "completed"
    runs = driver.runs()
    assert [r["status"] for r in runs] == ["lost", "ok"], runs


def test_the_hook_asks_the_warm_process(driver: Driver) -> None:
    driver("start")
    driver.write_config(defaultBackend=None, agents={"coder": {"backend": "kimi"}})
    params = {"runtime": "acp", "task": "x", "agentId": "claude"}
    ctx = lambda agent: {"agentId": agent, "sessionKey": f"agent:{agent}:main", "sessionId": "s"}  # noqa: E731
    coder = driver("hook", event={"toolName": "sessions_spawn", "params": params}, ctx=ctx("coder"))["answer"]
    assert coder == {"params": {**params, "agentId": "kimi-acp", "model": "kimi/kimi-for-coding"}}
    # another agent passes through, still on kimi-acp's backend (which runs every Claude Code spawn)
    writer = driver("hook", event={"toolName": "sessions_spawn", "params": params}, ctx=ctx("writer"))["answer"]
    assert writer == {"params": {**params, "agentId": "kimi-acp", "model": "passthrough"}}
    # the warm process follows an edit of openclaw.json
    driver.write_config(defaultBackend=None, agents={"writer": {"backend": "kimi"}})
    coder = driver("hook", event={"toolName": "sessions_spawn", "params": params}, ctx=ctx("coder"))["answer"]
    assert coder["params"]["model"] == "passthrough"


def test_stop_ends_the_warm_process_and_unregisters(driver: Driver) -> None:
    warm = driver("start")["pid"]
    out = driver("stop", timeout=60)
    assert out == {"stopped": True, "registered": []}
    wait_until_sync(lambda: not is_alive(warm), 15, "the warm process to exit")


def test_an_openclaw_without_the_backend_door_gets_a_clear_log_line(tmp_path: Path, claude_bin: str, stub: StubServer) -> None:
    d = Driver(tmp_path, claude_bin, stub, extra_env={"DRIVER_NO_SDK": "1"})
    try:
        out = d("start")
        assert out["registered"] == []
        (line,) = [m for m in out["logs"] if m.startswith("ERROR")]
        assert "cannot register the ACP runtime backend: openclaw/plugin-sdk/acp-runtime-backend is not available" in line
        assert "tested with openclaw 2026.9.6" in line
        assert d("pid")["pid"] is None  # no warm process without a backend to serve
        # the hook still routes, through the bridge command (fails closed if that breaks)
        params = {"runtime": "acp", "task": "x", "agentId": "claude"}
        answer = d("hook", event={"toolName": "sessions_spawn", "params": params}, ctx={"agentId": "main", "sessionKey": "agent:main:main"})["answer"]
        assert answer == {"params": {**params, "agentId": "kimi-acp", "model": "kimi/kimi-for-coding"}}
    finally:
        d.close()


def test_a_persistent_session_keeps_its_conversation_until_made_fresh(driver: Driver, stub: StubServer) -> None:
    def user_turns(req: Any) -> int:
        return sum(1 for m in req.body["messages"] if m["role"] == "user" and any(
            b.get("type") == "text" and "turn" in b.get("text", "") for b in (m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}])))

    driver("start")
    key = "agent:kimi-acp:acp:persistent"
    handle = driver.ensure(key, mode="persistent", model="kimi/kimi-k2.5")
    assert driver("turn", handle=handle, text="first turn")["result"]["status"] == "completed"
    again = driver.ensure(key, mode="persistent", model="kimi/kimi-k2.5")
    assert again["runtimeSessionName"] == handle["runtimeSessionName"] and again["agentSessionId"]  # Claude Code's session
    assert driver("turn", handle=again, text="second turn")["result"]["status"] == "completed"
    assert user_turns(stub.messages_requests()[-1]) == 2  # --resume: the first turn is in the history
    driver("close", handle=again, reason="idle")  # a persistent session survives close
    assert list((driver.state / "acp-sessions").glob("*.json"))
    driver("fresh", sessionKey=key)  # OpenClaw's prepareFreshSession
    fresh = driver.ensure(key, mode="persistent", model="kimi/kimi-k2.5")
    assert "agentSessionId" not in fresh
    assert driver("turn", handle=fresh, text="third turn")["result"]["status"] == "completed"
    assert user_turns(stub.messages_requests()[-1]) == 1


def test_a_thinking_default_the_spawn_did_not_ask_for_is_not_applied(driver: Driver, stub: StubServer) -> None:
    driver("start")
    handle = driver.ensure("agent:kimi-acp:acp:default-thinking", model="kimi/kimi-k2.5", thinking="off")
    assert "appliedThinking" not in handle
    driver("config", handle=handle, key="thinking", value="off")  # OpenClaw replays its model's default
    assert driver("turn", handle=handle, text="say hi")["result"]["status"] == "completed"
    effort = (stub.messages_requests()[-1].body.get("output_config") or {}).get("effort")
    assert effort != "low"  # Claude Code's own effort, not "off" -> low


def test_without_a_cwd_a_spawn_runs_in_the_agents_workspace(driver: Driver, stub: StubServer) -> None:
    """OpenClaw drops its default cwd while the target's workspace does not exist yet: the run
    goes to that workspace (made), never to the gateway's own working directory."""
    driver("start")
    out = driver("ensure", input={"sessionKey": "agent:kimi-acp:acp:nocwd", "agentId": "kimi-acp", "agent": "kimi-acp",
                                  "mode": "oneshot", "model": "kimi/kimi-k2.5"})
    workspace = driver.tmp / "openclaw-state" / "workspace-kimi-acp"
    assert out["handle"]["cwd"] == str(workspace) and workspace.is_dir()
    assert driver("turn", handle=out["handle"], text="say hi")["result"]["status"] == "completed"
    assert driver.runs()[-1]["cwd"] == str(workspace)
