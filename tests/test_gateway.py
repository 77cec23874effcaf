"""The whole path in a REAL, stock OpenClaw gateway (``openclaw@2026.9.6`` from npm, Node 24).

``gateway run`` on a free loopback port; every agent's own chat model is the scripted
:class:`AgentModel` (it answers ``SPAWN {...}`` with ``tool_call {id: "sessions_spawn"}``,
as 2026.9.x defers the spawn tool); the kimi-acp stub plays Kimi, a second stub plays the
gateway's own Anthropic endpoint (passthrough); the real Claude Code CLI runs the tasks.
The gateway's environment carries decoy Anthropic credentials that must never reach Kimi.

Two gateways (each costs tens of seconds, so they are few and every test reuses them): one
installed with ``kimi-acp install --agent coder`` (per agent, ``/model`` through
``sessions.patch``, OpenClaw's own Kimi refs, cancel, every door — /acp spawn, messages, cwd,
modes, status, failover to a stand-in backend, an in-process restart — and last a crash), one
with ``--global`` (and a stop while a run is busy). Calls go through OpenClaw's own gateway
client, in one Node process per gateway (tests/fakes/gateway_admin.mjs).
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

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
    with_fallback,
)
from fakes.spawning import is_alive, wait_until_sync

pytestmark = pytest.mark.openclaw


@pytest.fixture(scope="module")
def per_agent(tmp_path_factory: pytest.TempPathFactory, claude_bin: str) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("gw-agent"), ["--agent", "coder"], claude_bin, configure=with_fallback)


@pytest.fixture(scope="module")
def global_(tmp_path_factory: pytest.TempPathFactory, claude_bin: str) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("gw-global"), ["--global"], claude_bin)


# --------------------------------------------------------------------------- per agent


def test_the_gateway_loads_the_extension_and_registers_the_backend(per_agent: World) -> None:
    log = per_agent.gw.log()
    assert "kimi-acp" in re.search(r"http server listening \(\d+ plugins: ([^;)]*)", log).group(1)
    assert re.search(r"kimi-acp: backend process \d+ ready", log)
    # nothing makes the gateway look for plugins on npm or ClawHub: OpenClaw's own Kimi and Moonshot
    # plugins are there (local stand-ins, as an online gateway has the real ones), none is turned off
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
    # kimi-acp wrote the run's tokens on the child's row: OpenClaw's Stats line shows them
    assert "tokens unknown" not in text and re.search(r"tokens [\d.]+k? \(in [\d.]+k? / out \d+\)", text), text
    reqs = kimi_requests_clean(w.kimi, before)
    assert reqs and all(r.body["model"] == "kimi-for-coding" for r in reqs)
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
    # the seed's /model kimi/kimi-k2.5 in that chat (what the command calls: sessions.patch): the
    # session's own chat keeps working on it, and its spawns run on Kimi with that legacy id
    w.call("sessions.patch", {"key": key, "model": "kimi/kimi-k2.5"})
    before = len(w.kimi.messages_requests())
    seen = w.turn(key, spawn_message(task="session task: say hi"))
    w.completion(accepted(seen)["childSessionKey"])
    reqs = kimi_requests_clean(w.kimi, before)
    assert reqs, "the session's /model choice did not route its spawn to Kimi"
    assert {r.body["model"] for r in reqs} == {"kimi-k2.5"}
    run = runs(w.state)[-1]
    assert (run["backend"], run["model"]) == ("kimi", "kimi-k2.5"), run


def test_cancel_of_a_running_spawn_kills_its_process_group_and_tells_the_parent(per_agent: World) -> None:
    """sessions.abort of the child: its whole process group dies, and the parent's model is told
    at once that it was cancelled, with what it had produced (OpenClaw's own completion event for
    an aborted child comes minutes later and says only "subagent run terminated")."""
    w = per_agent
    before = len(w.kimi.messages_requests())
    seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task="[[stub:progress-then-hang]] a task that hangs"))
    child = accepted(seen)["childSessionKey"]
    w.kimi.wait_for_requests(before + 2, timeout=TURN)  # the second request hangs, after some output
    pids = wait_until_sync(lambda: run_processes(w.state), 30, "the run's processes")
    w.call("sessions.abort", {"key": child})
    wait_until_sync(lambda: not any(is_alive(p) for p in pids), 30, "the run's processes to be gone")
    assert run_processes(w.state) == []
    wait_until_sync(lambda: runs(w.state)[-1]["status"] == "cancelled", 30, "the run to be recorded cancelled")
    told = w.model.wait_for(lambda s: f"The Claude Code session {child} was cancelled" in json.dumps(s.body), TURN, "the cancel notice")
    assert "Progress so far: the first step is done." in json.dumps(told.body)


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
    pids = wait_until_sync(lambda: run_processes(w.state), 30, "the run's processes")
    backend_pid = int(re.findall(r"kimi-acp: backend process (\d+) ready", w.gw.log())[-1])
    assert is_alive(backend_pid)
    rc = w.gw.stop(timeout=120)
    assert rc is not None
    wait_until_sync(lambda: not is_alive(backend_pid), 15, "the kimi-acp process to exit")
    wait_until_sync(lambda: not any(is_alive(p) for p in pids), 15, "every run process to be gone")
    assert run_processes(w.state) == []
    assert runs(w.state)[-1]["status"] == "ok"  # drained, not cut short


# --------------------------------------------------------------------------- OpenClaw's own Kimi refs (per agent)
# OpenClaw's Kimi and Moonshot providers are external plugins (``@openclaw/kimi-provider``, plugin
# id ``kimi``, providers ``kimi``, ``kimi-code``, ``kimi-coding``; ``@openclaw/moonshot-provider``)
# that an online gateway installs at its first start. This gateway is offline, so it loads LOCAL
# STAND-INS for both (``kimi_acp/stub/openclaw_plugins``), through ``plugins.load.paths`` as an
# installed plugin is found (the shared rig does it). They declare the official ids and register
# no runtime code; OpenClaw's chat side of provider ``kimi`` is the scripted model, kimi-acp's
# side is the Kimi stub.


def session_spawn(w: World, key: str, ref: str, task: str) -> tuple[list, dict]:
    """``/model <ref>`` for session ``key`` (sessions.patch, what the command calls), then one
    turn of it that spawns Claude Code without a model; the Kimi requests and the run."""
    w.call("sessions.patch", {"key": key, "model": ref})
    before = len(w.kimi.messages_requests())
    seen = w.turn(key, spawn_message(agentId="claude", task=task))
    answer = accepted(seen)
    assert answer["status"] == "accepted", answer
    event = w.completion(answer["childSessionKey"])
    assert "status: completed" in event.last_user_text()
    return kimi_requests_clean(w.kimi, before), runs(w.state)[-1]


def test_install_leaves_openclaws_own_kimi_and_moonshot_plugins_alone(per_agent: World) -> None:
    cfg = per_agent.gw.read_config()
    entries = cfg["plugins"]["entries"]
    assert "kimi" not in entries and "moonshot" not in entries  # never turned off
    assert cfg["models"]["providers"]["kimi"]["api"] == "anthropic-messages"  # the seed's id, OpenClaw's schema
    log = per_agent.gw.log()
    for needle in ("@openclaw/kimi-provider", "@openclaw/moonshot-provider", "npm view"):
        assert needle not in log.lower(), needle  # the stand-ins are there: nothing looked up
    # no "degraded" start (what missing plugins cause); OpenClaw's memory plugin says its vector
    # recall is degraded on any offline gateway, which is not about plugins
    assert not [line for line in log.splitlines() if "degraded" in line.lower() and "[memory]" not in line]
    # the aliases install added did not become a /model allowlist: a Kimi model outside them is allowed
    assert set(cfg["agents"]["defaults"]["models"]) == {"kimi/kimi-for-coding", "kimi/k3"}
    per_agent.call("sessions.patch", {"key": "agent:main:any-model", "model": "kimi/k3-256k"})


def test_model_kimi_k3_moves_the_sessions_spawns_to_k3(per_agent: World) -> None:
    reqs, run = session_spawn(per_agent, "agent:main:k3", "kimi/k3", "k3 task: say hi")
    assert reqs and {r.body["model"] for r in reqs} == {"k3"}
    assert {r.body["max_tokens"] for r in reqs} == {128_000}  # K3's 131,072, as far as Claude Code goes
    assert (run["backend"], run["model"]) == ("kimi", "k3"), run
    # priced from K3's cost by kimi-acp, not Claude Code's Anthropic price
    assert run["cost_source"] == "kimi-acp" and run["cost_usd"] and run["cost_usd"] > 0, run


def test_model_kimi_coding_kimi_for_coding_reaches_kimi_as_kimi_for_coding(per_agent: World) -> None:
    reqs, run = session_spawn(per_agent, "agent:main:kimi-coding", "kimi-coding/kimi-for-coding", "kfc task: say hi")
    assert reqs and {r.body["model"] for r in reqs} == {"kimi-for-coding"}
    assert (run["backend"], run["model"]) == ("kimi", "kimi-for-coding"), run
    assert run["cost_usd"] is None  # the plan's quota: no per-token price


def test_a_moonshot_model_for_a_spawn_is_refused_in_one_line(per_agent: World) -> None:
    before = len(per_agent.kimi.messages_requests())
    seen = per_agent.turn("agent:coder:main", spawn_message(agentId="claude", model="moonshot/kimi-k3", task="never runs"))
    text = json.dumps(seen.tool_results())
    assert "Moonshot API model" in text and "not Kimi Code" in text and "kimi/k3" in text, text
    assert len(per_agent.kimi.messages_requests()) == before


# --------------------------------------------------------------------------- every door (per agent)


CHILD: dict[str, str] = {}  # the /acp spawn session the next tests talk to


def test_acp_spawn_runs_on_the_requesters_backend_and_follow_ups_continue_its_conversation(per_agent: World) -> None:
    """/acp spawn from coder (routed to Kimi): the session's turns run on Kimi, whatever door the
    message comes by (chat.send, sessions.send), and keep one Claude Code conversation."""
    w = per_agent
    kimi_before, anth_before = len(w.kimi.messages_requests()), len(w.anthropic.messages_requests())
    reply = w.say("agent:coder:main", "/acp spawn claude --mode persistent --thread off")
    found = re.search(r"agent:claude:acp:[0-9a-f-]{36}", reply)
    assert found, reply
    child = CHILD["key"] = found.group(0)
    first = w.say(child, "remember the word pelican")
    assert "Hello from the Kimi stub. You said: remember the word pelican" in first
    second = w.say(child, "which word was it?", method="sessions.send")
    assert "You said: which word was it?" in second
    reqs = kimi_requests_clean(w.kimi, kimi_before)
    assert len(reqs) >= 2 and "pelican" in json.dumps(reqs[-1].body["messages"])  # the same conversation
    assert len(reqs[-1].body["messages"]) > len(reqs[0].body["messages"])
    assert len(w.anthropic.messages_requests()) == anth_before, "a turn ran on the gateway's own Anthropic credentials"
    mine = [r for r in runs(w.state) if r["label"] == child]
    assert len(mine) == 2 and all(r["backend"] == "kimi" and r["requester_agent_id"] == "coder" for r in mine), mine
    assert all("agent 'coder' default" in r["reason"] for r in mine)


def test_acp_cwd_and_set_mode_apply_to_that_sessions_next_turn(per_agent: World, tmp_path: Path) -> None:
    w = per_agent
    child = CHILD["key"]
    folder = tmp_path / "project"
    folder.mkdir()
    said = w.say("agent:coder:main", f"/acp cwd {folder} {child}")
    assert "cwd" in said.lower() and "error" not in said.lower(), said
    said = w.say("agent:coder:main", f"/acp set-mode plan {child}")
    assert "plan" in said and "error" not in said.lower(), said
    w.say(child, "where are you now?")
    run = [r for r in runs(w.state) if r["label"] == child][-1]
    assert run["cwd"] == str(folder.resolve()) and run["status"] == "ok"
    init = next(json.loads(line) for line in (w.state / "transcripts" / f"{run['run_id']}.jsonl").read_text().splitlines()
                if '"subtype":"init"' in line.replace(" ", ""))
    assert init["permissionMode"] == "plan" and init["cwd"] == str(folder.resolve())
    assert "pelican" in json.dumps(w.kimi.messages_requests()[-1].body["messages"])  # its conversation followed it
    bad = w.say("agent:coder:main", f"/acp permissions yolo {child}")
    assert "unknown permission mode 'yolo'" in bad


def test_acp_status_shows_backend_rule_requester_and_session(per_agent: World) -> None:
    w = per_agent
    status = w.say("agent:coder:main", f"/acp status {CHILD['key']}")
    assert "kimi-acp: idle on kimi" in status, status
    assert "agent 'coder' default" in status and "agent:coder:main" in status and "acp-spawn" in status
    doctor = w.say("agent:coder:main", "/acp doctor")
    assert "kimi-acp is ready" in doctor, doctor


def test_a_kimi_rate_limit_before_any_output_moves_the_turn_to_the_fallback_backend(per_agent: World) -> None:
    """acp.fallbacks: ["fallback-standin"] (a local stand-in backend): a 429 before any output
    fails at once with words OpenClaw's failover acts on, and OpenClaw moves the turn."""
    w = per_agent
    before = len(w.kimi.messages_requests())
    seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task="[[stub:error:429]] busy kimi"))
    event = w.completion(accepted(seen)["childSessionKey"])
    assert "Answered by the fallback stand-in" in event.last_user_text(), event.last_user_text()
    assert len(w.kimi.messages_requests()) - before <= 2  # stopped at Claude Code's first retry
    assert runs(w.state)[-1]["status"] == "rate_limited"


def test_a_turn_that_showed_output_is_not_moved_to_the_fallback(per_agent: World) -> None:
    w = per_agent
    turns_before = w.gw.log().count("fallback-standin: turn")
    seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task="[[stub:progress-then-429]] output, then busy"))
    event = w.completion(accepted(seen)["childSessionKey"])
    text = event.last_user_text()
    assert "Answered by the fallback stand-in" not in text and "status: failed" in text, text
    assert w.gw.log().count("fallback-standin: turn") == turns_before


def test_an_in_process_restart_keeps_kimi_acp_working(per_agent: World) -> None:
    """`openclaw gateway restart` of a foreground gateway restarts it in its own process (OpenClaw
    2026.9.6 leaves its ACP manager "stopping" then, which kimi-acp clears); the next spawn runs
    on Kimi and its result comes back."""
    w = per_agent
    pid = w.gw.proc.pid if w.gw.proc else None
    ready_before = w.gw.log().count("[gateway] ready")
    done = w.gw.openclaw("gateway", "restart", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_until_sync(lambda: w.gw.log().count("[gateway] ready") > ready_before, 120, "the gateway to be ready again")
    assert w.gw.proc is not None and w.gw.proc.pid == pid and w.gw.proc.poll() is None  # the same process
    before = len(w.kimi.messages_requests())
    seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task="after the restart: say hi"))
    event = w.completion(accepted(seen)["childSessionKey"])
    assert "You said: after the restart: say hi" in event.last_user_text()
    assert kimi_requests_clean(w.kimi, before)
    assert "kimi-acp is ready" in w.say("agent:coder:main", "/acp doctor")


def test_a_config_edit_reloads_kimi_acp_in_process_and_it_keeps_working(per_agent: World) -> None:
    """An edit of kimi-acp's section of openclaw.json: OpenClaw 2026.9.6 hot-applies it by reloading
    its plugin runtime in the same process (docs/gateway/configuration/hot-reload.md). The old
    kimi-acp process goes, a new one serves; the next spawn runs on Kimi and comes back, and
    /acp doctor tells the truth."""
    w = per_agent
    pid = w.gw.proc.pid if w.gw.proc else None
    old_backend = int(re.findall(r"kimi-acp: backend process (\d+) ready", w.gw.log())[-1])
    applied_before = w.gw.log().count("config hot reload applied")
    cfg = w.gw.read_config()
    cfg["plugins"]["entries"]["kimi-acp"]["config"]["limits"]["graceSeconds"] = 3
    w.gw.config.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    wait_until_sync(lambda: w.gw.log().count("config hot reload applied") > applied_before, 120, "OpenClaw to apply the edit")
    assert "plugins.entries.kimi-acp.config.limits.graceSeconds" in w.gw.log().rsplit("config hot reload applied", 1)[1].splitlines()[0]
    assert w.gw.proc is not None and w.gw.proc.pid == pid and w.gw.proc.poll() is None  # the same gateway process
    wait_until_sync(lambda: int(re.findall(r"kimi-acp: backend process (\d+) ready", w.gw.log())[-1]) != old_backend, 60,
                    "a new kimi-acp process")
    wait_until_sync(lambda: not is_alive(old_backend), 30, "the old kimi-acp process to exit")
    before = len(w.kimi.messages_requests())
    seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task="after the reload: say hi"))
    event = w.completion(accepted(seen)["childSessionKey"])
    assert "You said: after the reload: say hi" in event.last_user_text()
    assert kimi_requests_clean(w.kimi, before)
    assert "kimi-acp is ready" in w.say("agent:coder:main", "/acp doctor")


def test_a_spawned_childs_permission_question_is_answered_from_chat(per_agent: World, tmp_path: Path) -> None:
    """Claude Code asks before a command (here a `touch` outside its folder, which acceptEdits asks
    about): OpenClaw 2026.9.6 asks the turn's question in the child's own session (its
    onElicitation: a question record there), kimi-acp tells the session that spawned it what is
    asked and where, and the user's plain-text answer in the child's session decides: "Allow
    once" -> the file appears; "Deny" -> it does not, and the child's result says why."""
    w = per_agent
    for answer, marker in (("Allow once", tmp_path / "allowed"), ("Deny", tmp_path / "denied")):
        seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task=f"make it [[stub:touch:{marker}]]"))
        child = accepted(seen)["childSessionKey"]
        told = w.model.wait_for(lambda s: f"Claude Code in {child} (spawned by this session) asks before a tool call" in s.last_user_text(),
                                TURN, "the question told to coder's session")
        assert f"run `touch {marker}`" in told.last_user_text()
        pending = wait_until_sync(lambda: [q for q in w.admin("question.list", {})["questions"]
                                           if q["sessionKey"] == child and q["status"] == "pending"], 60, "the question in the child's session")
        assert f"touch {marker}" in pending[0]["questions"][0]["question"]
        assert [o["label"] for o in pending[0]["questions"][0]["options"]] == ["Allow once", "Allow this exact call for the session", "Deny"]
        w.say(child, answer)  # the answer, as a user types it into that session
        event = w.completion(child).last_user_text()
        if answer == "Allow once":
            assert marker.exists() and "Tool said: (Bash completed with no output)" in event
        else:
            assert not marker.exists() and "denied — the user denied it when asked" in event
        decisions = [json.loads(line) for line in (w.state / "transcripts" / f"{runs(w.state)[-1]['run_id']}.jsonl").read_text().splitlines()
                     if '"permission_answer"' in line]
        assert [d["decision"] for d in decisions] == ["allow_once" if answer == "Allow once" else "deny"]


def test_a_crashed_gateway_leaves_no_process_of_any_run(per_agent: World) -> None:
    """kill -9 of the gateway with a run in flight: kimi-acp sees its stdin end, kills the
    run's process group and exits. (Runs last in this module: it ends that gateway.)"""
    w = per_agent
    before = len(w.kimi.messages_requests())
    w.kimi.set_scenario("hang")
    seen = w.turn("agent:coder:main", spawn_message(agentId="claude", task="busy when the gateway dies"))
    assert accepted(seen)["status"] == "accepted"
    w.kimi.wait_for_requests(before + 1, timeout=TURN)
    pids = wait_until_sync(lambda: run_processes(w.state), 30, "the run's processes")
    backend_pid = int(re.findall(r"kimi-acp: backend process (\d+) ready", w.gw.log())[-1])
    assert w.gw.proc is not None
    os.kill(w.gw.proc.pid, signal.SIGKILL)
    w.gw.proc.wait(30)
    wait_until_sync(lambda: not is_alive(backend_pid), 30, "the kimi-acp process to exit")
    wait_until_sync(lambda: not any(is_alive(p) for p in pids), 15, "every run process to be gone")
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
    assert "claude -> kimi-acp on kimi/kimi-for-coding" in out
    event = out.split("received,", 1)[1]
    assert "   | [Internal task completion event]" in event and "   | status: completed" in event
    assert "Tool said: stub-tool-ok" in event
    assert "Authorization: (none)" in out and "sk-kimi-…d3m0" in out and "reached Kimi: no" in out
    assert "processes of the run left: 0" in out
