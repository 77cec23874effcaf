"""End to end: the REAL Claude Code CLI, spawned by the Spawner against the local Kimi
stub, with an empty HOME and decoy Anthropic credentials in the parent environment;
the result goes to a stand-in for the OpenClaw gateway's /hooks/agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from fakes.spawning import CONTEXT, HOOKS_TOKEN, KIMI_ACP, REQUESTER, assert_no_orphans, wait_until, write_config
from kimi_acp.spawn import Spawner
from kimi_acp.stub.gateway import GatewayStub
from kimi_acp.stub.server import StubServer

pytestmark = [pytest.mark.e2e]

KEY = "sk-kimi-e2e7c1f00000000000000000000000000a1b2"
DECOYS = {
    "ANTHROPIC_AUTH_TOKEN": "sk-ant-decoy-auth-token-0000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-decoy-api-key-00000000000000000000",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",  # closed: a leak would fail, not pass quietly
}


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(key=KEY) as server:
        yield server


@pytest.fixture
def gateway() -> Iterator[GatewayStub]:
    with GatewayStub(token=HOOKS_TOKEN) as gw:
        yield gw


def e2e_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str = KEY) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("KIMI_API_KEY", key)
    env = dict(os.environ)
    env.update(DECOYS)
    env.update({"HOME": str(home), "OPENCLAW_HOOKS_TOKEN": HOOKS_TOKEN})
    return env


def configure(tmp_path: Path, claude_bin: str, stub: StubServer, gateway: GatewayStub | None, **limits: Any) -> Path:
    return write_config(
        tmp_path,
        base_url=stub.base_url,
        harness={"command": claude_bin},
        limits={"runTimeoutSeconds": 120, **limits},
        gateway_url=gateway.url if gateway else None,
    )


async def deliveries(gateway: GatewayStub, n: int, timeout: float = 10.0) -> list[Any]:
    await wait_until(lambda: len(gateway.deliveries) >= n, timeout, f"{n} gateway deliveries")
    return list(gateway.deliveries)


@pytest.mark.asyncio
async def test_real_claude_on_the_stub_reports_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, stub: StubServer, gateway: GatewayStub
) -> None:
    configure(tmp_path, claude_bin, stub, gateway)
    environ = e2e_environ(tmp_path, monkeypatch)
    async with Spawner(environ=environ) as sp:
        answer = await sp.spawn({"task": "say hi", "runtime": "acp"}, CONTEXT)
        assert answer["status"] == "accepted", answer
        key = answer["childSessionKey"]
        prefix, target, acp_, uid = key.split(":", 3)
        assert (prefix, target, acp_) == ("agent", "claude", "acp") and len(uid) == 36
        assert answer["runId"] and answer["mode"] == "run" and answer["runTimeoutSeconds"] == 120
        result = await sp.wait(answer["runId"], timeout=60)
        got = await deliveries(gateway, 1)
        rec = sp.store.get_run(answer["runId"])
        pending = sp.store.outbox_pending(answer["runId"])

    assert result.status == "ok", result
    assert "Hello from the Kimi stub" in result.result
    assert result.usage["input_tokens"] > 0 and result.usage["output_tokens"] > 0
    assert result.durationMs and result.durationMs > 0
    assert result.sessionId
    assert result.backend == "kimi" and result.model == "kimi-for-coding"

    posts = stub.messages_requests()
    assert posts, "the stub got no /v1/messages request"
    for req in posts:
        assert req.headers.get("x-api-key") == KEY
        assert "authorization" not in req.headers  # the decoy ANTHROPIC_AUTH_TOKEN was scrubbed
        assert req.route.startswith("/coding/v1/messages")
        assert (req.body or {}).get("model") == "kimi-for-coding"

    assert len(got) == 1
    d = got[0]
    assert d.path == "/hooks/agent"
    assert d.headers.get("authorization") == f"Bearer {HOOKS_TOKEN}"
    assert d.body["sessionKey"] == REQUESTER and d.body["agentId"] == "coder"
    assert d.body["idempotencyKey"] == f"kimi-acp:{answer['runId']}"
    message = d.body["message"]
    assert message.startswith("[Internal task completion event]")
    assert "status: completed successfully" in message
    assert result.result in message
    assert f"session_key: {key}" in message

    assert rec.status == "ok" and rec.backend == "kimi" and rec.result_text == result.result
    assert pending == []  # delivered and marked so
    assert_no_orphans(answer["runId"], rec.pgid)


@pytest.mark.asyncio
async def test_real_claude_tool_use_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, stub: StubServer
) -> None:
    configure(tmp_path, claude_bin, stub, None)
    environ = e2e_environ(tmp_path, monkeypatch)
    tools = []

    from kimi_acp.hookspecs import hookimpl
    from kimi_acp.plugins import build_plugin_manager

    class Count:
        @hookimpl
        def kimi_acp_run_event(self, run: Any, event: Any) -> None:
            tools.extend(getattr(event, "tool_uses", []) or [])

    async with Spawner(environ=environ, pm=build_plugin_manager(entrypoints=False, extra=(Count(),))) as sp:
        answer = await sp.spawn({"task": "run the tool [[stub:tool_use]]", "runtime": "acp"}, CONTEXT)
        result = await sp.wait(answer["runId"], timeout=60)
    assert result.status == "ok", result
    assert "stub-tool-ok" in result.result
    assert [t.name for t in tools] == ["Bash"]
    assert len(stub.messages_requests()) >= 2  # the tool result went back to the model
    assert (result.numTurns or 0) >= 1


@pytest.mark.asyncio
async def test_refused_key_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, gateway: GatewayStub
) -> None:
    with StubServer(key="sk-kimi-some-other-key-000000000000000000ff") as other:
        configure(tmp_path, claude_bin, other, gateway)
        environ = e2e_environ(tmp_path, monkeypatch)
        async with Spawner(environ=environ) as sp:
            t0 = time.monotonic()
            answer = await sp.spawn({"task": "say hi", "runtime": "acp"}, CONTEXT)
            result = await sp.wait(answer["runId"], timeout=30)
            elapsed = time.monotonic() - t0
            got = await deliveries(gateway, 1)
            rec = sp.store.get_run(answer["runId"])
        posts = other.messages_requests()
    assert result.status == "error", result
    assert elapsed < 10, f"took {elapsed:.1f} s: the 401 was retried instead of failing fast"
    assert "refused the API key (401)" in (result.error or "") and "KIMI_API_KEY" in (result.error or "")
    assert KEY not in (result.error or "")
    assert 1 <= len(posts) <= 3
    assert "status: failed" in got[0].body["message"]
    assert rec.status == "error"
    assert_no_orphans(answer["runId"], rec.pgid)


@pytest.mark.asyncio
async def test_no_completion_message_when_not_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, stub: StubServer, gateway: GatewayStub
) -> None:
    configure(tmp_path, claude_bin, stub, gateway)
    environ = e2e_environ(tmp_path, monkeypatch)
    async with Spawner(environ=environ) as sp:
        answer = await sp.spawn({"task": "say hi", "runtime": "acp", "expectsCompletionMessage": False}, CONTEXT)
        assert answer["expectsCompletionMessage"] is False
        result = await sp.wait(answer["runId"], timeout=60)
        await sp.flush_outbox()
        await anyio.sleep(0.5)  # the outbox loop had its chance
        items = sp.store.outbox_pending(answer["runId"])
    assert result.status == "ok"
    assert gateway.deliveries == [] and items == []


def cli_env(tmp_path: Path, claude_bin: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DECOYS)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update({"HOME": str(home), "KIMI_API_KEY": KEY, "KIMI_ACP_CLAUDE": claude_bin, "OPENCLAW_HOOKS_TOKEN": HOOKS_TOKEN})
    return env


def test_cli_spawn_json(tmp_path: Path, claude_bin: str, stub: StubServer) -> None:
    write_config(tmp_path, base_url=stub.base_url)  # no harness.command: KIMI_ACP_CLAUDE finds claude
    done = subprocess.run(
        [KIMI_ACP, "spawn", "say hi", "--agent", "coder", "--json"],
        env=cli_env(tmp_path, claude_bin), capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for field in ("runId", "childSessionKey", "status", "result", "backend", "reason", "usage", "durationMs", "error"):
        assert field in out, field
    assert out["status"] == "ok" and out["error"] is None
    assert "Hello from the Kimi stub" in out["result"]
    assert out["backend"] == "kimi" and "agent 'coder'" in out["reason"]
    assert out["usage"]["input_tokens"] > 0 and out["durationMs"] > 0
    assert out["childSessionKey"].startswith("agent:claude:acp:")
    assert KEY not in done.stdout and KEY not in done.stderr
    assert stub.messages_requests()[0].headers.get("x-api-key") == KEY


def test_cli_demo(tmp_path: Path, claude_bin: str) -> None:
    env = cli_env(tmp_path, claude_bin)
    del env["KIMI_API_KEY"]
    done = subprocess.run(
        [KIMI_ACP, "demo"], env=env, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[Internal task completion event]" in out
    assert "status: completed successfully" in out
    assert "Tool said: stub-tool-ok" in out and "] tool " in done.stderr  # the default task runs a tool (progress: stderr)
    assert "Authorization: (none)" in out and "PRESENT" not in out
    assert "means the decoy Anthropic token from the parent environment never reached the backend" in out
    assert "user-agent: claude-cli/2.1.332 (external, sdk-cli)" in out  # whole, not cut
    assert "config: /tmp" not in out  # no scratch path shown as if it lasted
    assert "sk-kimi-demo-local-stub-key-7d3a" not in out + done.stderr
    assert "sk-ant-decoy" not in out + done.stderr

    as_json = subprocess.run(
        [KIMI_ACP, "demo", "--json"], env=env, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )
    assert as_json.returncode == 0, as_json.stderr
    run = json.loads(as_json.stdout)  # only the run object on stdout; the narration went to stderr
    from kimi_acp.commands.output import RUN_KEYS

    # kimi-for-coding runs on the plan's quota: no price (never Claude Code's Anthropic-priced figure)
    assert tuple(run) == RUN_KEYS and run["status"] == "ok" and run["costUsd"] is None and run["costSource"] is None
    assert "[Internal task completion event]" in as_json.stderr


@pytest.mark.asyncio
async def test_thinking_level_reaches_the_request_as_effort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, stub: StubServer
) -> None:
    """sessions_spawn's `thinking` becomes Claude Code's --effort, seen in the request body."""
    configure(tmp_path, claude_bin, stub, None)
    environ = e2e_environ(tmp_path, monkeypatch)
    async with Spawner(environ=environ) as sp:
        answer = await sp.spawn({"task": "say hi", "runtime": "acp", "thinking": "low"}, CONTEXT)
        result = await sp.wait(answer["runId"], timeout=60)
    assert result.status == "ok", result
    efforts = {((r.body or {}).get("output_config") or {}).get("effort") for r in stub.messages_requests()}
    assert efforts == {"low"}  # Claude Code's own default with the kimi model is "high"
