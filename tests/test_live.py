"""A live run (kimi_acp.live) through the Spawner, with a fake harness that speaks Claude Code's
live print mode (one turn per stream-json user message, each echoed as it is taken, permission
questions as ``can_use_tool`` control requests): stdin stays open exactly as long as a turn is
owed, every question gets exactly one answer (the door's, a timeout's, or a denial when the
door fails), "allow for the session" covers that exact call only, and nothing of the run
outlives it. (The same with the real Claude Code: test_live_turns.py, test_live_openclaw.py.)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from fakes.spawning import CONTEXT, FakeHarness, assert_no_orphans, fake_argv, make_pm, transcript_objects, write_config
from kimi_acp import live as live_mod
from kimi_acp.live import Answer, Live
from kimi_acp.spawn import Spawner

pytestmark = pytest.mark.asyncio

KEY = "sk-kimi-livetests00000000000000000000000beef"
LIVE = fake_argv("live", "--input-format", "stream-json")


@pytest.fixture(autouse=True)
def kimi_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KIMI_API_KEY", KEY)
    write_config(tmp_path)


def spawner() -> Spawner:
    return Spawner(environ=dict(os.environ), pm=make_pm(FakeHarness(LIVE)))


def task(text: str) -> dict[str, Any]:
    return {"task": text, "runtime": "acp"}


def texts(sp: Spawner, run_id: str) -> list[str]:
    return [b["text"] for e in transcript_objects(sp.store.transcript_path(run_id)) if e.get("type") == "assistant"
            for b in e["message"]["content"]]


def no_orphans(sp: Spawner, run_id: str) -> None:
    assert_no_orphans(run_id, sp.store.get_run(run_id).pgid)


def kimi_events(sp: Spawner, run_id: str, subtype: str) -> list[dict[str, Any]]:
    path = sp.store.transcript_path(run_id)
    if not path.exists():
        return []
    return [e for e in transcript_objects(path) if e.get("type") == "kimi-acp" and e.get("subtype") == subtype]


async def test_a_live_run_with_nothing_more_to_say_ends_at_its_result() -> None:
    async with spawner() as sp:
        answer = await sp.spawn(task("hello"), CONTEXT, live=Live())
        started = time.monotonic()
        result = await sp.wait(answer["runId"], timeout=20)
        no_orphans(sp, answer["runId"])
    assert result.status == "ok" and result.result == "got: hello"
    assert time.monotonic() - started < live_mod.UNECHOED_GRACE  # stdin closed at the result, not by the grace
    assert sp.send(answer["runId"], "too late") is False


async def test_a_message_sent_while_a_turn_runs_gets_its_own_turn_in_the_same_process() -> None:
    async with spawner() as sp:
        answer = await sp.spawn(task("SLOW first"), CONTEXT, live=Live())
        rid = answer["runId"]
        await anyio.sleep(0.5)
        assert sp.send(rid, "second") is True
        result = await sp.wait(rid, timeout=20)
        no_orphans(sp, rid)
    assert result.status == "ok" and result.result == "got: second"  # the last turn's result
    assert texts(sp, rid) == ["got: SLOW first", "got: second"]
    assert [e["text"] for e in kimi_events(sp, rid, "user_message")] == ["second"]


async def test_a_message_never_echoed_still_lets_the_run_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_mod, "UNECHOED_GRACE", 0.5)
    async with spawner() as sp:
        answer = await sp.spawn(task("SLOW first"), CONTEXT, live=Live())
        await anyio.sleep(0.3)
        assert sp.send(answer["runId"], "NOECHO second")
        result = await sp.wait(answer["runId"], timeout=20)
    assert result.status == "ok" and texts(sp, answer["runId"]) == ["got: SLOW first", "got: NOECHO second"]


@pytest.mark.parametrize(
    ("said", "reply", "decision"),
    [
        (Answer("allow_once"), "answer: allow", "allow_once"),
        (Answer("deny", reason="the user denied it when asked"), "answer: deny Permission denied: the user denied it when asked", "deny"),
    ],
)
async def test_each_question_gets_the_doors_answer(said: Answer, reply: str, decision: str) -> None:
    asked: list[Any] = []

    async def ask(question: Any) -> Answer:
        asked.append(question)
        return said

    async with spawner() as sp:
        answer = await sp.spawn(task("ASK please"), CONTEXT, live=Live(ask=ask))
        result = await sp.wait(answer["runId"], timeout=20)
    assert result.status == "ok"
    [q] = asked
    assert (q.tool, q.input["command"], q.tool_use_id, q.kind) == ("Bash", "touch marker", "toolu_fake_1", "execute")
    assert q.text() == "Claude Code wants to run `touch marker` (make it)"
    assert reply in texts(sp, answer["runId"])
    [recorded] = kimi_events(sp, answer["runId"], "permission_answer")
    assert recorded["decision"] == decision and recorded["by"] == "user"
    assert ("message" in recorded) is (decision == "deny")


async def test_no_answer_in_time_or_a_failing_door_is_a_denial_that_says_so() -> None:
    async def slow(question: Any) -> Answer:
        await anyio.sleep(60)
        return Answer("allow_once")

    async def broken(question: Any) -> Answer:
        raise RuntimeError("the chat is gone")

    async with spawner() as sp:
        late = await sp.spawn(task("ASK late"), CONTEXT, live=Live(ask=slow, timeout=0.5))
        failing = await sp.spawn(task("ASK broken"), CONTEXT, live=Live(ask=broken))
        await sp.wait(late["runId"], timeout=20)
        await sp.wait(failing["runId"], timeout=20)
    assert "answer: deny Permission denied: nobody answered the question within 0.00833333 minutes" in texts(sp, late["runId"])
    assert any("kimi-acp could not ask (RuntimeError: the chat is gone)" in t for t in texts(sp, failing["runId"]))


async def test_allow_for_the_session_covers_the_same_call_only() -> None:
    calls: list[str] = []

    async def ask(question: Any) -> Answer:
        calls.append(question.input["command"])
        return Answer("allow_always")

    remembered: set[str] = set()
    async with spawner() as sp:
        first = await sp.spawn(task("ASK one"), CONTEXT, live=Live(ask=ask, allowed=remembered))
        await sp.wait(first["runId"], timeout=20)
        second = await sp.spawn(task("ASK two"), CONTEXT, live=Live(ask=ask, allowed=remembered))
        await sp.wait(second["runId"], timeout=20)
    assert calls == ["touch marker"]  # the second run's identical call was not asked
    assert kimi_events(sp, second["runId"], "permission_answer")[0]["by"] == "session"
    assert json.loads(next(iter(remembered))) == ["Bash", {"command": "touch marker", "description": "make it"}]


async def test_a_run_cancelled_while_its_question_waits_ends_and_stops_the_question() -> None:
    stopped = anyio.Event()

    async def forever(question: Any) -> Answer:
        try:
            await anyio.sleep(3600)
        finally:
            stopped.set()
        return Answer("allow_once")

    async with spawner() as sp:
        answer = await sp.spawn(task("ASK wait"), CONTEXT, live=Live(ask=forever))
        while not kimi_events(sp, answer["runId"], "permission_question"):
            await anyio.sleep(0.05)
        await sp.cancel(answer["runId"])
        result = await sp.wait(answer["runId"], timeout=20)
        with anyio.fail_after(5):
            await stopped.wait()
        no_orphans(sp, answer["runId"])
    assert result.status == "cancelled"


async def test_a_run_without_live_closes_stdin_at_once_and_takes_nothing_more() -> None:
    async with spawner() as sp:
        answer = await sp.spawn(task("hello"), CONTEXT)
        assert sp.send(answer["runId"], "more") is False
        result = await sp.wait(answer["runId"], timeout=20)
    assert result.status == "ok" and texts(sp, answer["runId"]) == ["got: hello"]
