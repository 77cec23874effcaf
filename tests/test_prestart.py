"""`kimi-acp spawn` starts Claude Code before the rest of kimi-acp has imported, and the
Spawner adopts that process only when the run it prepares is exactly the one started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fakes.spawning import CONTEXT, is_alive, write_config
from kimi_acp.hookspecs import hookimpl
from kimi_acp.plugins import build_plugin_manager
from kimi_acp.prestart import prestart
from kimi_acp.spawn import Spawner
from kimi_acp.stub.server import StubServer

pytestmark = [pytest.mark.e2e]

KEY = "sk-kimi-prestart0000000000000000000000c0de"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claude_bin: str):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    with StubServer(key=KEY) as stub:
        write_config(tmp_path, base_url=stub.base_url, harness={"command": claude_bin})
        yield stub


@pytest.mark.asyncio
async def test_an_early_started_claude_is_adopted_and_runs_the_task(setup: StubServer) -> None:
    pm = build_plugin_manager(entrypoints=False)
    request = {"task": "say hi early", "runtime": "acp", "env": {}}
    early = prestart(request, CONTEXT, config_path=None, pm=pm)
    assert early is not None and early.process.returncode is None  # running, waiting for its task
    assert "KIMI_ACP_RUN_ID" not in early.env and early.slot_fd is not None
    try:
        async with Spawner(pm=pm, environ=dict(os.environ)) as sp:
            answer = await sp.spawn(request, CONTEXT, prestarted=early)
            assert early.adopted and answer["runId"] == early.run_id
            result = await sp.wait(answer["runId"], timeout=60)
            rec = sp.store.get_run(answer["runId"])
    finally:
        await early.discard()
    assert result.status == "ok" and "say hi early" in result.result
    assert rec.pid == early.process.pid  # the very process started early ran the task
    assert [r.headers.get("x-api-key") for r in setup.messages_requests()] == [KEY]


@pytest.mark.asyncio
async def test_a_mismatched_early_process_is_not_adopted_and_is_killed(setup: StubServer) -> None:
    pm = build_plugin_manager(entrypoints=False)
    early = prestart({"task": "x", "runtime": "acp", "env": {}}, CONTEXT, config_path=None, pm=pm)
    assert early is not None
    pid = early.process.pid
    async with Spawner(pm=pm, environ=dict(os.environ)) as sp:
        # The real request differs (its own env): the early process must not be used.
        answer = await sp.spawn({"task": "x", "runtime": "acp", "env": {"EXTRA": "1"}}, CONTEXT, prestarted=early)
        assert not early.adopted
        result = await sp.wait(answer["runId"], timeout=60)
        assert sp.store.get_run(answer["runId"]).pid != pid
    await early.discard()
    assert result.status == "ok"
    assert not is_alive(pid)
    again = early.slots.try_acquire("kimi")  # its slot was given back
    assert again is not None
    early.slots.release(again)


@pytest.mark.asyncio
async def test_nothing_starts_early_when_a_plugin_can_change_the_request(setup: StubServer) -> None:
    class Rewriter:
        @hookimpl
        def kimi_acp_before_spawn(self, request, context):  # type: ignore[no-untyped-def]
            return None

    pm = build_plugin_manager(entrypoints=False, extra=(Rewriter(),))
    assert prestart({"task": "x", "runtime": "acp"}, CONTEXT, config_path=None, pm=pm) is None
    os.environ["KIMI_ACP_NO_PRESTART"] = "1"
    try:
        assert prestart({"task": "x", "runtime": "acp"}, CONTEXT, config_path=None, pm=build_plugin_manager(entrypoints=False)) is None
    finally:
        del os.environ["KIMI_ACP_NO_PRESTART"]
