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

import os
import re
import signal
from collections.abc import Iterator

import pytest
from fakes.gateway_world import (
    DECOY,
    GATEWAY_KEY,
    TURN,
    World,
    accepted,
    kimi_requests_clean,
    make_world,
    run_processes,
    runs,
    spawn_message,
)
from fakes.spawning import is_alive, wait_until_sync

pytestmark = pytest.mark.openclaw


@pytest.fixture(scope="module")
def per_agent(tmp_path_factory: pytest.TempPathFactory, claude_bin: str) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("gw-agent"), ["--agent", "coder"], claude_bin)


@pytest.fixture(scope="module")
def global_(tmp_path_factory: pytest.TempPathFactory, claude_bin: str) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("gw-global"), ["--global"], claude_bin)


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
    seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task="coder task: say hi"))
    answer = accepted(seen)
    assert answer["status"] == "accepted", answer
    child = answer["childSessionKey"]
    assert child.startswith("agent:kimi-acp:acp:")
    event = w.completion(child)
    text = event.last_user_text()
    assert "status: completed" in text
    assert "Hello from the Kimi stub. You said: coder task: say hi" in text  # the child's own text
    reqs = kimi_requests_clean(w.kimi, before)
    assert reqs and all(r.body["model"] == "kimi-k2.5" for r in reqs)
    run = runs(w.state)[-1]
    assert run["backend"] == "kimi" and run["status"] == "ok"


def test_another_agent_passes_through_on_the_gateways_own_credentials(per_agent: World) -> None:
    w = per_agent
    kimi_before, anth_before = len(w.kimi.messages_requests()), len(w.anthropic.messages_requests())
    seen = w.turn("agent:main:main", spawn_message(agentId="claude", task="main task: say hi"))
    child = accepted(seen)["childSessionKey"]
    w.completion(child)
    assert len(w.kimi.messages_requests()) == kimi_before, "a passthrough run reached Kimi"
    reqs = w.anthropic.messages_requests()[anth_before:]
    assert reqs, "the passthrough run never reached the gateway's own Anthropic endpoint"
    assert reqs[0].headers.get("x-api-key") == GATEWAY_KEY or reqs[0].headers.get("authorization") == f"Bearer {DECOY}"
    assert runs(w.state)[-1]["backend"] == "passthrough"


def test_model_for_a_session_routes_that_sessions_spawns(per_agent: World) -> None:
    w = per_agent
    key = "agent:main:chose-kimi"
    # /model kimi-code/kimi-k2.5 in that chat (what the command calls: sessions.patch)
    w.gw.call("sessions.patch", {"key": key, "model": "kimi-code/kimi-k2.5"})
    before = len(w.kimi.messages_requests())
    seen = w.turn(key, spawn_message(task="session task: say hi"))
    w.completion(accepted(seen)["childSessionKey"])
    assert kimi_requests_clean(w.kimi, before), "the session's /model choice did not route its spawn to Kimi"
    run = runs(w.state)[-1]
    assert run["backend"] == "kimi-code", run


def test_cancel_of_a_running_spawn_kills_its_process_group(per_agent: World) -> None:
    w = per_agent
    before = len(w.kimi.messages_requests())
    w.kimi.set_scenario("hang")
    try:
        seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task="a task that hangs"))
        child = accepted(seen)["childSessionKey"]
        w.kimi.wait_for_requests(before + 1, timeout=TURN)
        pids = wait_until_sync(lambda: run_processes(w.state), 30, "the run's processes")
        w.gw.call("sessions.abort", {"key": child})
        wait_until_sync(lambda: not any(is_alive(p) for p in pids), 30, "the run's processes to be gone")
        assert run_processes(w.state) == []
        wait_until_sync(lambda: runs(w.state)[-1]["status"] == "cancelled", 30, "the run to be recorded cancelled")
    finally:
        w.kimi.set_scenario("text")


# --------------------------------------------------------------------------- global


def test_global_routes_every_spawn_to_kimi(global_: World) -> None:
    w = global_
    before = len(w.kimi.messages_requests())
    seen = w.turn("agent:main:main", spawn_message(task="global task: say hi"))  # no agentId: acp.defaultAgent
    event = w.completion(accepted(seen)["childSessionKey"])
    assert "Hello from the Kimi stub. You said: global task: say hi" in event.last_user_text()
    assert kimi_requests_clean(w.kimi, before)
    assert len(w.anthropic.messages_requests()) == 0


def test_gateway_stop_leaves_no_process_of_any_run(global_: World) -> None:
    """SIGTERM (systemd, ``openclaw gateway stop``): the gateway drains its active work (the
    busy spawn finishes), then stops kimi-acp's service; nothing of the run is left."""
    w = global_
    before = len(w.kimi.messages_requests())
    w.kimi.set_scenario("slow:6")
    seen = w.turn("agent:coder:main", spawn_message(task="busy when the gateway stops"))
    assert accepted(seen)["status"] == "accepted"
    w.kimi.wait_for_requests(before + 1, timeout=TURN)
    run_pids = wait_until_sync(lambda: run_processes(w.state), 30, "the run's processes")
    backend_pid = int(re.findall(r"kimi-acp: backend process (\d+) ready", w.gw.log())[-1])
    assert is_alive(backend_pid)
    rc = w.gw.stop(timeout=120)
    assert rc is not None
    wait_until_sync(lambda: not is_alive(backend_pid), 15, "the kimi-acp process to exit")
    wait_until_sync(lambda: not any(is_alive(p) for p in run_pids), 15, "every run process to be gone")
    assert run_processes(w.state) == []
    assert runs(w.state)[-1]["status"] == "ok"  # drained, not cut short


def test_a_crashed_gateway_leaves_no_process_of_any_run(per_agent: World) -> None:
    """kill -9 of the gateway with a run in flight: kimi-acp sees its stdin end, kills the
    run's process group and exits. (Runs last in this module: it ends that gateway.)"""
    w = per_agent
    before = len(w.kimi.messages_requests())
    w.kimi.set_scenario("hang")
    seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task="busy when the gateway dies"))
    assert accepted(seen)["status"] == "accepted"
    w.kimi.wait_for_requests(before + 1, timeout=TURN)
    run_pids = wait_until_sync(lambda: run_processes(w.state), 30, "the run's processes")
    backend_pid = int(re.findall(r"kimi-acp: backend process (\d+) ready", w.gw.log())[-1])
    assert w.gw.proc is not None
    os.kill(w.gw.proc.pid, signal.SIGKILL)
    w.gw.proc.wait(30)
    wait_until_sync(lambda: not is_alive(backend_pid), 30, "the kimi-acp process to exit")
    wait_until_sync(lambda: not any(is_alive(p) for p in run_pids), 15, "every run process to be gone")
    assert run_processes(w.state) == []
    assert runs(w.state)[-1]["status"] in ("cancelled", "lost")


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
