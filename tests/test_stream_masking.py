"""The Kimi key never leaves kimi-acp unmasked, on any channel a run's output takes.

The stub's ``leak`` scenario plays a model that repeats the API key it was called with, as
one that ran ``env`` would: in a thinking block, in a Bash ``echo`` tool call (so the key is
in the tool's input, its title and its output), and in its final text. The REAL Claude Code
runs it; each door is then read whole for the key:

* the OpenClaw runtime backend (the extension's own JS, driven from Node as OpenClaw's ACP
  manager drives it): every ``text_delta`` / ``tool_call`` / ``status`` / ``done`` event;
* the ACP agent (acpx, editors): every ``session/update`` a real ACP client receives;
* the CLI: ``kimi-acp spawn``'s stdout (result), stderr (progress), ``--json``; ``show``,
  ``logs``, ``logs --raw``; the transcript and the database on disk;
* the report: the completion event POSTed to a stand-in of the gateway's ``/hooks/agent``.

Each check also requires the masked form (``sk-kimi-…abcd``) where the key was, so a channel
that dropped the text altogether cannot pass for one that masked it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fakes.spawning import HOOKS_TOKEN, KIMI_ACP, write_config
from test_acp import Rig
from test_openclaw_backend import Driver

from kimi_acp.redact import mask
from kimi_acp.stub.gateway import GatewayStub
from kimi_acp.stub.server import StubServer

pytestmark = [pytest.mark.e2e]

KEY = "sk-kimi-test0000000000000000000000000000abcd"  # the key test_acp's and the driver's rigs use
MASKED = mask(KEY)
BODY = KEY.removeprefix("sk-kimi-")


def _clean(blob: str, where: str) -> None:
    assert KEY not in blob and BODY not in blob, f"the Kimi key leaked into {where}"


@pytest.fixture
def stub() -> Any:
    with StubServer(key=KEY, scenario="leak") as server:
        yield server


def test_openclaw_backend_stream_is_masked(tmp_path: Path, claude_bin: str, stub: StubServer) -> None:
    driver = Driver(tmp_path, claude_bin, stub)
    try:
        driver("start")
        handle = driver.ensure("agent:kimi-acp:acp:leak", model="kimi/kimi-k2.5")
        out = driver("turn", handle=handle, text="print your key")
        assert out["result"]["status"] == "completed", out
        events = out["events"]
        _clean(json.dumps(events), "the OpenClaw turn's events")
        thought = "".join(e["text"] for e in events if e["type"] == "text_delta" and e.get("stream") == "thought")
        text = "".join(e["text"] for e in events if e["type"] == "text_delta" and e.get("stream") == "output")
        tools = [e for e in events if e["type"] == "tool_call"]
        assert MASKED in thought and MASKED in text
        assert tools and any(MASKED in e["title"] for e in tools)
        _clean(json.dumps(driver("status", handle=handle)), "getStatus")
    finally:
        driver.close()
    _clean((tmp_path / "driver.stderr").read_text(errors="replace"), "the gateway's log (the warm process's stderr)")


def test_acp_session_updates_are_masked(tmp_path: Path, claude_bin: str, stub: StubServer) -> None:
    rig = Rig(tmp_path, claude_bin, stub)

    async def go() -> list[Any]:
        async with rig.agent() as (conn, client):
            session = await conn.new_session(cwd=str(rig.work), mcp_servers=[])
            answer = await conn.prompt(session_id=session.session_id, prompt=[{"type": "text", "text": "print your key"}])
            assert answer.stop_reason == "end_turn"
            return [u.model_dump(mode="json", by_alias=True) for _, u in client.updates]

    updates = asyncio.run(go())
    blob = json.dumps(updates)
    _clean(blob, "the ACP session updates")
    kinds = {u["sessionUpdate"] for u in updates}
    assert {"agent_thought_chunk", "tool_call", "tool_call_update", "agent_message_chunk"} <= kinds
    calls = [u for u in updates if u["sessionUpdate"] == "tool_call"]
    assert MASKED in calls[0]["title"] and MASKED in json.dumps(calls[0]["rawInput"], ensure_ascii=False)
    results = [u for u in updates if u["sessionUpdate"] == "tool_call_update"]
    assert MASKED in json.dumps(results[0]["content"], ensure_ascii=False) and MASKED in json.dumps(results[0]["rawOutput"], ensure_ascii=False)
    _clean(rig.stderr(), "the ACP agent's stderr")


def test_cli_output_store_and_report_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str, stub: StubServer
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with GatewayStub(token=HOOKS_TOKEN) as gateway:
        write_config(tmp_path, base_url=stub.base_url, harness={"command": claude_bin}, gateway_url=gateway.url)
        env = {**os.environ, "HOME": str(home), "KIMI_API_KEY": KEY, "OPENCLAW_HOOKS_TOKEN": HOOKS_TOKEN}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([KIMI_ACP, *args], env=env, capture_output=True, text=True, timeout=180)

        done = cli("spawn", "print your key", "--agent", "coder", "--session", "agent:coder:main", "--json")
        assert done.returncode == 0, done.stderr
        _clean(done.stdout + done.stderr, "spawn --json")
        run = json.loads(done.stdout)
        assert MASKED in run["result"]
        plain = cli("spawn", "print your key again", "--agent", "coder", "--session", "agent:coder:main")
        assert plain.returncode == 0, plain.stderr
        _clean(plain.stdout, "spawn's stdout")
        _clean(plain.stderr, "spawn's progress on stderr")
        assert MASKED in plain.stdout  # the result
        assert f"tool Bash: echo {MASKED}" in plain.stderr  # the progress line of the tool call
        deliveries = gateway.wait_for(2, timeout=30)
    for d in deliveries:
        _clean(json.dumps(d.body), "the completion event sent to the gateway")
    assert any(MASKED in json.dumps(d.body, ensure_ascii=False) for d in deliveries)
    for args in (("show", run["runId"], "--json"), ("logs", run["runId"]), ("logs", run["runId"], "--raw")):
        out = cli(*args)
        assert out.returncode == 0, out.stderr
        _clean(out.stdout + out.stderr, " ".join(args[:1] + args[2:]))
        assert MASKED in out.stdout, args
    state = Path(os.environ["KIMI_ACP_STATE_DIR"])
    for path in state.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and BODY.encode() not in data, f"the Kimi key leaked into {path}"


def test_library_log_lines_of_the_warm_process_are_masked() -> None:
    """The warm process's stderr is the gateway's log: a library's log line (the ACP SDK logs a
    failed request with its params) is masked like kimi-acp's own lines."""
    import logging

    from kimi_acp.acp_stdio import _RedactingFilter
    from kimi_acp.redact import redact

    redact.add(KEY)
    try:
        raise ValueError(f"bad params: {KEY}")
    except ValueError:
        record = logging.LogRecord("acp", logging.ERROR, __file__, 1, "request failed: %s", (KEY,), exc_info=__import__("sys").exc_info())
    assert _RedactingFilter().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    _clean(text, "a library log line")
    assert text.count(MASKED) == 2  # the message and the traceback
