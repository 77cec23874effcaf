"""The whole path in a REAL, stock OpenClaw gateway (``openclaw@2026.9.6`` from npm, Node 24).

``gateway run`` on a free loopback port; every agent's own chat model is the scripted
:class:`AgentModel` (it answers ``SPAWN {...}`` with ``tool_call {id: "sessions_spawn"}``,
as 2026.9.x defers the spawn tool); the kimi-acp stub plays Kimi, a second stub plays the
gateway's own Anthropic endpoint (passthrough); the real Claude Code CLI runs the tasks.
The gateway's environment carries decoy Anthropic credentials that must never reach Kimi.

Two gateways: one installed with ``kimi-acp install --agent coder`` (per agent, ``/model``
through ``sessions.patch``, cancel), one with ``--global`` (and a stop while a run is busy).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.spawning import is_alive, pids_carrying_run_id, wait_until_sync

from kimi_acp.stub.agent_model import COMPLETION, AgentModel, Seen
from kimi_acp.stub.openclaw_gateway import Gateway, openclaw_bin
from kimi_acp.stub.server import StubServer
from kimi_acp.store import Store

pytestmark = pytest.mark.openclaw

TEST_KEY = "sk-kimi-test0000000000000000000000000000abcd"  # conftest's key
GATEWAY_KEY = "sk-ant-gateway-own-key-0000000000000000000"  # the gateway's own Anthropic key
DECOY = "sk-ant-decoy-gateway-token-must-not-leak-0000"  # an inherited Bearer token
TURN = 240  # seconds for one agent turn through the gateway (the machine may be loaded)


def _spawn(**args: Any) -> str:
    return "SPAWN " + json.dumps({"runtime": "acp", **args})


def _accepted(seen: Seen) -> dict[str, Any]:
    """The sessions_spawn answer inside the tool result the parent model got."""
    for text in seen.tool_results():
        try:
            outer = json.loads(text)
        except ValueError:
            continue
        details = (outer.get("result") or {}).get("details") if isinstance(outer, dict) else None
        if isinstance(details, dict):
            return details
    raise AssertionError(f"no sessions_spawn result in {seen.tool_results()}")


def _run_processes(state: Path) -> list[int]:
    """Live processes of any run in this kimi-acp state dir (by KIMI_ACP_RUN_ID in their env)."""
    with Store(state) as store:
        ids = [r.run_id for r in store.list_runs(include_finished=True)]
    return [pid for run_id in ids for pid in pids_carrying_run_id(run_id)]


def _runs(state: Path) -> list[dict[str, Any]]:
    with Store(state) as store:
        return [r.to_dict() for r in reversed(store.list_runs(include_finished=True))]


def _kimi_requests_clean(kimi: StubServer, start: int) -> list[Any]:
    reqs = kimi.messages_requests()[start:]
    for r in reqs:
        assert r.headers.get("x-api-key") == TEST_KEY
        assert "authorization" not in r.headers, "an inherited Bearer token reached Kimi"
        blob = json.dumps(r.headers) + r.raw_body.decode(errors="replace")
        assert DECOY not in blob and GATEWAY_KEY not in blob
        assert r.route.endswith("/coding/v1/messages")
    return reqs


class World:
    def __init__(self, gw: Gateway, model: AgentModel, kimi: StubServer, anthropic: StubServer) -> None:
        self.gw, self.model, self.kimi, self.anthropic = gw, model, kimi, anthropic
        self.state = Path(gw.env["KIMI_ACP_STATE_DIR"])

    def turn(self, session_key: str, message: str) -> Seen:
        """One parent turn that should call sessions_spawn; returns the request holding its result."""
        start = len(self.model.seen)
        self.gw.agent_turn(session_key, message, timeout=TURN)
        return self.model.wait_for(lambda s: s in self.model.seen[start:] and bool(s.tool_results()), 30, "the spawn's tool result")

    def completion(self, child_key: str, timeout: float = TURN) -> Seen:
        return self.model.wait_for(lambda s: COMPLETION in s.last_user_text() and child_key in s.last_user_text(), timeout, f"the completion event of {child_key}")


def _world(tmp: Path, install_args: list[str], claude: str) -> Iterator[World]:
    assert openclaw_bin().exists(), "OpenClaw is not installed: run ./scripts/test (it installs it into .tools/openclaw)"
    with StubServer(key=TEST_KEY) as kimi, StubServer(key=None) as anthropic, AgentModel() as model:
        env = {
            "KIMI_API_KEY": TEST_KEY,
            "KIMI_ACP_CLAUDE": claude,
            "KIMI_ACP_DISABLE_ENTRYPOINTS": "1",
            # the gateway's own Anthropic setup, which passthrough runs keep and Kimi runs must not see
            "ANTHROPIC_BASE_URL": anthropic.base_url,
            "ANTHROPIC_API_KEY": GATEWAY_KEY,
            "ANTHROPIC_AUTH_TOKEN": DECOY,
        }
        gw = Gateway(tmp, model_url=model.url, env=env)
        with gw:
            gw.write_config(agents=["main", "coder"])
            out = gw.kimi_acp("install", "--config", str(gw.config), *install_args)
            assert out.returncode == 0, out.stdout + out.stderr
            cfg = gw.read_config()
            # OpenClaw's chat side of provider kimi-code: the scripted model (the parent keeps
            # calling tools after /model kimi-code/kimi-k2.5); kimi-acp's side: the Kimi stub.
            cfg["models"]["providers"]["kimi-code"]["baseUrl"] = model.url
            section = cfg["plugins"]["entries"]["kimi-acp"].setdefault("config", {})
            section["backends"] = {"kimi": {"baseUrl": kimi.base_url}, "kimi-code": {"baseUrl": kimi.base_url}}
            section["limits"] = {"graceSeconds": 2}
            gw.config.write_text(json.dumps(cfg, indent=2))
            gw.start(timeout=180)
            assert 'ACP runtime backend "kimi-acp" registered' in gw.log()
            yield World(gw, model, kimi, anthropic)


@pytest.fixture(scope="module")
def per_agent(tmp_path_factory: pytest.TempPathFactory, claude_bin: str) -> Iterator[World]:
    yield from _world(tmp_path_factory.mktemp("gw-agent"), ["--agent", "coder"], claude_bin)


@pytest.fixture(scope="module")
def global_(tmp_path_factory: pytest.TempPathFactory, claude_bin: str) -> Iterator[World]:
    yield from _world(tmp_path_factory.mktemp("gw-global"), ["--global"], claude_bin)


# --------------------------------------------------------------------------- per agent


def test_the_gateway_loads_the_extension_and_registers_the_backend(per_agent: World) -> None:
    log = per_agent.gw.log()
    assert "kimi-acp" in re.search(r"http server listening \(\d+ plugins: ([^;)]*)", log).group(1)
    assert re.search(r"kimi-acp: backend process \d+ ready", log)
    # nothing in what install wrote makes the gateway look for plugins on npm or ClawHub
    for needle in ("@openclaw/kimi-provider", "@openclaw/moonshot-provider", "@openclaw/acpx"):
        assert needle not in log.lower(), needle


def test_coder_spawn_runs_on_kimi_and_its_result_reaches_the_parent(per_agent: World) -> None:
    w = per_agent
    before = len(w.kimi.messages_requests())
    seen = w.turn("agent:coder:main", _spawn(agentId="claude", task="coder task: say hi"))
    accepted = _accepted(seen)
    assert accepted["status"] == "accepted", accepted
    child = accepted["childSessionKey"]
    assert child.startswith("agent:kimi-acp:acp:")
    event = w.completion(child)
    text = event.last_user_text()
    assert "status: completed" in text
    assert "Hello from the Kimi stub. You said: coder task: say hi" in text  # the child's own text
    reqs = _kimi_requests_clean(w.kimi, before)
    assert reqs and all(r.body["model"] == "kimi-k2.5" for r in reqs)
    run = _runs(w.state)[-1]
    assert run["backend"] == "kimi" and run["status"] == "ok"


def test_another_agent_passes_through_on_the_gateways_own_credentials(per_agent: World) -> None:
    w = per_agent
    kimi_before, anth_before = len(w.kimi.messages_requests()), len(w.anthropic.messages_requests())
    seen = w.turn("agent:main:main", _spawn(agentId="claude", task="main task: say hi"))
    child = _accepted(seen)["childSessionKey"]
    w.completion(child)
    assert len(w.kimi.messages_requests()) == kimi_before, "a passthrough run reached Kimi"
    reqs = w.anthropic.messages_requests()[anth_before:]
    assert reqs, "the passthrough run never reached the gateway's own Anthropic endpoint"
    assert reqs[0].headers.get("x-api-key") == GATEWAY_KEY or reqs[0].headers.get("authorization") == f"Bearer {DECOY}"
    assert _runs(w.state)[-1]["backend"] == "passthrough"


def test_model_for_a_session_routes_that_sessions_spawns(per_agent: World) -> None:
    w = per_agent
    key = "agent:main:chose-kimi"
    # /model kimi-code/kimi-k2.5 in that chat (what the command calls: sessions.patch)
    w.gw.call("sessions.patch", {"key": key, "model": "kimi-code/kimi-k2.5"})
    before = len(w.kimi.messages_requests())
    seen = w.turn(key, _spawn(task="session task: say hi"))
    w.completion(_accepted(seen)["childSessionKey"])
    assert _kimi_requests_clean(w.kimi, before), "the session's /model choice did not route its spawn to Kimi"
    run = _runs(w.state)[-1]
    assert run["backend"] == "kimi-code", run


def test_cancel_of_a_running_spawn_kills_its_process_group(per_agent: World) -> None:
    w = per_agent
    before = len(w.kimi.messages_requests())
    w.kimi.set_scenario("hang")
    try:
        seen = w.turn("agent:coder:main", _spawn(agentId="claude", task="a task that hangs"))
        child = _accepted(seen)["childSessionKey"]
        w.kimi.wait_for_requests(before + 1, timeout=TURN)
        pids = wait_until_sync(lambda: _run_processes(w.state), 30, "the run's processes")
        w.gw.call("sessions.abort", {"key": child})
        wait_until_sync(lambda: not any(is_alive(p) for p in pids), 30, "the run's processes to be gone")
        assert _run_processes(w.state) == []
        wait_until_sync(lambda: _runs(w.state)[-1]["status"] == "cancelled", 30, "the run to be recorded cancelled")
    finally:
        w.kimi.set_scenario("text")


# --------------------------------------------------------------------------- global


def test_global_routes_every_spawn_to_kimi(global_: World) -> None:
    w = global_
    before = len(w.kimi.messages_requests())
    seen = w.turn("agent:main:main", _spawn(task="global task: say hi"))  # no agentId: acp.defaultAgent
    event = w.completion(_accepted(seen)["childSessionKey"])
    assert "Hello from the Kimi stub. You said: global task: say hi" in event.last_user_text()
    assert _kimi_requests_clean(w.kimi, before)
    assert len(w.anthropic.messages_requests()) == 0


def test_gateway_stop_leaves_no_process_of_any_run(global_: World) -> None:
    """SIGTERM (systemd, ``openclaw gateway stop``): the gateway drains its active work (the
    busy spawn finishes), then stops kimi-acp's service; nothing of the run is left."""
    w = global_
    before = len(w.kimi.messages_requests())
    w.kimi.set_scenario("slow:6")
    seen = w.turn("agent:coder:main", _spawn(task="busy when the gateway stops"))
    assert _accepted(seen)["status"] == "accepted"
    w.kimi.wait_for_requests(before + 1, timeout=TURN)
    runs = wait_until_sync(lambda: _run_processes(w.state), 30, "the run's processes")
    backend_pid = int(re.findall(r"kimi-acp: backend process (\d+) ready", w.gw.log())[-1])
    assert is_alive(backend_pid)
    rc = w.gw.stop(timeout=120)
    assert rc is not None
    wait_until_sync(lambda: not is_alive(backend_pid), 15, "the kimi-acp process to exit")
    wait_until_sync(lambda: not any(is_alive(p) for p in runs), 15, "every run process to be gone")
    assert _run_processes(w.state) == []
    assert _runs(w.state)[-1]["status"] == "ok"  # drained, not cut short


def test_a_crashed_gateway_leaves_no_process_of_any_run(per_agent: World) -> None:
    """kill -9 of the gateway with a run in flight: kimi-acp sees its stdin end, kills the
    run's process group and exits. (Runs last in this module: it ends that gateway.)"""
    w = per_agent
    before = len(w.kimi.messages_requests())
    w.kimi.set_scenario("hang")
    seen = w.turn("agent:coder:main", _spawn(agentId="claude", task="busy when the gateway dies"))
    assert _accepted(seen)["status"] == "accepted"
    w.kimi.wait_for_requests(before + 1, timeout=TURN)
    runs = wait_until_sync(lambda: _run_processes(w.state), 30, "the run's processes")
    backend_pid = int(re.findall(r"kimi-acp: backend process (\d+) ready", w.gw.log())[-1])
    assert w.gw.proc is not None
    os.kill(w.gw.proc.pid, signal.SIGKILL)
    w.gw.proc.wait(30)
    wait_until_sync(lambda: not is_alive(backend_pid), 30, "the kimi-acp process to exit")
    wait_until_sync(lambda: not any(is_alive(p) for p in runs), 15, "every run process to be gone")
    assert _run_processes(w.state) == []
    assert _runs(w.state)[-1]["status"] in ("cancelled", "lost")


def test_the_demo_runs_the_main_job(claude_bin: str) -> None:
    """`./scripts/demo`'s program: a stock gateway, coder's spawn through kimi-acp, the completion
    event as the parent got it, what Kimi saw, nothing left behind."""
    import subprocess
    import sys

    env = {**os.environ, "KIMI_ACP_CLAUDE": claude_bin}
    done = subprocess.run([sys.executable, "-m", "kimi_acp.commands.gateway_demo"], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert 'ACP runtime backend "kimi-acp" registered' in out
    assert "claude -> kimi-acp on kimi/kimi-k2.5" in out
    event = out.split("received,", 1)[1]
    assert "   | [Internal task completion event]" in event and "   | status: completed" in event
    assert "Tool said: stub-tool-ok" in event
    assert "Authorization: (none)" in out and "sk-kimi-…d3m0" in out and "reached Kimi: no" in out
    assert "processes of the run left: 0" in out
